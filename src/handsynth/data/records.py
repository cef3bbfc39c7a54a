"""The one sample record every stage reads and writes (documented in docs/format.md).

A record is one JSON object per line of ``metadata.jsonl``. Hand parameters are in the camera frame
(OpenCV: x right, y down, z forward; the camera has identity extrinsics), so only ``camera.K`` is
needed to project. Joints are metres, OpenPose-21 order. Validation names the file, line and field.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handsynth.errors import UserError

SIDES = ("right", "left")
HAND_MODELS = ("openhand", "mano")
NUM_JOINTS = 21


class RecordError(UserError):
    """A record that does not follow the format; the message names where and which field."""


def _fail(where: str, field_name: str, why: str) -> RecordError:
    return RecordError(f"{where}: field '{field_name}' {why}")


def _floats(value: Any, shape: tuple[int, ...], where: str, name: str) -> list:
    """Check a nested list of finite numbers has ``shape``; returns it as nested float lists."""

    def walk(v: Any, dims: tuple[int, ...], path: str) -> Any:
        if not dims:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise _fail(where, path, f"must be a number, got {type(v).__name__}")
            if not math.isfinite(v):
                raise _fail(where, path, f"must be finite, got {v}")
            return float(v)
        if not isinstance(v, (list, tuple)) or len(v) != dims[0]:
            got = len(v) if isinstance(v, (list, tuple)) else type(v).__name__
            raise _fail(where, path, f"must be a list of length {dims[0]}, got {got}")
        return [walk(x, dims[1:], f"{path}[{i}]") for i, x in enumerate(v)]

    return walk(value, shape, name)


@dataclass
class Hand:
    """One hand: model parameters (smplx MANO semantics, axis-angle) and its exact labels."""

    side: str
    model: str
    global_orient: list[float]
    hand_pose: list[float]
    betas: list[float]
    transl: list[float]
    joints_3d: list[list[float]]
    joints_2d: list[list[float]]
    bbox: list[float]  # x, y, w, h in pixels

    @classmethod
    def from_dict(cls, d: Any, where: str, prefix: str) -> Hand:
        if not isinstance(d, dict):
            raise _fail(where, prefix, "must be an object")
        for key in (
            "side",
            "model",
            "global_orient",
            "hand_pose",
            "betas",
            "transl",
            "joints_3d",
            "joints_2d",
            "bbox",
        ):
            if key not in d:
                raise _fail(where, f"{prefix}.{key}", "is missing")
        if d["side"] not in SIDES:
            raise _fail(where, f"{prefix}.side", f"must be one of {SIDES}, got {d['side']!r}")
        if d["model"] not in HAND_MODELS:
            raise _fail(where, f"{prefix}.model", f"must be one of {HAND_MODELS}, got {d['model']!r}")
        bbox = _floats(d["bbox"], (4,), where, f"{prefix}.bbox")
        if bbox[2] <= 0 or bbox[3] <= 0:
            raise _fail(where, f"{prefix}.bbox", f"must have positive width and height, got {bbox}")
        return cls(
            side=d["side"],
            model=d["model"],
            global_orient=_floats(d["global_orient"], (3,), where, f"{prefix}.global_orient"),
            hand_pose=_floats(d["hand_pose"], (45,), where, f"{prefix}.hand_pose"),
            betas=_floats(d["betas"], (10,), where, f"{prefix}.betas"),
            transl=_floats(d["transl"], (3,), where, f"{prefix}.transl"),
            joints_3d=_floats(d["joints_3d"], (NUM_JOINTS, 3), where, f"{prefix}.joints_3d"),
            joints_2d=_floats(d["joints_2d"], (NUM_JOINTS, 2), where, f"{prefix}.joints_2d"),
            bbox=bbox,
        )

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def check_placement(hand: Hand, width: int, height: int, where: str, prefix: str) -> None:
    """Refuse a hand no camera could see: joints behind the camera, or a box wholly outside the image.

    Such a record renders empty maps while keeping its labels, so training would learn from labels
    of a hand that is not in the picture.
    """
    behind = [j for j, p in enumerate(hand.joints_3d) if p[2] <= 0]
    if behind:
        raise _fail(
            where,
            f"{prefix}.joints_3d",
            f"puts joint {behind[0]} behind the camera (z = {hand.joints_3d[behind[0]][2]:g} m, must be > 0); "
            "hands are in the camera frame with z forward",
        )
    x, y, w, h = hand.bbox
    if x + w <= 0 or y + h <= 0 or x >= width or y >= height:
        raise _fail(
            where,
            f"{prefix}.bbox",
            f"{hand.bbox} lies wholly outside the {width}x{height} image; the hand would not be visible",
        )


@dataclass
class LocalCrop:
    """The square crop around the hand(s) used for local conditions.

    ``box`` is [x, y, side] in global pixels (may extend past the image; outside is padded), and local
    pixels map back by ``global = box_xy + local * side / size``.
    """

    box: list[float]
    size: int
    conditions: dict[str, str] = field(default_factory=dict)
    file_name: str | None = None  # the local RGB crop, when an image exists

    @classmethod
    def from_dict(cls, d: Any, where: str) -> LocalCrop:
        if not isinstance(d, dict):
            raise _fail(where, "local", "must be an object")
        for key in ("box", "size"):
            if key not in d:
                raise _fail(where, f"local.{key}", "is missing")
        box = _floats(d["box"], (3,), where, "local.box")
        if box[2] <= 0:
            raise _fail(where, "local.box", f"must have a positive side, got {box[2]}")
        size = d["size"]
        if not isinstance(size, int) or size <= 0:
            raise _fail(where, "local.size", f"must be a positive integer, got {size!r}")
        conds = _str_map(d.get("conditions", {}), where, "local.conditions")
        fn = d.get("file_name")
        if fn is not None:
            check_relative_path(fn, where, "local.file_name")
        return cls(box=box, size=size, conditions=conds, file_name=fn)

    def to_local(self, xy: Any) -> Any:
        """Global pixel coordinates (..., 2) -> local crop pixel coordinates."""
        import numpy as np

        xy = np.asarray(xy, dtype=np.float64)
        return (xy - np.asarray(self.box[:2])) * (self.size / self.box[2])

    def to_global(self, uv: Any) -> Any:
        """Local crop pixel coordinates (..., 2) -> global pixel coordinates."""
        import numpy as np

        uv = np.asarray(uv, dtype=np.float64)
        return uv * (self.box[2] / self.size) + np.asarray(self.box[:2])

    def to_dict(self) -> dict:
        d = {"box": self.box, "size": self.size, "conditions": self.conditions}
        if self.file_name is not None:
            d["file_name"] = self.file_name
        return d


def _str_map(d: Any, where: str, name: str) -> dict[str, str]:
    if not isinstance(d, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in d.items()):
        raise _fail(where, name, "must map names to relative file paths (strings)")
    for key, rel in d.items():
        check_relative_path(rel, where, f"{name}.{key}")
    return dict(d)


CONDITIONING_COLUMN = "conditioning_image"  # diffusers train_controlnet.py's default column
PREFERRED_CONDITION = "mesh"  # the map AttentionHand and the ControlNet baseline read


def image_columns(conditions: dict[str, str]) -> dict[str, str]:
    """``*_file_name`` keys that Hugging Face ``datasets`` (imagefolder) decodes as Image columns:
    ``<map>_file_name`` per condition map and ``conditioning_image_file_name`` (the mesh map, else the
    first), so a folder trains directly with diffusers' ``train_controlnet.py``. Derived from
    ``conditions`` on every write; readers ignore them."""
    if not conditions:
        return {}
    main = conditions.get(PREFERRED_CONDITION) or next(iter(conditions.values()))
    return {f"{CONDITIONING_COLUMN}_file_name": main, **{f"{m}_file_name": p for m, p in conditions.items()}}


def _derived_column(key: str, conditions: Any) -> bool:
    """A column :func:`image_columns` writes (dropped on read: it is rebuilt from ``conditions``)."""
    if key == f"{CONDITIONING_COLUMN}_file_name":
        return True
    return (
        key.endswith("_file_name")
        and isinstance(conditions, dict)
        and key[: -len("_file_name")] in conditions
    )


def check_relative_path(rel: Any, where: str, field_name: str) -> str:
    """Refuse a path that could leave the dataset folder: absolute, drive-qualified, ``..`` or empty.

    Every path a record names goes through here, so no stage can be made to read (and copy, or serve)
    a file outside the folder; symlinks are checked where the folder is known (``iter_records``).
    """
    if not isinstance(rel, str):
        raise _fail(where, field_name, "must be a string")
    parts = rel.replace("\\", "/").split("/")
    if (
        not rel
        or "\x00" in rel
        or rel.startswith(("/", "\\", "~"))
        or (len(rel) > 1 and rel[1] == ":")
        or ".." in parts
    ):
        raise _fail(where, field_name, f"must be a relative path inside the dataset folder, got {rel!r}")
    return rel


@dataclass
class Sample:
    """One dataset sample: camera, hands with exact labels, prompt, condition files, provenance.

    ``extra`` keeps fields this version does not know (e.g. ``hand_token_indices``, ``object``),
    so a round trip through older code never drops another stage's data.
    """

    id: str
    width: int
    height: int
    K: list[list[float]]
    hands: list[Hand]
    prompt: str = ""
    file_name: str | None = None
    conditions: dict[str, str] = field(default_factory=dict)
    local: LocalCrop | None = None
    source: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    KNOWN = (
        "id",
        "file_name",
        "width",
        "height",
        "camera",
        "hands",
        "prompt",
        "conditions",
        "local",
        "source",
    )

    @classmethod
    def from_dict(cls, d: Any, where: str = "<record>") -> Sample:
        if not isinstance(d, dict):
            raise RecordError(f"{where}: a record must be a JSON object")
        for key in ("id", "width", "height", "camera", "hands"):
            if key not in d:
                raise _fail(where, key, "is missing")
        if not isinstance(d["id"], str) or not d["id"] or "/" in d["id"]:
            raise _fail(where, "id", f"must be a non-empty string without '/', got {d['id']!r}")
        where = f"{where} (id {d['id']})"
        for key in ("width", "height"):
            if not isinstance(d[key], int) or isinstance(d[key], bool) or d[key] <= 0:
                raise _fail(where, key, f"must be a positive integer, got {d[key]!r}")
        cam = d["camera"]
        if not isinstance(cam, dict) or "K" not in cam:
            raise _fail(where, "camera.K", "is missing")
        K = _floats(cam["K"], (3, 3), where, "camera.K")
        if K[0][0] <= 0 or K[1][1] <= 0 or K[2] != [0.0, 0.0, 1.0]:
            raise _fail(
                where, "camera.K", "must be an intrinsics matrix [[fx,0,cx],[0,fy,cy],[0,0,1]] with fx,fy>0"
            )
        if not isinstance(d["hands"], list):
            raise _fail(where, "hands", "must be a list")
        hands = [Hand.from_dict(h, where, f"hands[{i}]") for i, h in enumerate(d["hands"])]
        for i, h in enumerate(hands):
            check_placement(h, d["width"], d["height"], where, f"hands[{i}]")
        sides = [h.side for h in hands]
        if len(set(sides)) != len(sides):
            raise _fail(where, "hands", f"holds the same side twice: {sides}")
        prompt = d.get("prompt", "")
        if not isinstance(prompt, str):
            raise _fail(where, "prompt", "must be a string")
        fn = d.get("file_name")
        if fn is not None:
            check_relative_path(fn, where, "file_name")
        source = d.get("source", {})
        if not isinstance(source, dict):
            raise _fail(where, "source", "must be an object")
        check_dataset_fields(d, where)
        return cls(
            id=d["id"],
            width=d["width"],
            height=d["height"],
            K=K,
            hands=hands,
            prompt=prompt,
            file_name=fn,
            conditions=_str_map(d.get("conditions", {}), where, "conditions"),
            local=LocalCrop.from_dict(d["local"], where) if d.get("local") is not None else None,
            source=source,
            extra={
                k: v
                for k, v in d.items()
                if k not in cls.KNOWN and not _derived_column(k, d.get("conditions"))
            },
        )

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"id": self.id}
        if self.file_name is not None:
            d["file_name"] = self.file_name
        d.update(
            width=self.width,
            height=self.height,
            camera={"K": self.K},
            hands=[h.to_dict() for h in self.hands],
            prompt=self.prompt,
            conditions=self.conditions,
        )
        d.update(image_columns(self.conditions))
        if self.local is not None:
            d["local"] = self.local.to_dict()
        d["source"] = self.source
        d.update(self.extra)
        return d

    def paths(self) -> dict[str, str]:
        """Every file the record names, keyed by its field (``file_name``, ``conditions.mesh`` ...)."""
        named = {"file_name": self.file_name} if self.file_name else {}
        named.update({f"conditions.{k}": v for k, v in self.conditions.items()})
        if self.local is not None:
            if self.local.file_name:
                named["local.file_name"] = self.local.file_name
            named.update({f"local.conditions.{k}": v for k, v in self.local.conditions.items()})
        return named

    def hand(self, side: str) -> Hand | None:
        return next((h for h in self.hands if h.side == side), None)

    @property
    def flat_hand_mean(self) -> bool:
        """Whether ``hand_pose`` is absolute (``source.flat_hand_mean``, as HO3D imports are) rather than
        relative to the model's mean pose: whoever poses the hands must build the model to match."""
        return bool(self.source.get("flat_hand_mean", False))

    def union_bbox(self) -> list[float]:
        """[x, y, w, h] around all hands (the AttentionHand hand box B for two-hand samples)."""
        if not self.hands:
            raise RecordError(f"record {self.id}: has no hands, so no hand box")
        x0 = min(h.bbox[0] for h in self.hands)
        y0 = min(h.bbox[1] for h in self.hands)
        x1 = max(h.bbox[0] + h.bbox[2] for h in self.hands)
        y1 = max(h.bbox[1] + h.bbox[3] for h in self.hands)
        return [x0, y0, x1 - x0, y1 - y0]


