"""`poses rest`: objects lie on the table plane in a stable pose, drawn by the stable poses' probabilities."""

from __future__ import annotations

from collections import Counter

import numpy as np
import trimesh

from handsynth.cli import main
from handsynth.data import read_dataset
from handsynth.data.records import object_pose
from handsynth.objects.meshes import load_mesh, resolve_mesh
from handsynth.poses.rest import object_catalogue, stable_poses


def _plane_distances(sample) -> np.ndarray:
    obj = sample.extra["objects"][0]
    mesh = load_mesh(resolve_mesh(obj["mesh"], None, "test"), "test")
    R, t, scale = object_pose(obj)
    v = scale * np.asarray(mesh.vertices) @ R.T + t
    plane = sample.extra["support_plane"]
    return (v - plane["point"]) @ np.asarray(plane["normal"])


def test_world_objects_rest_on_the_plane_in_view(tmp_path):
    out = tmp_path / "rest"
    assert main(["poses", "rest", "--objects", "world", "--n", "3", "--out", str(out)]) == 0
    samples = read_dataset(out)
    assert len(samples) == 3 * 10 and all(s.hands == [] for s in samples)
    for s in samples:
        d = _plane_distances(s)
        assert abs(d.min()) < 1e-6 and d.max() > 0.005  # touching the table, standing above it
        K = np.asarray(s.K)
        centre = np.asarray(object_pose(s.extra["objects"][0])[1])
        u, v = (K @ centre)[:2] / centre[2]
        assert 0 < u < s.width and 0 < v < s.height  # the fixed camera sees it
        assert s.source["handbooster"]["rest"]["probability"] > 0
    # a resumed run adds nothing; another seed into the same folder is refused
    assert main(["poses", "rest", "--objects", "world", "--n", "3", "--out", str(out)]) == 0
    assert len(read_dataset(out)) == 30
    assert main(["poses", "rest", "--objects", "world", "--n", "3", "--seed", "1", "--out", str(out)]) == 2


def test_draws_follow_the_stable_pose_probabilities(tmp_path):
    """A flat slab lands on a large face far more often than on an edge face."""
    folder = tmp_path / "models"
    (folder / "slab").mkdir(parents=True)
    trimesh.creation.box(extents=(0.2, 0.1, 0.01)).export(folder / "slab" / "textured_simple.obj")
    trimesh.creation.box(extents=(0.05, 0.05, 0.05)).export(folder / "cube.ply")
    catalogue = object_catalogue(str(folder))
    assert [name for name, _ in catalogue] == ["cube", "slab"]
    _, probs = stable_poses(resolve_mesh(catalogue[1][1], None, "slab"))
    out = tmp_path / "rest"
    assert main(["poses", "rest", "--objects", str(folder), "--n", "400", "--out", str(out)]) == 0
    slabs = [s for s in read_dataset(out) if s.id.startswith("slab")]
    counts = Counter(s.source["handbooster"]["rest"]["stable_pose"] for s in slabs)
    for p, prob in enumerate(probs):
        assert abs(counts.get(p, 0) / 400 - prob) < 0.08
    flat = sum(abs(_plane_distances(s).max() - 0.01) < 1e-4 for s in slabs)
    assert flat / 400 > 0.6  # lying on a large face: 1 cm high


def test_empty_objects_folder_is_refused(tmp_path, capsys):
    (tmp_path / "none").mkdir()
    assert (
        main(["poses", "rest", "--objects", str(tmp_path / "none"), "--n", "2", "--out", str(tmp_path / "o")])
        == 2
    )
    assert "holds no meshes" in capsys.readouterr().err and not (tmp_path / "o").exists()
