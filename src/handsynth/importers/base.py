"""What every dataset importer shares: options, the MANO conversion, the consistency check, the write loop.

An importer only knows its dataset's files: it checks the layout (one error naming the first missing
file or key) and yields :class:`Frame` objects whose hands are already in the camera frame (OpenCV,
metres) with smplx-layout MANO parameters. :func:`run_prepare` does the rest the same way for all of
them: pose every hand with the user's MANO model (joints, ``joints_2d`` with ``K``, ``bbox`` from the
projected mesh), compare with the dataset's own 3D joints on the first hands, link the image, and
append the record through :class:`~handsynth.data.DatasetWriter` (so a rerun resumes).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from handsynth.errors import UserError

log = logging.getLogger(__name__)

LINK_MODES = ("symlink", "hardlink", "copy")
CHECK_HANDS = 100  # the consistency check covers the first this-many hands with 3D labels
CHECK_TOLERANCE_MM = 1.0
REPORT = "prepare_report.json"


@dataclass
class PrepareOptions:
    """Everything ``handsynth prepare`` was asked for (importers read the fields they need)."""

    root: Path
    out: Path
    split: str | None = None
    setup: str = "s0"
    limit: int | None = None
    every: int = 1
    link: str = "symlink"
    mano_dir: Path | None = None
    objects: Path | None = None
    strict: bool = False
    versions: tuple[str, ...] = ("gs",)
    subset: str = "all"
    min_hand_size: float = 32.0
    fits: Path | None = None  # COCO-WholeBody: MANO fits per annotation id (docs/datasets.md)
    overwrite: bool = False
    progress: bool = True


@dataclass
class RawHand:
    """One hand in the camera frame: smplx MANO parameters and the dataset's own joints (if any).

    ``joints`` are the dataset's 3D joints in metres, OpenPose order, camera frame (``None`` when the
    dataset has none): the consistency check compares them with the re-posed model.
    """

    side: str
    global_orient: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    joints: np.ndarray | None = None


@dataclass
class Frame:
    """One image of the dataset, ready to become a record."""

    id: str
    image: Path
    K: np.ndarray
    width: int = 0  # 0: read from the image's header
    height: int = 0
    hands: list[RawHand] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)  # hands_2d, objects, sequence, body, ...
    source: dict[str, Any] = field(default_factory=dict)


class Importer:
    """Base class of one dataset's importer; subclasses fill in the class attributes and two methods."""

    name = ""
    title = ""
    layout = ""  # one line: the files expected under ROOT (quoted in every layout error)
    splits: tuple[str, ...] = ("train",)
    default_split = "train"
    flat_hand_mean: bool | None = False  # None: found by the consistency check on the first hand
    needs_hand_model = True
    fix_left_shapedirs = True
    # Compare fingertips too? False when the dataset's tips come from other vertices than smplx's
    # (manopth's 745, 317, 444, 556, 673): then only the 16 kinematic joints are compared.
    check_tips = True

    def __init__(self, opts: PrepareOptions) -> None:
        self.opts = opts
        self.root = Path(opts.root)
        self.split = opts.split or self.default_split
        if self.split not in self.splits:
            raise UserError(
                f"--split {self.split!r} is not a {self.title} split: choose one of {self.splits}"
            )
        self.hands: HandKit | None = None
        self._json_cache: dict[Path, Any] = {}

    def annotation(self, path: Path) -> Any:
        """A large annotation file, read once per run (``count`` and ``frames`` both need it)."""
        if path not in self._json_cache:
            self._json_cache[path] = read_json(path)
        return self._json_cache[path]

    def config(self) -> dict[str, Any]:
        """Settings that change the records (a resumed run must use the same ones)."""
        return {"stage": "prepare", "dataset": self.name, "split": self.split, "every": self.opts.every}

    def missing(self, what: str | Path, kind: str = "file") -> UserError:
        """The one error for an incomplete download: names the first missing file or key and the layout."""
        return UserError(
            f"{self.title} {kind} {what} is missing: the importer expects {self.layout} under --root "
            f"{self.root} (see docs/datasets.md)"
        )

    def need(self, rel: str) -> Path:
        """``ROOT/rel``, or the layout error when it does not exist."""
        path = self.root / rel
        if not path.exists():
            raise self.missing(path)
        return path

    def key(self, mapping: Any, key: Any, where: str | Path) -> Any:
        """``mapping[key]``, or the layout error naming the key and the file it should be in."""
        try:
            return mapping[key]
        except (KeyError, IndexError, TypeError):
            raise self.missing(f"'{key}' in {where}", kind="key") from None

    def check(self) -> None:
        """Raise the layout error for the first missing file before anything is written."""
        raise NotImplementedError

    def count(self) -> int | None:
        """How many frames :meth:`frames` will visit (for the progress bar), if known cheaply."""
        return None

    def frames(self, skipped: Counter) -> Iterator[Frame]:
        """Yield the frames in dataset order; count frames dropped on the way in ``skipped[reason]``."""
        raise NotImplementedError


