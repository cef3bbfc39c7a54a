"""The settings of a Uni-ControlNet run (``handsynth train --method uni-controlnet``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from handsynth.diffusion.training import TrainConfig
from handsynth.errors import UserError

WEIGHTS_DIR = "uni_controlnet"  # save_pretrained folder inside a run folder: config.json + safetensors
# The released SD-1.5 adapter's feature widths per UNet level (configs/local_v15.yaml, inject_channels).
RELEASED_INJECT_CHANNELS = [192, 256, 384, 512]
SD15_BLOCK_OUT_CHANNELS = [320, 640, 1280, 1280]


@dataclass
class ModelConfig:
    base_model: str = "tiny"  # 'tiny', a local diffusers SD folder, a single file, or a hub id (online)
    base_config: str | None = None  # a single-file base's diffusers folder or original .yaml
    resolution: int = 512
    # The local conditions, concatenated along channels in this order (released code: 7 maps).
    maps: list[str] = field(default_factory=lambda: ["mesh", "seg"])
    # A record without one of `maps`: 'error' (one sentence naming it) or 'zero' (a zero map, as the
    # released code feeds for a condition that is not given).
    missing_maps: Literal["error", "zero"] = "error"
    # Feature widths of the multi-scale injection network per UNet level; None: the released values on
    # an SD-1.x UNet, else each level's block_out_channels.
    inject_channels: list[int] | None = None
    stem_channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # released pre-extractor


@dataclass
class DataConfig:
    # The released training recipe (configs/local_v15.yaml): text and condition dropout.
    drop_text_prob: float = 0.5
    keep_all_maps_prob: float = 0.1
    drop_all_maps_prob: float = 0.1
    drop_each_map_prob: float = 0.5
    max_samples: int | None = None


@dataclass
class ValidationConfig:
    num_samples: int = 1
    num_inference_steps: int = 20
    guidance_scale: float = 9.0
    sampler: str = "ddim"
    seed: int = 0


@dataclass
class UniControlNetConfig:
    method: str = "uni-controlnet"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def check(self) -> UniControlNetConfig:
        """Reject inconsistent settings before anything is loaded or written."""
        from handsynth.render.maps import check_maps

        if not self.model.maps or len(set(self.model.maps)) != len(self.model.maps):
            raise UserError(f"model.maps must list distinct condition maps, got {self.model.maps}")
        check_maps(self.model.maps)
        if self.model.resolution % 64:
            raise UserError(f"model.resolution must be a multiple of 64, got {self.model.resolution}")
        d = self.data
        for name in ("drop_text_prob", "keep_all_maps_prob", "drop_all_maps_prob", "drop_each_map_prob"):
            if not 0 <= getattr(d, name) <= 1:
                raise UserError(f"data.{name} must lie in [0, 1], got {getattr(d, name)}")
        if d.keep_all_maps_prob + d.drop_all_maps_prob > 1:
            raise UserError("data.keep_all_maps_prob + data.drop_all_maps_prob must not exceed 1")
        if not self.model.stem_channels:
            raise UserError("model.stem_channels must list at least one width")
        return self
