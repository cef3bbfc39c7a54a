"""FID Inception architecture and loaders, FID/KID against direct computations, hand crops."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from handsynth.errors import UserError
from handsynth.eval.crops import crop_square, hand_crop, square_box
from handsynth.eval.fid import fid_from_features, kid_from_features
from handsynth.eval.inception import FIDInceptionV3, TorchScriptInception, load_inception

# A few (key, shape) facts of pytorch-fid's pt_inception-2015-12-05 state dict (torchvision Inception3
# layout, 1008 classes, no AuxLogits).
KNOWN_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_4.conv.weight": (192, 192, 7, 1),
    "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
    "Mixed_7c.branch3x3_2b.conv.weight": (384, 384, 3, 1),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


def test_state_dict_layout_matches_pt_inception():
    sd = FIDInceptionV3().state_dict()
    for k, shape in KNOWN_SHAPES.items():
        assert tuple(sd[k].shape) == shape, k
    assert not any(k.startswith("AuxLogits") for k in sd)
    # torchvision's Inception3 without AuxLogits has 23,834,568 parameters with 1000 classes; 1008 adds 16,392.
    assert sum(p.numel() for p in FIDInceptionV3().parameters()) == 23_834_568 + 16_392


def test_forward_random_weights_tiny_input_and_pth_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = FIDInceptionV3()
    model.input_size = 75  # the smallest size the stem and reductions accept
    x = torch.randint(0, 256, (2, 3, 40, 40), dtype=torch.uint8)
    y = model(x)
    assert y.shape == (2, 2048) and torch.isfinite(y).all()
    # Save as the .pth file users have (without num_batches_tracked, like the ported file) and reload.
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(sd, path)
    loaded = load_inception(path)
    loaded.input_size = 75
    assert isinstance(loaded, FIDInceptionV3) and "pt_inception" in loaded.name
    torch.testing.assert_close(loaded(x), y)
    # A wrong file is a user error naming the flag.
    torch.save({"foo": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="--inception-weights"):
        load_inception(tmp_path / "bad.pth")


class _FakeScripted(nn.Module):
    """Mimics clean-fid's TorchScript signature: forward(x float 0..255, return_features) -> (N, 2048)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        assert x.shape[-1] == 299
        v = x.mean(dim=(1, 2, 3), keepdim=False)[:, None] * self.w
        return v.repeat(1, 2048) if return_features else v


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_loader(tmp_path):
    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.save(torch.jit.script(_FakeScripted()), str(path))
    model = load_inception(path)
    assert isinstance(model, TorchScriptInception)
    x = torch.full((2, 3, 50, 50), 100, dtype=torch.uint8)
    y = model(x)
    assert y.shape == (2, 2048)
    torch.testing.assert_close(y, torch.full((2, 2048), 100.0), atol=1e-3, rtol=0)


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_matches_scipy_and_is_zero_on_identical_sets():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(80, 12))
    b = rng.normal(size=(70, 12)) @ rng.normal(scale=0.5, size=(12, 12)) + 0.3
    assert fid_from_features(a, b) == pytest.approx(_scipy_fid(a, b), rel=1e-6)
    assert abs(fid_from_features(a, a)) < 1e-8


def test_kid_reference_and_same_distribution():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(60, 5))
    b = rng.normal(size=(50, 5)) + 1.0
    d = a.shape[1]
    # With one subset covering both whole sets (subset size 50: a random 50 of a), check the unbiased formula.
    mean, _ = kid_from_features(a[:50], b, subsets=1, subset_size=50)
    k = lambda x, y: (x @ y.T / d + 1) ** 3  # noqa: E731
    m = 50
    kxx, kyy, kxy = k(a[:50], a[:50]), k(b, b), k(a[:50], b)
    ref = (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )
    assert mean == pytest.approx(ref, rel=1e-6)
    # Two samples of one distribution: ~0; shifted distribution: clearly positive.
    c = rng.normal(size=(60, 5))
    same, _ = kid_from_features(a, c, subsets=20, subset_size=40)
    diff, _ = kid_from_features(a, b, subsets=20, subset_size=40)
    assert abs(same) < 0.1 * diff
    # A generated set smaller than the real one (and than subset_size): the subset size is capped by it,
    # so every subset holds the whole fake set and the real half is what varies
    small, _ = kid_from_features(c, b[:20], subsets=5, subset_size=1000)
    assert np.isfinite(small) and small > 0.1 * diff


def test_hand_crop_rule():
    img = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    assert square_box([10, 4, 4, 8], 1.5) == (6.0, 2.0, 12.0)
    c = crop_square(img, (6.0, 2.0, 12.0), 12)
    np.testing.assert_array_equal(c, img[2:14, 6:18])
    # Outside the image is zero-padded.
    c = crop_square(img, (-2.0, -2.0, 6.0), 6)
    assert (c[:2] == 0).all() and (c[:, :2] == 0).all()
    np.testing.assert_array_equal(c[2:, 2:], img[:4, :4])
    assert hand_crop(img, [10, 4, 4, 8], 32).shape == (32, 32, 3)