class HandKit:
    """The MANO models (per side and ``flat_hand_mean``) and the conversions importers need."""

    def __init__(self, mano_dir: Path | None, fix_left_shapedirs: bool = True) -> None:
        from handsynth.hand.model import HandModels

        self.mano_dir = mano_dir
        self._models = HandModels(mano_dir, fix_left_shapedirs)

    def model(self, side: str, flat_hand_mean: bool = False):
        """The MANO model of ``side`` (loaded once)."""
        return self._models.get("mano", side, flat_hand_mean)

    def mano_file(self, side: str) -> dict[str, np.ndarray]:
        """The raw arrays of the MANO file (for ``hands_components``)."""
        from handsynth.hand.mano import find_mano_file, read_mano_file

        return read_mano_file(find_mano_file(side, self.mano_dir))

    def rest_wrist(self, side: str, betas: np.ndarray) -> np.ndarray:
        """The shaped rest wrist: the point MANO's global rotation turns about."""
        import torch

        with torch.no_grad():
            b = torch.as_tensor(np.asarray(betas, dtype=np.float32)[None])
            return self.model(side).rest_wrist(b)[0].double().numpy()

    def rigid(
        self, side: str, R: np.ndarray, T: np.ndarray, global_orient: Any, transl: Any, betas: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """MANO ``global_orient``, ``transl`` after the rigid map ``X -> R X + T`` of the posed hand.

        The root rotation acts about the rest wrist ``j0``, so ``global_orient' = R R_go`` and
        ``transl' = R (j0 + t) + T - j0``.
        """
        from scipy.spatial.transform import Rotation

        R = np.asarray(R, dtype=np.float64)
        j0 = self.rest_wrist(side, betas)
        go = Rotation.from_matrix(R @ Rotation.from_rotvec(np.asarray(global_orient, float)).as_matrix())
        t = R @ (j0 + np.asarray(transl, dtype=np.float64)) + np.asarray(T, dtype=np.float64) - j0
        return go.as_rotvec(), t

    def pose(self, hand: RawHand, flat_hand_mean: bool) -> tuple[np.ndarray, np.ndarray]:
        """Vertices and OpenPose-21 joints (metres, camera frame) of ``hand``."""
        import torch

        def t(a: Any) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.float32)[None])

        with torch.no_grad():
            out = self.model(hand.side, flat_hand_mean)(
                t(hand.global_orient), t(hand.hand_pose), t(hand.betas), t(hand.transl)
            )
        return out.vertices[0].double().numpy(), out.joints[0].double().numpy()


TIPS = (4, 8, 12, 16, 20)  # OpenPose indices of the fingertips
KINEMATIC = tuple(i for i in range(21) if i not in TIPS)


def joint_error_mm(a: np.ndarray, b: np.ndarray, tips: bool = True) -> float:
    """Largest joint distance in millimetres (over the 16 kinematic joints only when ``tips`` is False)."""
    keep = list(range(21)) if tips else list(KINEMATIC)
    return float(np.linalg.norm(np.asarray(a)[keep] - np.asarray(b)[keep], axis=-1).max() * 1000.0)


def read_json(path: str | os.PathLike) -> Any:
    """A dataset's JSON file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def link_image(src: Path, dst: Path, mode: str) -> None:
    """Place the dataset's image at ``dst`` (symlink by default), atomically through a temporary name."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    if mode == "symlink":
        os.symlink(src.resolve(), tmp)
    elif mode == "hardlink":
        try:
            os.link(src, tmp)
        except OSError as err:
            raise UserError(
                f"--link hardlink: cannot hard-link {src} into {dst.parent} ({err.strerror}); "
                "use --link symlink or copy"
            ) from None
    else:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


@dataclass
class CheckResult:
    """The consistency check on the first hands: re-posed MANO joints vs the dataset's joints."""

    checked: int = 0
    failed: list[dict] = field(default_factory=list)
    max_error_mm: float = 0.0
    errors_mm: list[float] = field(default_factory=list)

    def add(self, frame_id: str, side: str, err: float) -> bool:
        self.checked += 1
        self.errors_mm.append(err)
        self.max_error_mm = max(self.max_error_mm, err)
        ok = err <= CHECK_TOLERANCE_MM
        if not ok:
            self.failed.append({"id": frame_id, "side": side, "error_mm": round(err, 4)})
        return ok

    def to_dict(self) -> dict:
        return {
            "hands_checked": self.checked,
            "tolerance_mm": CHECK_TOLERANCE_MM,
            "max_error_mm": round(self.max_error_mm, 6),
            "mean_error_mm": round(float(np.mean(self.errors_mm)), 6) if self.errors_mm else None,
            "failed": self.failed,
        }


