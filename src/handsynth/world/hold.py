"""The hand–object world (``holab``, ``howild``): objects always in the hand, named in the record.

HandBooster's data (DexYCB, HO3D, MOW) label the object as well as the hand, and its grasp status
comes from the object moving in short videos. So the hand–object domains build every object from the
shape a record can name (``mesh: "world:<kind>#rrggbb"``, :func:`handsynth.objects.shapes.canonical_shape`
resized by the record's ``scale``), place it with a rotation + translation the record stores, and can
render short sequences: the object rests on a table while the hand comes to it, then hand and object
rise together (``grasping`` true from the first lifted frame).

- ``holab`` (DexYCB-like): 5 object kinds, each one fixed instance (one size, one colour, like YCB
  objects), 3 grasp styles per kind, 10 "subjects" (a skin tone and a hand shape each) of which
  ``--subjects test`` holds out two (S1-like unseen subjects).
- ``howild`` (MOW-like): all 10 kinds, random size (scale 0.85-1.15) and colour, continuous grasps,
  any skin tone and shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handsynth.data.records import WORLD_MESH_PREFIX, Sample
from handsynth.data.records import object_pose as record_object_pose
from handsynth.errors import UserError
from handsynth.objects.meshes import shade_colors, split_world_mesh, world_mesh_ref
from handsynth.objects.shapes import SHAPES, canonical_shape
from handsynth.world.objects import FLAT, OBJECTS, _small_rotation, color_rgb, hand_frame, hold_pose

HO_DOMAINS = ("holab", "howild")
KINDS = {"holab": ("cup", "bottle", "can", "box", "apple"), "howild": tuple(SHAPES)}
LAB_COLORS = {"cup": "red", "bottle": "blue", "can": "silver", "box": "brown", "apple": "green"}
STYLES_PER_KIND = 3
WILD_SCALE = (0.85, 1.15)

# The object-frame direction that points up when the object rests on a table: standing on its base
# (cylinders, boxes: +z) or lying flat with the palm above it (-y: the palm is on the object's -y side).
UP_AXIS = {k: np.array([0.0, 0.0, 1.0]) for k in ("cup", "bottle", "can", "box")}
UP_AXIS.update({k: np.array([0.0, -1.0, 0.0]) for k in ("ball", "apple", "phone", "book", "pen", "remote")})

# Subjects of holab: MST tone 1..10, shape betas drawn from their own seed; test = unseen subjects.
SUBJECTS = 10
TEST_SUBJECTS = (2, 7)  # tones 3 and 8: one light, one dark, both inside the train tones' range
SUBJECT_SPLITS = ("all", "train", "test")
_SUBJECT_SEED = 7021
_STYLE_SEED = 4409

# Sequences: the hand comes to the resting object (rest frames), then lifts it.
APPROACH_M = 0.06  # hand distance from its grasp in the first frame
LIFT_M = (0.02, 0.08)  # object height above the table in the first / last lifted frame
TABLE_SIZE_M = (0.5, 0.5, 0.02)
VIEW_UP = np.array([0.0, -0.7, -0.7]) / np.sqrt(0.98)  # table normal: image-up and towards the camera
VIEW_UP_SPREAD_RAD = 0.35  # the table normal's random tilt from VIEW_UP


@dataclass
class HeldObject:
    """A ``world:<kind>`` shape at ``scale`` in one colour, in its own frame (what the record names)."""

    kind: str
    color_name: str
    scale: float
    vertices: np.ndarray  # canonical shape * scale
    faces: np.ndarray
    colors: np.ndarray  # (V, 3) sRGB albedo
    thickness: float  # half-extent out of the palm (object y)
    grip_radius: float
    given_mesh: str | None = None  # the reference a --poses record gave (its exact colour)

    @property
    def mesh_ref(self) -> str:
        return self.given_mesh or world_mesh_ref(self.kind, color_rgb(self.color_name))

    @property
    def up(self) -> np.ndarray:
        return UP_AXIS[self.kind]


@dataclass
class GraspStyle:
    """Where the object sits in the palm: a tilt, a slide towards the fingers, a tighter/looser curl."""

    index: int  # -1: a continuous random grasp (howild)
    tilt: np.ndarray
    slide: float
    curl_scale: float  # multiplies the grip radius the finger curl is computed from


def make_held(kind: str, scale: float, color_name: str) -> HeldObject:
    """The canonical shape of ``kind`` at ``scale``, coloured like :func:`world.objects.make_object`."""
    v, f, shade = canonical_shape(kind)
    v = v * scale
    thickness = float(np.abs(v[:, 1]).max())
    cols = shade_colors(color_rgb(color_name), shade)
    grip = 0.03 if kind in FLAT else thickness
    return HeldObject(kind, color_name, float(scale), v, np.asarray(f), cols, thickness, grip)


def sample_held(domain: str, rng: np.random.Generator) -> HeldObject:
    """One object of the domain: a fixed instance per kind (holab) or a random size and colour (howild)."""
    kinds = KINDS[domain]
    kind = kinds[int(rng.integers(len(kinds)))]
    if domain == "holab":
        return make_held(kind, 1.0, LAB_COLORS[kind])
    colors = OBJECTS[kind][1]
    return make_held(kind, float(rng.uniform(*WILD_SCALE)), colors[int(rng.integers(len(colors)))])


def sample_style(domain: str, kind: str, rng: np.random.Generator) -> GraspStyle:
    """holab: one of the kind's 3 fixed styles (+ a little noise); howild: a random grasp."""
    if domain == "holab":
        k = int(rng.integers(STYLES_PER_KIND))
        srng = np.random.default_rng([_STYLE_SEED, sorted(SHAPES).index(kind), k])
        tilt = _small_rotation(srng, 0.3) @ _small_rotation(rng, 0.05)
        return GraspStyle(k, tilt, float(srng.uniform(0.0, 0.025)), float(srng.uniform(0.85, 1.15)))
    return GraspStyle(
        -1, _small_rotation(rng, 0.3), float(rng.uniform(0.0, 0.025)), float(rng.uniform(0.85, 1.15))
    )


