"""AttentionHand (ECCV 2024) training: TAS on the noisy latents, then VAS with global + local branches.

A thin composition of the shared parts in :mod:`handsynth.diffusion`: the base model (phi_d, VAE,
CLIP), one :class:`~handsynth.diffusion.controlnet.GuidanceModule` (phi_g, shared by both branches
unless ``model.separate_weights``), the attention store + TAS, the training scheduler and the training
loop. Per sample and step (paper Sec. 3.3, Eq. 2-9):

    X_0^G, X_0^L = VAE(global RGB), VAE(local RGB crop)        (the local latent is the LOCAL image)
    X_t = sqrt(abar_t) X_0 + sqrt(1 - abar_t) eps             (same t for both branches)
    X_hat_t = TAS(X_t)                                         (phi_d alone, hand-token attention)
    L = lambda_G ||eps - eps_theta(X_hat_t^G, I_mesh^G)||^2 + lambda_L ||... local ...||^2   (Eq. 7-8)

The target is the ORIGINAL noise eps (Eq. 7-8 and the released code, ``tas.target=epsilon``); the
paper's prose names the residual noise eps_hat = (X_hat_t - sqrt(abar_t) X_0) / sqrt(1 - abar_t)
instead (``tas.target=residual``), with which TAS barely changes what the model learns.

Both branches go through phi_g and phi_d in one batched forward.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from handsynth.config import CONFIG_NAME, save_config
from handsynth.data.records import Sample
from handsynth.diffusion.attention import AttentionStore, checkpointing_off, install_attention_store
from handsynth.diffusion.base import load_base
from handsynth.diffusion.controlnet import GuidanceModule, controlled_unet_forward
from handsynth.diffusion.encoding import encode_images, prompt_lengths, tokenize
from handsynth.diffusion.schedulers import (
    alphas_cumprod_at,
    sampling_scheduler,
    training_scheduler,
    training_target,
)
from handsynth.diffusion.tas import (
    TASConfig,
    query_resolution,
    tas_refine,
    token_probabilities,
    training_noise,
)
from handsynth.diffusion.training import TrainConfig
from handsynth.errors import UserError
from handsynth.methods.record_task import RecordTrainTask
from handsynth.text.tagging import hand_token_indices
from handsynth.text.tokenizer import clip_tokenizer

if TYPE_CHECKING:
    from accelerate import Accelerator
    from diffusers import StableDiffusionControlNetPipeline
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

BRANCHES = ("global", "local")


@dataclass
class ModelConfig:
    base_model: str = "tiny"  # 'tiny', a local diffusers SD folder, a single file, or a hub id (online)
    base_config: str | None = None  # a single-file base's diffusers folder or original .yaml
    resolution: int = 512  # global and local images are resized to resolution^2
    condition: str = "mesh"  # which condition map of the records guides phi_g
    branches: list[str] = field(default_factory=lambda: ["global", "local"])  # ablation: global / local only
    separate_weights: bool = False  # Table 4 ablation: the local branch gets its own phi_g
    conditioning_embedding_out_channels: list[int] | None = None  # None: diffusers' (16, 32, 96, 256)


@dataclass
class LossConfig:
    lambda_global: float = 0.5
    lambda_local: float = 0.5


@dataclass
class DataConfig:
    # The local branch's prompt: full (released code: the whole prompt; its tagger only looks for
    # "hand") or hand (the single word "hand": our option, not released behaviour).
    local_prompt: Literal["full", "hand"] = "full"
    max_samples: int | None = None
    # Share of training prompts replaced by "" (ControlNet trains with 50 %: the module must read the
    # condition, not the caption). 0 = the released code (no dropout).
    empty_prompt_prob: float = 0.0


@dataclass
class ValidationConfig:
    num_samples: int = 1
    num_inference_steps: int = 20
    guidance_scale: float = 9.0  # released code's inference setting
    sampler: str = "ddim"
    seed: int = 0


@dataclass
class AttentionHandConfig:
    method: str = "attentionhand"
    model: ModelConfig = field(default_factory=ModelConfig)
    tas: TASConfig = field(default_factory=TASConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    # No gradient clipping by default: the released code has none (train.max_grad_norm=1.0 is diffusers'
    # train_controlnet.py setting).
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_grad_norm=0.0))
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def check(self) -> None:
        """Reject inconsistent settings before anything is loaded or written."""
        bad = [b for b in self.model.branches if b not in BRANCHES]
        if bad or not self.model.branches or len(set(self.model.branches)) != len(self.model.branches):
            raise UserError(
                f"model.branches must be a non-empty subset of {list(BRANCHES)}, got {self.model.branches}"
            )
        if self.model.resolution % 64:
            raise UserError(f"model.resolution must be a multiple of 64, got {self.model.resolution}")
        check_tas(self.tas)
        if not 0.0 <= self.data.empty_prompt_prob <= 1.0:
            raise UserError(f"data.empty_prompt_prob must be in [0, 1], got {self.data.empty_prompt_prob}")


def check_tas(tas: TASConfig) -> None:
    """Reject TAS settings the refinement cannot run (shared by every trainer with a ``tas:`` block)."""
    if tas.iterations < 0:
        raise UserError(f"tas.iterations must be >= 0, got {tas.iterations}")


# -- TAS in a training step (AttentionHand's; SesaHand's ``tas:`` option reuses it) ---------------------
def tas_forward(
    unet: torch.nn.Module,
    t: torch.Tensor,
    text: torch.Tensor,
    controlled: Callable[[torch.Tensor], object] | None = None,
    guidance: tuple[torch.nn.Module, ...] = (),
    accelerator: Accelerator | None = None,
) -> Callable[[torch.Tensor], object]:
    """The UNet call TAS differentiates: phi_d alone (``controlled`` None: the paper and released code)
    or ``controlled(x)`` (``tas.unet=controlled``: phi_d + the guidance modules ``guidance``), with
    gradient checkpointing off (a recomputed block would call the storing processors again)."""
    if controlled is not None:

        def forward(x: torch.Tensor):
            with checkpointing_off(unet, *guidance), accelerator.autocast() if accelerator else _nullctx():
                return controlled(x)

        return forward

    def forward_bare(x: torch.Tensor):
        with checkpointing_off(unet):
            return unet(x.to(unet.dtype), t, encoder_hidden_states=text.to(unet.dtype))

    return forward_bare


def apply_tas(
    cfg: TASConfig,
    store: AttentionStore,
    forward: Callable[[torch.Tensor], object],
    scheduler,
    xt: torch.Tensor,
    t: torch.Tensor,
    x0: torch.Tensor,
    noise: torch.Tensor,
    indices: list[list[int]],
    lengths: list[int],
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """One training step's TAS: (X_hat_t, the noise the loss regresses, logs). The noise is the
    original eps (``tas.target=epsilon``) or the residual noise X_hat_t holds (``residual``)."""
    num_t = scheduler.config.num_train_timesteps
    res = tas_refine(forward, store, xt, t, indices, lengths, cfg, num_t, generator)
    target_noise = training_noise(cfg, noise, res.latents, x0, alphas_cumprod_at(scheduler, t))
    logs = {"tas_loss": float(res.loss_before.mean()), "tas_iterations": float(res.iterations)}
    return res.latents, target_noise, logs


# -- data ------------------------------------------------------------------------------------------------
def crop_square(img: Image.Image, box: list[float], size: int) -> Image.Image:
    """The square ``box`` = [x, y, side] of ``img`` (zero-padded outside), resized to size^2."""
    x, y, side = box
    out = img.crop((round(x), round(y), round(x + side), round(y + side)))
    return out.resize((size, size), Image.BICUBIC)


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


class AttentionHandDataset(Dataset):
    """Record folder -> global/local RGB, global/local condition, prompts and hand-token positions.

    Every record is checked when the dataset is built (before any output), so a bad record is one
    error naming the sample and field, not a crash hours into training.
    """

    def __init__(
        self,
        samples: list[Sample],
        root: str | Path,
        resolution: int,
        condition: str = "mesh",
        local_prompt: str = "full",
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> None:
        self.root = Path(root)
        self.resolution = resolution
        self.condition = condition
        self.samples = samples
        tok = tokenizer if tokenizer is not None else clip_tokenizer()
        if not samples:
            raise UserError(f"dataset {self.root} has no samples")
        self.indices: list[list[int]] = []
        self.local_indices: list[list[int]] = []
        self.local_prompts: list[str] = []
        for s in samples:
            self._check(s)
            idx = s.extra.get("hand_token_indices")
            if idx is None:
                idx = hand_token_indices(s.prompt, tok)
            elif not (isinstance(idx, list) and all(isinstance(i, int) and 0 < i < 77 for i in idx)):
                raise UserError(
                    f"sample {s.id}: hand_token_indices must be a list of token positions in 1..76, got {idx!r}"
                )
            self.indices.append(list(idx))
            lp = s.prompt if local_prompt == "full" else "hand"
            self.local_prompts.append(lp)
            self.local_indices.append(list(idx) if local_prompt == "full" else hand_token_indices(lp, tok))

    def _check(self, s: Sample) -> None:
        def need(rel: str | None, what: str) -> None:
            if rel is None:
                raise UserError(
                    f"sample {s.id} in {self.root} has no {what}; AttentionHand training needs it"
                )
            if not (self.root / rel).exists():
                raise UserError(f"sample {s.id}: {what} file {self.root / rel} does not exist")

        need(s.file_name, "image (file_name)")
        need(s.conditions.get(self.condition), f"'{self.condition}' condition (conditions.{self.condition})")
        if s.local is None:
            raise UserError(
                f"sample {s.id} has no local crop (local.box); render the dataset with local crops"
            )
        if s.local.file_name is not None:
            need(s.local.file_name, "local image (local.file_name)")
        if self.condition in s.local.conditions:
            need(s.local.conditions[self.condition], f"local '{self.condition}' condition")

    def __len__(self) -> int:
        return len(self.samples)

    def _to_tensor(self, img: Image.Image, signed: bool) -> torch.Tensor:
        if img.size != (self.resolution, self.resolution):
            img = img.resize((self.resolution, self.resolution), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return x * 2 - 1 if signed else x

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        image = _rgb(self.root / s.file_name)
        cond = _rgb(self.root / s.conditions[self.condition])
        # Crop coordinates are global pixels of the record's width x height.
        if image.size != (s.width, s.height):
            image = image.resize((s.width, s.height), Image.BICUBIC)
        if cond.size != (s.width, s.height):
            cond = cond.resize((s.width, s.height), Image.BICUBIC)
        box = s.local.box
        local_image = (
            _rgb(self.root / s.local.file_name)
            if s.local.file_name
            else crop_square(image, box, self.resolution)
        )
        local_rel = s.local.conditions.get(self.condition)
        local_cond = _rgb(self.root / local_rel) if local_rel else crop_square(cond, box, self.resolution)
        return {
            "id": s.id,
            "image_global": self._to_tensor(image, True),
            "image_local": self._to_tensor(local_image, True),
            "cond_global": self._to_tensor(cond, False),
            "cond_local": self._to_tensor(local_cond, False),
            "prompt": s.prompt,
            "prompt_local": self.local_prompts[i],
            "indices": self.indices[i],
            "indices_local": self.local_indices[i],
        }


# -- training --------------------------------------------------------------------------------------------
class AttentionHandTask(RecordTrainTask):
    """The :class:`~handsynth.diffusion.training.TrainTask` of AttentionHand."""

    def __init__(self, cfg: AttentionHandConfig, data: str | Path) -> None:
        cfg.check()
        self.cfg = cfg
        super().__init__(cfg.model.base_model, data, cfg.data.max_samples, cfg.model.base_config)
        m = cfg.model
        self._dataset = AttentionHandDataset(
            self.samples, self.root, m.resolution, m.condition, cfg.data.local_prompt
        )
        self.store = None

    # -- TrainTask API --
    def build(self, accelerator: Accelerator) -> torch.nn.Module:
        cfg = self.cfg
        self.accelerator = accelerator
        base = load_base(cfg.model.base_model, base_config=cfg.model.base_config)
        guidance = GuidanceModule.from_unet(
            base.unet,
            branches=list(cfg.model.branches) if cfg.model.separate_weights else None,
            conditioning_embedding_out_channels=cfg.model.conditioning_embedding_out_channels,
        )
        guidance.train()
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
            accelerator.mixed_precision, torch.float32
        )
        base.to(accelerator.device, dtype)
        if cfg.train.gradient_checkpointing:
            base.unet.enable_gradient_checkpointing()
            for net in guidance.nets.values():
                net.enable_gradient_checkpointing()
        self.store = install_attention_store(base.unet)
        self.base = base
        self.scheduler = training_scheduler(base.scheduler_config)
        return guidance

    def _inputs(self, batch: dict) -> tuple:
        """Stack the active branches: images, conditions, prompts, hand indices, groups."""
        imgs, conds, prompts, indices, groups = [], [], [], [], []
        n = len(batch["id"])
        for b in self.cfg.model.branches:
            imgs.append(batch[f"image_{b}"])
            conds.append(batch[f"cond_{b}"])
            prompts += batch["prompt"] if b == "global" else batch["prompt_local"]
            indices += batch["indices"] if b == "global" else batch["indices_local"]
            groups.append((b, n))
        return torch.cat(imgs), torch.cat(conds), prompts, indices, groups

    def loss(
        self, model: torch.nn.Module, batch: dict, step: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, base = self.cfg, self.base
        dev = base.unet.device
        images, conds, prompts, indices, groups = self._inputs(batch)
        n = len(batch["id"])
        if cfg.data.empty_prompt_prob > 0:
            drop = (torch.rand(len(prompts), generator=generator) < cfg.data.empty_prompt_prob).tolist()
            prompts = ["" if d else q for q, d in zip(prompts, drop)]
            indices = [[] if d else i for i, d in zip(indices, drop)]
        x0 = encode_images(base, images.to(dev), generator=generator).float()
        ids = tokenize(base.tokenizer, prompts)
        lengths = prompt_lengths(ids, base.tokenizer.eos_token_id)
        with torch.no_grad():
            text = base.text_encoder(ids.to(dev))[0]
        noise = torch.randn(x0.shape, generator=generator, device="cpu").to(dev)
        num_t = self.scheduler.config.num_train_timesteps
        t = torch.randint(0, num_t, (n,), generator=generator, device="cpu").to(dev)
        t = t.repeat(len(groups))  # same t for the global and local latent of a sample
        xt = self.scheduler.add_noise(x0, noise, t)
        logs: dict[str, float] = {}
        target_noise = noise
        if cfg.tas.enabled and cfg.tas.iterations > 0:
            forward = self._tas_forward(model, t, text, conds.to(dev), groups)
            xt, target_noise, tas_logs = apply_tas(
                cfg.tas, self.store, forward, self.scheduler, xt, t, x0, noise, indices, lengths, generator
            )
            logs.update(tas_logs)
        target = training_target(self.scheduler, x0, target_noise, t)
        pred = controlled_unet_forward(
            base.unet, model, xt, t, text, conds.to(dev, dtype=xt.dtype), groups if self._separate else None
        ).float()
        per_sample = F.mse_loss(pred, target.float(), reduction="none").mean(dim=(1, 2, 3))
        total = pred.new_zeros(())
        for k, (b, _) in enumerate(groups):
            lb = per_sample[k * n : (k + 1) * n].mean()
            lam = cfg.loss.lambda_global if b == "global" else cfg.loss.lambda_local
            total = total + lam * lb
            logs[f"loss_{b}"] = float(lb.detach())
        return total, logs

    @property
    def _separate(self) -> bool:
        return self.cfg.model.separate_weights

    def _tas_forward(self, model, t, text, conds, groups):
        """The UNet call TAS differentiates: phi_d alone (default) or phi_d + phi_g (tas.unet=controlled)."""
        unet, acc = self.base.unet, self.accelerator
        if self.cfg.tas.unet != "controlled":
            return tas_forward(unet, t, text)
        guidance = acc.unwrap_model(model) if acc is not None else model
        separate = groups if self._separate else None

        def controlled(x: torch.Tensor):
            return controlled_unet_forward(unet, guidance, x, t, text, conds.to(x.dtype), separate)

        return tas_forward(unet, t, text, controlled, tuple(guidance.nets.values()), acc)

    def validate(self, model: torch.nn.Module, step: int) -> dict[str, np.ndarray]:
        """Generate the first validation samples with the stock diffusers ControlNet pipeline and show the
        hand-token attention maps (averaged over denoising steps) beside the condition and the image."""
        cfg, base = self.cfg, self.base
        pipe = self.controlnet_pipeline(model)
        out: dict[str, np.ndarray] = {}
        res = cfg.model.resolution
        latent = res // base.vae_scale_factor
        qhw = query_resolution(cfg.tas, (latent, latent))
        for i in range(min(cfg.validation.num_samples, len(self._dataset))):
            item = self._dataset[i]
            cond = item["cond_global"][None]
            gen = torch.Generator().manual_seed(cfg.validation.seed)
            ctx = (
                self.accelerator.autocast()
                if self.accelerator is not None
                else torch.autocast("cpu", enabled=False)
            )
            with self.store.capture(qhw), ctx:
                image = pipe(
                    item["prompt"],
                    image=cond,
                    num_inference_steps=cfg.validation.num_inference_steps,
                    guidance_scale=cfg.validation.guidance_scale,
                    generator=gen,
                    height=res,
                    width=res,
                    output_type="np",
                ).images[0]
                maps = self.store.maps()[-1]  # the conditional half of the CFG batch
            ids = tokenize(base.tokenizer, [item["prompt"]])
            length = prompt_lengths(ids, base.tokenizer.eos_token_id)[0]
            probs, start = token_probabilities(maps, length, cfg.tas)
            tiles = [(item["cond_global"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)]
            img8 = (np.clip(image, 0, 1) * 255).astype(np.uint8)
            tiles.append(img8)
            for pos in item["indices"]:
                if 0 <= pos - start < probs.shape[-1]:
                    tiles.append(_overlay(img8, probs[..., pos - start].cpu().numpy()))
            out[f"sample_{item['id']}"] = np.concatenate(tiles, axis=1)
        return out

    def controlnet_pipeline(self, model: torch.nn.Module) -> StableDiffusionControlNetPipeline:
        """A stock ``StableDiffusionControlNetPipeline`` on the base parts and the global phi_g."""
        from diffusers import StableDiffusionControlNetPipeline

        base = self.base
        net = model.net_for("global")
        pipe = StableDiffusionControlNetPipeline(
            vae=base.vae,
            text_encoder=base.text_encoder,
            tokenizer=base.tokenizer,
            unet=base.unet,
            controlnet=net,
            scheduler=sampling_scheduler(base.scheduler_config, self.cfg.validation.sampler),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def save(self, model: torch.nn.Module, folder: Path) -> None:
        model.save(folder)
        save_config(config_for_run_folder(self.cfg, folder), Path(folder) / CONFIG_NAME)


def config_for_run_folder(cfg: AttentionHandConfig, folder: str | Path) -> AttentionHandConfig:
    """The config as a run folder stores it: a local base model relative to the folder, so the
    folder (and a base shipped beside it) can be moved; generate resolves it back (base_from_run)."""
    import copy

    from handsynth.diffusion.base import base_for_run

    stored = copy.deepcopy(cfg)
    stored.model.base_model = base_for_run(cfg.model.base_model, folder)
    if getattr(cfg.model, "base_config", None):
        stored.model.base_config = base_for_run(cfg.model.base_config, folder)
    return stored


def _nullctx():
    import contextlib

    return contextlib.nullcontext()


def _overlay(image: np.ndarray, attn: np.ndarray) -> np.ndarray:
    """Heat map of a (h, w) attention map (normalised to its max) blended over ``image``."""
    a = attn / max(float(attn.max()), 1e-8)
    heat = Image.fromarray((a * 255).astype(np.uint8)).resize(image.shape[1::-1], Image.BILINEAR)
    h = np.asarray(heat, dtype=np.float32)[..., None] / 255.0
    colour = np.concatenate([h, np.clip(2 * h - 1, 0, 1), np.clip(1 - 2 * h, 0, 1) * h], axis=-1) * 255
    return (0.5 * image + 0.5 * colour).astype(np.uint8)
