"""FreiHAND v2 (Zimmermann et al. 2019): one right hand per 224x224 image, camera-frame MANO fits.

Layout (the authors' release): ``training/rgb/%08d.jpg`` holds four versions of every labelled frame
(green screen, harmonised, two composites), image ``v * N + i`` showing label ``i``; labels are
``training_{K,mano,xyz}.json`` lists of ``N`` entries; ``evaluation/rgb`` and ``evaluation_*.json`` the
same for the 3,960 evaluation frames (labels published after the challenge). Each ``mano`` entry is
``[[61]]``: pose (48, axis-angle, global first), shape (10), then the 2D root and scale the released
loader uses for cropping (ignored here). The fits are in the camera frame without a translation, so
``transl`` is the dataset's wrist minus the model's rest wrist. ``flat_hand_mean`` is found by the
consistency check (``xyz`` are MANO's joints in OpenPose order, so the right choice is exact). The
fingertips of ``xyz`` are other MANO vertices than smplx's, so the check compares the 16 kinematic joints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np

from handsynth.errors import UserError
from handsynth.importers.base import Frame, Importer, RawHand

VERSIONS = ("gs", "hom", "sample", "auto")
SIZE = 224


class FreiHAND(Importer):
    name = "freihand"
    title = "FreiHAND"
    layout = (
        "ROOT/{training,evaluation}/rgb/%08d.jpg and ROOT/{training,evaluation}_{K,mano,xyz}.json "
        "(FreiHAND v2 with the evaluation labels)"
    )
    splits = ("training", "evaluation")
    default_split = "training"
    flat_hand_mean = None  # decided by the consistency check on the first hand
    # xyz's fingertips are MANO vertices 744, 320, 443, 555, 672 (the authors' utils/mano_utils.py), not
    # smplx's 744, 320, 443, 554, 671: the check compares the 16 kinematic joints.
    check_tips = False

    def __init__(self, opts) -> None:
        super().__init__(opts)
        bad = [v for v in opts.versions if v not in VERSIONS]
        if bad or not opts.versions:
            raise UserError(f"--versions {','.join(opts.versions)}: choose from {','.join(VERSIONS)}")
        # The evaluation set has one version only.
        self.versions = tuple(opts.versions) if self.split == "training" else ("gs",)

    def config(self) -> dict:
        return {**super().config(), "versions": list(self.versions)}

    def check(self) -> None:
        for kind in ("K", "mano", "xyz"):
            self.need(f"{self.split}_{kind}.json")
        self.need(f"{self.split}/rgb")

    def _labels(self) -> tuple[list, list, list]:
        labels = []
        for kind in ("K", "mano", "xyz"):
            labels.append(self.annotation(self.need(f"{self.split}_{kind}.json")))
        K, mano, xyz = labels
        if not (len(K) == len(mano) == len(xyz)):
            raise UserError(
                f"FreiHAND {self.split}_K/mano/xyz.json hold {len(K)}/{len(mano)}/{len(xyz)} entries: "
                "they must be the same length (re-download the annotations)"
            )
        return K, mano, xyz

    def count(self) -> int:
        return len(self.annotation(self.need(f"{self.split}_K.json"))) * len(self.versions)

    def frames(self, skipped: Counter) -> Iterator[Frame]:
        Ks, manos, xyzs = self._labels()
        n = len(Ks)
        rgb = self.root / self.split / "rgb"
        for version in self.versions:
            offset = VERSIONS.index(version) * n
            for i in range(n):
                image = rgb / f"{offset + i:08d}.jpg"
                if not image.exists():
                    raise self.missing(image)
                theta = np.asarray(manos[i], dtype=np.float64).reshape(-1)
                if theta.size < 58:
                    raise UserError(
                        f"FreiHAND {self.split}_mano.json entry {i} has {theta.size} values, not 61"
                    )
                xyz = np.asarray(xyzs[i], dtype=np.float64)
                betas = theta[48:58]
                transl = xyz[0] - self.hands.rest_wrist("right", betas)
                hand = RawHand("right", theta[:3], theta[3:48], betas, transl, joints=xyz)
                yield Frame(
                    id=f"freihand_{self.split}_{offset + i:08d}",
                    image=image,
                    width=SIZE,
                    height=SIZE,
                    K=np.asarray(Ks[i], dtype=np.float64),
                    hands=[hand],
                    source={
                        "label_index": i,
                        "version": version,
                        "original": f"{self.split}/rgb/{image.name}",
                    },
                )


IMPORTER = FreiHAND