def held_from_record(record: Sample, domain: str, rng: np.random.Generator) -> tuple:
    """(HeldObject, R, t, Frame) of the first object of a ``--poses`` record: its ``world:<kind>`` shape
    at the record's scale and pose, in the record's colour (else the domain's: holab's fixed instance,
    a random one of the kind's colours in howild); the frame says whether the hand grasps (the record's
    ``grasping``, true when absent)."""
    objs = record.extra.get("objects") or []
    if not objs:
        raise UserError(f"--poses record {record.id} has no objects; --domain {domain} draws the held object")
    obj = objs[0]
    mesh = obj.get("mesh") or f"{WORLD_MESH_PREFIX}{obj['name']}"
    kind, rgb = split_world_mesh(mesh) if mesh.startswith(WORLD_MESH_PREFIX) else (None, None)
    if kind not in SHAPES:
        raise UserError(
            f"--poses record {record.id}: object mesh {mesh!r} is not a world shape "
            f"({WORLD_MESH_PREFIX}<kind>, kinds {', '.join(sorted(SHAPES))})"
        )
    R, t, scale = record_object_pose(obj)
    names = OBJECTS[kind][1]
    if rgb is not None:  # the colour name nearest the record's colour (captions name it)
        name = min(names, key=lambda n: float(np.sum((color_rgb(n) - np.asarray(rgb)) ** 2)))
    elif domain == "holab" and kind in LAB_COLORS:
        name = LAB_COLORS[kind]
    else:
        name = names[int(rng.integers(len(names)))]
    held = make_held(kind, scale, name)
    if rgb is not None:
        held.colors = shade_colors(np.asarray(rgb), canonical_shape(kind)[2])
        held.given_mesh = mesh
    grasping = bool(record.extra.get("grasping", True))
    zero = np.zeros(3)
    return held, R, t, Frame(0, zero, zero, grasping)


def subject(index: int) -> tuple[int, np.ndarray]:
    """(MST skin tone, betas (10,)) of holab subject ``index``."""
    rng = np.random.default_rng([_SUBJECT_SEED, index])
    return index + 1, np.clip(rng.normal(0, 0.8, 10), -2.5, 2.5)


def subject_with_betas(betas, default: int) -> int:
    """The holab subject whose hand shape ``betas`` is (a record of a holab photo, or a grasp aligned to
    one), else ``default``: its skin tone then matches the shape, as in every holab photo."""
    for i in range(SUBJECTS):
        if np.allclose(subject(i)[1], np.asarray(betas, np.float64), atol=1e-6):
            return i
    return default


def subject_pool(split: str) -> tuple[int, ...]:
    """Subject indices of a ``--subjects`` split."""
    if split == "test":
        return TEST_SUBJECTS
    if split == "train":
        return tuple(i for i in range(SUBJECTS) if i not in TEST_SUBJECTS)
    return tuple(range(SUBJECTS))


