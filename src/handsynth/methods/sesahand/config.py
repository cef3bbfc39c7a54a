"""The settings of a SesaHand run (``handsynth train --method sesahand``); docs/sesahand.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from handsynth.diffusion.hand_bias import HSAConfig
from handsynth.diffusion.tas import TASConfig
from handsynth.diffusion.training import TrainConfig
from handsynth.errors import UserError
from handsynth.methods.attentionhand.training import (  # same released sampler settings, same TAS
    ValidationConfig,
    check_tas,
)
from handsynth.methods.sesahand.fusion import GRANULARITIES, FusionConfig
from handsynth.render.maps import check_maps

WEIGHTS_DIR = "controlnet"  # the trunk as a diffusers ControlNetModel; fusion.safetensors beside it
# Which condition maps make up each granularity (channel-stacked in this order).
DEFAULT_MAPS = {"fine": ["mesh", "seg"], "mid": ["skeleton"], "coarse": ["body"]}


@dataclass
class HSASection(HSAConfig):
    """``hsa.*``: :class:`~handsynth.diffusion.hand_bias.HSAConfig`, checked by :meth:`SesaHandConfig.check`
    (so a bad value is one config error, not a traceback while the file is read)."""

    def __post_init__(self) -> None:
        pass

    def to_hsa(self) -> HSAConfig:
        return HSAConfig(**asdict(self))


@dataclass
class ModelConfig:
    base_model: str = "tiny"  # 'tiny', a local diffusers SD folder, or a hub id (online)
    base_config: str | None = None  # a single-file base's diffusers folder or original .yaml
    resolution: int = 512
    maps: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_MAPS.items()})
    conditioning_embedding_out_channels: list[int] | None = None  # None: diffusers' (16, 32, 96, 256)
    local_branch: bool = False  # AttentionHand's local branch (not built for SesaHand yet)


@dataclass
class DataConfig:
    # Where the prompt comes from: `prompt` (run `handsynth caption --cot` first) or `caption` (the
    # record's plain/verbose caption: the w/o-CoT ablation).
    prompt_field: Literal["prompt", "caption"] = "prompt"
    max_samples: int | None = None
    empty_prompt_prob: float = 0.0  # share of training prompts replaced by "" (0: none, as AttentionHand)


@dataclass
class SesaHandConfig:
    method: str = "sesahand"
    model: ModelConfig = field(default_factory=ModelConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    hsa: HSASection = field(default_factory=HSASection)
    # AttentionHand's text attention stage on the training latents (off: SesaHand's own reading has
    # none; the micro suite's `sesahand_hsa_tas` row turns it on with HSA off: "HSA replaced by TAS").
    tas: TASConfig = field(default_factory=lambda: TASConfig(enabled=False))
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_grad_norm=0.0))
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def check(self) -> SesaHandConfig:
        """Reject inconsistent settings before anything is loaded or written."""

        self.fusion.check()
        try:
            self.hsa.to_hsa()
        except ValueError as err:
            raise UserError(str(err)) from None
        check_tas(self.tas)
        if self.model.resolution % 64:
            raise UserError(f"model.resolution must be a multiple of 64, got {self.model.resolution}")
        if self.model.local_branch:
            raise UserError(
                "model.local_branch=true is not built for SesaHand yet; use --method attentionhand for "
                "the local branch"
            )
        maps = self.model.maps
        unknown = sorted(set(maps) - set(GRANULARITIES))
        if unknown:
            raise UserError(f"model.maps has unknown granularities {unknown}; use {list(GRANULARITIES)}")
        for g in self.fusion.active_granularities():
            if not maps.get(g):
                raise UserError(f"model.maps.{g} must list the condition maps of the {g} granularity")
            check_maps(maps[g])
        names = self.map_names()
        if len(set(names)) != len(names):
            raise UserError(f"model.maps lists a condition map twice: {names}")
        if not 0.0 <= self.data.empty_prompt_prob <= 1.0:
            raise UserError(f"data.empty_prompt_prob must be in [0, 1], got {self.data.empty_prompt_prob}")
        return self

    def stream_maps(self) -> dict[str, list[str]]:
        """Granularity -> its maps, for the granularities the model reads, in stacking order."""
        return {g: list(self.model.maps[g]) for g in self.fusion.active_granularities()}

    def map_names(self) -> list[str]:
        """Every map the model reads, in channel order."""
        return [m for maps in self.stream_maps().values() for m in maps]
