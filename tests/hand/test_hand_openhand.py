"""OpenHand: a closed mesh on MANO's mean skeleton, meaningful shape parameters, mirrored left hand."""

import numpy as np
import pytest
import torch

from handsynth.errors import UserError
from handsynth.hand import CANONICAL_POSES, canonical_pose, load_hand_model
from handsynth.hand.joints import MANO_TIP_ORDER
from handsynth.hand.openhand import (
    CHAINS,
    HANDS_MEAN,
    REST_JOINTS,
    REST_TIPS,
    build_right,
    openhand_arrays,
)
from handsynth.hand.poses import anatomical_to_pose, pose_to_anatomical


@pytest.fixture(scope="module")
def right():
    return load_hand_model("openhand", "right", flat_hand_mean=True)


@pytest.fixture(scope="module")
def left():
    return load_hand_model("openhand", "left", flat_hand_mean=True)


@pytest.mark.parametrize("detail", ["light", "high"])
def test_mesh_is_closed_and_outward(detail):
    import trimesh

    m = build_right(detail)
    mesh = trimesh.Trimesh(m.vertices, m.faces, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.euler_number == 2  # one closed surface, no handles
    assert 2e-4 < mesh.volume < 6e-4  # an adult hand + wrist stump: 200-600 cm^3
    assert np.allclose(m.weights.sum(1), 1) and (m.weights >= 0).all()
    assert (m.weights.max(1) > 0.2).all()  # every vertex follows some bone
    assert np.allclose(m.J_regressor @ m.vertices, REST_JOINTS, atol=1e-9)
    assert tuple(n for n, (_c, t) in sorted(CHAINS.items(), key=lambda kv: kv[1][1])) == MANO_TIP_ORDER


def test_rest_skeleton_is_mano_mean(right):
    out = right()
    mano_order = out.mano_joints[0].numpy()
    assert np.abs(mano_order - REST_JOINTS).max() < 1e-6
    tips = out.joints[0, [4, 8, 12, 16, 20]].numpy()
    assert np.linalg.norm(tips - REST_TIPS, axis=1).max() < 0.003
    assert out.joints.shape == (1, 21, 3) and right.faces.shape[1] == 3


def test_shape_parameters_do_what_they_say(right):
    def joints(k, value):
        b = torch.zeros(1, 10)
        b[0, k] = value
        return right(betas=b).joints[0].numpy()

    j0 = joints(0, 0.0)
    length = np.linalg.norm(j0[12] - j0[0])  # wrist to middle fingertip
    j_size = joints(0, 1.0)
    assert np.linalg.norm(j_size[12] - j_size[0]) / length == pytest.approx(1.055, abs=0.005)
    # Finger length: fingers longer, palm unchanged.
    j_f = joints(3, 2.0)
    assert np.linalg.norm(j_f[12] - j_f[9]) > 1.08 * np.linalg.norm(j0[12] - j0[9])
    assert np.linalg.norm(j_f[9] - j_f[0]) == pytest.approx(np.linalg.norm(j0[9] - j0[0]), rel=0.02)
    # Palm width: index and little knuckles move apart.
    j_w = joints(1, 2.0)
    assert np.linalg.norm(j_w[5] - j_w[17]) > 1.08 * np.linalg.norm(j0[5] - j0[17])
    # Thickness changes the surface, not the skeleton.
    b = torch.zeros(1, 10)
    b[0, 5] = 2.0
    out = right(betas=b)
    assert np.abs(out.joints[0].numpy()[[0, 5, 6, 9, 10]] - j0[[0, 5, 6, 9, 10]]).max() < 1.5e-3
    assert (out.vertices - right().vertices).abs().max() > 1e-3


def test_left_is_mirror_of_right(right, left):
    rng = np.random.default_rng(0)
    go = rng.normal(0, 1, (2, 3))
    hp = rng.normal(0, 0.4, (2, 45))
    betas = torch.tensor(rng.normal(0, 1, (2, 10)), dtype=torch.float32)
    transl = rng.normal(0, 0.1, (2, 3))
    flip = np.array([-1.0, 1.0, 1.0])

    def t(x):
        return torch.tensor(x, dtype=torch.float32)

    r = right(t(go), t(hp), betas, t(transl))
    m = np.array([1.0, -1.0, -1.0])
    lo = left(t(go * m), t((hp.reshape(2, 15, 3) * m).reshape(2, 45)), betas, t(transl * flip))
    assert (lo.vertices - r.vertices * t(flip)).abs().max() < 1e-5
    assert (lo.joints - r.joints * t(flip)).abs().max() < 1e-5


def test_hand_mean_semantics():
    relaxed = load_hand_model("openhand", "right")  # flat_hand_mean=False: MANO's relaxed pose at zero
    flat = load_hand_model("openhand", "right", flat_hand_mean=True)
    mean = torch.tensor(HANDS_MEAN, dtype=torch.float32)[None]
    assert torch.allclose(relaxed().vertices, flat(hand_pose=mean).vertices, atol=1e-6)
    assert torch.allclose(relaxed.hand_mean, mean[0])


def test_canonical_poses_look_like_their_names(right):
    def joints(name):
        p = torch.tensor(canonical_pose(name), dtype=torch.float32)[None]
        return right(hand_pose=p).joints[0].numpy()

    flat = joints("flat")
    tips = [8, 12, 16, 20]
    reach_flat = np.linalg.norm(flat[tips] - flat[0], axis=1)
    fist = joints("fist")
    assert (np.linalg.norm(fist[tips] - fist[0], axis=1) < 0.6 * reach_flat).all()
    point = joints("point")
    assert np.linalg.norm(point[8] - point[0]) > 0.95 * reach_flat[0]
    assert (np.linalg.norm(point[[12, 16, 20]] - point[0], axis=1) < 0.6 * reach_flat[1:]).all()
    pinch = joints("pinch")
    assert np.linalg.norm(pinch[4] - pinch[8]) < 0.02  # thumb and index tips meet
    peace = joints("peace")
    assert np.linalg.norm(peace[8] - peace[12]) > np.linalg.norm(flat[8] - flat[12])  # V spread
    up = joints("thumbs-up")
    assert np.linalg.norm(up[4] - up[0]) > 0.9 * np.linalg.norm(flat[4] - flat[0])
    assert set(CANONICAL_POSES) == {"flat", "fist", "point", "pinch", "peace", "thumbs-up", "grasp"}
    # Relative to a model's mean, and mirrored for the left hand.
    m = np.ones(45) * 0.1
    assert np.allclose(canonical_pose("fist", mean=m), canonical_pose("fist") - m)
    assert np.allclose(
        canonical_pose("fist", side="left").reshape(15, 3)[:, 1:],
        -canonical_pose("fist").reshape(15, 3)[:, 1:],
    )


def test_anatomical_angles_round_trip():
    rng = np.random.default_rng(1)
    ang = rng.uniform(-40, 70, (5, 15, 3))
    pose = anatomical_to_pose(ang)
    assert np.abs(pose_to_anatomical(pose) - ang).max() < 1e-6
    assert np.abs(pose_to_anatomical(anatomical_to_pose(ang, "left"), "left") - ang).max() < 1e-6
    # Flexion of the fingers is MANO's positive z rotation (towards the palm, -y).
    one = np.zeros((15, 3))
    one[0, 0] = 30
    aa = anatomical_to_pose(one).reshape(15, 3)[0]
    assert aa[2] > 0.4 and abs(aa[0]) < 0.1


def test_light_mesh_is_the_dense_hand_at_mano_size(right):
    """The default mesh is light (MANO has 778 vertices) and the same hand as the dense build."""
    from scipy.spatial import cKDTree

    lo, hi = build_right("light"), build_right("high")
    assert 1000 <= len(lo.vertices) <= 2500 and len(lo.faces) == 2 * len(lo.vertices) - 4
    assert len(hi.vertices) > 5 * len(lo.vertices)
    assert right.num_vertices == len(lo.vertices)
    # Its vertices lie on the dense surface (dense vertex spacing ~1.5 mm) and it spans the same hand.
    assert cKDTree(hi.vertices).query(lo.vertices)[0].max() < 0.003
    assert np.allclose(lo.vertices.min(0), hi.vertices.min(0), atol=0.002)
    assert np.allclose(lo.vertices.max(0), hi.vertices.max(0), atol=0.002)
    # Same rig: posed and shaped joints agree to well under a millimetre, mirrored left included.
    rng = np.random.default_rng(2)
    args = [
        torch.tensor(rng.normal(0, s, (4, n)), dtype=torch.float32) for s, n in ((1, 3), (0.5, 45), (1, 10))
    ]
    for side in ("right", "left"):
        a = load_hand_model("openhand", side, detail="light")(*args)
        b = load_hand_model("openhand", side, detail="high")(*args)
        assert (a.joints - b.joints).abs().max() < 5e-4
    # Skinning was carried over: a bent finger moves the same stretch of surface on both meshes.
    pose = torch.zeros(1, 45)
    pose[0, 5] = 1.2  # index PIP flexion
    extent = []
    for m in (
        load_hand_model("openhand", detail="light", flat_hand_mean=True),
        load_hand_model("openhand", detail="high", flat_hand_mean=True),
    ):
        moved = (m(hand_pose=pose).vertices - m().vertices).norm(dim=-1)[0] > 1e-3
        extent.append(m.v_template[moved].min(0).values.numpy())
        extent.append(m.v_template[moved].max(0).values.numpy())
    lo_box, hi_box = np.stack(extent[:2]), np.stack(extent[2:])
    assert np.abs(lo_box - hi_box).max() < 0.0025  # same region, within a light-mesh edge
    assert lo_box[1, 0] < REST_JOINTS[1, 0] and lo_box[0, 2] > REST_JOINTS[4, 2]  # only the index finger


def test_detail_choice(monkeypatch):
    assert openhand_arrays("right", "high").v_template.shape[0] == len(build_right("high").vertices)
    monkeypatch.setenv("HANDSYNTH_OPENHAND_DETAIL", "high")
    assert load_hand_model("openhand").num_vertices == len(build_right("high").vertices)
    monkeypatch.delenv("HANDSYNTH_OPENHAND_DETAIL")
    assert load_hand_model("openhand").num_vertices == len(build_right("light").vertices)
    with pytest.raises(UserError, match="detail"):
        openhand_arrays("right", "medium")


def test_build_is_cached_exactly(tmp_path, monkeypatch):
    """A hand is built once per machine and read back bit for bit; a damaged cache file is rebuilt,
    not trusted."""
    from handsynth.hand import openhand

    monkeypatch.setenv("HANDSYNTH_CACHE", str(tmp_path))
    built = openhand.build_right.__wrapped__("light")
    (saved,) = tmp_path.glob("openhand-light-*.npz")
    again = openhand.build_right.__wrapped__("light")
    fresh = openhand._build_right("light")
    for name in ("vertices", "faces", "weights", "J_regressor", "shapedirs"):
        a, b, c = getattr(built, name), getattr(again, name), getattr(fresh, name)
        assert a.dtype == b.dtype and np.array_equal(a, b) and np.array_equal(a, c), name
    assert again.tip_vertices == fresh.tip_vertices and isinstance(again.tip_vertices[0], int)
    saved.write_bytes(b"not an npz file")
    rebuilt = openhand.build_right.__wrapped__("light")
    assert np.array_equal(rebuilt.vertices, built.vertices)
    assert np.load(saved)["vertices"].shape == built.vertices.shape  # and saved again
