"""Inference: a trained checkpoint -> 3D joints and meshes for images + hand boxes, and FreiHAND pred.json.

:class:`ReconEstimator` implements the evaluation stage's ``Hand3DEstimator`` protocol
(``predict(images, bboxes) -> (N, 21, 3)`` metres), so MSE-3D and HandBooster's edge-case filter can
use it. Left hands are mirrored into the right-hand crop the network was trained on and mirrored back.

Camera-frame position: the weak-perspective camera (s, tx, ty) of a crop of side S pixels says the
root projects to crop coordinates (tx, ty) and one metre spans s·S/2 pixels, so with intrinsics K the
root depth is Z = 2 f / (s S) (f = mean focal) and X, Y follow by back-projecting the root pixel.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from handsynth.data.folder import atomic_write_bytes, dataset_root, read_dataset
from handsynth.errors import UserError
from handsynth.progress import progress as progress_bar
from handsynth.recon.checkpoint import load_weights
from handsynth.recon.data import MIRROR, Crop, load_image, square_crop, to_tensor
from handsynth.recon.model import ModelConfig, ReconModel, load_hand_model_for
from handsynth.recon.rotation import matrix_to_axis_angle, mirror_axis_angle


def _as_pil(img: Any) -> Image.Image:
    if isinstance(img, Image.Image):
        return img.convert("RGB")
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
        raise UserError(f"images must be uint8 HxWx3 arrays or PIL images, got {arr.dtype} {arr.shape}")
    return Image.fromarray(arr[..., :3])


def root_from_camera(crop: Crop, cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame root (wrist) position (3,) from a crop's weak-perspective camera and intrinsics."""
    s, tx, ty = (float(v) for v in cam)
    u, v = crop.to_global(np.array([tx, ty]))
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    z = 2.0 * (fx + fy) / 2.0 / (s * crop.side)
    return np.array([(u - cx) * z / fx, (v - cy) * z / fy, z])


class ReconEstimator:
    """A trained reconstruction model ready to predict; ``predict`` follows ``Hand3DEstimator``."""

    def __init__(self, model: ReconModel, device: str | torch.device = "cpu", batch_size: int = 32) -> None:
        self.model = model.to(device).eval()
        self.cfg: ModelConfig = model.cfg
        self.device = torch.device(device)
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str = "cpu",
        hand_model: nn.Module | None = None,
        batch_size: int = 32,
    ) -> ReconEstimator:
        """Load a checkpoint folder (or a run folder: its latest checkpoint)."""
        cfg, state, _ = load_weights(path)
        model = ReconModel(cfg, hand_model if hand_model is not None else load_hand_model_for(cfg))
        model.net.load_state_dict(state)
        return cls(model, device, batch_size)

    @torch.no_grad()
    def predict_hands(
        self,
        images: Sequence[Any],
        bboxes: Any,
        sides: Sequence[str] | None = None,
        Ks: Any | None = None,
        progress: bool = False,
    ) -> dict[str, np.ndarray]:
        """Full predictions for N hands (image i, box i = x,y,w,h px, side i, intrinsics i).

        Returns joints (N,21,3), verts (N,V,3), global_orient (N,3), hand_pose (N,45), betas (N,10),
        cam (N,3) in the network crop, and — when ``Ks`` is given — the camera-frame ``root`` (N,3) and
        ``transl`` (N,3, the hand model's translation); joints/verts are camera-frame then, otherwise
        root-relative. All metres, in the image's own (un-mirrored) frame.
        """
        bboxes = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
        n = len(images)
        if bboxes.shape[0] != n:
            raise UserError(f"got {n} images but {bboxes.shape[0]} boxes; pass one box per image")
        sides = list(sides) if sides is not None else ["right"] * n
        bad = [s for s in sides if s not in ("right", "left")]
        if len(sides) != n or bad:
            raise UserError(f"sides must list 'right' or 'left' once per image, got {sides[:5]}")
        out: dict[str, list[np.ndarray]] = {}
        batches = range(0, n, self.batch_size)
        for start in progress_bar(batches, desc="recon predict", unit="batch", disable=not progress):
            stop = min(n, start + self.batch_size)
            crops = [
                square_crop(bboxes[i], self.cfg.expand, self.cfg.img_size, mirror=sides[i] == "left")
                for i in range(start, stop)
            ]
            x = torch.stack(
                [to_tensor(c.image(_as_pil(images[i]))) for c, i in zip(crops, range(start, stop))]
            )
            pred = self.model(x.to(self.device))
            mirror = torch.tensor([c.mirror for c in crops], device=self.device)
            m = torch.tensor(MIRROR, dtype=pred["joints"].dtype, device=self.device)
            flip = torch.where(mirror[:, None, None], m, torch.eye(3, device=self.device))
            joints = pred["joints"] @ flip  # flip is symmetric: x -> -x for left hands
            verts = pred["verts"] @ flip
            rot = flip @ pred["rotmat"] @ flip
            go = matrix_to_axis_angle(rot)
            pose = torch.where(mirror[:, None], mirror_axis_angle(pred["hand_pose"]), pred["hand_pose"])
            batch = {
                "joints": joints,
                "verts": verts,
                "global_orient": go,
                "hand_pose": pose,
                "betas": pred["betas"],
                "cam": pred["cam"],
            }
            if Ks is not None:
                zero = pose.new_zeros(pose.shape[0], 3)
                rest = self.model.hand_model(
                    global_orient=zero, hand_pose=pred["hand_pose"], betas=pred["betas"], transl=zero
                )
                model_root = (rest.joints[:, :1] @ flip)[
                    :, 0
                ]  # (B,3) root of the (mirrored) model at transl 0
                roots = np.stack(
                    [
                        root_from_camera(c, pred["cam"][k].cpu().numpy(), np.asarray(Ks[i], dtype=np.float64))
                        for k, (c, i) in enumerate(zip(crops, range(start, stop)))
                    ]
                )
                root_t = torch.as_tensor(roots, dtype=joints.dtype, device=self.device)
                batch.update(
                    joints=joints + root_t[:, None],
                    verts=verts + root_t[:, None],
                    root=root_t,
                    transl=root_t - model_root,
                )
            for k, v in batch.items():
                out.setdefault(k, []).append(v.detach().float().cpu().numpy())
        return {k: np.concatenate(v) for k, v in out.items()}

    def predict(self, images: Sequence[Any], bboxes: Any, sides: Sequence[str] | None = None) -> np.ndarray:
        """(N, 21, 3) root-relative joints in metres, OpenPose-21 order (the ``Hand3DEstimator`` protocol).

        Without ``sides`` every hand is taken as a right hand, as the protocol has no side.
        """
        return self.predict_hands(images, bboxes, sides)["joints"]


