"""HandBooster's model, data and training on a tiny config (16^2 crops, CPU, seconds): quaternion
canonicalisation, the loss weight map, Eq. 2 = the eps loss, orientation dropout, mirroring, training
lowers the loss and resumes, checkpoints round-trip, bad inputs fail before any output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from handsynth.data import read_dataset
from handsynth.data.folder import DatasetWriter
from handsynth.errors import UserError
from handsynth.methods.handbooster.config import HandBoosterConfig
from handsynth.methods.handbooster.data import HandBoosterDataset
from handsynth.methods.handbooster.model import HandBoosterModel, orientation_quaternion
from handsynth.methods.handbooster.task import HandBoosterTask, x0_loss
from handsynth.poses.quaternions import quaternion_to_matrix

MAPS = ("normal", "texture", "seg")


def tiny_config(**orientation) -> HandBoosterConfig:
    cfg = HandBoosterConfig()
    m = cfg.model
    m.sample_size, m.block_out_channels, m.layers_per_block, m.norm_num_groups = 16, [8, 16], 1, 4
    m.attention_head_dim = 4
    cfg.train.batch_size, cfg.train.learning_rate, cfg.train.checkpoint_every = 2, 2e-3, 0
    cfg.train.tracker = "none"
    cfg.data.conditions_from = "stored"  # these tests read the stored maps (rendered crops: *_conditions.py)
    for k, v in orientation.items():
        setattr(cfg.orientation, k, v)
    return cfg


@pytest.fixture(scope="module")
def hb_data(tmp_path_factory):
    from handsynth.methods.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("hb") / "data", n=4, size=48, extra_maps=MAPS)


# -- orientation -------------------------------------------------------------------------------------------
def test_quaternion_is_canonical_and_continuous():
    rng = np.random.default_rng(0)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    # the same rotation written with angle theta and theta - 2 pi: without w >= 0 the two differ in sign
    for theta in (0.3, 1.5, 3.0):
        q1 = orientation_quaternion(axis * theta)
        q2 = orientation_quaternion(axis * (theta - 2 * np.pi))
        assert q1[0] >= 0 and q2[0] >= 0
        np.testing.assert_allclose(q1, q2, atol=1e-12)
    # a smooth path of rotations (below 180 degrees) gives a smooth path of quaternions
    path = np.stack([orientation_quaternion(axis * a) for a in np.linspace(-3.0, 3.0, 301)])
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    assert steps.max() < 0.02


def test_mirrored_orientation_is_the_reflected_rotation():
    aa = np.array([0.4, -0.7, 1.1])
    M = np.diag([-1.0, 1.0, 1.0])
    R = quaternion_to_matrix(orientation_quaternion(aa))
    Rm = quaternion_to_matrix(orientation_quaternion(aa, mirror=True))
    np.testing.assert_allclose(Rm, M @ R @ M, atol=1e-12)


# -- data ----------------------------------------------------------------------------------------------------
def test_weight_map_is_not_uniform_on_a_visible_hand(hb_data):
    ds = HandBoosterDataset(read_dataset(hb_data), hb_data, tiny_config())
    item = ds[0]
    w = item["weight"]
    assert w.shape == (1, 16, 16)
    values = {round(v, 4) for v in np.unique(w.numpy()).tolist()}
    assert values == {0.1, 1.0}, values  # the hand is 1, the background 0.1
    assert 0.05 < float((w == 1).float().mean()) < 0.95
    assert item["conditions"].shape == (6, 16, 16) and item["image"].shape == (3, 16, 16)


def test_item_cache_returns_what_a_fresh_build_does_within_its_limit(hb_data):
    """Items are pure functions of their records: a cached one equals a rebuilt one, and a limit below
    one item keeps nothing."""
    cfg = tiny_config()
    cached = HandBoosterDataset(read_dataset(hb_data), hb_data, cfg)
    first = [cached[i] for i in range(len(cached))]
    assert len(cached._cache.kept) == len(cached)
    calls = []
    cached._build_item = lambda i: calls.append(i)  # a second draw must not rebuild
    again = [cached[i] for i in range(len(cached))]
    assert calls == []
    cfg.data.cache_mb = 0
    fresh = HandBoosterDataset(read_dataset(hb_data), hb_data, cfg)
    for a, b, c in zip(first, again, (fresh[i] for i in range(len(fresh)))):
        assert a["id"] == b["id"] == c["id"]
        for key in ("image", "conditions", "quaternion", "weight"):
            torch.testing.assert_close(a[key], c[key], atol=0, rtol=0)
            torch.testing.assert_close(b[key], c[key], atol=0, rtol=0)
    assert fresh._cache.kept == {}


def test_a_held_object_joins_the_crop_box_and_a_far_one_does_not(hb_data):
    from handsynth.methods.handbooster.data import hand_box

    s = read_dataset(hb_data)[0]
    hand = s.hands[0]
    seg = np.zeros((s.height, s.width), np.uint8)
    alone = hand_box(hand, s.width, s.height, 1.5, seg)
    assert alone == hand_box(hand, s.width, s.height, 1.5)
    x, y, w, h = (int(round(v)) for v in hand.bbox)
    held = seg.copy()
    held[y : y + h, x + w - 2 : min(x + w + 6, s.width)] = 3  # an object sticking out right of the hand
    box = hand_box(hand, s.width, s.height, 1.5, held)
    assert box[2] > alone[2]
    far = seg.copy()
    far[:3, :3] = 3  # an object in the corner, outside the hand's square
    assert hand_box(hand, s.width, s.height, 1.5, far) == alone


def _mirror_dataset(src, dst) -> None:
    """Every record of ``src`` mirrored left-right, as a left hand (image and maps flipped)."""
    writer = DatasetWriter(dst)
    for s in read_dataset(src):
        files = {}
        for rel in [s.file_name, *s.conditions.values()]:
            a = np.asarray(Image.open(src / rel))[:, ::-1].copy()
            if rel.startswith("conditions/normal"):
                a[..., 0] = np.where(a.any(-1), 255 - a[..., 0], 0)
            if rel.startswith("conditions/seg"):
                a = np.where(a == 1, 2, a).astype(np.uint8)
            files[rel] = Image.fromarray(a)
        h = s.hands[0]
        h.side = "left"
        h.global_orient = (np.asarray(h.global_orient) * [1, -1, -1]).tolist()
        h.bbox = [s.width - h.bbox[0] - h.bbox[2], *h.bbox[1:]]
        h.joints_2d = [[s.width - u, v] for u, v in h.joints_2d]
        K = np.asarray(s.K)
        h.joints_3d = [[-x, y, z] for x, y, z in h.joints_3d]
        s.K = [[K[0, 0], 0.0, s.width - K[0, 2]], list(K[1]), list(K[2])]
        s.local = None
        writer.write(s, files)


def test_weight_map_counts_hand_and_object_pixels():
    from handsynth.methods.handbooster.data import weight_map

    seg = np.array([[0, 1], [2, 3]], np.uint8)  # background, right hand, left hand, object
    np.testing.assert_allclose(weight_map(seg, 0.1).numpy()[0], [[0.1, 1.0], [1.0, 1.0]])


def test_mirror_map_negates_the_normals_x_and_swaps_the_hands_seg_labels():
    from handsynth.methods.handbooster.data import mirror_map

    rng = np.random.default_rng(0)
    normal = rng.integers(0, 256, size=(5, 7, 3)).astype(np.uint8)
    normal[1, 2] = 0  # a background pixel stays black
    got = mirror_map("normal", normal)
    flipped = normal[:, ::-1]
    fg = flipped.any(-1)
    # n -> -n under the (n + 1) * 127.5 encoding is v -> 255 - v, on the hand only
    np.testing.assert_array_equal(got[..., 0], np.where(fg, 255 - flipped[..., 0].astype(int), 0))
    np.testing.assert_array_equal(got[..., 1:], flipped[..., 1:])
    seg = np.array([[0, 1, 2, 3]], np.uint8)[..., None].repeat(3, -1)
    np.testing.assert_array_equal(mirror_map("seg", seg)[..., 0], [[3, 1, 2, 0]])
    np.testing.assert_array_equal(mirror_map("texture", normal), flipped)


def test_left_hand_item_equals_its_mirrored_right_hand(hb_data, tmp_path):
    _mirror_dataset(hb_data, tmp_path / "left")
    cfg = tiny_config()
    right = HandBoosterDataset(read_dataset(hb_data), hb_data, cfg)[1]
    left = HandBoosterDataset(read_dataset(tmp_path / "left"), tmp_path / "left", cfg)[1]
    for key in ("quaternion", "weight"):
        torch.testing.assert_close(left[key], right[key], atol=1e-6, rtol=0)
    # bilinear resampling of a mirrored box is the mirrored resampling, up to rounding
    assert (left["image"] - right["image"]).abs().max() < 0.02
    assert (left["conditions"] - right["conditions"]).abs().max() < 0.02


def test_missing_maps_are_one_error_naming_them_and_the_render_line(tmp_path):
    from handsynth.methods.registry import build_training
    from handsynth.methods.synthetic import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "d", n=2, size=32, extra_maps=("normal",))
    with pytest.raises(UserError) as err:
        build_training("handbooster", None, str(data), ["data.conditions_from=stored"])
    msg = str(err.value)
    assert "texture, seg" in msg and "handsynth render" in msg and "--maps normal,texture,seg" in msg


# -- loss ----------------------------------------------------------------------------------------------------
def test_snr_weighted_x0_loss_is_the_eps_loss():
    from diffusers import DDPMScheduler

    cfg = HandBoosterConfig()
    sched = DDPMScheduler(**cfg.scheduler_config())
    g = torch.Generator().manual_seed(0)
    x0, noise, pred = (torch.randn(4, 3, 8, 8, generator=g) for _ in range(3))
    t = torch.tensor([5, 100, 500, 990])
    xt = sched.add_noise(x0, noise, t)
    a = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    eps_hat = (xt - a.sqrt() * pred) / (1 - a).sqrt()
    ones = torch.ones(4, 1, 8, 8)
    got = x0_loss(pred, x0, t, ones, sched, cfg.loss)
    torch.testing.assert_close(got, torch.nn.functional.mse_loss(eps_hat, noise), rtol=1e-4, atol=0)
    # the weight map counts: background pixels at 0.1 lower the loss
    w = torch.full_like(ones, 0.1)
    torch.testing.assert_close(x0_loss(pred, x0, t, w, sched, cfg.loss), 0.1 * got)
    # loss.type l1: the same SNR weights on |x0_hat - x0|; min_snr_gamma: weight min(SNR, gamma)
    # (Hang et al. 2023)
    s = a / (1 - a)
    cfg.loss.type = "l1"
    torch.testing.assert_close(x0_loss(pred, x0, t, ones, sched, cfg.loss), (s * (pred - x0).abs()).mean())
    cfg.loss.type, cfg.loss.min_snr_gamma = "l2", 5.0
    assert (s > 5).any() and (s < 5).any()
    torch.testing.assert_close(
        x0_loss(pred, x0, t, ones, sched, cfg.loss), (s.clamp(max=5.0) * (pred - x0).square()).mean()
    )


def test_orientation_dropout_rate(hb_data):
    task = HandBoosterTask(tiny_config(), hb_data)
    task.build(type("Acc", (), {"device": torch.device("cpu")})())
    batch = {"image": torch.zeros(2000, 3, 1, 1)}
    _, _, _, drop = task.noisy_batch(batch, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert 0.47 < float(drop.float().mean()) < 0.53
    # the rate is drop_prob itself, not 1 - drop_prob (0.5 cannot tell them apart)
    for p, lo, hi in ((0.2, 0.17, 0.23), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)):
        task.cfg.orientation.drop_prob = p
        _, _, _, drop = task.noisy_batch(batch, torch.Generator().manual_seed(1), torch.device("cpu"))
        assert lo <= float(drop.float().mean()) <= hi, p


# -- model ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("inject,attention", [("add", "full"), ("concat", "full"), ("add", "linear")])
def test_checkpoint_round_trip(tmp_path, inject, attention):
    cfg = tiny_config(inject=inject)
    cfg.model.attention = attention
    torch.manual_seed(0)
    model = HandBoosterModel(cfg).eval()
    x, c = torch.randn(2, 3, 16, 16), torch.randn(2, 6, 16, 16)
    q, t = torch.tensor([[1.0, 0, 0, 0], [0.6, 0.8, 0, 0]]), torch.tensor([10, 500])
    with torch.no_grad():
        before = model(x, t, c, q)
        # the orientation reaches the output, and so does the null vector
        assert not torch.allclose(before, model(x, t, c, q, torch.tensor([True, True])))
    model.save(tmp_path)
    loaded = HandBoosterModel.load(tmp_path, cfg)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, c, q), before)
    if attention == "linear":  # every level attends linearly, the mid block fully (set again on load)
        from diffusers.models.attention_processor import Attention

        from handsynth.methods.handbooster.model import LinearAttentionProcessor

        kinds = {
            n.split(".")[0]: type(m.processor).__name__
            for n, m in loaded.unet.named_modules()
            if isinstance(m, Attention)
        }
        assert kinds["down_blocks"] == kinds["up_blocks"] == LinearAttentionProcessor.__name__
        assert kinds["mid_block"] != LinearAttentionProcessor.__name__
    if inject == "concat":  # the time embedding fills only the first half of the 8d embedding
        emb = loaded.unet.time_embedding(torch.randn(2, loaded.unet.config.block_out_channels[0]))
        assert emb[:, 32:].abs().max() == 0 and emb[:, :32].abs().max() > 0


def test_concat_injection_is_the_released_film_of_time_and_orientation():
    """inject: concat = released: every ResNet maps [time (4d); orientation (4d)] to a scale and a shift
    for its normalised features (lucidrains' block), not a shift added before the norm."""
    from diffusers.models.resnet import ResnetBlock2D

    width = 8
    model = HandBoosterModel(tiny_config(inject="concat"))
    blocks = [m for m in model.unet.modules() if isinstance(m, ResnetBlock2D)]
    assert blocks
    for b in blocks:
        assert b.time_embedding_norm == "scale_shift"
        assert b.time_emb_proj.in_features == 8 * width
        assert b.time_emb_proj.out_features == 2 * b.conv2.in_channels
    added = HandBoosterModel(tiny_config(inject="add"))
    assert {m.time_embedding_norm for m in added.unet.modules() if isinstance(m, ResnetBlock2D)} == {
        "default"
    }


def test_checkpoint_with_other_maps_names_both(tmp_path):
    HandBoosterModel(tiny_config()).save(tmp_path)
    other = tiny_config()
    other.model.conditions = ["normal"]
    with pytest.raises(UserError, match=r"reads 9 input channels .*\['normal'\] need 6"):
        HandBoosterModel.load(tmp_path, other)


def test_guidance_one_is_the_conditional_prediction_and_three_extrapolates():
    from handsynth.methods.handbooster.generator import guided_x0

    torch.manual_seed(0)
    model = HandBoosterModel(tiny_config()).eval()
    with torch.no_grad():
        model.orientation.null.normal_()
        x, c = torch.randn(2, 3, 16, 16), torch.randn(2, 6, 16, 16)
        q, t = torch.tensor([[1.0, 0, 0, 0], [0.6, 0.8, 0, 0]]), torch.tensor([10, 500])
        cond = model(x, t, c, q)
        null = model(x, t, c, q, torch.tensor([True, True]))
        torch.testing.assert_close(guided_x0(model, x, t, c, q, 1.0), cond)
        torch.testing.assert_close(
            guided_x0(model, x, t, c, q, 3.0), null + 3 * (cond - null), atol=1e-5, rtol=0
        )


class _OvershootingX0(torch.nn.Module):
    """A stand-in x0 model whose guided predictions leave [-1, 1] (as CFG 3 does), to test the sampler."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.unet = type("U", (), {"config": type("C", (), {"sample_size": size})()})()
        self.orientation = True  # read by guided_x0: the model takes an orientation
        self.gain = torch.nn.Parameter(torch.tensor(1.5))

    def forward(self, x, t, conditions, quaternion, drop=None):
        keep = 1.0 if drop is None else (1.0 - drop.float()).view(-1, 1, 1, 1)
        base = self.gain * torch.sin(3 * x + t.view(-1, 1, 1, 1) / 300.0 + conditions)
        return base + keep * quaternion[:, 1:2, None, None]


def _released_ddim(model, cond, q, seed: int, steps: int, guidance: float, eta: float) -> torch.Tensor:
    """The released sampler (HandBooster_Pytorch ddim_sample), written out on its own: time pairs from
    linspace(-1, T-1, steps+1), x0 guided then clipped, eps from the clipped x0, x0 at the last pair."""
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    abar = torch.tensor(np.cumprod(1.0 - betas), dtype=torch.float32)
    times = list(reversed(torch.linspace(-1, 999, steps + 1).int().tolist()))
    g = torch.Generator().manual_seed(seed)
    size = model.unet.config.sample_size
    img = torch.randn(3, size, size, generator=g)[None]
    for time, time_next in zip(times[:-1], times[1:]):
        tt = torch.tensor([time])
        x0_c = model(img, tt, cond, q, torch.tensor([False]))
        x0_n = model(img, tt, cond, q, torch.tensor([True]))
        x_start = (x0_n + guidance * (x0_c - x0_n)).clamp(-1, 1)
        a = abar[time]
        eps = (img / a.sqrt() - x_start) / (1 / a - 1).sqrt()
        if time_next < 0:
            img = x_start
            continue
        a_next = abar[time_next]
        sigma = eta * ((1 - a / a_next) * (1 - a_next) / (1 - a)).sqrt()
        c = (1 - a_next - sigma**2).sqrt()
        img = x_start * a_next.sqrt() + c * eps + sigma * torch.randn(img.shape, generator=g)
    return img


@pytest.mark.parametrize("steps", [5, 250])
def test_ddim_sampling_is_the_released_sampler(steps):
    """DDIM from t = 999 with the noise direction of the clipped x0, as the released code samples;
    diffusers' defaults (leading spacing from t = 996, eps of the unclipped x0) differ by ~0.1."""
    from handsynth.methods.handbooster.generator import denoise, sampler_scheduler

    model = _OvershootingX0(4)
    g = torch.Generator().manual_seed(2)
    cond, q = torch.randn(1, 3, 4, 4, generator=g), torch.tensor([[0.6, 0.8, 0.0, 0.0]])
    sched = sampler_scheduler(tiny_config(), "ddim", steps)
    assert int(sched.timesteps[0]) == 999
    with torch.no_grad():
        got = denoise(model, sched, cond, q, [torch.Generator().manual_seed(7)], 3.0, eta=1.0)
        want = _released_ddim(model, cond, q, 7, steps, 3.0, 1.0)
    torch.testing.assert_close(got, want, atol=2e-4, rtol=0)


# -- training ------------------------------------------------------------------------------------------------
def _fixed_loss(task, model) -> float:
    """The loss on every item at fixed timesteps and noise (no orientation dropout)."""
    from handsynth.methods.handbooster.task import x0_loss

    ds = task.dataset()
    batch = task.collate([ds[i] for i in range(len(ds))])
    g = torch.Generator().manual_seed(123)
    x0 = batch["image"]
    noise = torch.randn(x0.shape, generator=g)
    t = torch.linspace(50, 400, x0.shape[0]).long()
    with torch.no_grad():
        pred = model(task.scheduler.add_noise(x0, noise, t), t, batch["conditions"], batch["quaternion"])
    return float(x0_loss(pred, x0, t, batch["weight"], task.scheduler, task.cfg.loss))


def test_training_lowers_the_loss_and_saves_a_run_folder(hb_data, tmp_path):
    from handsynth.diffusion.training import run_training

    cfg = tiny_config()
    cfg.train.max_steps, cfg.train.validate_every, cfg.train.ema = 30, 30, False
    cfg.model.conditions = ["seg", "normal", "texture"]  # a one-channel map first: the sheet still draws
    cfg.validation.num_inference_steps = 2
    task = HandBoosterTask(cfg, hb_data)
    torch.manual_seed(cfg.train.seed)
    start = HandBoosterModel(cfg).eval()
    task.build(type("Acc", (), {"device": torch.device("cpu")})())
    before = _fixed_loss(task, start)
    run_training(task, cfg.train, tmp_path / "run", resume=None)
    after = _fixed_loss(task, HandBoosterModel.load(tmp_path / "run", cfg))
    assert after < 0.8 * before, (before, after)
    assert (tmp_path / "run" / "unet" / "config.json").is_file()
    assert (tmp_path / "run" / "orientation.safetensors").is_file()
    assert (tmp_path / "run" / "handsynth_config.yaml").is_file()
    sheet = np.asarray(Image.open(next((tmp_path / "run" / "validation" / "step_30").glob("sample_*.png"))))
    assert sheet.shape == (16, 48, 3)  # conditions | generated | real


@pytest.mark.parametrize(("spacing", "last"), [(None, 99), ("leading", 0)])
def test_validation_sheets_sample_with_the_configured_spacing(hb_data, monkeypatch, spacing, last):
    """The released trailing spacing by default (last call at t = 99 in 10 steps); the tiny config's
    `leading` ends at t = 0, so its sheets are not that step's noise."""
    from handsynth.methods.handbooster import generator

    cfg = tiny_config()
    cfg.validation.num_samples, cfg.validation.num_inference_steps = 1, 10
    if spacing:
        cfg.validation.timestep_spacing = spacing
    seen = []

    def record(model, scheduler, conditions, *args):
        seen.append(scheduler.timesteps.tolist())
        return torch.zeros(1, 3, *conditions.shape[-2:])

    monkeypatch.setattr(generator, "denoise", record)
    task = HandBoosterTask(cfg, hb_data)
    task.build(type("Acc", (), {"device": torch.device("cpu")})())
    task.validate(HandBoosterModel(cfg).eval(), step=1)
    assert len(seen) == 1 and len(seen[0]) == 10 and seen[0][-1] == last


def test_an_unknown_validation_spacing_is_refused_naming_the_key():
    cfg = tiny_config()
    cfg.validation.timestep_spacing = "uniform"
    with pytest.raises(
        UserError, match=r"validation.timestep_spacing 'uniform' is unknown; choose from trailing"
    ):
        cfg.check()


def test_resume_continues_the_same_run_with_ema_every_10(hb_data, tmp_path):
    from handsynth.diffusion.training import run_training

    def config(steps: int) -> HandBoosterConfig:
        cfg = tiny_config()
        cfg.train.max_steps, cfg.train.checkpoint_every = steps, 5
        cfg.train.ema, cfg.train.ema_decay, cfg.train.ema_update_every = True, 0.995, 10
        return cfg

    whole = run_training(HandBoosterTask(config(12), hb_data), config(12).train, tmp_path / "a", resume=None)
    run_training(HandBoosterTask(config(5), hb_data), config(5).train, tmp_path / "b", resume=None)
    resumed = run_training(
        HandBoosterTask(config(12), hb_data), config(12).train, tmp_path / "b", resume="auto"
    )
    assert resumed["params_sha256"] == whole["params_sha256"]
    log = [json.loads(line) for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 13))


