"""The micro "Stable Diffusion": a text-to-image base trained here, saved as a diffusers SD folder.

Why: no pretrained weights reach this project, so the frozen base that AttentionHand builds on (SD-1.5
in the paper) must itself be trained in the micro world. It keeps SD's structure at micro size:

- VAE: ``AutoencoderKL``, 4x down-sampling (64^2 RGB -> 4x16x16 latents), trained first with L1 + a
  small KL term; its ``scaling_factor`` is set to 1/std of the training latents (SD's 0.18215 plays the
  same role).
- UNet: ``UNet2DConditionModel`` with 3 levels (16^2, 8^2, 4^2), cross-attention at 16^2 and 8^2
  (TAS reads the 8^2 maps, the micro analog of SD's 16^2 maps of 64^2 latents).
- Text encoder: a 2-layer CLIP text transformer with SD's real 49,408-token tokenizer. By default it
  stays at its seeded random initialisation (a fixed random embedding the UNet's cross-attention
  learns to read); with ``train_text_encoder`` (the micro benchmark v2) it trains with the UNet, so
  words like "hand" or "fist" get embeddings that mean something to the image (SD's CLIP was trained
  for that too, on image-text pairs, before SD froze it). AttentionHand later keeps it frozen.
- Scheduler: SD-1.5's (scaled-linear betas 0.00085 -> 0.012, 1000 steps, epsilon prediction).

Pretraining is the plain latent-diffusion noise-prediction loop on (image, caption) pairs with 10 %
empty captions (so classifier-free guidance works). Latents are computed once (the VAE is frozen by
then); text embeddings too when the text encoder is frozen, so a step is one UNet forward/backward.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from handsynth.data.folder import dataset_root, read_dataset
from handsynth.diffusion.base import missing_parts, save_base_folder
from handsynth.diffusion.components import SDArchitecture, sd_components
from handsynth.errors import UserError
from handsynth.text.tokenizer import encode_prompts

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

MICRO_INFO = "handsynth_micro.json"


@dataclass
class MicroBaseConfig:
    """Architecture and training budget of the micro base (every field is recorded beside the weights)."""

    resolution: int = 64
    vae_channels: list[int] = field(default_factory=lambda: [32, 64, 64])  # 3 levels: 4x down
    latent_channels: int = 4
    unet_channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    cross_attention_levels: int = 2  # the first N down blocks (and last N up blocks) cross-attend
    # Heads per attention layer (diffusers' `attention_head_dim`). 8 heads leave 4-8 channels per head at
    # these widths, and CPU attention is slow on thin heads (one 256-token SDPA forward + backward: 355 ms
    # with 8 heads of 4 channels, 53 ms with one of 32): a whole step with 2 heads costs 0.59x the 8-head
    # one (benchmarks/micro_base_cost.py). The v1/v2 bases were trained with 8.
    attention_heads: int = 8
    text_hidden: int = 32
    text_layers: int = 2
    seed: int = 0
    vae_steps: int = 600
    vae_batch_size: int = 16
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-6
    unet_steps: int = 1500
    unet_batch_size: int = 16
    unet_lr: float = 5e-4
    uncond_prob: float = 0.1
    max_images: int | None = None
    # v2: train the CLIP text encoder with the UNet (a frozen random encoder left hand-token attention
    # flat in v1, so TAS had nothing to sharpen); its learning rate is the UNet's.
    train_text_encoder: bool = False
    # Sample-efficiency aids for a CPU budget (both off = the v1/v2 recipe): an exponential moving
    # average of the UNet (and text encoder) weights, saved instead of the last step's (DDPM, Ho et al.
    # 2020, sample with EMA weights); Min-SNR-gamma loss weighting (Hang et al. 2023: min(SNR, gamma)/SNR
    # on the epsilon loss, ~3x faster convergence in their measurements).
    ema_decay: float = 0.0
    min_snr_gamma: float = 0.0
    device: str = "cpu"  # "cpu", "cuda", or "auto" (cuda when available): the gpu profile's base

    @property
    def latent_size(self) -> int:
        return self.resolution // 2 ** (len(self.vae_channels) - 1)


def build_components(cfg: MicroBaseConfig) -> dict:
    """Seeded random VAE, UNet, frozen-random CLIP text encoder, SD tokenizer and SD's scheduler."""
    arch = SDArchitecture(
        unet_channels=tuple(cfg.unet_channels),
        unet_layers=1,
        unet_groups=8,
        cross_attention_dim=cfg.text_hidden,
        latent_size=cfg.latent_size,
        vae_channels=tuple(cfg.vae_channels),
        vae_layers=1,
        vae_groups=8,
        text_intermediate=2 * cfg.text_hidden,
        text_layers=cfg.text_layers,
        text_heads=4,
        latent_channels=cfg.latent_channels,
        cross_attention_levels=cfg.cross_attention_levels,
        attention_head_dim=cfg.attention_heads,
        vae_scaling_factor=1.0,
        image_size=cfg.resolution,
    )
    return sd_components(arch, cfg.seed)