@dataclass
class PrepareSummary:
    """What a run did; written to ``OUT/prepare_report.json`` and printed."""

    dataset: str
    split: str
    written: int = 0
    present: int = 0
    hands: int = 0
    skipped: Counter = field(default_factory=Counter)
    check: CheckResult = field(default_factory=CheckResult)
    flat_hand_mean: bool | None = None

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "records_written": self.written,
            "records_already_present": self.present,
            "hands_written": self.hands,
            "skipped": dict(sorted(self.skipped.items())),
            "flat_hand_mean": self.flat_hand_mean,
            "consistency_check": self.check.to_dict(),
        }

    def lines(self) -> list[str]:
        out = [
            f"{self.dataset} {self.split}: {self.written} records written ({self.hands} hands), "
            f"{self.present} already present"
        ]
        if self.skipped:
            out.append("skipped: " + ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())))
        c = self.check
        if c.checked:
            out.append(
                f"consistency check: {c.checked} hands, max joint error {c.max_error_mm:.4f} mm, "
                f"{len(c.failed)} over {CHECK_TOLERANCE_MM} mm"
                + (f" (first: {c.failed[0]['id']} {c.failed[0]['side']})" if c.failed else "")
            )
        return out


def _choose_flat_hand_mean(kit: HandKit, hand: RawHand, frame_id: str, dataset: str) -> bool:
    """The ``flat_hand_mean`` whose re-posed joints match the dataset's (the other one is far off)."""
    errors = {flat: joint_error_mm(kit.pose(hand, flat)[1], hand.joints, False) for flat in (False, True)}
    best = min(errors, key=errors.get)
    if errors[best] > CHECK_TOLERANCE_MM:
        raise UserError(
            f"{dataset} frame {frame_id}: neither flat_hand_mean=False ({errors[False]:.2f} mm) nor True "
            f"({errors[True]:.2f} mm) reproduces the dataset's 3D joints within {CHECK_TOLERANCE_MM} mm: "
            "pass the MANO files the dataset was fitted with (--mano-dir)"
        )
    return best


def _record_hand(kit: HandKit, hand: RawHand, flat: bool, K: np.ndarray) -> tuple[dict | None, np.ndarray]:
    """The record's hand dict and the posed joints; ``None`` for a hand not wholly in front of the camera."""
    from handsynth.pinhole import bbox_from_points, project

    verts, joints = kit.pose(hand, flat)
    if verts[:, 2].min() <= 0:
        return None, joints
    rec = {
        "side": hand.side,
        "model": "mano",
        "global_orient": [float(x) for x in hand.global_orient],
        "hand_pose": [float(x) for x in hand.hand_pose],
        "betas": [float(x) for x in hand.betas],
        "transl": [float(x) for x in hand.transl],
        "joints_3d": joints.tolist(),
        "joints_2d": project(joints, K).tolist(),
        "bbox": bbox_from_points(project(verts, K)),
    }
    return rec, joints


def _check_hand(
    check: CheckResult, importer: Importer, frame_id: str, hand: RawHand, joints: np.ndarray, strict: bool
) -> None:
    """Add one hand to the consistency check; a failure is logged, or an error with ``strict``."""
    title = importer.title
    err = joint_error_mm(joints, hand.joints, importer.check_tips)
    if check.add(frame_id, hand.side, err):
        return
    msg = (
        f"{title} frame {frame_id} ({hand.side} hand): the stored MANO parameters re-pose {err:.3f} mm "
        f"away from the dataset's 3D joints (tolerance {CHECK_TOLERANCE_MM} mm)"
    )
    if strict:
        raise UserError(msg + "; rerun without --strict to keep such hands")
    log.warning(msg)


def _progress(total: int | None, desc: str, enabled: bool):
    """A bar on a terminal; in a log (stderr not a terminal), a whole line with rate and ETA every
    HANDSYNTH_PROGRESS_INTERVAL seconds instead of tqdm's carriage-return redraws."""
    from handsynth.progress import progress

    return progress(total=total, desc=desc, unit="frame", disable=not enabled)


def _check_mano_files(importer: Importer, opts: PrepareOptions) -> None:
    """Name the missing MANO file before anything is written."""
    from handsynth.hand.mano import FILE_STEM, MANO_URL, find_mano_file

    for side in FILE_STEM:
        try:
            find_mano_file(side, opts.mano_dir)
        except UserError:
            where = opts.mano_dir or "models/ (no --mano-dir given)"
            raise UserError(
                f"the {importer.title} importer poses MANO: {FILE_STEM[side]}.pkl (or .npz) is not in "
                f"{where}; download MANO from {MANO_URL} and pass its folder with --mano-dir"
            ) from None


