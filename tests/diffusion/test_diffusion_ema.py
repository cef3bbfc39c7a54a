"""The EMA warm-ups: `ema_pytorch` against HandBooster's released trainer (ema_pytorch 0.2.2's EMA, its
update loop written out here on its own), `diffusers` as diffusers' EMAModel, `none` a constant decay."""

from __future__ import annotations

import pytest
import torch

from handsynth.diffusion.ema import ema_due, ema_pytorch_decay, make_ema


class ReleasedEMA:
    """ema_pytorch 0.2.2's EMA (beta, update_every; update_after_step 100, inv_gamma 1, power 2/3) on one
    scalar weight, called once after every optimiser step as the released Trainer does."""

    def __init__(self, value: float, beta: float, update_every: int) -> None:
        self.ema, self.beta, self.every = value, beta, update_every
        self.step, self.initted = 0, False

    def decay(self) -> float:
        epoch = max(self.step - 100 - 1, 0.0)
        if epoch <= 0:
            return 0.0
        return min(max(1 - (1 + epoch) ** (-2 / 3), 0.0), self.beta)

    def update(self, weight: float) -> None:
        step = self.step
        self.step += 1
        if step % self.every != 0:
            return
        if step <= 100:
            self.ema = weight
            return
        if not self.initted:
            self.ema, self.initted = weight, True
        self.ema -= (self.ema - weight) * (1 - self.decay())


def _run_ours(warmup: str, beta: float, every: int, weights: list[float]) -> list[float]:
    p = torch.nn.Parameter(torch.tensor([weights[0]], dtype=torch.float64))
    ema = make_ema([p], beta, every, warmup)
    out = []
    for n, w in enumerate(weights[1:], start=1):  # optimiser step n leaves the weight at w
        p.data.fill_(w)
        if ema_due(n, every, warmup):
            ema.step([p])
        out.append(float(ema.shadow_params[0]))
    return out


@pytest.mark.parametrize("every", [10, 1, 7])
def test_ema_pytorch_warmup_follows_the_released_trainer_step_by_step(every):
    g = torch.Generator().manual_seed(every)
    weights = torch.cumsum(torch.randn(1500, generator=g, dtype=torch.float64), 0).tolist()
    ref = ReleasedEMA(weights[0], 0.995, every)
    expected = []
    for w in weights[1:]:
        ref.update(w)
        expected.append(ref.ema)
    assert _run_ours("ema_pytorch", 0.995, every, weights) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_the_warmups_differ_where_the_docs_say():
    assert ema_pytorch_decay(101, 0.995, 10) == 0.0 and ema_pytorch_decay(111, 0.995, 10) == 0.0  # copies
    assert ema_pytorch_decay(121, 0.995, 10) == pytest.approx(1 - 21 ** (-2 / 3))
    assert ema_pytorch_decay(3991, 0.995, 10) == 0.995  # full decay by the end of a 4,000-step run
    assert [n for n in range(1, 40) if ema_due(n, 10, "ema_pytorch")] == [1, 11, 21, 31]
    assert [n for n in range(1, 40) if ema_due(n, 10, "diffusers")] == [10, 20, 30]
    g = torch.Generator().manual_seed(0)
    weights = torch.cumsum(torch.randn(801, generator=g, dtype=torch.float64), 0).tolist()
    ema, expected = weights[0], []  # diffusers' ramp: its k-th update decays by k / (9 + k), 0 at k = 1
    for n, w in enumerate(weights[1:], start=1):
        if n % 10 == 0:
            k = n // 10
            d = 0.0 if k == 1 else min(k / (9 + k), 0.995)
            ema = d * ema + (1 - d) * w
        expected.append(ema)
    assert _run_ours("diffusers", 0.995, 10, weights) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    const = _run_ours("none", 0.9, 10, [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert const[-1] == pytest.approx(0.1)  # one update at step 10 with decay 0.9 from the start
    with pytest.raises(ValueError, match="ema_warmup 'bogus' is unknown"):
        make_ema([torch.nn.Parameter(torch.zeros(1))], 0.9, 1, "bogus")
