"""The world's stand-in for MediaPipe Hands: a 2D keypoint heat-map CNN trained on real ``wild`` photos.

Why: the paper's MSE-2D runs an off-the-shelf detector (MediaPipe) trained on real photos over the
generated images; a generated hand that looks like a real hand is found and its keypoints agree with
the conditioning pose. MediaPipe's models cannot be trained or trusted on this world's 64^2 images,
so the world trains its own detector on its real ``wild`` photos only.

Model: the micro encoder (stride 2 to 1/16), one up-sampling step with a skip to 1/4 resolution, and
21 heat maps (one per OpenPose joint) at 1/4 of the input. Training: cross-entropy between each joint's
spatial softmax and a Gaussian target (sigma = 1 heat-map cell) at the labelled joint. Keypoints: the
probability-weighted mean in the 3x3 cells around each map's peak (sub-pixel, robust to a second mode).
Confidence: the mean over joints of the probability mass in that 3x3 window, in [0, 1] -- a sharp,
single-peaked map (a clear hand) scores near 1, a diffuse one (no recognisable hand) near 0.

It implements :class:`handsynth.eval.keypoints2d.Keypoint2DDetector` (one detection per image: the
world has one hand per image).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from handsynth.eval.keypoints2d import Detection
from handsynth.micro.data import WorldArrays
from handsynth.micro.nets import Encoder, conv_bn, load_state, prepare, save_net

NUM_JOINTS = 21


class HeatmapNet(nn.Module):
    """uint8 (N, 3, H, W) -> 21 heat-map logits at input_size/4."""

    def __init__(self, input_size: int = 64, widths: tuple[int, ...] = (32, 64, 96, 128)) -> None:
        super().__init__()
        self.input_size = int(input_size)
        self.widths = tuple(widths)
        self.encoder = Encoder(self.widths)
        self.up = nn.Sequential(conv_bn(self.widths[-1] + self.widths[-2], 64), conv_bn(64, 64))
        self.up2 = nn.Sequential(conv_bn(64 + self.widths[1], 64), nn.Conv2d(64, NUM_JOINTS, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f = self.encoder(prepare(images, self.input_size))
        x = F.interpolate(f[3], size=f[2].shape[-2:], mode="bilinear", align_corners=False)
        x = self.up(torch.cat([x, f[2]], 1))
        x = F.interpolate(x, size=f[1].shape[-2:], mode="bilinear", align_corners=False)
        return self.up2(torch.cat([x, f[1]], 1))


def decode_heatmaps(logits: torch.Tensor, window: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, J, h, w) logits -> keypoints (N, J, 2) in heat-map cells (cell centres at i + 0.5) and
    per-joint confidence (N, J): the softmax mass in the (2*window+1)^2 cells around the peak."""
    n, j, h, w = logits.shape
    prob = torch.softmax(logits.reshape(n, j, -1), -1).reshape(n, j, h, w)
    peak = prob.reshape(n, j, -1).argmax(-1)
    py, px = peak // w, peak % w
    ys = torch.arange(h, dtype=prob.dtype)
    xs = torch.arange(w, dtype=prob.dtype)
    my = ((ys[None, None, :] - py[..., None]).abs() <= window).to(prob.dtype)  # (n, j, h)
    mx = ((xs[None, None, :] - px[..., None]).abs() <= window).to(prob.dtype)  # (n, j, w)
    mask = my[..., :, None] * mx[..., None, :]
    local = prob * mask
    mass = local.sum((-1, -2)).clamp_min(1e-12)
    ey = (local.sum(-1) * ys).sum(-1) / mass
    ex = (local.sum(-2) * xs).sum(-1) / mass
    return torch.stack([ex + 0.5, ey + 0.5], -1), mass


