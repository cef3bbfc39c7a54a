"""The world's FID/KID feature extractor: a small CNN trained here to tell world attributes apart.

Why: FID needs features from a network trained on the image distribution it judges (Inception on
ImageNet for real photos). No Inception weights reach this project, so the micro world trains its own:
a multi-head classifier of the world's facts (domain lab/wild, background kind, gesture, skin tone,
hand side, held object), on real photos AND on their FID-H hand crops (the same crop rule as the
evaluation). Its ``num_features``-d embedding (before the heads) is the FID/KID/FID-H/KID-H feature,
like Inception's 2048-d pool. Being trained to separate domains, backgrounds and hand appearance, the
feature distance reacts to exactly what the papers' FID is meant to capture: realism and style of the
whole image and of the hand region.

Use: ``WorldFeatureExtractor.load(folder)`` returns an ``nn.Module`` mapping uint8 (N, 3, H, W) to
(N, D), i.e. a :mod:`handsynth.eval.features` extractor (``name``, ``input_size``, ``num_features``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from handsynth.micro.data import ATTRIBUTES, WorldArrays, hand_crops
from handsynth.micro.nets import Encoder, load_state, prepare, save_net


class WorldFeatureExtractor(nn.Module):
    """uint8 images -> (N, num_features) embedding; ``heads`` classify world attributes (training only)."""

    def __init__(
        self,
        vocab: dict[str, list[str]],
        input_size: int = 64,
        num_features: int = 64,
        widths: tuple[int, ...] = (32, 64, 96, 128),
    ) -> None:
        super().__init__()
        self.vocab = {k: list(v) for k, v in vocab.items()}
        self.input_size = int(input_size)
        self.num_features = int(num_features)
        self.widths = tuple(widths)
        self.name = f"handsynth micro world CNN ({num_features}-d, {input_size}px)"
        self.encoder = Encoder(self.widths)
        self.embed = nn.Linear(self.widths[-1], num_features)
        self.heads = nn.ModuleDict({k: nn.Linear(num_features, len(v)) for k, v in self.vocab.items()})

    def embedding(self, images: torch.Tensor) -> torch.Tensor:
        x = self.encoder(prepare(images, self.input_size))[-1]
        return self.embed(x.mean(dim=(2, 3)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embedding(images)

    def logits(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        z = F.relu(self.embedding(images))
        return {k: head(z) for k, head in self.heads.items()}

    def config(self) -> dict:
        return {
            "vocab": self.vocab,
            "input_size": self.input_size,
            "num_features": self.num_features,
            "widths": list(self.widths),
        }

    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        return save_net(self, folder, self.config(), extra)

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> WorldFeatureExtractor:
        meta, state = load_state(folder, "world feature extractor")
        c = meta["config"]
        net = cls(c["vocab"], c["input_size"], c["num_features"], tuple(c["widths"]))
        net.load_state_dict(state)
        return net.eval().to(device)


def build_vocab(labels: list[dict[str, str]]) -> dict[str, list[str]]:
    return {k: sorted({lab[k] for lab in labels}) for k in ATTRIBUTES}


def _augment(
    x: torch.Tensor, y: dict[str, torch.Tensor], vocab: dict[str, list[str]], g: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Geometric augmentation of a (N, 3, S, S) batch; flipped images get the other side's label."""
    from handsynth.micro.detector import random_affine

    x, _ = random_affine(x, torch.zeros(len(x), 1, 2), g, mirror=False)
    flip = torch.rand(len(x), generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    sides = vocab.get("side", [])
    if "left" in sides and "right" in sides:
        left, right = sides.index("left"), sides.index("right")
        s = y["side"].clone()
        s[flip & (y["side"] == left)] = right
        s[flip & (y["side"] == right)] = left
        y = {**y, "side": s}
    return x, y


def train_feature_extractor(
    arrays: WorldArrays,
    steps: int = 800,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    num_features: int = 64,
    holdout: float = 0.1,
    augment: bool = False,
) -> tuple[WorldFeatureExtractor, dict]:
    """Train on photos + their hand crops (50/50 per batch); returns the net and held-out accuracies.

    ``augment``: zoom / rotation / shift (the detector's :func:`random_affine`) and a horizontal flip
    that swaps the ``side`` label (a mirrored left hand is a right hand). Without it the net memorises
    its 2,340 photos (loss 0.12 at 4,000 steps); with it, it does not, but still reads side and gesture
    on new photos at chance (micro_guidance_probe.md), so it is off by default."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    size = arrays.images.shape[1]
    vocab = build_vocab(arrays.labels)
    net = WorldFeatureExtractor(vocab, input_size=size, num_features=num_features)
    crops = hand_crops(arrays, size)
    imgs = torch.from_numpy(np.concatenate([arrays.images, crops])).permute(0, 3, 1, 2).contiguous()
    y = {
        k: torch.tensor([vocab[k].index(lab[k]) for lab in arrays.labels] * 2, dtype=torch.long)
        for k in vocab
    }
    n = len(arrays.images)
    perm = torch.randperm(n, generator=g)
    n_val = max(1, int(holdout * n)) if n > 10 else 0
    val = perm[:n_val]
    train = perm[n_val:]
    train_idx = torch.cat([train, train + n])
    val_idx = torch.cat([val, val + n])
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    t0 = time.time()
    net.train()
    bar = tqdm(range(steps), desc="world features", unit="step")
    loss_v = float("nan")
    for _ in bar:
        b = train_idx[torch.randint(0, len(train_idx), (batch_size,), generator=g)]
        x = imgs[b]
        yb = {k: y[k][b] for k in vocab}
        if augment:
            x, yb = _augment(x.float(), yb, vocab, g)
        if torch.rand((), generator=g) < 0.5:  # colour jitter keeps the features about content
            x = (x.float() * (0.8 + 0.4 * torch.rand(len(b), 3, 1, 1, generator=g))).clamp(0, 255)
        logits = net.logits(x)
        loss = sum(F.cross_entropy(logits[k], yb[k]) for k in vocab)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_v = float(loss.detach())
        bar.set_postfix(loss=f"{loss_v:.3f}")
    net.eval()
    acc = {}
    if len(val_idx):
        with torch.no_grad():
            logits = net.logits(imgs[val_idx])
        acc = {k: float((logits[k].argmax(1) == y[k][val_idx]).float().mean()) for k in vocab}
    stats = {
        "steps": steps,
        "batch_size": batch_size,
        "train_images": int(len(train)),
        "heldout_images": int(len(val)),
        "final_loss": loss_v,
        "heldout_accuracy": acc,
        "augment": bool(augment),
        "seconds": round(time.time() - t0, 1),
    }
    return net, stats
