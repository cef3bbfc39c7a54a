"""Small plain-torch CNN pieces shared by the micro tools, and their safetensors save/load.

Inputs are uint8 images (N, 3, H, W) as the evaluation passes them; each net resizes to its
``input_size`` and normalises internally, so a tool is called exactly like the FID Inception.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from handsynth.errors import UserError


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Encoder(nn.Module):
    """Stride-2 stages: (N, 3, S, S) -> list of feature maps at S/2, S/4, S/8, S/16."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 96, 128)) -> None:
        super().__init__()
        stages, cin = [], 3
        for w in widths:
            stages.append(nn.Sequential(conv_bn(cin, w, 2), conv_bn(w, w)))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.widths = tuple(widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


def prepare(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 or float-in-[0,255] (N, 3, H, W) -> float (N, 3, size, size), roughly zero-mean."""
    x = images.float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x / 127.5 - 1.0


def save_net(net: nn.Module, folder: str | Path, config: dict, extra: dict | None = None) -> Path:
    """``model.safetensors`` + ``config.json`` (the constructor's arguments and training facts)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"config": config, **(extra or {})}, indent=2))
    return folder


def load_state(folder: str | Path, what: str) -> tuple[dict, dict]:
    """(config, state dict) of a saved micro tool; a clear error if the folder is not one."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "model.safetensors").exists() or not (folder / "config.json").exists():
        raise UserError(
            f"{folder} is not a saved {what} (model.safetensors + config.json); train it with "
            "the micro benchmark (python benchmarks/micro/run.py)"
        )
    meta = json.loads((folder / "config.json").read_text())
    return meta, load_file(str(folder / "model.safetensors"))
