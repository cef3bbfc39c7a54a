"""``handsynth generate --method sesahand``: the trained structural fusion on the frozen base, with HSA.

A checkpoint is the run folder ``handsynth train --method sesahand`` wrote: ``controlnet/`` (the trunk,
a standard diffusers ``ControlNetModel`` reading the fine maps), ``fusion.safetensors`` +
``fusion.json`` (granularity encoders, fusion blocks, their layout) and ``handsynth_config.yaml``
(base model, maps per granularity, HSA settings). Sampling is the shared ControlNet loop (global mode)
with the released-AttentionHand settings (DDIM 20 steps, CFG 9) unless overridden; HSA is on by default
(``--no-hsa`` turns it off, ``--hsa-bias`` overrides beta) and biases the conditional CFG half.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path
from typing import Any

import torch

from handsynth.data.provenance import tree_sha256
from handsynth.diffusion.base import base_from_run
from handsynth.diffusion.hand_bias import install_hand_bias
from handsynth.errors import UserError
from handsynth.methods.baselines.generators import DiffusersBaseline, check_controlnet, load_component_config
from handsynth.methods.interface import (
    GenRequest,
    GenResult,
    SamplingConfig,
    read_run_config,
    require_run_folder,
    sampling_from_args,
)
from handsynth.methods.sampler import ControlNetSampler
from handsynth.methods.sesahand.config import WEIGHTS_DIR, SesaHandConfig
from handsynth.methods.sesahand.data import hand_mask, stack_streams
from handsynth.methods.sesahand.fusion import FUSION_FILE, FUSION_LAYOUT_FILE, StructuralFusion

log = logging.getLogger(__name__)


class SesaHandSampler(ControlNetSampler):
    """The shared ControlNet loop reading every granularity's maps, with HSA around each forward."""

    def __init__(self, *args: Any, stream_maps: dict[str, list[str]], hsa: Any = None, **kw: Any) -> None:
        first = next(iter(stream_maps.values()))[0]
        super().__init__(*args, condition=first, **kw)
        self.stream_maps = stream_maps
        self.hsa = hsa
        self._hsa_inputs: tuple[torch.Tensor, list[list[int]]] | None = None

    def control_tensor(
        self, requests: list[GenRequest], width: int, height: int, local: bool = False
    ) -> torch.Tensor:
        stacks = [stack_streams(r.conditions, self.stream_maps, width, height) for r in requests]
        return torch.stack(stacks).to(device=self.device, dtype=next(self.guidance.parameters()).dtype)

    def _forward(self, latents, t, embeds, control, groups):
        if self._hsa_inputs is None:
            return super()._forward(latents, t, embeds, control, groups)
        masks, indices = self._hsa_inputs
        with self.hsa.conditioning(masks, indices, latent_hw=tuple(latents.shape[-2:]), timesteps=t):
            return super()._forward(latents, t, embeds, control, groups)

    @torch.no_grad()
    def __call__(self, requests: list[GenRequest]) -> list[GenResult]:
        if self.hsa is not None:
            w, h = requests[0].width, requests[0].height
            masks = torch.stack([hand_mask(r.conditions, w, h) for r in requests]).to(self.device)
            self._hsa_inputs = (masks, [list(r.item.hand_token_indices) for r in requests])
        try:
            return super().__call__(requests)
        finally:
            self._hsa_inputs = None