def test_ema_updates_only_every_n_steps(hb_data, tmp_path):
    """9 steps with ema_update_every=10: diffusers' reading never steps the EMA (the saved weights are the
    initial ones) and with every step they moved; the released ema_pytorch reading (HandBooster's
    default) updates after step 1 only, a copy: the saved weights are those of a 1-step run."""
    from handsynth.diffusion.training import run_training

    saved = {}
    for name, steps, ema, every, warmup in (
        ("diffusers10", 9, True, 10, "diffusers"),
        ("diffusers1", 9, True, 1, "diffusers"),
        ("released10", 9, True, 10, "ema_pytorch"),
        ("one_step", 1, False, 1, "diffusers"),
    ):
        cfg = tiny_config()
        cfg.train.max_steps, cfg.train.ema, cfg.train.ema_update_every = steps, ema, every
        cfg.train.ema_warmup = warmup
        run_training(HandBoosterTask(cfg, hb_data), cfg.train, tmp_path / name, resume=None)
        saved[name] = HandBoosterModel.load(tmp_path / name, cfg).state_dict()
    torch.manual_seed(tiny_config().train.seed)
    initial = HandBoosterModel(tiny_config()).state_dict()
    assert tiny_config().train.ema_warmup == "ema_pytorch"
    assert all(torch.equal(saved["diffusers10"][k], initial[k]) for k in initial)
    assert not all(torch.equal(saved["diffusers1"][k], initial[k]) for k in initial)
    assert all(torch.equal(saved["released10"][k], saved["one_step"][k]) for k in initial)
    assert not all(torch.equal(saved["released10"][k], initial[k]) for k in initial)


