"""Records with ``objects``: `handsynth render` draws each object where its pose puts it, with its
texture, and refuses records whose object mesh or rotation is wrong before writing anything."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from handsynth.cli import main
from handsynth.data import read_dataset
from handsynth.render import load_map

SIZE = 128
EXTENTS = (0.06, 0.02, 0.02)  # long along the object's x axis
RZ90 = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # object x -> camera y (image rows)
TEXTURE_RGB = (200, 30, 40)


def _project(K: np.ndarray, p: np.ndarray) -> np.ndarray:
    uvw = K @ p
    return uvw[:2] / uvw[2]


def _textured_box(folder: Path) -> Path:
    """A box OBJ with a uniform red texture image (uv + PNG), as YCB models are shipped."""
    box = trimesh.creation.box(extents=EXTENTS)
    uv = np.random.default_rng(0).uniform(0.1, 0.9, size=(len(box.vertices), 2))
    image = Image.new("RGB", (8, 8), TEXTURE_RGB)
    box.visual = trimesh.visual.TextureVisuals(uv=uv, image=image)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "box.obj"
    box.export(path)
    return path


@pytest.fixture(scope="module")
def hand_record(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("hand")
    assert (
        main(
            ["poses", "sample", "--n", "1", "--seed", "5", "--size", str(SIZE), "--out", str(tmp / "p.jsonl")]
        )
        == 0
    )
    return json.loads((tmp / "p.jsonl").read_text().splitlines()[0])


def _with_objects(record: dict, objects: list[dict], rec_id: str = "000000") -> dict:
    return {**record, "id": rec_id, "objects": objects}


def _in_front_of_hand(record: dict) -> tuple[np.ndarray, np.ndarray]:
    """A point nearer the camera than every hand joint, on the ray through the hand's centre."""
    joints = np.asarray(record["hands"][0]["joints_3d"])
    centre = joints.mean(axis=0)
    z = joints[:, 2].min() - 0.06
    return centre * (z / centre[2]), np.asarray(record["camera"]["K"])


def _render(tmp: Path, records: list[dict], *extra: str) -> int:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "in").mkdir(exist_ok=True)
    (tmp / "in" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return main(["render", "--in", str(tmp / "in"), "--out", str(tmp / "out"), "--no-local", *extra])


def test_objects_show_in_seg_depth_and_texture_where_their_pose_puts_them(tmp_path, hand_record):
    mesh = _textured_box(tmp_path / "in" / "models")
    t, K = _in_front_of_hand(hand_record)
    rel = str(mesh.relative_to(tmp_path / "in"))
    records = [
        _with_objects(hand_record, [{"name": "red_box", "mesh": rel, "R": RZ90, "t": t.tolist()}], "file"),
        _with_objects(
            hand_record,
            [{"name": "box", "mesh": "world:box", "pose": np.c_[np.eye(3), t].tolist(), "scale": 0.5}],
            "world",
        ),
    ]
    assert _render(tmp_path, records, "--maps", "seg,depth,texture,normal,mesh") == 0
    out = {s.id: s for s in read_dataset(tmp_path / "out")}
    u, v = _project(K, t)

    s = out["file"]
    seg = load_map("seg", tmp_path / "out" / s.conditions["seg"])
    ys, xs = np.nonzero(seg == 3)
    assert len(xs) > 20
    # the object's silhouette is centred on its projected centre, and R turned its long side vertical
    assert abs(xs.mean() + 0.5 - u) < 1.5 and abs(ys.mean() + 0.5 - v) < 1.5
    assert np.ptp(ys) > 2 * np.ptp(xs)
    depth = load_map("depth", tmp_path / "out" / s.conditions["depth"])
    assert abs(depth[int(v), int(u)] - 1000 * (t[2] - EXTENTS[1] / 2)) < 3  # front face, mm
    texture = load_map("texture", tmp_path / "out" / s.conditions["texture"])
    assert np.abs(texture[int(v), int(u)].astype(int) - TEXTURE_RGB).max() < 30
    mesh_map = load_map("mesh", tmp_path / "out" / s.conditions["mesh"])
    assert mesh_map[int(v), int(u)].max() == 0  # objects are black occluders in the mesh map
    # the output record still finds its mesh: the relative path became absolute
    assert s.extra["objects"][0]["mesh"] == str(mesh.resolve())

    w = out["world"]
    seg_w = load_map("seg", tmp_path / "out" / w.conditions["seg"])
    assert seg_w[int(v), int(u)] == 3
    # world:box is a 65 mm cube at the middle of its size range; scale 0.5 halves it
    side_px = K[0, 0] * 0.032 / (t[2] - 0.016)
    assert abs(np.ptp(np.nonzero(seg_w == 3)[1]) + 1 - side_px) < 2.5


def test_no_objects_draws_hands_only(tmp_path, hand_record):
    t, _ = _in_front_of_hand(hand_record)
    rec = _with_objects(
        hand_record, [{"name": "box", "mesh": "world:box", "R": np.eye(3).tolist(), "t": t.tolist()}]
    )
    assert _render(tmp_path, [rec], "--maps", "seg", "--no-objects") == 0
    s = read_dataset(tmp_path / "out")[0]
    seg = load_map("seg", tmp_path / "out" / s.conditions["seg"])
    assert 3 not in np.unique(seg) and (seg > 0).any()


def _refused(tmp_path, capsys, rec: dict) -> str:
    assert _render(tmp_path, [_with_objects(rec, rec["objects"], "rec7")], "--maps", "seg") == 2
    assert not (tmp_path / "out").exists()
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("mesh", "expected"),
    [("models/missing.obj", "models/missing.obj"), ("world:teapot", "world:teapot"), (None, "no 'mesh'")],
)
def test_unknown_mesh_is_refused_naming_record_object_and_path(tmp_path, capsys, hand_record, mesh, expected):
    t, _ = _in_front_of_hand(hand_record)
    obj = {"name": "mug", "R": np.eye(3).tolist(), "t": t.tolist()}
    if mesh is not None:
        obj["mesh"] = mesh
    err = _refused(tmp_path, capsys, {**hand_record, "objects": [obj]})
    assert "rec7" in err and "'mug'" in err and expected in err


@pytest.mark.parametrize(
    ("R", "expected"),
    [
        ([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.001]], "orthonormal"),  # scaled: ‖RᵀR − I‖ ≈ 2e-3
        ([[1.0, 0, 0], [0, 1.0, 0], [0, 0, -1.0]], "determinant"),  # a reflection
    ],
)
def test_non_rotation_is_refused_naming_the_record(tmp_path, capsys, hand_record, R, expected):
    t, _ = _in_front_of_hand(hand_record)
    err = _refused(
        tmp_path,
        capsys,
        {**hand_record, "objects": [{"name": "b", "mesh": "world:box", "R": R, "t": t.tolist()}]},
    )
    assert "rec7" in err and "objects[0].R" in err and expected in err
