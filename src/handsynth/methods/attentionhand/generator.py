"""AttentionHand inference: the trained guidance module φ_g on the frozen base, in our ControlNet loop.

A checkpoint is the folder ``handsynth train --method attentionhand`` writes: ``controlnet/`` (φ_g,
shared by both branches; or the global net), ``controlnet_local/`` (only with separate weights) and
``handsynth_config.yaml`` (base model, condition map, TAS settings). Modes:

- ``global``: the released code's inference (DDIM 20 steps, CFG 9.0, global mesh image only);
- ``global+local``: the hand crop is denoised together with the global image (one batched forward
  through the shared weights) and blended back into the hand box after every step.

TAS at inference (off by default) updates the latents during the first steps, A&E-style.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from handsynth.config import load_config
from handsynth.data.provenance import tree_sha256
from handsynth.diffusion.controlnet import GuidanceModule
from handsynth.diffusion.tas import TASConfig, TASInferenceConfig
from handsynth.errors import UserError
from handsynth.methods.attentionhand.training import CONFIG_NAME, AttentionHandConfig
from handsynth.methods.baselines.generators import DiffusersBaseline, check_controlnet, load_component_config
from handsynth.methods.interface import GenRequest, GenResult, SamplingConfig, sampling_from_args
from handsynth.methods.sampler import MODES, ControlNetSampler, LocalBlend, TASOptions


def parse_thresholds(text: str) -> dict[int, float]:
    """``"0:0.05,10:0.5,20:0.8"`` -> {0: 0.05, 10: 0.5, 20: 0.8} (step index: target max attention)."""
    out = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            k, v = part.split(":")
            out[int(k)] = float(v)
        except ValueError:
            raise UserError(
                f"--tas-thresholds {text!r}: expected STEP:VALUE pairs like 0:0.05,10:0.5"
            ) from None
        if not 0 <= out[int(k)] <= 1:
            raise UserError(f"--tas-thresholds {text!r}: values must lie in [0, 1]")
    return out


class AttentionHandGenerator(DiffusersBaseline):
    """``--method attentionhand``: loads φ_g (and its config) from a training run folder.

    Built from the shared diffusers parts (base, tokenizer, fingerprint) plus the shared ControlNet loop
    and checks, like the ``controlnet`` baseline, so the two differ only by the trained module.
    """

    name = "attentionhand"
    module_class = "ControlNetModel"

    def __init__(
        self,
        checkpoint: Any = None,
        base_model: Any = None,
        sampling: SamplingConfig | None = None,
        mode: str = "global",
        local_blend: float = 0.5,
        tas: bool = False,
        tas_steps: int = 25,
        tas_thresholds: dict[int, float] | None = None,
        tas_iterations: int = 20,
        condition: str | None = None,
        conditioning_scale: float = 1.0,
    ) -> None:
        if mode not in MODES:
            raise UserError(f"--mode {mode!r} is unknown; choose from {', '.join(MODES)}")
        if not 0 <= tas_iterations <= 20:
            raise UserError(f"--tas-iterations must be between 0 and 20, got {tas_iterations}")
        if not 0 <= local_blend <= 1:
            raise UserError(f"--local-blend must be between 0 and 1, got {local_blend}")
        from handsynth.diffusion.base import base_from_run
        from handsynth.diffusion.embedded import resolve_checkpoint

        checkpoint = resolve_checkpoint(checkpoint) if isinstance(checkpoint, str) else checkpoint
        self.train_cfg = self._read_config(checkpoint) if isinstance(checkpoint, (str, Path)) else None
        model_cfg = self.train_cfg.model if self.train_cfg is not None else None
        base_config = None
        if base_model is None:  # a local base in the run's config is relative to the run folder
            base_model = base_from_run(model_cfg.base_model, checkpoint) if model_cfg is not None else "tiny"
            if model_cfg is not None and model_cfg.base_config:
                base_config = base_from_run(model_cfg.base_config, checkpoint)
        condition = condition or (model_cfg.condition if model_cfg is not None else "mesh")
        super().__init__(checkpoint, base_model, sampling, condition, conditioning_scale)
        self.base_config = base_config
        self.mode = mode
        self.needs_local = mode == "global+local"
        self.local_blend = local_blend
        self.tas_inference = TASInferenceConfig(
            enabled=tas,
            max_steps=tas_steps,
            thresholds=tas_thresholds if tas_thresholds is not None else {0: 0.05, 10: 0.5, 20: 0.8},
            max_refinement_iterations=tas_iterations,
        )

    @staticmethod
    def _read_config(checkpoint: str | Path) -> AttentionHandConfig:
        folder = Path(checkpoint).expanduser()
        if not folder.is_dir():
            raise UserError(
                f"checkpoint {checkpoint} does not exist: pass the folder `handsynth train` wrote"
            )
        if not (folder / CONFIG_NAME).is_file():
            raise UserError(
                f"checkpoint {checkpoint} has no {CONFIG_NAME}: it is not an AttentionHand run folder "
                "(for a plain diffusers ControlNet use --method controlnet)"
            )
        return load_config(AttentionHandConfig, folder / CONFIG_NAME)

    def _net_folders(self) -> dict[str, Path]:
        folder = Path(str(self.checkpoint))
        nets = {"shared": folder / "controlnet"}
        if (folder / "controlnet_local").is_dir():
            nets = {"global": folder / "controlnet", "local": folder / "controlnet_local"}
        return nets

    def module_config(self) -> dict:
        if self.module is not None:
            net = next(iter(self.module.nets.values())) if hasattr(self.module, "nets") else self.module
            return dict(net.config)
        from diffusers import ControlNetModel

        path = self._net_folders()["shared" if "shared" in self._net_folders() else "global"]
        if not (path / "config.json").is_file():
            raise UserError(f"checkpoint {self.checkpoint} has no {path.name}/config.json (φ_g weights)")
        return load_component_config(ControlNetModel, str(path), "checkpoint")

    def check_module(self, cfg: dict, unet: dict) -> None:
        check_controlnet(self, cfg, unet)

    def check_size(self, width: int, height: int, where: str) -> None:
        super().check_size(width, height, where)
        if self.needs_local and width != height:
            raise UserError(
                f"{where}: --mode global+local needs square images, got {width}x{height}; pass --size"
            )

    def checkpoint_sha256(self) -> str | None:
        """sha256 of φ_g's folder (``global+local`` hashes when the local branch has its own net)."""
        if not isinstance(self.checkpoint, (str, Path)):
            return super().checkpoint_sha256()
        if self._sha is None:
            self._sha = "+".join(tree_sha256(p) for p in self._net_folders().values())
        return self._sha

    def fingerprint(self) -> dict:
        fp = super().fingerprint()
        fp.update(
            mode=self.mode,
            local_blend=self.local_blend if self.needs_local else None,
            tas=asdict(self.tas_inference) if self.tas_inference.enabled else None,
            tas_stage=asdict(self.train_cfg.tas) if self.tas_inference.enabled and self.train_cfg else None,
        )
        if fp["tas"] is not None:
            fp["tas"]["thresholds"] = {str(k): v for k, v in fp["tas"]["thresholds"].items()}
        return fp

    def load(self, device: torch.device) -> None:
        from diffusers import ControlNetModel

        if self.module is None:
            from handsynth.methods.baselines.generators import _variant_of

            nets = {
                k: ControlNetModel.from_pretrained(str(p), variant=_variant_of(str(p), self.variant))
                for k, p in self._net_folders().items()
            }
            self.module = GuidanceModule(nets)
        super().load(device)  # the module is set: the shared load only moves it
        stage = self.train_cfg.tas if self.train_cfg is not None else TASConfig()
        self.sampler = ControlNetSampler(
            self.base,
            self.module,
            self.scheduler,
            self.sampling,
            condition=self.condition,
            conditioning_scale=self.conditioning_scale,
            mode=self.mode,
            local_blend=LocalBlend(self.local_blend),
            tas=TASOptions(stage, self.tas_inference),
        )

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        return self.sampler(requests)


def from_args(args: argparse.Namespace) -> AttentionHandGenerator:
    """``handsynth generate --method attentionhand`` (registered in :mod:`handsynth.methods.registry`)."""
    if args.checkpoint is None:
        raise UserError(
            "--method attentionhand needs --checkpoint: the folder `handsynth train` wrote, or `default` "
            "for the embedded 64 px model"
        )
    return AttentionHandGenerator(
        args.checkpoint,
        base_model=args.base_model,
        sampling=sampling_from_args(args),
        mode=args.mode,
        local_blend=args.local_blend,
        tas=args.tas,
        tas_steps=args.tas_steps,
        tas_thresholds=parse_thresholds(args.tas_thresholds),
        tas_iterations=args.tas_iterations,
        condition=args.condition,
        conditioning_scale=args.conditioning_scale,
    )
