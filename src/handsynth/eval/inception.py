"""InceptionV3 as used for FID, in plain torch (no torchvision), loadable from local weight files.

Two files are supported, both as users have them on disk (nothing is downloaded):

* ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid) = ``weights-inception-2015-12-05-6726825d.pth``
  (torch-fidelity): a state dict of the TF 2015-12-05 graph ported to torchvision's Inception3 layout
  with 1008 classes. :class:`FIDInceptionV3` has exactly those keys and the FID-specific blocks
  (average pools without padding counts, max pool in the last block).
* clean-fid / StyleGAN2-ADA ``inception-2015-12-05.pt``: a TorchScript module called as
  ``model(x, return_features=True)`` on float images in [0, 255]; see :class:`TorchScriptInception`.

Both map uint8 images (N, 3, H, W) to 2048-d pool features.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from handsynth.errors import UserError

INPUT_SIZE = 299


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kw) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg(x: torch.Tensor) -> torch.Tensor:
    # The TF graph averages without counting the padding (torchvision counts it).
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, bd, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for m in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = m(bd)
        return torch.cat([b1, b7, bd, self.branch_pool(_avg(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """``max_pool=False``: FIDInceptionE_1 (average pool); True: FIDInceptionE_2 (max pool)."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg(x)
        return torch.cat([b1, b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """The FID Inception (pt_inception-2015-12-05 layout): uint8 (N,3,H,W) -> (N, 2048) pool features.

    Input handling follows torch-fidelity: bilinear resize to 299 (no antialias, align_corners False),
    then (x - 128) / 128. Weights are frozen and the module always runs in eval mode.
    """

    num_features = 2048
    input_size = INPUT_SIZE

    def __init__(self, num_classes: int = 1008) -> None:
        super().__init__()
        self.name = "InceptionV3-FID (random init)"
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, num_classes)  # kept so the state dict loads strictly; unused
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FIDInceptionV3:
        return super().train(False)

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float input (N, 3, S, S) -> (N, 2048)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(
                x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        return self.pool_features((x - 128.0) / 128.0)


def _clean_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """clean-fid's "clean" resize: PIL bicubic per channel in float mode, clipped to [0, 255]."""
    from PIL import Image

    out = []
    for img in images.cpu().numpy():  # (3, H, W)
        chans = []
        for c in img:
            im = Image.fromarray(c.astype(np.float32), mode="F").resize((size, size), resample=Image.BICUBIC)
            chans.append(np.asarray(im).clip(0, 255))
        out.append(np.stack(chans))
    return torch.from_numpy(np.stack(out)).float()


class TorchScriptInception(nn.Module):
    """clean-fid's TorchScript Inception: resize "clean" to 299, call ``model(x, return_features=True)``."""

    num_features = 2048
    input_size = INPUT_SIZE

    def __init__(
        self, scripted: torch.jit.ScriptModule, name: str = "InceptionV3 (clean-fid TorchScript)"
    ) -> None:
        super().__init__()
        self.model = scripted
        self.name = name

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = _clean_resize(x, self.input_size)
        x = x.float().to(next(iter(self.model.parameters()), torch.empty(0)).device)
        feats = self.model(x, return_features=True)
        return feats.reshape(x.shape[0], -1)


def load_inception(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load a local FID Inception file: TorchScript (clean-fid) or a pt_inception state dict (.pth)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(
            f"--inception-weights {p}: no such file; pass pytorch-fid/torch-fidelity's .pth or clean-fid's .pt"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # jit is deprecated, the file format is not
            scripted = torch.jit.load(str(p), map_location=device)
    except (RuntimeError, ValueError):
        scripted = None
    if scripted is not None:
        return TorchScriptInception(scripted.eval(), name=f"InceptionV3 (clean-fid TorchScript, {p.name})")
    try:
        state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(
            f"--inception-weights {p}: neither TorchScript nor a torch state dict ({err})"
        ) from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    model = FIDInceptionV3(num_classes=int(state["fc.weight"].shape[0]) if "fc.weight" in state else 1008)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]  # absent in the ported file
    if missing or unexpected:
        raise UserError(
            f"--inception-weights {p}: not the pt_inception-2015-12-05 layout "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}); pass pytorch-fid/torch-fidelity's weights file"
        )
    model.name = f"InceptionV3-FID (pt_inception-2015-12-05 layout, {p.name})"
    return model.to(device)
