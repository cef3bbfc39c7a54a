"""ResNet-18/34 image encoders in plain torch (torchvision does not import beside this torch build).

The layout matches torchvision's ``resnet18``/``resnet34`` (BasicBlock, 7x7 stem, four stages, global
average pool, no classifier), so at ``width=1`` the parameter count is the same; ``width`` scales every
channel count so tests can train a tiny one in seconds.
"""

from __future__ import annotations

import torch
from torch import nn

from handsynth.recon.config import LAYOUTS


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (1x1 projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet encoder: image (B,3,H,W) -> feature vector (B, ``out_dim``)."""

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), width: float = 1.0) -> None:
        super().__init__()
        chans = [max(4, round(c * width)) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(3, chans[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(chans[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages = []
        cin = chans[0]
        for i, (n, c) in enumerate(zip(layers, chans)):
            blocks = [BasicBlock(cin, c, 1 if i == 0 else 2)]
            blocks += [BasicBlock(c, c, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = c
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_dim = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():  # zero-init the last BN of each block: each block starts as identity
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


def build_backbone(name: str = "resnet18", width: float = 1.0) -> ResNet:
    """A ResNet encoder by layout name (``resnet18`` or ``resnet34``)."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(LAYOUTS)}")
    return ResNet(LAYOUTS[name], width)
