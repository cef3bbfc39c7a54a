"""Re:InterHand (Moon et al., NeurIPS 2023 datasets track): relit two-hand captures, Mugsy cameras.

Layout (from the authors' loader in InterWild, ``data/ReInterHand``): per capture
``data/{capture_id}/Mugsy_cameras/cam_params.json`` (per camera ``R``, ``t`` in mm with
``X_cam = R X + t``, ``focal``, ``princpt``; a ``D`` marks a fisheye camera),
``Mugsy_cameras/envmap_per_frame/images/{cam}/{frame:06d}.png`` (rendered at 5 fps),
``mano_fits/params/{frame}_{right,left}.json`` (``pose`` 48, ``shape`` 10, ``trans`` 3; world frame,
metres) and ``orig_fits/{right,left}/Keypoints/keypoint-{frame:06d}.json`` (24 world joints, mm: wrist,
thumb 0-4, index 1-4, middle 1-4, ring 1-4, pinky 0-4, forearm stub). The test split is the authors'
three test captures. Conventions follow InterHand2.6M (world MANO carried to each camera through the
rest wrist, ``flat_hand_mean=False``); the 24-joint keypoints come from the original (non-MANO) fits, so
on real data the consistency check measures that fitting gap and reports it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np

from handsynth.data.importers.base import Frame, Importer, RawHand, read_json

TEST_CAPTURES = (
    "m--20221215--0949--RNS217--pilot--ProjectGoliathScript--Hands--two-hands",
    "m--20221216--0953--NKC880--pilot--ProjectGoliathScript--Hands--two-hands",
    "m--20230317--1130--QZX685--pilot--ProjectGoliath--Hands--two-hands",
)
# OpenPose joint k is Re:InterHand keypoint OPENPOSE_FROM_REIH[k] (Thumb_0, Pinky_0, the stub dropped).
OPENPOSE_FROM_REIH = np.array([0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21, 22])
ENVMAP = "envmap_per_frame"


class ReInterHand(Importer):
    name = "reinterhand"
    title = "Re:InterHand"
    layout = (
        "ROOT/data/{capture_id}/Mugsy_cameras/cam_params.json, Mugsy_cameras/envmap_per_frame/images/{cam}/"
        "{frame:06d}.png, mano_fits/params/{frame}_{side}.json and orig_fits/{side}/Keypoints/keypoint-{frame:06d}.json"
    )
    splits = ("train", "test")
    default_split = "train"
    flat_hand_mean = False

    def _captures(self) -> list[str]:
        names = sorted(p.name for p in (self.root / "data").iterdir() if p.is_dir())
        return [n for n in names if (n in TEST_CAPTURES) == (self.split == "test")]

    def check(self) -> None:
        self.need("data")
        captures = self._captures()
        if not captures:
            raise self.missing(
                self.root / "data" / ("{capture_id}" if self.split == "train" else TEST_CAPTURES[0])
            )
        self.need(f"data/{captures[0]}/Mugsy_cameras/cam_params.json")

    def frames(self, skipped: Counter) -> Iterator[Frame]:
        for capture in self._captures():
            folder = self.root / "data" / capture
            cams = read_json(self.need(f"data/{capture}/Mugsy_cameras/cam_params.json"))
            for cam in sorted(cams):
                params = cams[cam]
                images = sorted((folder / "Mugsy_cameras" / ENVMAP / "images" / cam).glob("*.png"))
                if "D" in params:  # fisheye: a pinhole K would not project the labels
                    skipped["frame: fisheye camera"] += len(images)
                    continue
                R = np.asarray(params["R"], dtype=np.float64)
                T = np.asarray(params["t"], dtype=np.float64).reshape(3) / 1000.0
                (fx, fy), (cx, cy) = params["focal"], params["princpt"]
                K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
                for image in images:
                    frame = int(image.stem)
                    hands = []
                    for side in ("right", "left"):
                        fit_path = folder / "mano_fits" / "params" / f"{frame}_{side}.json"
                        if not fit_path.exists():
                            skipped["hand: no MANO fit"] += 1
                            continue
                        fit = read_json(fit_path)
                        pose = np.asarray(self.key(fit, "pose", fit_path), dtype=np.float64).reshape(48)
                        betas = np.asarray(self.key(fit, "shape", fit_path), dtype=np.float64).reshape(10)
                        trans = np.asarray(self.key(fit, "trans", fit_path), dtype=np.float64).reshape(3)
                        go, transl = self.hands.rigid(side, R, T, pose[:3], trans, betas)
                        kp_path = folder / "orig_fits" / side / "Keypoints" / f"keypoint-{frame:06d}.json"
                        own = None
                        if kp_path.exists():
                            world = np.asarray(read_json(kp_path), dtype=np.float64).reshape(24, 3) / 1000.0
                            own = (world[OPENPOSE_FROM_REIH] @ R.T) + T
                        hands.append(RawHand(side, go, pose[3:], betas, transl, joints=own))
                    if not hands:
                        skipped["frame: no hand left"] += 1
                        continue
                    yield Frame(
                        id=f"reih_{capture}_{cam}_{frame:06d}",
                        image=image,
                        K=K,
                        hands=hands,
                        fields={"sequence": {"id": f"{capture}/{cam}", "frame": frame}},
                        source={"original": str(image.relative_to(self.root)), "envmap": ENVMAP},
                    )


IMPORTER = ReInterHand