def load_estimator(path: str | os.PathLike, device: str = "cpu") -> ReconEstimator:
    """The loader ``handsynth.eval`` calls for ``--estimator CHECKPOINT``."""
    return ReconEstimator.from_checkpoint(path, device=device)


def predict_dataset(
    estimator: ReconEstimator, path: str | os.PathLike, progress: bool = True
) -> tuple[list[tuple[str, str]], dict[str, np.ndarray]]:
    """Predict every hand of a record dataset, in record order then hand order (the order FreiHAND-layout
    readers pair by); returns the (id, side) keys and the camera-frame predictions."""
    root = dataset_root(path)
    samples = read_dataset(path)
    keys, files, boxes, sides, Ks = [], [], [], [], []
    for s in samples:
        # Hands without labels (e.g. HO3D's evaluation frames: side and box only) are predicted too.
        targets = [(h.side, h.bbox) for h in s.hands]
        targets += [(h["side"], h["bbox"]) for h in s.extra.get("unlabelled_hands") or []]
        if targets and s.file_name is None:
            raise UserError(f"{path}: record {s.id} has no file_name (no image); predict needs images")
        for side, bbox in targets:
            keys.append((s.id, side))
            files.append(root / s.file_name)
            boxes.append(bbox)
            sides.append(side)
            Ks.append(s.K)
    if not keys:
        raise UserError(f"{path}: the dataset holds no hands to predict")
    for f in dict.fromkeys(files):
        if not f.exists():
            raise UserError(f"image {f} does not exist: check the dataset folder and the record's file_name")
    images = _LazyImages(files)
    return keys, estimator.predict_hands(images, np.asarray(boxes), sides, Ks, progress=progress)


class _LazyImages(Sequence):
    """Images opened on access, so a large dataset is not held in memory at once."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Image.Image:  # type: ignore[override]
        return load_image(self.files[i])


def write_freihand_pred(path: str | os.PathLike, joints: np.ndarray, verts: np.ndarray) -> None:
    """Write FreiHAND's ``pred.json`` layout ``[xyz_list, verts_list]`` (metres) atomically."""
    data = [np.round(joints, 6).tolist(), np.round(verts, 6).tolist()]
    atomic_write_bytes(Path(path), json.dumps(data).encode())
