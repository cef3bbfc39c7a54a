"""COCO-WholeBody v1.0 (Jin et al. 2020), hand subset: 2D hand keypoints on COCO 2017 images, no 3D.

``annotations/coco_wholebody_{train,val}_v1.0.json`` extends COCO's person annotations with
``lefthand_box`` / ``righthand_box`` ([x, y, w, h]), ``lefthand_kpts`` / ``righthand_kpts`` (21 x (x, y, v)
in OpenPose order) and ``lefthand_valid`` / ``righthand_valid``; images are ``{train,val}2017/{id:012d}.jpg``.
One record per person with at least one valid hand: the hands go to ``hands_2d`` (``hands`` stays
empty, there is no 3D label) and the 17 body keypoints to ``body.keypoints_2d``. COCO has no camera, so
``camera.K`` is a nominal pinhole (focal = the longer side, centred), marked in ``source``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import numpy as np

from handsynth.data.importers.base import Frame, Importer


class COCOWholeBody(Importer):
    name = "coco-wholebody"
    title = "COCO-WholeBody"
    layout = "ROOT/annotations/coco_wholebody_{train,val}_v1.0.json and ROOT/{train2017,val2017}/{image_id:012d}.jpg"
    splits = ("train", "val")
    default_split = "train"
    flat_hand_mean = None
    needs_hand_model = False

    def config(self) -> dict:
        return {**super().config(), "min_hand_size": self.opts.min_hand_size}

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
            if not hands:
                skipped["person: no valid hand"] += 1
                continue
            img = self.key(images, ann["image_id"], f"{path} images")
            image = self.root / f"{self.split}2017" / img["file_name"]
            if not image.exists():
                raise self.missing(image)
            w, h = int(img["width"]), int(img["height"])
            f = float(max(w, h))
            fields = {"hands_2d": hands}
            if ann.get("keypoints"):
                fields["body"] = {"keypoints_2d": np.asarray(ann["keypoints"], float).reshape(17, 3).tolist()}
            yield Frame(
                id=f"cocowb_{self.split}_{ann['id']}",
                image=image,
                width=w,
                height=h,
                K=np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]]),
                fields=fields,
                source={
                    "original": f"{self.split}2017/{img['file_name']}",
                    "camera": "nominal",
                    "image_id": img["id"],
                },
            )


IMPORTER = COCOWholeBody