# --- Optional fields written by the dataset importers (``handsynth prepare``, docs/format.md) ---------
# They stay in ``Sample.extra`` (so older readers keep them); only their shape is checked here.

BODY_KEYPOINTS = 17  # COCO body keypoints


def _side(value: Any, where: str, name: str) -> str:
    if value not in SIDES:
        raise _fail(where, name, f"must be one of {SIDES}, got {value!r}")
    return value


def _box(value: Any, where: str, name: str) -> list[float]:
    box = _floats(value, (4,), where, name)
    if box[2] <= 0 or box[3] <= 0:
        raise _fail(where, name, f"must have positive width and height, got {box}")
    return box


def _items(value: Any, where: str, name: str, required: tuple[str, ...]) -> Iterator[tuple[str, dict]]:
    """``(prefix, item)`` for a list of objects, each checked for its ``required`` keys."""
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise _fail(where, name, "must be a list of objects")
    for i, item in enumerate(value):
        prefix = f"{name}[{i}]"
        for key in required:
            if key not in item:
                raise _fail(where, f"{prefix}.{key}", "is missing")
        yield prefix, item


def _check_hands_2d(value: Any, where: str) -> None:
    for p, h in _items(value, where, "hands_2d", ("side", "bbox", "joints_2d", "visibility")):
        _side(h["side"], where, f"{p}.side")
        _box(h["bbox"], where, f"{p}.bbox")
        _floats(h["joints_2d"], (NUM_JOINTS, 2), where, f"{p}.joints_2d")
        _floats(h["visibility"], (NUM_JOINTS,), where, f"{p}.visibility")