def _open_writer(importer: Importer, opts: PrepareOptions, summary: PrepareSummary, first: Frame):
    """The output writer, once the first frame has fixed ``flat_hand_mean`` (when the dataset leaves it open)."""
    from handsynth.data import DatasetWriter

    kit = importer.hands
    config = importer.config()
    if kit is not None and summary.flat_hand_mean is None:
        hand = next((h for h in first.hands if h.joints is not None), None)
        if hand is None:
            raise UserError(f"{importer.title}: the first frame has no 3D joints to test MANO with")
        summary.flat_hand_mean = _choose_flat_hand_mean(kit, hand, first.id, importer.title)
        config["flat_hand_mean"] = summary.flat_hand_mean
    return DatasetWriter(opts.out, config=config, overwrite=opts.overwrite)


def _frame_record(
    importer: Importer, opts: PrepareOptions, summary: PrepareSummary, frame: Frame
) -> dict | None:
    """The record of one frame (its image linked), or ``None`` when none of its hands can be kept."""
    hands = []
    for hand in frame.hands:
        rec, joints = _record_hand(importer.hands, hand, bool(summary.flat_hand_mean), frame.K)
        if hand.joints is not None and summary.check.checked < CHECK_HANDS:
            _check_hand(summary.check, importer, frame.id, hand, joints, opts.strict)
        if rec is None:
            summary.skipped["hand: not wholly in front of the camera"] += 1
            continue
        hands.append(rec)
    if frame.hands and not hands and not frame.fields.get("hands_2d"):
        summary.skipped["frame: no hand left"] += 1
        return None
    if not (frame.width and frame.height):
        frame.width, frame.height = image_size(frame.image)
    rel = f"images/{frame.id}{frame.image.suffix.lower()}"
    link_image(frame.image, opts.out / rel, opts.link)
    source = {"generator": "handsynth prepare", "dataset": importer.name, "split": importer.split}
    if importer.hands is not None:
        source["flat_hand_mean"] = bool(summary.flat_hand_mean)
    return {
        "id": frame.id,
        "file_name": rel,
        "width": int(frame.width),
        "height": int(frame.height),
        "camera": {"K": np.asarray(frame.K, dtype=np.float64).tolist()},
        "hands": hands,
        "prompt": "",
        "source": {**source, **frame.source},
        **frame.fields,
    }


def run_prepare(importer: Importer, opts: PrepareOptions) -> PrepareSummary:
    """Import ``importer``'s dataset into ``opts.out``: resumable, with the skip summary and the check."""
    from handsynth.data import Sample, atomic_write_bytes

    if opts.link not in LINK_MODES:
        raise UserError(f"--link {opts.link!r}: choose one of {LINK_MODES}")
    if opts.every < 1:
        raise UserError(f"--every must be a positive integer, got {opts.every}")
    if opts.limit is not None and opts.limit < 1:
        raise UserError(f"--limit must be a positive integer, got {opts.limit}")
    importer.check()
    if importer.needs_hand_model:
        _check_mano_files(importer, opts)
        importer.hands = HandKit(opts.mano_dir, importer.fix_left_shapedirs)
    summary = PrepareSummary(importer.name, importer.split, flat_hand_mean=importer.flat_hand_mean)
    total = importer.count()
    if total is not None:
        total = -(-total // opts.every)
        total = total if opts.limit is None else min(total, opts.limit)
    writer = None
    visited = 0
    with _progress(total, f"prepare {importer.name}", opts.progress) as bar:
        for index, frame in enumerate(importer.frames(summary.skipped)):
            if index % opts.every:
                continue
            if opts.limit is not None and visited >= opts.limit:
                break
            visited += 1
            bar.update(1)
            if writer is None:  # not `or`: an empty writer is falsy (it has a length)
                writer = _open_writer(importer, opts, summary, frame)
            if writer.has(frame.id):
                summary.present += 1
                continue
            record = _frame_record(importer, opts, summary, frame)
            if record is not None:
                writer.write(Sample.from_dict(record, f"{importer.title} frame {frame.id}"))
                summary.written += 1
                summary.hands += len(record["hands"])
    if writer is None:
        raise UserError(
            f"{importer.title} {importer.split}: no frame to import under {opts.root} "
            f"(skipped: {dict(summary.skipped) or 'none'})"
        )
    atomic_write_bytes(opts.out / REPORT, json.dumps(summary.to_dict(), indent=2).encode())
    return summary
