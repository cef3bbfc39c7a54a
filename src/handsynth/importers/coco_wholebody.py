"""COCO-WholeBody v1.0 (Jin et al. 2020), hand subset: 2D hand keypoints on COCO 2017 images, no 3D.

``annotations/coco_wholebody_{train,val}_v1.0.json`` extends COCO's person annotations with
``lefthand_box`` / ``righthand_box`` ([x, y, w, h]), ``lefthand_kpts`` / ``righthand_kpts`` (21 x (x, y, v)
in OpenPose order) and ``lefthand_valid`` / ``righthand_valid``; images are ``{train,val}2017/{id:012d}.jpg``.
One record per person with at least one valid hand: the hands go to ``hands_2d`` (``hands`` stays
empty, there is no 3D label) and the 17 body keypoints to ``body.keypoints_2d``. COCO has no camera, so
``camera.K`` is a nominal pinhole (focal = the longer side, centred), marked in ``source``.

``--fits FILE`` turns fitted hands into full 3D hands (MANO, posed with ``--mano-dir``). COCO-WholeBody
ships no fits and no fit format is standard, so the file is ours::

    {"flat_hand_mean": false,
     "fits": {"<annotation id>": {"K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],      (optional)
                                  "right": {"global_orient": [3], "hand_pose": [45],
                                            "betas": [10], "transl": [3]},
                                  "left": {...}}}}

parameters in smplx's layout in the fit's camera frame (metres, OpenCV); ``K`` replaces the nominal
camera for that record. A side without a fit stays in ``hands_2d``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from handsynth.errors import UserError
from handsynth.importers.base import Frame, Importer, RawHand, read_json

FIT_SIZES = {"global_orient": 3, "hand_pose": 45, "betas": 10, "transl": 3}


class COCOWholeBody(Importer):
    name = "coco-wholebody"
    title = "COCO-WholeBody"
    layout = "ROOT/annotations/coco_wholebody_{train,val}_v1.0.json and ROOT/{train2017,val2017}/{image_id:012d}.jpg"
    splits = ("train", "val")
    default_split = "train"
    flat_hand_mean = None
    needs_hand_model = False

    def __init__(self, opts) -> None:
        super().__init__(opts)
        self.fits: dict[str, dict] = {}
        self.needs_hand_model = opts.fits is not None
        if opts.fits is not None:
            self.fits, self.flat_hand_mean = read_fits(Path(opts.fits))

    def config(self) -> dict:
        fits = str(self.opts.fits) if self.opts.fits is not None else None
        return {**super().config(), "min_hand_size": self.opts.min_hand_size, "fits": fits}

    def _fitted(self, ann_id, side: str) -> RawHand | None:
        fit = self.fits.get(str(ann_id), {}).get(side)
        if fit is None:
            return None
        return RawHand(side, *(np.asarray(fit[k], dtype=np.float64) for k in FIT_SIZES))

    def _annotation_path(self):
        return self.need(f"annotations/coco_wholebody_{self.split}_v1.0.json")

    def check(self) -> None:
        self._annotation_path()
        self.need(f"{self.split}2017")

    def _load(self) -> dict:
        return self.annotation(self._annotation_path())

    def count(self) -> int:
        return len(self._load().get("annotations", []))

    def _hand(self, ann: dict, side: str, skipped: Counter) -> dict | None:
        if not ann.get(f"{side}hand_valid", False):
            return None
        x, y, w, h = (float(v) for v in ann[f"{side}hand_box"])
        if max(w, h) < self.opts.min_hand_size:
            skipped["hand: smaller than --min-hand-size"] += 1
            return None
        kpts = np.asarray(ann[f"{side}hand_kpts"], dtype=np.float64).reshape(21, 3)
        return {
            "side": "left" if side == "left" else "right",
            "bbox": [x, y, w, h],
            "joints_2d": kpts[:, :2].tolist(),
            "visibility": kpts[:, 2].tolist(),
        }

    def frames(self, skipped: Counter) -> Iterator[Frame]:
        data = self._load()
        path = self._annotation_path()
        images = {img["id"]: img for img in self.key(data, "images", path)}
        for ann in self.key(data, "annotations", path):
            for key in ("lefthand_box", "righthand_box", "lefthand_kpts", "righthand_kpts"):
                self.key(ann, key, f"{path} (annotation {ann.get('id')})")
            hands = [h for h in (self._hand(ann, s, skipped) for s in ("left", "right")) if h is not None]
            fitted = [f for f in (self._fitted(ann["id"], h["side"]) for h in hands) if f is not None]
            hands = [h for h in hands if h["side"] not in {f.side for f in fitted}]
            if not hands and not fitted:
                skipped["person: no valid hand"] += 1
                continue
            img = self.key(images, ann["image_id"], f"{path} images")
            image = self.root / f"{self.split}2017" / img["file_name"]
            if not image.exists():
                raise self.missing(image)
            w, h = int(img["width"]), int(img["height"])
            f = float(max(w, h))
            fields = {"hands_2d": hands} if hands else {}
            if ann.get("keypoints"):
                fields["body"] = {"keypoints_2d": np.asarray(ann["keypoints"], float).reshape(17, 3).tolist()}
            fit_K = self.fits.get(str(ann["id"]), {}).get("K")
            yield Frame(
                id=f"cocowb_{self.split}_{ann['id']}",
                image=image,
                width=w,
                height=h,
                K=np.asarray(fit_K, float)
                if fit_K is not None
                else np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]),
                hands=fitted,
                fields=fields,
                source={
                    "original": f"{self.split}2017/{img['file_name']}",
                    "camera": "fit" if fit_K is not None else "nominal",
                    "image_id": img["id"],
                    **({"fits": [h.side for h in fitted]} if fitted else {}),
                },
            )


def read_fits(path: Path) -> tuple[dict[str, dict], bool]:
    """The ``--fits`` file, checked: (annotation id -> fit, flat_hand_mean); one error naming the entry."""
    if not path.is_file():
        raise UserError(f"--fits {path}: no such file")
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("fits"), dict):
        raise UserError(f'--fits {path}: expected {{"flat_hand_mean": bool, "fits": {{annotation id: ...}}}}')
    flat = data.get("flat_hand_mean")
    if not isinstance(flat, bool):
        raise UserError(f"--fits {path}: 'flat_hand_mean' must be true or false (how the fits were made)")
    for ann_id, fit in data["fits"].items():
        where = f"--fits {path}, annotation {ann_id}"
        if not isinstance(fit, dict):
            raise UserError(f"{where}: expected an object with 'left'/'right' (and optional 'K')")
        if "K" in fit and np.asarray(fit["K"], dtype=float).shape != (3, 3):
            raise UserError(f"{where}: 'K' must be 3x3")
        for side in ("left", "right"):
            if side not in fit:
                continue
            for key, n in FIT_SIZES.items():
                v = np.asarray(fit[side].get(key, []), dtype=float).reshape(-1)
                if v.size != n or not np.isfinite(v).all():
                    raise UserError(f"{where}, {side}: '{key}' must be {n} finite numbers")
    return {str(k): v for k, v in data["fits"].items()}, flat


IMPORTER = COCOWholeBody