class WorldHandDetector:
    """:class:`~handsynth.eval.keypoints2d.Keypoint2DDetector` around a trained :class:`HeatmapNet`."""

    def __init__(self, net: HeatmapNet, device: str = "cpu") -> None:
        self.net = net.eval().to(device)
        self.device = device
        self.name = (
            f"handsynth micro world keypoint CNN (heat maps, {net.input_size}px, trained on real wild)"
        )

    @torch.no_grad()
    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        out = []
        for img in images:
            x = torch.from_numpy(np.array(img[..., :3])).permute(2, 0, 1)[None].to(self.device)
            logits = self.net(x).float().cpu()
            cells, conf = decode_heatmaps(logits)
            h, w = img.shape[:2]
            scale = torch.tensor([w / logits.shape[-1], h / logits.shape[-2]])
            kp = (cells[0] * scale).numpy().astype(np.float64)
            out.append([Detection(keypoints=kp, confidence=float(conf[0].mean()), side=None)])
        return out

    def detect(self, image: np.ndarray) -> list[Detection]:
        return self.detect_batch([image])[0]

    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        cfg = {"input_size": self.net.input_size, "widths": list(self.net.widths)}
        return save_net(self.net, folder, cfg, extra)

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> WorldHandDetector:
        meta, state = load_state(folder, "world hand detector")
        c = meta["config"]
        net = HeatmapNet(c["input_size"], tuple(c["widths"]))
        net.load_state_dict(state)
        return cls(net, device)


def gaussian_targets(cells: torch.Tensor, h: int, w: int, sigma: float = 1.0) -> torch.Tensor:
    """(N, J, 2) keypoints in cell units -> (N, J, h, w) normalised Gaussian target distributions."""
    ys = torch.arange(h, dtype=torch.float32) + 0.5
    xs = torch.arange(w, dtype=torch.float32) + 0.5
    dy = (ys[None, None, :] - cells[..., 1:2]) ** 2
    dx = (xs[None, None, :] - cells[..., 0:1]) ** 2
    g = torch.exp(-(dy[..., :, None] + dx[..., None, :]) / (2 * sigma**2))
    return g / g.sum((-1, -2), keepdim=True).clamp_min(1e-12)


