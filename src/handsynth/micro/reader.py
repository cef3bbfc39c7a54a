"""The world's side and gesture reader for gate (b3): the world detector's keypoints -> a small MLP.

Why: gate (b3) asks whether the base draws the side and gesture its prompt names, so it needs a
reader that gets them right on real photos first. The world feature extractor, a CNN trained on the
2,340 real photos, reads both at chance on new photos of the same poses (micro_guidance_probe.md);
with that few photos it memorises them. Keypoints are a better route: the world's pose and
orientation samplers give unlimited labelled hands without rendering, so the MLP learns from 20,000
projected skeletons, with Gaussian noise standing in for the detector's error. At read time the
world detector supplies the keypoints.

Gesture is read coarsely, as the number of extended fingers other than the thumb (0: ``closed``,
1-2: ``few``, 3-4: ``many``; :func:`gesture_group`). The caption's eleven gesture names differ by the
thumb or by one finger and cannot be told apart from the detector's keypoints (kappa 0.14-0.18 on the
oracle photos in an exploratory run of the same recipe); the three groups can (kappa 0.59,
benchmarks/results/micro_reader_probe.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from handsynth.micro.nets import load_state, save_net

SIDES = ("left", "right")
GESTURE_GROUPS = ("closed", "few", "many")


def gesture_group(joints_3d: np.ndarray) -> str:
    """``closed`` / ``few`` / ``many``: extended fingers other than the thumb (0 / 1-2 / 3-4), by the
    same rule the captions' gesture names come from (:func:`handsynth.world.captions.extended_fingers`)."""
    from handsynth.world.captions import extended_fingers

    n = sum(v for k, v in extended_fingers(joints_3d).items() if k != "thumb")
    return GESTURE_GROUPS[0 if n == 0 else 1 if n <= 2 else 2]


def normalise_keypoints(kp: np.ndarray) -> np.ndarray:
    """(N, 21, 2) -> centred on their mean and divided by their RMS radius: position and size free."""
    kp = np.asarray(kp, np.float64)
    kp = kp - kp.mean(1, keepdims=True)
    radius = np.sqrt((kp**2).sum(-1).mean(1))[:, None, None]
    return kp / np.maximum(radius, 1e-9)


class KeypointReader(nn.Module):
    """Normalised (N, 21, 2) keypoints -> side and gesture-group logits."""

    def __init__(self, hidden: int = 256) -> None:
        super().__init__()
        self.hidden = int(hidden)
        self.trunk = nn.Sequential(nn.Linear(42, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.ModuleDict({"side": nn.Linear(hidden, 2), "gesture": nn.Linear(hidden, 3)})
        self.vocab = {"side": list(SIDES), "gesture": list(GESTURE_GROUPS)}

    def forward(self, kp: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.trunk(kp.flatten(1))
        return {k: head(z) for k, head in self.heads.items()}

    @torch.no_grad()
    def read(self, keypoints: np.ndarray) -> dict[str, list[str]]:
        """Keypoints (N, 21, 2) in any pixel frame -> {"side": [...], "gesture": [...]} labels."""
        if len(keypoints) == 0:
            return {k: [] for k in self.vocab}
        x = torch.tensor(normalise_keypoints(keypoints), dtype=torch.float32)
        logits = self.eval()(x)
        return {k: [self.vocab[k][i] for i in logits[k].argmax(-1).tolist()] for k in self.vocab}

    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        return save_net(self, folder, {"hidden": self.hidden}, extra)

    @classmethod
    def load(cls, folder: str | Path) -> KeypointReader:
        meta, state = load_state(folder, "keypoint reader")
        net = cls(meta["config"]["hidden"])
        net.load_state_dict(state)
        return net.eval()


def synthetic_hands(
    n: int,
    seed: int = 0,
    lab_fraction: float = 0.3,
    object_probability: float = 0.3,
    arm_model: str = "free",
) -> tuple[np.ndarray, list[str], list[str]]:
    """``n`` world hands without rendering: (2D keypoints (n, 21, 2), sides, gesture groups).

    Each hand is drawn as a ``lab`` (with ``lab_fraction``) or ``wild`` photo draws it (``arm_model``:
    the world's, which sets how the hand may turn), its joints centred and projected by a pinhole
    camera 0.25-0.45 m away (the world's framing distances)."""
    from handsynth.world.scene import WorldConfig, WorldGenerator

    rng = np.random.default_rng(seed)
    gens = {
        "lab": WorldGenerator(WorldConfig(domain="lab", size=64)),
        "wild": WorldGenerator(
            WorldConfig(domain="wild", size=64, object_probability=object_probability, arm_model=arm_model)
        ),
    }
    drawn: dict[str, list] = {"left": [], "right": []}
    order = []
    for _ in tqdm(range(n), desc="reader poses", unit="pose"):
        gen = gens["lab" if rng.random() < lab_fraction else "wild"]
        side, orient, pose, betas = gen.sample_articulated_hand(rng)
        order.append((side, len(drawn[side])))
        drawn[side].append((orient, pose, betas))
    joints = {}
    for side, items in drawn.items():
        if not items:
            continue
        o, p, b = (torch.tensor(np.stack(x), dtype=torch.float32) for x in zip(*items))
        with torch.no_grad():
            joints[side] = gens["wild"].model(side)(o, p, b, joints_only=True).joints.double().numpy()
    uv, groups = [], []
    for side, k in order:
        j = joints[side][k] - joints[side][k].mean(0)
        z = 0.25 + 0.2 * rng.random()
        uv.append(j[:, :2] / (j[:, 2:] + z))
        groups.append(gesture_group(j))
    for gen in gens.values():
        gen.release()
    return np.array(uv).reshape(n, 21, 2), [s for s, _ in order], groups


def train_reader(
    n: int = 20000,
    steps: int = 6000,
    batch_size: int = 256,
    noise: float = 0.1,
    seed: int = 0,
    arm_model: str = "free",
) -> tuple[KeypointReader, dict]:
    """Train on ``n`` synthetic hands; ``noise``: std of the Gaussian added to the normalised
    keypoints (the detector's median error on real photos is ~0.24 in these units); ``arm_model``:
    the world's (the photos the reader will read)."""
    t0 = time.time()
    uv, sides, groups = synthetic_hands(n, seed, arm_model=arm_model)
    x = torch.tensor(normalise_keypoints(uv), dtype=torch.float32)
    y = {
        "side": torch.tensor([SIDES.index(s) for s in sides]),
        "gesture": torch.tensor([GESTURE_GROUPS.index(g) for g in groups]),
    }
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = KeypointReader()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    net.train()
    loss_v = float("nan")
    bar = tqdm(range(steps), desc="reader", unit="step")
    for _ in bar:
        b = torch.randint(0, n, (batch_size,), generator=g)
        xb = x[b] + noise * torch.randn(x[b].shape, generator=g)
        logits = net(xb)
        loss = sum(F.cross_entropy(logits[k], y[k][b]) for k in y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_v = float(loss.detach())
        bar.set_postfix(loss=f"{loss_v:.3f}", refresh=False)  # shown at tqdm's own pace, not per step
    net.eval()
    stats = {
        "poses": n,
        "steps": steps,
        "batch_size": batch_size,
        "noise": noise,
        "arm_model": arm_model,
        "final_loss": loss_v,
        "gesture_groups": {k: groups.count(k) for k in GESTURE_GROUPS},
        "seconds": round(time.time() - t0, 1),
    }
    return net, stats
