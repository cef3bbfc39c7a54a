"""The settings of a HandBooster run (``handsynth train --method handbooster``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from handsynth.diffusion.training import TrainConfig
from handsynth.errors import UserError
from handsynth.methods.handbooster.options import RELEASED_SPACING, SPACINGS

UNET_DIR = "unet"  # save_pretrained folder of the UNet2DModel inside a run folder
ORIENTATION_FILE = "orientation.safetensors"  # the orientation encoder + its learned null vector

# Condition map -> input channels (HandBooster Table 5's rows are changes of `conditions`, not code).
CONDITION_CHANNELS = {"normal": 3, "texture": 3, "mesh": 3, "skeleton": 3, "depth": 1, "seg": 1}


@dataclass
class ModelConfig:
    sample_size: int = 128  # the crop side the UNet generates (paper: 128)
    block_out_channels: list[int] = field(default_factory=lambda: [64, 128, 256, 512])
    layers_per_block: int = 2
    # full (default): diffusers' self-attention at the two lowest resolutions + the mid block, the
    # standard DDPM layout; linear: the released code's linear attention at every level (full in the mid
    # block), cheaper at high resolution; none: no attention.
    attention: Literal["full", "linear", "none"] = "full"
    # channels per head (UNet2DModel: heads = width // this). 32 = the released code's dim_head; 8 made
    # the tiny model's training step 2.4x slower on the CPU (thin heads are slow in CPU attention kernels).
    attention_head_dim: int = 32
    norm_num_groups: int = 32
    conditions: list[str] = field(default_factory=lambda: ["normal", "texture"])  # concatenated in order


@dataclass
class OrientationConfig:
    enabled: bool = True  # false: Table 5 row (e), no orientation input
    inject: Literal["add", "concat"] = "add"  # added to the time embedding, or beside it (released)
    drop_prob: float = 0.5  # a learned null vector replaces the orientation (classifier-free guidance)


@dataclass
class LossConfig:
    type: Literal["l2", "l1"] = "l2"  # paper Eq. 2: squared error; the released code uses l1
    background_weight: float = 0.1  # weight w outside the hand and object (seg map); 1 inside
    min_snr_gamma: float | None = None  # clamp the SNR weight (off: the paper's plain SNR weighting)


@dataclass
class DataConfig:
    crop_expand: float = 1.5  # square crop side = expand x the hand box's longer side
    mirror_left: bool = True  # left hands are mirrored into right hands (generation flips back)
    max_samples: int | None = None
    # A crop's condition maps: "render" (paper) draws them for the crop box at condition_size² and
    # resizes them to model.sample_size, sharp however small the hand is in the photo (needs OpenGL
    # and records whose hands and objects can be posed); "stored" cuts them out of the record's stored
    # full-image maps (no OpenGL; blurry when the hand covers few pixels).
    conditions_from: Literal["render", "stored"] = "render"
    condition_size: int = 256  # the paper's render size
    mano_dir: str | None = None  # MANO folder, for rendering records of hand model mano
    # Training items (photo crop, condition maps, weight map) kept in memory up to this many MiB per
    # data process: an item is a pure function of its record, and rendering + decoding it was ~27 % of a
    # micro training step (benchmarks/results/data_cache.md). 0: rebuild every draw.
    cache_mb: float = 1024.0


@dataclass
class ScheduleConfig:
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"


@dataclass
class ValidationConfig:
    num_samples: int = 2
    num_inference_steps: int = 50
    guidance_scale: float = 3.0
    eta: float = 1.0
    seed: int = 0
    # the sampler's timesteps (as ``generate --timestep-spacing``): the released trailing spacing's last
    # model call is at t = 1000/steps - 1, so a sheet drawn in a few steps shows that step's noise
    timestep_spacing: str = RELEASED_SPACING


def paper_train_config() -> TrainConfig:
    """The paper's optimiser (Sec. 4.1): Adam (0.9, 0.99), lr 8e-5, clip 1, EMA 0.995 every 10 steps,
    with the released trainer's EMA warm-up (ema_pytorch: a copy for 100 steps, then a ramp)."""
    return TrainConfig(
        learning_rate=8e-5,
        adam_beta1=0.9,
        adam_beta2=0.99,
        adam_weight_decay=0.0,
        max_grad_norm=1.0,
        ema=True,
        ema_decay=0.995,
        ema_update_every=10,
        ema_warmup="ema_pytorch",
    )


@dataclass
class HandBoosterConfig:
    method: str = "handbooster"
    model: ModelConfig = field(default_factory=ModelConfig)
    orientation: OrientationConfig = field(default_factory=OrientationConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=lambda: paper_train_config())
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def check(self) -> HandBoosterConfig:
        """Reject inconsistent settings before anything is loaded or written."""
        m = self.model
        unknown = [c for c in m.conditions if c not in CONDITION_CHANNELS]
        if unknown or not m.conditions or len(set(m.conditions)) != len(m.conditions):
            raise UserError(
                f"model.conditions must list distinct maps from {', '.join(CONDITION_CHANNELS)}, "
                f"got {m.conditions}"
            )
        down = 2 ** (len(m.block_out_channels) - 1)
        if m.sample_size % down:
            raise UserError(
                f"model.sample_size {m.sample_size} must be a multiple of {down} (the UNet's levels)"
            )
        if any(c % m.norm_num_groups for c in m.block_out_channels):
            raise UserError(
                f"model.block_out_channels {m.block_out_channels} must be multiples of "
                f"model.norm_num_groups ({m.norm_num_groups})"
            )
        if self.validation.timestep_spacing not in SPACINGS:
            raise UserError(
                f"validation.timestep_spacing {self.validation.timestep_spacing!r} is unknown; choose from "
                f"{', '.join(SPACINGS)}"
            )
        if not 0 <= self.orientation.drop_prob <= 1:
            raise UserError(f"orientation.drop_prob must lie in [0, 1], got {self.orientation.drop_prob}")
        if not self.loss.background_weight >= 0:
            raise UserError(f"loss.background_weight must be >= 0, got {self.loss.background_weight}")
        if self.data.crop_expand < 1:
            raise UserError(f"data.crop_expand must be at least 1, got {self.data.crop_expand}")
        if self.data.conditions_from == "render" and not self.data.condition_size >= m.sample_size:
            raise UserError(
                f"data.condition_size {self.data.condition_size} must be at least model.sample_size "
                f"{m.sample_size} (maps rendered smaller would be blown up, not sharp)"
            )
        return self

    def in_channels(self) -> int:
        """RGB + every configured condition map's channels."""
        return 3 + sum(CONDITION_CHANNELS[c] for c in self.model.conditions)

    def scheduler_config(self) -> dict:
        """The DDPM schedule of training and sampling (x0 prediction, clipped to [-1, 1])."""
        s = self.schedule
        return {
            "num_train_timesteps": s.num_train_timesteps,
            "beta_start": s.beta_start,
            "beta_end": s.beta_end,
            "beta_schedule": s.beta_schedule,
            "prediction_type": "sample",
            "clip_sample": True,
        }