def random_affine(
    images: torch.Tensor,
    keypoints: torch.Tensor,
    g: torch.Generator,
    strength: float = 1.0,
    mirror: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly zoom, rotate, shift and mirror a batch; the keypoints move with the pixels.

    Why: the detector scores hands at sizes, positions and orientations its training photos may not
    cover (the held-out poses are framed like the lab's); without this it learns where hands usually
    are instead of what they look like. ``images`` (N, 3, S, S) float, ``keypoints`` (N, J, 2) pixels
    (pixel i spans [i, i + 1]); zoom 0.8-1.25, rotation +-30 deg, shift +-10 % of the side, p = 0.5 mirror
    (``mirror=False``: never; a classifier of the hand's side mirrors itself and swaps the label).
    """
    n, _, h, w = images.shape
    u = torch.rand(n, 5, generator=g)
    zoom = torch.exp((u[:, 0] * 2 - 1) * 0.223 * strength)  # output/input size: e^{+-0.223} = 0.8..1.25
    angle = (u[:, 1] * 2 - 1) * np.deg2rad(30.0) * strength
    shift = (u[:, 2:4] * 2 - 1) * 0.2 * strength  # normalised units: 0.2 = 10 % of the side
    mirror = torch.where((u[:, 4] < 0.5 * strength) & mirror, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # forward map in normalised coords: p_out = zoom * R(angle) * diag(mirror, 1) * p_in + shift
    fwd = (
        torch.stack([torch.stack([cos * mirror, -sin], -1), torch.stack([sin * mirror, cos], -1)], -2)
        * zoom[:, None, None]
    )
    inv = torch.linalg.inv(fwd)
    theta = torch.cat([inv, -(inv @ shift[..., None])], -1)  # grid_sample samples p_in = inv (p_out - shift)
    grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    scale = torch.tensor([w, h], dtype=keypoints.dtype)
    p = keypoints / scale * 2 - 1
    p = p @ fwd.transpose(1, 2) + shift[:, None, :]
    return out, (p + 1) / 2 * scale


def random_soften(images: torch.Tensor, g: torch.Generator, p: float) -> torch.Tensor:
    """With probability ``p`` per image: downsample by 1.5-3x (antialiased) and back, plus faint noise.

    Why: generated images are softer than the world's photos (a 4x VAE, a small UNet). A detector that
    only saw sharp photos gave clean generated backgrounds hand-like confidences it never gives real
    no-hand photos; seeing soft photos of both kinds (hands and no hands) teaches it that softness is not
    a hand. ``images`` (N, 3, S, S) float in [0, 255]."""
    n, _, h, w = images.shape
    pick = torch.rand(n, generator=g) < p
    if not pick.any():
        return images
    out = images.clone()
    for i in torch.nonzero(pick).flatten().tolist():
        f = 1.5 + 1.5 * float(torch.rand(1, generator=g))
        small = F.interpolate(out[i : i + 1], size=(max(4, round(h / f)), max(4, round(w / f))), mode="bilinear",
                              antialias=True, align_corners=False)  # fmt: skip
        out[i : i + 1] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        out[i] += 4.0 * float(torch.rand(1, generator=g)) * torch.randn(out[i].shape, generator=g)
    return out.clamp(0, 255)


def train_detector(
    arrays: WorldArrays,
    steps: int = 1000,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    negatives: np.ndarray | None = None,
    augment: bool = True,
    soften: float = 0.0,
) -> tuple[WorldHandDetector, dict]:
    """Train the heat-map detector on photos + 2D joints; returns it and held-out pixel errors.

    ``negatives`` (N, S, S, 3) uint8: hand-less photos whose target is a uniform map (no peak), so the
    confidence of a hand-less image falls towards 9/cells and a threshold can tell "no hand".
    ``augment``: :func:`random_affine` on the hand photos (keypoints leaving the frame still count:
    their target mass falls on the border cells, which is what the softmax can express).
    ``soften``: the share of training images (hands and no-hand photos alike) passed through
    :func:`random_soften`.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    size = arrays.images.shape[1]
    net = HeatmapNet(size)
    imgs = torch.from_numpy(arrays.images).permute(0, 3, 1, 2).contiguous()
    kps = torch.from_numpy(arrays.keypoints).float()
    n = len(imgs)
    perm = torch.randperm(n, generator=g)
    n_val = max(1, n // 10) if n > 10 else 0
    val, train = perm[:n_val], perm[n_val:]
    hm = size // 4
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    t0 = time.time()
    net.train()
    loss_v = float("nan")
    bar = tqdm(range(steps), desc="world detector", unit="step")
    for _ in bar:
        b = train[torch.randint(0, len(train), (batch_size,), generator=g)]
        x = imgs[b].float()
        x = (x * (0.8 + 0.4 * torch.rand(len(b), 3, 1, 1, generator=g))).clamp(0, 255)
        k2 = kps[b]
        if augment:
            x, k2 = random_affine(x, k2, g)
        target = gaussian_targets(k2 * (hm / size), hm, hm)
        if negatives is not None and len(negatives):
            k = max(1, batch_size // 4)
            nb = torch.randint(0, len(negatives), (k,), generator=g)
            x = torch.cat([x, torch.from_numpy(negatives[nb.numpy()]).permute(0, 3, 1, 2).float()])
            target = torch.cat([target, torch.full((k, *target.shape[1:]), 1.0 / (hm * hm))])
        if soften:
            x = random_soften(x, g, soften)
        logits = net(x)
        logp = torch.log_softmax(logits.flatten(2), -1)
        loss = -(target.flatten(2) * logp).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_v = float(loss.detach())
        bar.set_postfix(loss=f"{loss_v:.3f}")
    net.eval()
    det = WorldHandDetector(net)
    stats: dict = {
        "steps": steps,
        "batch_size": batch_size,
        "train_images": int(len(train)),
        "augment": bool(augment),
        "soften": float(soften),
        "final_loss": loss_v,
        "seconds": round(time.time() - t0, 1),
    }
    if n_val:
        dets = det.detect_batch([arrays.images[i] for i in val.tolist()])
        err = [
            ((d[0].keypoints - arrays.keypoints[i]) ** 2).sum(-1).mean() for d, i in zip(dets, val.tolist())
        ]
        stats.update(
            heldout_images=int(n_val),
            heldout_mse_2d_px2=float(np.mean(err)),
            heldout_confidence=float(np.mean([d[0].confidence for d in dets])),
        )
    return det, stats
