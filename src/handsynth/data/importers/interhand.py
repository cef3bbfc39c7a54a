"""InterHand2.6M v1.0 (Moon et al. 2020): one or two hands per image, world-frame MANO fits (NeuralAnnot).

Per split, ``annotations/{split}/InterHand2.6M_{split}_data.json`` (COCO: images with capture, camera,
frame index; one annotation per image with ``hand_type``), ``..._camera.json`` (per capture and camera:
``campos`` mm, ``camrot``, ``focal``, ``princpt``), ``..._joint_3d.json`` (42 world joints, mm) and
``..._MANO_NeuralAnnot.json`` (per capture and frame: ``right`` / ``left`` = ``{pose, shape, trans}`` or
null, in world coordinates, metres). The world->camera map is ``X_cam = R (X - campos)``; the MANO root
is carried over with :meth:`HandKit.rigid`. ``flat_hand_mean`` is False (smplx's default, as the
authors' code uses). The 3D joints are triangulated, not MANO's, so on the real data the consistency
check measures the NeuralAnnot fitting error (a few mm) and reports those hands.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from handsynth.data.importers.base import Frame, Importer, RawHand
from handsynth.errors import UserError
from handsynth.hand.joints import to_openpose

SUBSETS = {"all": None, "H": "human_annot", "M": "machine_annot"}


class InterHand26M(Importer):
    name = "interhand26m"
    title = "InterHand2.6M"
    layout = (
        "ROOT/images/{split}/Capture{c}/{seq}/cam{cam}/image{frame}.jpg and "
        "ROOT/annotations/{split}/InterHand2.6M_{split}_{data,camera,joint_3d,MANO_NeuralAnnot}.json (v1.0)"
    )
    splits = ("train", "val", "test")
    default_split = "train"
    flat_hand_mean = False

    def __init__(self, opts) -> None:
        super().__init__(opts)
        self.subset = opts.subset
        if self.subset not in SUBSETS:
            raise UserError(f"--subset {self.subset!r}: choose one of {', '.join(SUBSETS)}")

    def config(self) -> dict:
        return {**super().config(), "subset": self.subset}

    def _annotation(self, kind: str) -> Path:
        folder = SUBSETS[self.subset] or self.split  # v0.0 shipped H and M annotations in their own folders
        return self.need(f"annotations/{folder}/InterHand2.6M_{self.split}_{kind}.json")

    def check(self) -> None:
        for kind in ("data", "camera", "joint_3d", "MANO_NeuralAnnot"):
            self._annotation(kind)
        self.need(f"images/{self.split}")

    def _load(self, kind: str) -> tuple[dict, Path]:
        path = self._annotation(kind)
        return self.annotation(path), path

    def count(self) -> int:
        return len(self._load("data")[0].get("images", []))

    def frames(self, skipped: Counter) -> Iterator[Frame]:
        data, data_path = self._load("data")
        cameras, cam_path = self._load("camera")
        joints3d, joints_path = self._load("joint_3d")
        fits, fits_path = self._load("MANO_NeuralAnnot")
        anns = {a["image_id"]: a for a in self.key(data, "annotations", data_path)}
        for img in self.key(data, "images", data_path):
            ann = anns.get(img["id"])
            if ann is None:
                skipped["frame: no annotation"] += 1
                continue
            if not ann.get("hand_type_valid", 1):
                skipped["frame: hand_type_valid=0"] += 1
                continue
            capture, cam, frame_idx = str(img["capture"]), str(img["camera"]), str(img["frame_idx"])
            sides = ("right", "left") if ann["hand_type"] == "interacting" else (ann["hand_type"],)
            frame_fits = fits.get(capture, {}).get(frame_idx) or {}
            with_fit = [s for s in sides if frame_fits.get(s) is not None]
            if len(with_fit) < len(sides):
                skipped["hand: no MANO fit"] += len(sides) - len(with_fit)
            if not with_fit:
                skipped["frame: no hand left"] += 1
                continue
            image = self.root / "images" / self.split / img["file_name"]
            if not image.exists():
                raise self.missing(image)
            cam_params = self.key(cameras, capture, cam_path)
            R = np.asarray(
                self.key(cam_params["camrot"], cam, f"{cam_path} camrot[{capture}]"), dtype=np.float64
            )
            campos = np.asarray(cam_params["campos"][cam], dtype=np.float64) / 1000.0
            (fx, fy), (cx, cy) = cam_params["focal"][cam], cam_params["princpt"][cam]
            K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
            labels = self.key(
                self.key(joints3d, capture, joints_path), frame_idx, f"{joints_path} [{capture}]"
            )
            world = np.asarray(labels["world_coord"], dtype=np.float64) / 1000.0
            valid = np.asarray(labels.get("joint_valid", np.ones((42, 1))), dtype=np.float64).reshape(42)
            cam_joints = to_openpose((world - campos) @ R.T, "interhand")
            cam_valid = to_openpose(valid[:, None], "interhand")[..., 0]
            hands = []
            for side in with_fit:
                fit = frame_fits[side]
                pose = np.asarray(fit["pose"], dtype=np.float64)
                betas = np.asarray(fit["shape"], dtype=np.float64)
                go, transl = self.hands.rigid(side, R, -R @ campos, pose[:3], fit["trans"], betas)
                k = 0 if side == "right" else 1
                own = cam_joints[k] if cam_valid[k].all() else None
                hands.append(RawHand(side, go, pose[3:48], betas, transl, joints=own))
            seq = img["seq_name"]
            yield Frame(
                id=f"ih26m_{self.split}_c{capture}_{seq}_cam{cam}_{frame_idx}",
                image=image,
                width=int(img["width"]),
                height=int(img["height"]),
                K=K,
                hands=hands,
                fields={"sequence": {"id": f"Capture{capture}/{seq}/cam{cam}", "frame": int(frame_idx)}},
                source={
                    "original": f"images/{self.split}/{img['file_name']}",
                    "hand_type": ann["hand_type"],
                    "subset": self.subset,
                },
            )


IMPORTER = InterHand26M