# -- data --------------------------------------------------------------------------------------------------
def load_images_and_captions(
    data: str | Path, size: int, limit: int | None = None
) -> tuple[torch.Tensor, list[str]]:
    """A record folder's photos as (N, 3, size, size) in [-1, 1] and their captions."""
    from PIL import Image

    root = dataset_root(data)
    samples = [s for s in read_dataset(data) if s.file_name and s.prompt]
    if limit:
        samples = samples[:limit]
    if not samples:
        raise UserError(f"{data}: no record has both an image and a prompt; pass a world dataset folder")
    arr = np.empty((len(samples), size, size, 3), np.uint8)
    for i, s in enumerate(samples):
        with Image.open(root / s.file_name) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BICUBIC)
            arr[i] = np.asarray(im)
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x, [s.prompt for s in samples]


# -- training ----------------------------------------------------------------------------------------------
def train_vae(
    vae: AutoencoderKL, images: torch.Tensor, cfg: MicroBaseConfig, log_path: Path | None = None
) -> dict:
    """Autoencoder training: L1 reconstruction + ``vae_kl_weight`` KL; returns the final losses."""
    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine(cfg.vae_steps, max(1, cfg.vae_steps // 20)))
    vae.train()
    dev = _device_of(vae)
    stats: dict = {}
    bar = tqdm(range(cfg.vae_steps), desc="micro vae", unit="step")
    for step in bar:
        idx = torch.randint(0, len(images), (cfg.vae_batch_size,), generator=g)
        x = images[idx].to(dev)
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g).to(dev)
        rec = vae.decode(z).sample
        l1 = (rec - x).abs().mean()
        kl = post.kl().mean()  # summed over latent dims, averaged over the batch
        loss = l1 + cfg.vae_kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        stats = {"step": step + 1, "l1": float(l1.detach()), "kl": float(kl.detach())}
        bar.set_postfix(l1=f"{float(l1):.4f}")
        _log(log_path, {"stage": "vae", **stats}, step, 25)
    vae.eval()
    return stats


@torch.no_grad()
def encode_dataset(
    vae: AutoencoderKL, images: torch.Tensor, batch: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every image (unscaled)."""
    means, stds = [], []
    dev = _device_of(vae)
    for i in range(0, len(images), batch):
        post = vae.encode(images[i : i + batch].to(dev)).latent_dist
        means.append(post.mean.cpu())
        stds.append(post.std.cpu())
    return torch.cat(means), torch.cat(stds)


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def encode_captions(
    text_encoder: CLIPTextModel, tokenizer: PreTrainedTokenizerBase, captions: list[str], batch: int = 128
) -> torch.Tensor:
    out = []
    for i in range(0, len(captions), batch):
        ids = encode_prompts(captions[i : i + batch], tokenizer)
        out.append(text_encoder(ids.to(_device_of(text_encoder)))[0].cpu())
    return torch.cat(out)


def train_unet(
    unet: UNet2DConditionModel,
    scheduler_config: dict,
    latents: tuple[torch.Tensor, torch.Tensor],
    text: torch.Tensor,
    uncond: torch.Tensor,
    cfg: MicroBaseConfig,
    log_path: Path | None = None,
    text_encoder: torch.nn.Module | None = None,
    ids: torch.Tensor | None = None,
    uncond_ids: torch.Tensor | None = None,
    checkpoint: Path | None = None,
    checkpoint_every: int = 500,
) -> dict:
    """Epsilon-prediction training of the UNet on scaled latents with caption dropout.

    ``checkpoint``: a file the full training state (weights, optimiser, schedule, EMA, the batch RNG) is
    written to every ``checkpoint_every`` steps and resumed from, so an interrupted base continues where
    it stopped and ends with the weights an uninterrupted run would have (the full profile's UNet trains
    for ~40 min, longer than a shared machine stays up).

    With ``text_encoder`` (and the captions' token ``ids`` (N, 77), the empty caption's ``uncond_ids``)
    the encoder trains with the UNet and ``text`` / ``uncond`` are unused; otherwise the precomputed
    embeddings ``text`` (N, 77, D) and ``uncond`` (77, D) are read.
    """
    from diffusers import DDPMScheduler

    noise_sched = DDPMScheduler.from_config(scheduler_config)
    mean, std = latents
    g = torch.Generator().manual_seed(cfg.seed + 1)
    params = list(unet.parameters())
    if text_encoder is not None:
        text_encoder.train()
        text_encoder.requires_grad_(True)
        params += list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine(cfg.unet_steps, max(1, cfg.unet_steps // 20)))
    ema = [p.detach().clone() for p in params] if cfg.ema_decay else None
    snr = noise_sched.alphas_cumprod / (1 - noise_sched.alphas_cumprod)
    unet.train()
    dev = _device_of(unet)
    stats: dict = {}
    ema_loss = None
    start = 0
    state = None
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if state.get("config") != asdict(cfg):  # another recipe's leftover: start afresh
            state = None
    if state is not None:
        unet.load_state_dict(state["unet"])
        if text_encoder is not None:
            text_encoder.load_state_dict(state["text_encoder"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        if ema is not None:
            for e, v in zip(ema, state["ema"]):
                e.copy_(v)
        g.set_state(state["rng"])
        start, ema_loss = state["step"], state["ema_loss"]
    bar = tqdm(
        range(start, cfg.unet_steps), desc="micro unet", unit="step", initial=start, total=cfg.unet_steps
    )
    for step in bar:
        idx = torch.randint(0, len(mean), (cfg.unet_batch_size,), generator=g)
        x0 = mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=g)
        drop = torch.rand(len(idx), generator=g) < cfg.uncond_prob
        if text_encoder is not None:
            batch_ids = ids[idx].clone()
            batch_ids[drop] = uncond_ids
            cond = text_encoder(batch_ids.to(dev))[0]
        else:
            cond = text[idx].clone()
            cond[drop] = uncond
            cond = cond.to(dev)
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(idx),), generator=g)
        xt = noise_sched.add_noise(x0, noise, t)
        pred = unet(xt.to(dev), t.to(dev), encoder_hidden_states=cond).sample
        noise = noise.to(dev)
        if cfg.min_snr_gamma:
            w = (snr[t].clamp(max=cfg.min_snr_gamma) / snr[t]).to(dev)
            loss = (w * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()
        else:
            loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if ema is not None:
            # warm-up as in common EMA practice: early averages must not be dominated by random weights
            decay = min(cfg.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for e, p in zip(ema, params):
                    e.lerp_(p.detach(), 1 - decay)
        lv = float(loss.detach())
        ema_loss = lv if ema_loss is None else 0.98 * ema_loss + 0.02 * lv
        stats = {"step": step + 1, "loss": lv, "loss_ema": ema_loss}
        bar.set_postfix(loss=f"{ema_loss:.4f}")
        _log(log_path, {"stage": "unet", **stats}, step, 25)
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < cfg.unet_steps:
            state = {
                "step": step + 1,
                "config": asdict(cfg),
                "ema_loss": ema_loss,
                "unet": unet.state_dict(),
                "text_encoder": text_encoder.state_dict() if text_encoder is not None else None,
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "ema": ema,
                "rng": g.get_state(),
            }
            tmp = Path(checkpoint).with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(checkpoint)  # atomic: a crash mid-write keeps the previous checkpoint
    if ema is not None:
        with torch.no_grad():
            for e, p in zip(ema, params):
                p.copy_(e)
    unet.eval()
    if text_encoder is not None:
        text_encoder.eval()
        text_encoder.requires_grad_(False)
    return stats


def _cosine(total: int, warmup: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        p = (step - warmup) / max(1, total - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0)))

    return f


def _log(path: Path | None, row: dict, step: int, every: int) -> None:
    if path is not None and (step % every == 0):
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


def pretrain_base(
    data: str | Path, out: str | Path, cfg: MicroBaseConfig, extra_data: list[str | Path] = ()
) -> Path:
    """Train the VAE, then the text-to-image UNet, on ``data`` (images + captions); save to ``out``.

    ``extra_data``: more folders trained on alike (the micro benchmark's no-hand photos).

    The result is a standard diffusers SD folder (``--base-model out`` everywhere in handsynth, and
    ``StableDiffusionPipeline.from_pretrained(out)``), plus ``handsynth_micro.json`` (config, losses,
    timings). Resumable at stage granularity: a finished VAE (``out.vae_stage/``) is reused.
    """
    from diffusers import AutoencoderKL

    out = Path(out)
    if not missing_parts(out):
        return out
    torch.manual_seed(cfg.seed)
    images, captions = load_images_and_captions(data, cfg.resolution, cfg.max_images)
    for extra in extra_data:
        more, more_captions = load_images_and_captions(extra, cfg.resolution)
        images, captions = torch.cat([images, more]), captions + more_captions
    parts = build_components(cfg)
    dev = resolve_device(cfg.device)
    for k in ("vae", "unet", "text_encoder"):
        parts[k].to(dev)
    work = out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "train_log.jsonl"
    info: dict = {
        "config": asdict(cfg),
        "data": str(data),
        "extra_data": [str(e) for e in extra_data],
        "num_images": len(images),
    }
    t0 = time.time()
    vae_dir = work / "vae"
    if (vae_dir / "config.json").exists():
        parts["vae"] = AutoencoderKL.from_pretrained(vae_dir).to(dev)
        info["vae"] = json.loads((work / "vae_stats.json").read_text())
    else:
        stats = train_vae(parts["vae"], images, cfg, log_path)
        mean, std = encode_dataset(parts["vae"], images)
        scale = float(1.0 / mean.std())
        parts["vae"].register_to_config(scaling_factor=scale)
        stats.update(scaling_factor=scale, seconds=round(time.time() - t0, 1))
        parts["vae"].save_pretrained(vae_dir)
        (work / "vae_stats.json").write_text(json.dumps(stats))
        info["vae"] = stats
    vae = parts["vae"].eval()
    vae.requires_grad_(False)
    t1 = time.time()
    mean, std = encode_dataset(vae, images)
    scale = float(vae.config.scaling_factor)
    text_encoder = parts["text_encoder"].eval()
    if cfg.train_text_encoder:
        from handsynth.text.tokenizer import encode_prompts

        text = uncond = None
        trained = dict(
            text_encoder=text_encoder,
            ids=encode_prompts(captions, parts["tokenizer"]),
            uncond_ids=encode_prompts([""], parts["tokenizer"])[0],
        )
    else:
        text = encode_captions(text_encoder, parts["tokenizer"], captions)
        uncond = encode_captions(text_encoder, parts["tokenizer"], [""])[0]
        trained = {}
    stats = train_unet(
        parts["unet"],
        dict(parts["scheduler"].config),
        (mean * scale, std * scale),
        text,
        uncond,
        cfg,
        log_path,
        **trained,
        checkpoint=work / "unet_checkpoint.pt",
    )
    stats["seconds"] = round(time.time() - t1, 1)
    info["unet"] = stats
    info["parameters"] = {
        k: int(sum(p.numel() for p in parts[k].parameters())) for k in ("unet", "vae", "text_encoder")
    }
    tmp = out.with_name(out.name + ".tmp")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    for k in ("vae", "unet", "text_encoder"):
        parts[k].to("cpu")
    save_base_folder(parts, tmp)
    (tmp / MICRO_INFO).write_text(json.dumps(info, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