def test_a_left_hand_is_generated_as_the_mirror_of_its_right_hand_twin(hb_data, tmp_path):
    """Same ids (so same seeds): the left-hand record's image is the right-hand twin's image flipped."""
    from handsynth.cli import main
    from handsynth.config import CONFIG_NAME, save_config

    _mirror_dataset(hb_data, tmp_path / "left")
    run = tmp_path / "run"
    torch.manual_seed(0)
    HandBoosterModel(tiny_config()).save(run)
    save_config(tiny_config(), run / CONFIG_NAME)
    images = {}
    for name, data in (("right", hb_data), ("left", tmp_path / "left")):
        argv = ["generate", "--method", "handbooster", "--checkpoint", str(run), "--in", str(data)]
        assert main([*argv, "--out", str(tmp_path / f"gen_{name}"), "--steps", "2", "--limit", "2"]) == 0
        recs = read_dataset(tmp_path / f"gen_{name}")
        images[name] = [
            np.asarray(Image.open(tmp_path / f"gen_{name}" / r.file_name), np.int16) for r in recs
        ]
    for right, left in zip(images["right"], images["left"]):
        assert np.abs(left - right[:, ::-1]).mean() < 2  # resampling of mirrored crops: rounding only
        assert np.abs(left - right).mean() > 2  # and the picture is not the unflipped one
