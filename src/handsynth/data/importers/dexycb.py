"""DexYCB (Chao et al. 2021), raw toolkit layout: one hand grasping YCB objects, 8 cameras, 640x480.

``{date}-subject-NN/{date_time}/meta.yml`` names the objects, the hand side and the subject's MANO
calibration; ``.../{serial}/labels_{frame:06d}.npz`` hold, in that camera's frame, the object poses
(``pose_y``) and the hand: ``pose_m`` = global axis-angle (3), 45 MANO PCA coefficients, translation
(3), and ``joint_3d`` (OpenPose order, metres). The toolkit poses MANO with manopth
(``use_pca=True, ncomps=45, flat_hand_mean=False``), so the axis-angle hand pose is the coefficients
times MANO's ``hands_components`` (from ``--mano-dir``) and ``flat_hand_mean`` stays False; its left
hands were fitted without the left-shapedirs fix. manopth's fingertips are other vertices than
smplx's, so the consistency check compares the 16 kinematic joints. Splits follow the toolkit
(``s0``..``s3``: subject, camera and sequence indices).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from handsynth.data.importers.base import Frame, Importer, RawHand
from handsynth.errors import UserError

SUBJECTS = (
    "20200709-subject-01", "20200813-subject-02", "20200820-subject-03", "20200903-subject-04",
    "20200908-subject-05", "20200918-subject-06", "20200928-subject-07", "20201002-subject-08",
    "20201015-subject-09", "20201022-subject-10",
)  # fmt: skip
SERIALS = (
    "836212060125", "839512060362", "840412060917", "841412060263",
    "932122060857", "932122060861", "932122061900", "932122062010",
)  # fmt: skip
YCB_CLASSES = {
    1: "002_master_chef_can", 2: "003_cracker_box", 3: "004_sugar_box", 4: "005_tomato_soup_can",
    5: "006_mustard_bottle", 6: "007_tuna_fish_can", 7: "008_pudding_box", 8: "009_gelatin_box",
    9: "010_potted_meat_can", 10: "011_banana", 11: "019_pitcher_base", 12: "021_bleach_cleanser",
    13: "024_bowl", 14: "025_mug", 15: "035_power_drill", 16: "036_wood_block", 17: "037_scissors",
    18: "040_large_marker", 19: "051_large_clamp", 20: "052_extra_large_clamp", 21: "061_foam_brick",
}  # fmt: skip
ALL = list(range(100))
# (subject indices, serial indices, sequence indices) per setup and split, as in the toolkit.
SPLITS = {
    "s0": {
        "train": (range(10), range(8), [i for i in ALL if i % 5 != 4]),
        "val": ([0, 1], range(8), [i for i in ALL if i % 5 == 4]),
        "test": (range(2, 10), range(8), [i for i in ALL if i % 5 == 4]),
    },
    "s1": {
        "train": ([0, 1, 2, 3, 4, 5, 9], range(8), ALL),
        "val": ([6], range(8), ALL),
        "test": ([7, 8], range(8), ALL),
    },
    "s2": {"train": (range(10), range(6), ALL), "val": (range(10), [6], ALL), "test": (range(10), [7], ALL)},
    "s3": {
        "train": (range(10), range(8), [i for i in ALL if i // 5 not in (3, 7, 11, 15, 19)]),
        "val": (range(10), range(8), [i for i in ALL if i // 5 in (3, 19)]),
        "test": (range(10), range(8), [i for i in ALL if i // 5 in (7, 11, 15)]),
    },
}
WIDTH, HEIGHT = 640, 480


def _yaml(path: Path) -> dict:
    import yaml

    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


class DexYCB(Importer):
    name = "dexycb"
    title = "DexYCB"
    layout = (
        "ROOT/{date}-subject-NN/{date_time}/meta.yml + {serial}/color_{frame:06d}.jpg, labels_{frame:06d}.npz, "
        "ROOT/calibration/intrinsics/{serial}_640x480.yml and ROOT/calibration/mano_{subject}/mano.yml"
    )
    splits = ("train", "val", "test")
    default_split = "train"
    flat_hand_mean = False
    fix_left_shapedirs = False
    check_tips = False

    def __init__(self, opts) -> None:
        super().__init__(opts)
        if opts.setup not in SPLITS:
            raise UserError(
                f"--setup {opts.setup!r} is not a DexYCB setup: choose one of {', '.join(SPLITS)}"
            )
        self.setup = opts.setup
        self._components: dict[str, np.ndarray] = {}

    def config(self) -> dict:
        return {**super().config(), "setup": self.setup}

    def _sequences(self, skipped: Counter | None = None) -> Iterator[tuple[str, Path]]:
        subjects, _, sequences = SPLITS[self.setup][self.split]
        for s in subjects:
            folder = self.root / SUBJECTS[s]
            if not folder.is_dir():  # DexYCB ships one archive per subject: a partial download is fine
                if skipped is not None:
                    skipped["subject folder absent"] += 1
                continue
            names = sorted(p.name for p in folder.iterdir() if p.is_dir())
            for i in sequences:
                if i < len(names):
                    yield SUBJECTS[s], folder / names[i]

    def check(self) -> None:
        self.need("calibration/intrinsics")
        first = next(self._sequences(), None)
        if first is None:
            subjects = [SUBJECTS[i] for i in SPLITS[self.setup][self.split][0]]
            raise self.missing(self.root / subjects[0])
        self.need(str((first[1] / "meta.yml").relative_to(self.root)))

    def count(self) -> int:
        serials = SPLITS[self.setup][self.split][1]
        return sum(int(_yaml(seq / "meta.yml")["num_frames"]) * len(serials) for _, seq in self._sequences())

    def _hand_pose(self, side: str, coeffs: np.ndarray) -> np.ndarray:
        """manopth's PCA coefficients -> smplx's axis-angle hand pose (without the mean)."""
        if side not in self._components:
            arrays = self.hands.mano_file(side)
            if "hands_components" not in arrays:
                raise UserError(
                    f"the {side} MANO file in --mano-dir has no hands_components: DexYCB's PCA poses need "
                    "the official MANO_RIGHT.pkl / MANO_LEFT.pkl (or their .npz from `handsynth mano convert`)"
                )
            self._components[side] = np.asarray(arrays["hands_components"], dtype=np.float64)[:45]
        return coeffs @ self._components[side]

    def frames(self, skipped: Counter) -> Iterator[Frame]:
        serials = [SERIALS[i] for i in SPLITS[self.setup][self.split][1]]
        intrinsics = {}
        for serial in serials:
            path = self.need(f"calibration/intrinsics/{serial}_{WIDTH}x{HEIGHT}.yml")
            c = self.key(_yaml(path), "color", path)
            intrinsics[serial] = np.array([[c["fx"], 0, c["ppx"]], [0, c["fy"], c["ppy"]], [0, 0, 1]], float)
        models = Path(self.opts.objects) if self.opts.objects else self.root / "models"
        for subject, seq in self._sequences(skipped):
            meta_path = seq / "meta.yml"
            if not meta_path.exists():
                raise self.missing(meta_path)
            meta = _yaml(meta_path)
            side = self.key(meta, "mano_sides", meta_path)[0]
            calib = self.key(meta, "mano_calib", meta_path)[0]
            mano_path = self.need(f"calibration/mano_{calib}/mano.yml")
            betas = np.asarray(self.key(_yaml(mano_path), "betas", mano_path), dtype=np.float64)
            names = [YCB_CLASSES[int(i)] for i in self.key(meta, "ycb_ids", meta_path)]
            for serial in serials:
                for f in range(int(self.key(meta, "num_frames", meta_path))):
                    label_path = seq / serial / f"labels_{f:06d}.npz"
                    image = seq / serial / f"color_{f:06d}.jpg"
                    for path in (label_path, image):
                        if not path.exists():
                            raise self.missing(path)
                    with np.load(label_path) as z:
                        pose_m, joint_3d, pose_y = z["pose_m"][0], z["joint_3d"][0], z["pose_y"]
                    if np.all(pose_m == 0) or np.all(joint_3d == -1):
                        skipped["frame: hand absent"] += 1
                        continue
                    hand = RawHand(
                        side,
                        pose_m[:3],
                        self._hand_pose(side, pose_m[3:48]),
                        betas,
                        pose_m[48:51],
                        joints=joint_3d,
                    )
                    objects = [
                        {
                            "name": n,
                            "pose": np.asarray(p, float).tolist(),
                            "mesh": str((models / n / "textured_simple.obj").resolve()),
                        }
                        for n, p in zip(names, pose_y, strict=False)
                    ]
                    yield Frame(
                        id=f"dexycb_{subject}_{seq.name}_{serial}_{f:06d}",
                        image=image,
                        width=WIDTH,
                        height=HEIGHT,
                        K=intrinsics[serial],
                        hands=[hand],
                        fields={
                            "objects": objects,
                            "sequence": {"id": f"{subject}/{seq.name}/{serial}", "frame": f},
                        },
                        source={
                            "original": str(image.relative_to(self.root)),
                            "setup": self.setup,
                            "ycb_grasp_ind": int(meta.get("ycb_grasp_ind", -1)),
                        },
                    )


IMPORTER = DexYCB
