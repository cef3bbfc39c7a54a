"""``handsynth generate --method uni-controlnet``: the trained local adapter on the frozen base.

A checkpoint is the run folder ``handsynth train --method uni-controlnet`` wrote: ``uni_controlnet/``
(the adapter: config.json + safetensors) and ``handsynth_config.yaml`` (base model, the condition maps
in channel order, the missing-map policy). Sampling is our ControlNet loop (global mode): the adapter
returns the same residuals as a ControlNet, and classifier-free guidance keeps the condition maps in
the unconditional half, as the released code does.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from handsynth.config import CONFIG_NAME
from handsynth.data.provenance import tree_sha256
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
from handsynth.methods.uni_controlnet.config import WEIGHTS_DIR, UniControlNetConfig
from handsynth.methods.uni_controlnet.data import stack_maps


class UniControlSampler(ControlNetSampler):
    """Our ControlNet loop reading every configured map of a request, channel-concatenated."""

    def __init__(self, *args: Any, maps: list[str], missing_maps: str = "error", **kw: Any) -> None:
        super().__init__(*args, condition=maps[0], **kw)
        self.maps = list(maps)
        self.missing_maps = missing_maps

    def control_tensor(
        self, requests: list[GenRequest], width: int, height: int, local: bool = False
    ) -> torch.Tensor:
        stacks = [
            stack_maps(
                r.local_conditions if local else r.conditions,
                self.maps,
                width,
                height,
                self.missing_maps,
                r.item.sample.id,
            )
            for r in requests
        ]
        return torch.stack(stacks).to(device=self.device, dtype=next(self.guidance.parameters()).dtype)


class UniControlNetGenerator(DiffusersBaseline):
    """``--method uni-controlnet``: loads the adapter and its training config from a run folder."""

    name = "uni-controlnet"
    module_class = "UniControlAdapter"

    def __init__(
        self,
        checkpoint: Any = None,
        base_model: Any = None,
        sampling: SamplingConfig | None = None,
        conditioning_scale: float = 1.0,
        train_config: UniControlNetConfig | None = None,
    ) -> None:
        if isinstance(checkpoint, (str, Path)):
            train_config = self._read_config(checkpoint)
        self.train_cfg = train_config or UniControlNetConfig()
        model_cfg = self.train_cfg.model
        base_config = None
        if base_model is None:
            base_model, base_config = model_cfg.base_model, model_cfg.base_config
            if isinstance(checkpoint, (str, Path)):  # a local base is stored relative to the run folder
                from handsynth.diffusion.base import base_from_run

                base_model = base_from_run(base_model, checkpoint)
                base_config = base_from_run(base_config, checkpoint) if base_config else None
        super().__init__(checkpoint, base_model, sampling, model_cfg.maps[0], conditioning_scale)
        self.base_config = base_config
        self.map_names = list(model_cfg.maps)
        self.maps = tuple(self.map_names)
        self.missing_maps = model_cfg.missing_maps
        # zero-fill: the job may pass records without some maps (they become zeros here)
        self.optional_maps = self.maps if self.missing_maps == "zero" else ()

    @staticmethod
    def _read_config(checkpoint: str | Path) -> UniControlNetConfig:
        return read_run_config(
            checkpoint, UniControlNetConfig, "uni-controlnet", "Uni-ControlNet", (f"{WEIGHTS_DIR}/",)
        )

    def module_config(self) -> dict:
        if self.module is not None:
            return dict(self.module.config)
        from handsynth.methods.uni_controlnet.adapter import UniControlAdapter

        if self.checkpoint is None:
            raise UserError("--method uni-controlnet needs --checkpoint (the folder `handsynth train` wrote)")
        return load_component_config(
            UniControlAdapter, str(Path(str(self.checkpoint)) / WEIGHTS_DIR), "checkpoint"
        )

    def check_module(self, cfg: dict, unet: dict) -> None:
        check_controlnet(self, cfg.get("unet_config") or {}, unet)
        if list(cfg.get("maps", self.map_names)) != self.map_names:
            raise UserError(
                f"checkpoint {self.checkpoint}: the adapter reads maps {cfg.get('maps')} but its "
                f"{CONFIG_NAME} lists {self.map_names}; the run folder is inconsistent"
            )

    def checkpoint_sha256(self) -> str | None:
        if isinstance(self.checkpoint, (str, Path)) and self._sha is None:
            self._sha = tree_sha256(Path(str(self.checkpoint)).expanduser() / WEIGHTS_DIR)
        return super().checkpoint_sha256()

    def fingerprint(self) -> dict:
        fp = super().fingerprint()
        fp.update(condition=None, maps=self.map_names, missing_maps=self.missing_maps)
        return fp

    def load(self, device: torch.device) -> None:
        from handsynth.methods.uni_controlnet.adapter import UniControlAdapter

        if self.module is None:
            path = Path(str(self.checkpoint)).expanduser() / WEIGHTS_DIR
            self.module = UniControlAdapter.from_pretrained(str(path))
        super().load(device)  # the module is set: the shared load only moves it
        self.sampler = UniControlSampler(
            self.base,
            self.module,
            self.scheduler,
            self.sampling,
            maps=self.map_names,
            missing_maps=self.missing_maps,
            conditioning_scale=self.conditioning_scale,
        )

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        return self.sampler(requests)


def from_args(args: argparse.Namespace) -> UniControlNetGenerator:
    """``handsynth generate --method uni-controlnet`` (registered in :mod:`handsynth.methods.registry`)."""
    require_run_folder(args, "uni-controlnet")
    return UniControlNetGenerator(
        args.checkpoint,
        base_model=args.base_model,
        sampling=sampling_from_args(args),
        conditioning_scale=args.conditioning_scale,
    )