def object_pose(
    held: HeldObject, joints: np.ndarray, side: str, style: GraspStyle
) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) of the object held in the posed hand (model point p -> scale·R p + t is its vertex).

    A left hand's frame is the mirror image of a right hand's (a reflection, det -1); the object is
    then turned about its along-the-fingers axis instead, so ``R`` is a rotation, as records require.
    """
    R, t = hold_pose(held.thickness, joints, side, style.slide, style.tilt)
    if np.linalg.det(R) < 0:
        R = R * np.array([-1.0, 1.0, 1.0])[None]
    return R, t


def up_in_camera(held: HeldObject, R_object: np.ndarray) -> np.ndarray:
    """The table normal (camera frame) for an object at rotation ``R_object``."""
    return R_object @ held.up


def table_normal(rng: np.random.Generator) -> np.ndarray:
    """The table's normal in the camera frame: :data:`VIEW_UP` tilted at random (a camera looking down
    at a table from the front, as DexYCB's and MOW's are)."""
    axis = np.cross(VIEW_UP, rng.normal(size=3))
    axis /= np.linalg.norm(axis)
    tilt = rng.uniform(0, VIEW_UP_SPREAD_RAD)
    return np.cos(tilt) * VIEW_UP + np.sin(tilt) * np.cross(axis, VIEW_UP)


def arm_misfit(arm: np.ndarray) -> float:
    """How far a wrist -> elbow direction is from a person's at a table (0: fine): not towards the
    camera (z >= -0.3) and not up in the image (y >= -0.2; +y is down)."""
    return max(0.0, -0.3 - float(arm[2])) + max(0.0, -0.2 - float(arm[1]))


@dataclass
class Frame:
    """One frame of a sequence: offsets (camera frame, metres) of hand and object from the grasp."""

    index: int
    hand_offset: np.ndarray
    object_offset: np.ndarray
    grasping: bool


def sequence_frames(length: int, up: np.ndarray, away: np.ndarray) -> list[Frame]:
    """Frames of a sequence: the first half the object rests (``grasping`` false) while the hand comes
    from ``APPROACH_M`` along ``away`` to its grasp; then hand and object rise along ``up`` from
    ``LIFT_M[0]`` to ``LIFT_M[1]`` (every lifted frame moved > 10 mm: grasp status' threshold).

    ``length`` 1: the single image of an object held in the air (no table, grasping)."""
    zero = np.zeros(3)
    if length == 1:
        return [Frame(0, zero, zero, True)]
    n_rest = (length + 1) // 2
    n_lift = length - n_rest
    frames = []
    for f in range(n_rest):
        a = APPROACH_M * (n_rest - 1 - f) / max(n_rest - 1, 1)
        frames.append(Frame(f, away * a, zero, False))
    for j in range(n_lift):
        h = LIFT_M[0] + (LIFT_M[1] - LIFT_M[0]) * j / max(n_lift - 1, 1)
        frames.append(Frame(n_rest + j, up * h, up * h, True))
    return frames


def away_direction(joints: np.ndarray, side: str, up: np.ndarray) -> np.ndarray:
    """Where the hand comes from: back from the palm (away from the object) and a little up."""
    out = hand_frame(joints, side)[:, 2]  # palm -> object
    d = -out + 0.5 * up
    return d / np.linalg.norm(d)


def table_mesh(
    held_vertices: np.ndarray, up: np.ndarray, center: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A slab under the resting object (camera frame): top face through its lowest point along ``up``."""
    low = float((held_vertices @ up).min())
    e1 = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    sx, sy, sz = TABLE_SIZE_M
    c = center - up * (center @ up - low) - up * sz / 2
    corners = np.array([[i, j, k] for i in (-0.5, 0.5) for j in (-0.5, 0.5) for k in (-0.5, 0.5)])
    v = c + corners[:, :1] * sx * e1 + corners[:, 1:2] * sy * e2 + corners[:, 2:] * sz * up
    # corner index = 4i + 2j + k; two triangles per face (shaded flat by the caller: winding is moot)
    faces = np.array(
        [
            [0, 2, 3], [0, 3, 1], [4, 5, 7], [4, 7, 6],  # e1 = -, +
            [0, 1, 5], [0, 5, 4], [2, 6, 7], [2, 7, 3],  # e2 = -, +
            [0, 4, 6], [0, 6, 2], [1, 3, 7], [1, 7, 5],  # up = -, +
        ],
        np.int64,
    )  # fmt: skip
    return v, faces
