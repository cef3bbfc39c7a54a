"""MANO loader on synthetic pickles in the official schema (chumpy arrays, sparse J_regressor, protocol 2).

No MANO file is available here, so the fixture is built from OpenHand's arrays (with random pose
correctives and PCA components) and pickled through a stand-in ``chumpy.ch.Ch`` class that is removed
before loading, so the loader must cope without chumpy, as it must on numpy >= 1.24.
"""

import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from handsynth.errors import UserError
from handsynth.hand import load_hand_model
from handsynth.hand.joints import MANO_TIP_VERTICES
from handsynth.hand.mano import FIXED_FLAG, convert_mano, read_mano_pickle
from handsynth.hand.openhand import openhand_arrays


def _fake_chumpy():
    pkg, mod = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x
            self.label = "value"

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    mod.Ch = Ch
    pkg.ch = mod
    return pkg, mod, Ch


def _mano_dict(side: str, Ch, buggy_left: bool, seed: int = 0) -> dict:
    """MANO's schema with MANO-like sizes: OpenHand's first 1000 vertices (enough for the tip ids)."""
    full = openhand_arrays("right")
    V = 1000
    faces = full.faces[(full.faces < V).all(1)]
    Jr = full.J_regressor[:, :V] + 1.0 / V  # any regressor will do; keep every column non-zero
    a = types.SimpleNamespace(
        v_template=full.v_template[:V], shapedirs=full.shapedirs[:V], weights=full.weights[:V], faces=faces,
        J_regressor=Jr / Jr.sum(1, keepdims=True),
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    flip = np.array([-1.0, 1.0, 1.0]) if side == "left" else np.ones(3)
    shapedirs = a.shapedirs * flip[None, :, None]
    if side == "left" and buggy_left:
        shapedirs = a.shapedirs.copy()  # the shipped bug: x not mirrored
    kintree = np.array(
        [[4294967295, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14], list(range(16))], dtype=np.int64
    )
    comps = np.linalg.qr(rng.normal(size=(45, 45)))[0]
    return {
        "v_template": Ch(a.v_template * flip),
        "shapedirs": Ch(shapedirs),
        "posedirs": rng.normal(0, 2e-4, (V, 3, 135)),
        "J_regressor": scipy.sparse.csc_matrix(a.J_regressor),
        "weights": Ch(a.weights),
        "kintree_table": kintree,
        "f": (a.faces[:, ::-1] if side == "left" else a.faces).astype(np.uint32),
        "hands_components": comps,
        "hands_mean": rng.normal(0, 0.2, 45),
        "hands_coeffs": rng.normal(size=(10, 45)),
        "J": Ch(a.J_regressor @ (a.v_template * flip)),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("mano")
    pkg, mod, Ch = _fake_chumpy()
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, mod
    try:
        for side, name in (("right", "MANO_RIGHT.pkl"), ("left", "MANO_LEFT.pkl")):
            with open(d / name, "wb") as f:
                pickle.dump(_mano_dict(side, Ch, buggy_left=True), f, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    return d


def test_pickle_loads_without_chumpy(mano_dir):
    data = read_mano_pickle(mano_dir / "MANO_RIGHT.pkl")
    assert "chumpy" not in sys.modules
    assert isinstance(data["shapedirs"], np.ndarray) and data["shapedirs"].shape[1:] == (3, 10)
    assert isinstance(data["J_regressor"], np.ndarray) and data["J_regressor"].shape[0] == 16
    assert np.allclose(data["v_template"], openhand_arrays("right").v_template[:1000])


def test_mano_model_matches_smplx_mano(mano_dir, tmp_path):
    smplx = pytest.importorskip("smplx")
    out = convert_mano(mano_dir, tmp_path)
    assert sorted(p.name for p in out) == ["MANO_LEFT.npz", "MANO_RIGHT.npz"]
    ref = smplx.MANO(
        model_path=str(tmp_path / "MANO_RIGHT.npz"),
        ext="npz",
        use_pca=False,
        flat_hand_mean=False,
        num_betas=10,
    )
    ours = load_hand_model("mano", "right", model_dir=mano_dir)  # straight from the pickle
    rng = np.random.default_rng(3)
    B = 3
    go = torch.tensor(rng.normal(0, 1, (B, 3)), dtype=torch.float32)
    hp = torch.tensor(rng.normal(0, 0.5, (B, 45)), dtype=torch.float32)
    betas = torch.tensor(rng.normal(0, 1, (B, 10)), dtype=torch.float32)
    transl = torch.tensor(rng.normal(0, 0.1, (B, 3)), dtype=torch.float32)
    with torch.no_grad():
        r = ref(global_orient=go, hand_pose=hp, betas=betas, transl=transl)
        o = ours(go, hp, betas, transl)
    assert (o.vertices - r.vertices).abs().max() < 2e-6
    assert (o.mano_joints - r.joints[:, :16]).abs().max() < 2e-6
    # Fingertips are smplx's vertices (its own table, not ours), put into OpenPose order.
    from smplx.vertex_ids import vertex_ids

    tip_ids = [vertex_ids["mano"][k] for k in ("thumb", "index", "middle", "ring", "pinky")]
    assert list(MANO_TIP_VERTICES) == tip_ids
    tips = r.vertices[:, tip_ids]
    assert (o.joints[:, [4, 8, 12, 16, 20]] - tips).abs().max() < 2e-6
    assert (o.joints[:, 0] - r.joints[:, 0]).abs().max() < 2e-6
    assert ours.faces.shape[1] == 3 and ours.hand_mean.abs().sum() > 0


def test_left_shapedirs_fix(mano_dir, tmp_path):
    left = load_hand_model("mano", "left", model_dir=mano_dir)
    right = load_hand_model("mano", "right", model_dir=mano_dir)
    # Fixed: the left shape space is the mirror of the right one, so equal betas give mirrored shapes.
    assert torch.allclose(left.shapedirs[:, 0], -right.shapedirs[:, 0])
    raw = load_hand_model("mano", "left", model_dir=mano_dir, fix_left_shapedirs=False)
    assert torch.allclose(raw.shapedirs[:, 0], right.shapedirs[:, 0])
    # The converted left file carries the fix and says so; loading it does not flip it back.
    convert_mano(mano_dir, tmp_path)
    z = np.load(tmp_path / "MANO_LEFT.npz")
    assert bool(z[FIXED_FLAG])
    again = load_hand_model("mano", "left", model_dir=tmp_path)
    assert torch.allclose(again.shapedirs, left.shapedirs)


def test_missing_files_give_one_sentence(tmp_path):
    with pytest.raises(UserError) as err:
        load_hand_model("mano", "right", model_dir=tmp_path)
    msg = str(err.value)
    assert str(tmp_path.resolve()) in msg and "mano.is.tue.mpg.de" in msg and "\n" not in msg
    with pytest.raises(UserError):
        convert_mano(tmp_path)


def test_convert_command(mano_dir, tmp_path, capsys):
    from handsynth.cli import main

    assert main(["mano", "convert", "--mano-dir", str(mano_dir), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "MANO_RIGHT.npz").is_file() and (tmp_path / "MANO_LEFT.npz").is_file()
    assert main(["mano", "convert", "--mano-dir", str(tmp_path / "nope")]) == 2
