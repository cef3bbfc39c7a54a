"""Read predictions / ground truth for ``evaluate recon`` and pair them hand by hand.

Two layouts are accepted for either side:

* FreiHAND ``pred.json``: ``[xyz_list, verts_list]`` (N×21×3 and N×V×3, metres, camera frame), or a
  bare ``xyz_list`` (like FreiHAND's ``training_xyz.json``). Hands have no ids: they are right hands
  keyed by their position.
* A handsynth dataset (folder with ``metadata.jsonl`` or the ``.jsonl`` file): one entry per hand,
  keyed by (record id, side), joints from ``joints_3d``, vertices from the hand model the record names
  (OpenHand built in; MANO from the user's files) when they reproduce ``joints_3d``.

When both sides carry record ids, hands are paired by (id, side); otherwise by position.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handsynth.data.folder import dataset_root, read_dataset
from handsynth.errors import UserError
from handsynth.hand.model import load_hand_model


@dataclass
class HandEntry:
    """One hand of one sample, in metres; ``image`` and ``bbox`` only for record inputs."""

    sample_id: str
    side: str
    joints: np.ndarray  # (21, 3)
    verts: np.ndarray | None = None
    image: Path | None = None
    K: np.ndarray | None = None
    keyed: bool = True  # False for positional (FreiHAND) entries


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _read_freihand(path: Path) -> list[HandEntry]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(
            f"{path}: cannot be read as JSON ({err}); pass a FreiHAND pred.json or a dataset folder"
        ) from err
    if not isinstance(data, list) or not data:
        raise UserError(
            f"{path}: expected FreiHAND's [xyz_list, verts_list] or an xyz list; got an empty or non-list value"
        )
    try:
        if _is_number(data[0][0][0]):  # bare xyz list
            xyz, verts = np.asarray(data, np.float64), None
        else:
            if len(data) != 2:
                raise ValueError("pred.json must hold exactly [xyz_list, verts_list]")
            xyz = np.asarray(data[0], np.float64)
            verts = np.asarray(data[1], np.float64) if len(data[1]) else None
    except (TypeError, IndexError, ValueError) as err:
        raise UserError(f"{path}: not in FreiHAND layout [xyz_list, verts_list] ({err})") from err
    if xyz.ndim != 3 or xyz.shape[1:] != (21, 3):
        raise UserError(f"{path}: joints must be N×21×3, got shape {xyz.shape}")
    if verts is not None and (verts.ndim != 3 or verts.shape[0] != xyz.shape[0] or verts.shape[2] != 3):
        raise UserError(f"{path}: vertices must be N×V×3 with N={xyz.shape[0]}, got shape {verts.shape}")
    bad = np.flatnonzero(~np.isfinite(xyz).all(axis=(1, 2)))
    if verts is not None:
        bad = np.union1d(bad, np.flatnonzero(~np.isfinite(verts).all(axis=(1, 2))))
    if len(bad):
        raise UserError(
            f"{path}: {len(bad)} of {len(xyz)} hands hold NaN or infinite coordinates (first: hand {int(bad[0])}, "
            "0-based); a diverged model? Score only finite predictions"
        )
    return [
        HandEntry(f"{i:08d}", "right", xyz[i], None if verts is None else verts[i], keyed=False)
        for i in range(xyz.shape[0])
    ]


def record_vertices(
    hands: list, mano_dir: str | Path | None, notes: list[str], absolute: list[bool] | None = None
) -> list[np.ndarray | None]:
    """Vertices of record hands from their parameters through the hand model they name.

    ``absolute[i]``: hand i's record holds an absolute ``hand_pose`` (``source.flat_hand_mean``, e.g.
    HO3D), posed by a model that adds no mean. A hand keeps its vertices only if the model's joints
    reproduce its ``joints_3d`` within 2 mm, so vertices are never paired with labels made under another
    convention; the rest get None (+ a note).
    """
    import torch

    out: list[np.ndarray | None] = [None] * len(hands)
    flags = absolute if absolute is not None else [False] * len(hands)
    groups: dict[tuple[str, str, bool], list[int]] = {}
    for i, h in enumerate(hands):
        groups.setdefault((h.model, h.side, bool(flags[i])), []).append(i)
    bad = 0
    for (kind, side, flat), idx in groups.items():
        try:
            model = load_hand_model(kind, side, model_dir=mano_dir, flat_hand_mean=flat)
        except UserError as err:
            notes.append(f"no vertices for {kind} {side} hands: {err}")
            continue
        for start in range(0, len(idx), 64):
            chunk = idx[start : start + 64]

            def arr(name: str, chunk: list[int] = chunk) -> torch.Tensor:
                return torch.tensor([getattr(hands[i], name) for i in chunk], dtype=torch.float32)

            with torch.no_grad():
                res = model(
                    global_orient=arr("global_orient"),
                    hand_pose=arr("hand_pose"),
                    betas=arr("betas"),
                    transl=arr("transl"),
                )
            joints = res.joints.double().numpy()
            verts = res.vertices.double().numpy()
            for k, i in enumerate(chunk):
                if np.abs(joints[k] - np.asarray(hands[i].joints_3d)).max() <= 0.002:
                    out[i] = verts[k]
                else:
                    bad += 1
    if bad:
        notes.append(
            f"{bad} hands have no vertices: their parameters do not reproduce their joints_3d within 2 mm"
        )
    return out


def _read_records(
    path: Path, vertices: bool, mano_dir: str | Path | None, notes: list[str]
) -> list[HandEntry]:
    root = dataset_root(path)
    samples = read_dataset(path)
    flat = [(s, h) for s in samples for h in s.hands]
    verts = (
        record_vertices([h for _, h in flat], mano_dir, notes, [s.flat_hand_mean for s, _ in flat])
        if vertices and flat
        else [None] * len(flat)
    )
    return [
        HandEntry(
            s.id,
            h.side,
            np.asarray(h.joints_3d, np.float64),
            verts=v,
            image=(root / s.file_name) if s.file_name else None,
            K=np.asarray(s.K, np.float64),
        )
        for (s, h), v in zip(flat, verts)
    ]


def read_hands(
    path: str | Path,
    vertices: bool = True,
    mano_dir: str | Path | None = None,
    notes: list[str] | None = None,
) -> list[HandEntry]:
    """Load every hand from a FreiHAND JSON file or a handsynth dataset.

    For datasets, ``vertices`` computes each hand's mesh from its parameters (see
    :func:`record_vertices`; MANO hands need ``mano_dir``); messages go to ``notes``.
    """
    p = Path(path)
    if not p.exists():
        raise UserError(
            f"{p}: does not exist; pass a FreiHAND pred.json or a dataset folder / metadata.jsonl"
        )
    if p.is_file() and p.suffix == ".json":
        return _read_freihand(p)
    return _read_records(p, vertices, mano_dir, notes if notes is not None else [])


def pair_hands(pred: list[HandEntry], gt: list[HandEntry]) -> list[tuple[HandEntry, HandEntry]]:
    """Pair predicted and ground-truth hands, by (id, side) when both are keyed, else by position."""
    if not gt:
        raise UserError("the ground truth holds no hands; check the --gt path")
    keyed = all(e.keyed for e in pred) and all(e.keyed for e in gt)
    if not keyed:
        if len(pred) != len(gt):
            raise UserError(
                f"--pred has {len(pred)} hands and --gt has {len(gt)}; without record ids they are paired by "
                "position, so both must list the same hands in the same order"
            )
        return list(zip(pred, gt))
    index = {(e.sample_id, e.side): e for e in pred}
    pairs, missing = [], []
    for g in gt:
        p = index.get((g.sample_id, g.side))
        if p is None:
            missing.append(f"{g.sample_id}/{g.side}")
        else:
            pairs.append((p, g))
    if missing:
        raise UserError(
            f"--pred lacks {len(missing)} ground-truth hands (e.g. {', '.join(missing[:3])}); "
            "predict every hand of --gt or evaluate on the matching subset"
        )
    return pairs
