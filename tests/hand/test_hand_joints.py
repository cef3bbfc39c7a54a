"""Joint-order converters: round trips and the published index maps."""

import numpy as np
import pytest
import torch

from handsynth.hand.joints import (
    OPENPOSE_BONES,
    OPENPOSE_FROM_MANO,
    OPENPOSE_NAMES,
    ORDERS,
    from_openpose,
    opengl_to_opencv,
    to_openpose,
)


@pytest.mark.parametrize("order", ORDERS)
def test_round_trip(order):
    rng = np.random.default_rng(0)
    n = 42 if order == "interhand" else 21
    x = rng.normal(size=(3, n, 3))
    assert np.array_equal(from_openpose(to_openpose(x, order), order), x)
    assert np.array_equal(
        to_openpose(from_openpose(to_openpose(x, order), order), order), to_openpose(x, order)
    )


def test_mano_order_is_ho3d_jointsMapManoToSimple():
    # HO3D's published map (vis_HO3D.py).
    assert OPENPOSE_FROM_MANO.tolist() == [
        0,
        13,
        14,
        15,
        16,
        1,
        2,
        3,
        17,
        4,
        5,
        6,
        18,
        10,
        11,
        12,
        19,
        7,
        8,
        9,
        20,
    ]
    mano = np.arange(21)[:, None] * np.ones(3)
    op = to_openpose(mano, "ho3d")
    assert op[1, 0] == 13 and op[4, 0] == 16 and op[20, 0] == 20 and op[17, 0] == 7


def test_interhand_layout():
    # InterHand2.6M: per hand thumb4..thumb1, index4..1, middle, ring, pinky, wrist; right then left.
    names = [f"{f}{k}" for f in ("thumb", "index", "middle", "ring", "little") for k in (4, 3, 2, 1)] + [
        "wrist"
    ]
    ih = np.array([[i, side, 0] for side in (0, 1) for i in range(21)], dtype=float)
    op = to_openpose(ih, "interhand")
    assert op.shape == (2, 21, 3)
    for j, name in enumerate(OPENPOSE_NAMES):
        assert names[int(op[0, j, 0])] == name
    assert (op[1, :, 1] == 1).all() and (op[0, :, 1] == 0).all()


def test_openpose_datasets_are_identity_and_torch_works():
    x = torch.randn(2, 21, 3)
    for order in ("openpose", "freihand", "dexycb"):
        assert torch.equal(to_openpose(x, order), x)
    assert torch.equal(from_openpose(to_openpose(x, "mano"), "mano"), x)
    ih = torch.randn(42, 3)
    assert torch.equal(from_openpose(to_openpose(ih, "interhand"), "interhand"), ih)
    with pytest.raises(ValueError):
        to_openpose(x, "coco")


def test_opengl_flip_and_bones():
    p = np.array([[1.0, 2.0, 3.0]])
    assert np.array_equal(opengl_to_opencv(p), [[1.0, -2.0, -3.0]])
    assert np.array_equal(opengl_to_opencv(opengl_to_opencv(p)), p)
    assert len(OPENPOSE_BONES) == 20 and {c for _, c in OPENPOSE_BONES} == set(range(1, 21))