class SesaHandGenerator(DiffusersBaseline):
    """``--method sesahand``: loads the fusion module and its training config from a run folder."""

    name = "sesahand"
    module_class = "StructuralFusion"

    def __init__(
        self,
        checkpoint: Any = None,
        base_model: Any = None,
        sampling: SamplingConfig | None = None,
        conditioning_scale: float = 1.0,
        hsa: bool = True,
        hsa_bias: float | None = None,
        train_config: SesaHandConfig | None = None,
    ) -> None:
        if isinstance(checkpoint, (str, Path)):
            train_config = self._read_config(checkpoint)
        self.train_cfg = (train_config or SesaHandConfig()).check()
        base_config = None
        if base_model is None:
            base_model, base_config = self.train_cfg.model.base_model, self.train_cfg.model.base_config
            if isinstance(checkpoint, (str, Path)):  # a local base is stored relative to the run folder
                base_model = base_from_run(base_model, checkpoint)
                base_config = base_from_run(base_config, checkpoint) if base_config else None
        self.stream_maps = self.train_cfg.stream_maps()
        names = self.train_cfg.map_names()
        super().__init__(checkpoint, base_model, sampling, names[0], conditioning_scale)
        self.base_config = base_config
        self.maps = tuple(names)
        self.hsa_config = self.train_cfg.hsa.to_hsa()
        self.hsa_config.enabled = bool(hsa)
        if hsa_bias is not None:
            self.hsa_config.bias = float(hsa_bias)
        self.hsa = None
        self._warned_empty = False

    @staticmethod
    def _read_config(checkpoint: str | Path) -> SesaHandConfig:
        parts = (f"{WEIGHTS_DIR}/", FUSION_FILE, FUSION_LAYOUT_FILE)
        return read_run_config(checkpoint, SesaHandConfig, "sesahand", "SesaHand", parts)

    def module_config(self) -> dict:
        if self.module is not None:
            return dict(self.module.controlnet.config)
        from diffusers import ControlNetModel

        if self.checkpoint is None:
            raise UserError("--method sesahand needs --checkpoint (the folder `handsynth train` wrote)")
        return load_component_config(
            ControlNetModel, str(Path(str(self.checkpoint)) / WEIGHTS_DIR), "checkpoint"
        )

    def check_module(self, cfg: dict, unet: dict) -> None:
        check_controlnet(self, cfg, unet)

    def checkpoint_sha256(self) -> str | None:
        if isinstance(self.checkpoint, (str, Path)) and self._sha is None:
            folder = Path(str(self.checkpoint)).expanduser()
            parts = [tree_sha256(folder / WEIGHTS_DIR)]
            parts += [
                hashlib.sha256((folder / n).read_bytes()).hexdigest()
                for n in (FUSION_FILE, FUSION_LAYOUT_FILE)
            ]
            self._sha = "+".join(parts)
        return super().checkpoint_sha256()

    def fingerprint(self) -> dict:
        fp = super().fingerprint()
        hsa = self.hsa_config
        fp.update(
            condition=None,
            maps={g: list(m) for g, m in self.stream_maps.items()},
            hsa={"bias": hsa.bias, "mask": hsa.mask, "schedule": hsa.schedule, "cfg_uncond": hsa.cfg_uncond}
            if hsa.enabled
            else None,
        )
        return fp

    def load(self, device: torch.device) -> None:
        if self.module is None:
            self.module = StructuralFusion.load(Path(str(self.checkpoint)).expanduser())
        super().load(device)  # the module is set: the shared load only moves it
        if self.hsa_config.enabled:
            nets = {"unet": self.base.unet, "controlnet": self.module.controlnet}
            self.hsa = install_hand_bias(nets, self.hsa_config)
            for name, beta in self.module.hsa_betas.items():  # learned per-layer betas of the run
                if name in self.hsa.betas:
                    self.hsa.betas[name].data.copy_(beta)
        self.sampler = SesaHandSampler(
            self.base,
            self.module,
            self.scheduler,
            self.sampling,
            stream_maps=self.stream_maps,
            hsa=self.hsa,
            conditioning_scale=self.conditioning_scale,
        )

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        empty = [r.item.sample.id for r in requests if not r.prompt.strip()]
        if self.hsa is not None and empty and not self._warned_empty:
            self._warned_empty = True
            log.warning("record %s has an empty prompt: no hand tokens, so HSA does nothing for it", empty[0])
        return self.sampler(requests)


def from_args(args: argparse.Namespace) -> SesaHandGenerator:
    """``handsynth generate --method sesahand`` (registered in :mod:`handsynth.methods.registry`)."""
    require_run_folder(args, "sesahand")
    return SesaHandGenerator(
        args.checkpoint,
        base_model=args.base_model,
        sampling=sampling_from_args(args),
        conditioning_scale=args.conditioning_scale,
        hsa=not args.no_hsa,
        hsa_bias=args.hsa_bias,
    )