def _check_unlabelled_hands(value: Any, where: str) -> None:
    for p, h in _items(value, where, "unlabelled_hands", ("side", "bbox")):
        _side(h["side"], where, f"{p}.side")
        _box(h["bbox"], where, f"{p}.bbox")
        if h.get("root_3d") is not None:
            _floats(h["root_3d"], (3,), where, f"{p}.root_3d")


def _check_body(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise _fail(where, "body", "must be an object")
    if "keypoints_2d" in value:
        _floats(value["keypoints_2d"], (BODY_KEYPOINTS, 3), where, "body.keypoints_2d")
    for p, arm in _items(value.get("forearms", []), where, "body.forearms", ("side",)):
        _side(arm["side"], where, f"{p}.side")
        for key in ("sleeve_start", "length"):
            if arm.get(key) is not None and not _positive_number(arm[key]):
                raise _fail(where, f"{p}.{key}", f"must be a positive number (metres), got {arm[key]!r}")


def _positive_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


# Largest ‖RᵀR − I‖ (Frobenius) of an object rotation: far above float32 storage noise (~1e-7), far
# below a scaled or sheared matrix.
ROTATION_TOLERANCE = 1e-4
WORLD_MESH_PREFIX = "world:"  # `mesh: "world:<kind>"`: the world's procedural objects (handsynth.objects)


def _rotation(value: Any, where: str, name: str) -> list:
    R = _floats(value, (3, 3), where, name)
    m = np.asarray(R, dtype=np.float64)
    err = float(np.linalg.norm(m.T @ m - np.eye(3)))
    if err > ROTATION_TOLERANCE:
        raise _fail(where, name, f"must be a rotation (orthonormal), but ‖RᵀR − I‖ = {err:.2g}")
    if np.linalg.det(m) < 0:
        raise _fail(where, name, "must be a rotation, but its determinant is −1 (a reflection)")
    return R


def object_pose(obj: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """``(R, t, scale)`` of a validated ``objects[]`` entry: model point p -> ``scale · R p + t`` (camera
    frame, metres). Accepts both spellings: ``pose`` ([R | t], 3×4, what the importers write) or ``R`` + ``t``."""
    if "pose" in obj:
        pose = np.asarray(obj["pose"], dtype=np.float64)
        R, t = pose[:, :3], pose[:, 3]
    else:
        R, t = np.asarray(obj["R"], dtype=np.float64), np.asarray(obj["t"], dtype=np.float64)
    return R, t, float(obj.get("scale", 1.0))


def _check_objects(value: Any, where: str) -> None:
    for p, o in _items(value, where, "objects", ("name",)):
        if not isinstance(o["name"], str) or not o["name"]:
            raise _fail(where, f"{p}.name", "must be a non-empty string")
        if "pose" in o:
            if "R" in o or "t" in o:
                raise _fail(where, p, "has both 'pose' and 'R'/'t': give the pose once")
            pose = _floats(o["pose"], (3, 4), where, f"{p}.pose")
            _rotation([row[:3] for row in pose], where, f"{p}.pose[:, :3]")
        else:
            for key in ("R", "t"):
                if key not in o:
                    raise _fail(where, f"{p}.{key}", "is missing (give 'R' and 't', or 'pose' = [R | t])")
            _rotation(o["R"], where, f"{p}.R")
            _floats(o["t"], (3,), where, f"{p}.t")
        if "scale" in o:
            scale = _floats(o["scale"], (), where, f"{p}.scale")
            if scale <= 0:
                raise _fail(where, f"{p}.scale", f"must be positive, got {scale}")
        mesh = o.get("mesh")
        if mesh is not None and (not isinstance(mesh, str) or not mesh or mesh == WORLD_MESH_PREFIX):
            raise _fail(
                where, f"{p}.mesh", f"must be a mesh file path or '{WORLD_MESH_PREFIX}<kind>', got {mesh!r}"
            )


def _check_grasping(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise _fail(where, "grasping", f"must be true or false, got {value!r}")


def _check_sequence(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise _fail(where, "sequence", "must be an object")
    if not isinstance(value.get("id"), str) or not value["id"]:
        raise _fail(where, "sequence.id", "must be a non-empty string")
    frame = value.get("frame")
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
        raise _fail(where, "sequence.frame", f"must be a non-negative integer, got {frame!r}")


DATASET_FIELDS = {
    "hands_2d": _check_hands_2d,
    "unlabelled_hands": _check_unlabelled_hands,
    "body": _check_body,
    "objects": _check_objects,
    "grasping": _check_grasping,
    "sequence": _check_sequence,
}


def check_dataset_fields(d: dict, where: str) -> None:
    """Validate the importers' optional fields when present (``hands_2d``, ``objects``, ...)."""
    for key, check in DATASET_FIELDS.items():
        if d.get(key) is not None:
            check(d[key], where)
