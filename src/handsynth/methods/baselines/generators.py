"""The paper's baselines under ``handsynth generate``: ``sd`` (text only), ``controlnet`` (global mesh
image, no TAS; any diffusers ControlNet checkpoint) and ``t2i-adapter`` (a diffusers T2IAdapter).

``sd`` and ``t2i-adapter`` run diffusers' own pipelines; ``controlnet`` runs our ControlNet loop
(:mod:`handsynth.methods.sampler`), which equals ``StableDiffusionControlNetPipeline`` in ``global``
mode and is the loop AttentionHand shares, so the two differ only by the trained module. Prompts are
encoded by us (OpenAI's text cleaning, exact SD ids) and the initial noise is drawn per sample from its
seed, so the same seed gives the same noise under every method.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

import torch

from handsynth.data.provenance import base_fingerprint, module_sha256, tree_sha256
from handsynth.diffusion.base import (
    base_config_folder,
    base_unet_config,
    is_single_file,
    load_base,
    resolve_base,
    single_file_config,
)
from handsynth.errors import UserError
from handsynth.methods.interface import (
    GenerationMethod,
    GenRequest,
    GenResult,
    SamplingConfig,
    encode_prompts,
    generators,
    latent_shape,
    make_scheduler,
    sampling_from_args,
    torch_dtype,
)
from handsynth.methods.sampler import ControlNetSampler
from handsynth.render.maps import check_maps
from handsynth.text.tokenizer import clip_tokenizer

DEFAULT_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # hub id; pass a local folder offline


def load_component_config(cls: Any, path: str, what: str, subfolder: str | None = None) -> dict:
    """A model's config.json (no weights), with a clear error when the checkpoint is missing."""
    p = Path(path).expanduser()
    looks_local = p.exists() or path.startswith((".", "/", "~")) or path.count("/") != 1
    if looks_local and not p.exists():
        raise UserError(f"{what} {path} does not exist; pass a diffusers folder (or a hub id when online)")
    try:
        return dict(cls.load_config(str(p) if looks_local else path, subfolder=subfolder))
    except (OSError, ValueError) as err:
        if not looks_local:  # a hub id: offline, or not in the local cache
            raise UserError(
                f"{what} {path} is not available on this machine (a hub id, not in the local cache; offline?): "
                "download it with `hf download` and pass the folder, or use --base-model tiny"
            ) from None
        raise UserError(
            f"{what} {path} has no readable diffusers config ({type(err).__name__}: {err})"
        ) from None


def _variant_of(path: str, preferred: str | None) -> str | None:
    """The weight variant of a local module folder (None for hub ids: diffusers' own default)."""
    from handsynth.diffusion.base import weight_variant

    return weight_variant(path, preferred) if Path(path).is_dir() else preferred


def _move(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move only what differs (diffusers warns on every ``.to(dtype=...)``, even a no-op one)."""
    p = next(module.parameters())
    if p.device != device:
        module.to(device)
    if p.dtype != dtype:
        module.to(dtype)
    return module


class DiffusersBaseline(GenerationMethod):
    """Shared parts of the baselines: base loading, the tokenizer, fingerprints, noise and prompts.

    ``base_model`` is ``tiny``, a diffusers SD folder / hub id, or a loaded ``BaseModel``;
    ``checkpoint`` a folder / hub id, or a module built in code (tests, benchmarks).
    """

    module_class: str = ""  # diffusers class name the checkpoint must be
    variant: str | None = None  # diffusers weight variant (--variant fp16); found for variant-only folders
    base_config: str | None = None  # a single-file base's configuration (--base-config)

    def __init__(
        self,
        checkpoint: Any = None,
        base_model: Any = "tiny",
        sampling: SamplingConfig | None = None,
        condition: str = "mesh",
        conditioning_scale: float = 1.0,
    ) -> None:
        self.checkpoint = checkpoint
        self.base_model = base_model
        self.sampling = (sampling or SamplingConfig()).check()
        self.condition = check_maps(condition)[0]
        self.maps = (condition,) if self.module_class else ()
        self.conditioning_scale = conditioning_scale
        self.base = base_model if not isinstance(base_model, str) else None
        self.module = checkpoint if isinstance(checkpoint, torch.nn.Module) else None
        self._base_path: str | None = None
        self._unet_config: dict | None = None
        self._tokenizer = None
        self._sha: str | None = None
        self.device = torch.device("cpu")

    # -- validation (configs only) -----------------------------------------------------------------
    def base_path(self) -> str:
        if self._base_path is None:
            self._base_path = resolve_base(self.base_model, self.base_config)
        return self._base_path

    def unet_config(self) -> dict:
        if self._unet_config is None:
            if self.base is not None:
                self._unet_config = dict(self.base.unet.config)
            elif is_single_file(self.base_path()):
                self._unet_config = base_unet_config(self.base_path(), self.base_config)
            else:
                from diffusers import UNet2DConditionModel

                self._unet_config = load_component_config(
                    UNet2DConditionModel, self.base_path(), "base model", subfolder="unet"
                )
        return self._unet_config

    def module_config(self) -> dict:
        if self.module is not None:
            return dict(self.module.config)
        if self.checkpoint is None:
            raise UserError(
                f"--method {self.name} needs --checkpoint (a diffusers {self.module_class} folder)"
            )
        import diffusers

        cfg = load_component_config(getattr(diffusers, self.module_class), str(self.checkpoint), "checkpoint")
        kind = cfg.get("_class_name")
        if kind and kind != self.module_class:
            raise UserError(
                f"checkpoint {self.checkpoint} is a {kind}, not a {self.module_class}: "
                f"--method {self.name} needs a {self.module_class} checkpoint"
            )
        return cfg

    def _wrong_base(self, what: str, mine: Any, base: Any) -> UserError:
        return UserError(
            f"checkpoint {self.checkpoint} was made for another base model: its {what} is {mine} but "
            f"base {self.base_model if isinstance(self.base_model, str) else self.base.source} has {base}; "
            "pass the matching --base-model"
        )

    def check(self) -> None:
        self.unet_config()
        if self.module_class:
            self.check_module(self.module_config(), self.unet_config())

    def check_module(self, cfg: dict, unet: dict) -> None:
        """Compare the checkpoint's config with the base UNet's (subclasses)."""

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            if self.base is not None:
                self._tokenizer = self.base.tokenizer
            else:
                self._tokenizer = clip_tokenizer(base_config_folder(self.base_path(), self.base_config))
        return self._tokenizer

    def size_multiple(self) -> int:
        levels = len(self.unet_config().get("block_out_channels", (0,) * 4))
        return 8 * 2 ** (levels - 1)

    # -- provenance --------------------------------------------------------------------------------
    def checkpoint_sha256(self) -> str | None:
        """The checkpoint's content hash (files on disk; a module built in code: its state dict)."""
        if self._sha is None:
            if isinstance(self.checkpoint, (str, Path)):
                p = Path(str(self.checkpoint)).expanduser()
                self._sha = tree_sha256(p) if p.exists() else f"hub:{self.checkpoint}"
            elif self.module is not None:
                self._sha = module_sha256(self.module)
        return self._sha

    def fingerprint(self) -> dict:
        """Content, not paths: a checkpoint moved or named by another relative path is the same."""
        base_id = self.base.source if self.base is not None else base_fingerprint(self.base_path())
        if self.base is None and is_single_file(self.base_path()):  # the file and how it is read
            config = single_file_config(self.base_path(), self.base_config)
            base_id = hashlib.sha256(f"{base_id}+{base_fingerprint(config)}".encode()).hexdigest()
        return {
            "method": self.name,
            "checkpoint_sha256": self.checkpoint_sha256(),
            "base_fingerprint": base_id,
            "condition": self.condition if self.module_class else None,
            "conditioning_scale": self.conditioning_scale if self.module_class else None,
            **self.sampling.to_dict(),
        }

    def provenance(self) -> dict:
        """The fingerprint plus where the weights were read from (for each record's ``source``)."""
        ckpt = str(self.checkpoint) if isinstance(self.checkpoint, (str, Path)) else None
        base = self.base_model if isinstance(self.base_model, str) else self.base.source
        config = {"base_config": self.base_config} if self.base_config else {}
        return {"checkpoint": ckpt, "base_model": base, **config, **self.fingerprint()}

    # -- running -----------------------------------------------------------------------------------
    def load(self, device: torch.device) -> None:
        dtype = torch_dtype(self.sampling.dtype)
        if dtype == torch.float16 and device.type == "cpu":
            raise UserError("--dtype fp16 needs a GPU; use fp32 (or bf16) on the CPU")
        self.device = device
        if self.base is None:
            self.base = load_base(
                self.base_model, dtype=dtype, variant=self.variant, base_config=self.base_config
            )
        for m in (self.base.unet, self.base.vae, self.base.text_encoder):
            _move(m, device, dtype)
        if self.module_class and self.module is None:
            import diffusers

            self.module = getattr(diffusers, self.module_class).from_pretrained(
                str(self.checkpoint), variant=_variant_of(str(self.checkpoint), self.variant)
            )
        if self.module is not None:
            _move(self.module, device, dtype).eval().requires_grad_(False)
        self.scheduler = make_scheduler(self.sampling.scheduler, self.base.scheduler_config)

    def initial_latents(self, requests: list[GenRequest]) -> torch.Tensor:
        """fp32 CPU noise per request seed (the same noise as our ControlNet loop draws)."""
        r0 = requests[0]
        shape = latent_shape(self.base, 1, r0.width, r0.height)
        gens = generators(requests)
        noise = torch.cat([torch.randn(shape, generator=g, dtype=torch.float32) for g in gens])
        return noise.to(device=self.device, dtype=self.base.unet.dtype)

    def embeds(self, requests: list[GenRequest]) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = self.base.unet.dtype
        cond = encode_prompts(self.base, [r.prompt for r in requests], self.device).to(dtype)
        neg = encode_prompts(self.base, [self.sampling.negative_prompt] * len(requests), self.device).to(
            dtype
        )
        return cond, neg

    def pipeline_kwargs(self, requests: list[GenRequest]) -> dict:
        cond, neg = self.embeds(requests)
        s = self.sampling
        return dict(
            prompt_embeds=cond,
            negative_prompt_embeds=neg,
            height=requests[0].height,
            width=requests[0].width,
            num_inference_steps=s.steps,
            guidance_scale=s.guidance,
            eta=s.eta,
            latents=self.initial_latents(requests),
            generator=[
                g.manual_seed((r.seed + 1) % (1 << 63)) for g, r in zip(generators(requests), requests)
            ],
            output_type="pil",
        )

    def parts(self) -> dict:
        b = self.base
        return dict(
            vae=b.vae,
            text_encoder=b.text_encoder,
            tokenizer=b.tokenizer,
            unet=b.unet,
            scheduler=self.scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )


class SDBaseline(DiffusersBaseline):
    """Text only: diffusers' ``StableDiffusionPipeline`` (``--checkpoint``, when given, is the SD folder)."""

    name = "sd"
    module_class = ""

    def __init__(self, checkpoint: Any = None, base_model: Any = "tiny", **kw: Any) -> None:
        if isinstance(checkpoint, str):
            base_model, checkpoint = checkpoint, None  # an SD folder given as the checkpoint is the base
        super().__init__(None, base_model, **kw)

    def load(self, device: torch.device) -> None:
        from diffusers import StableDiffusionPipeline

        super().load(device)
        self.pipe = StableDiffusionPipeline(**self.parts())
        self.pipe.set_progress_bar_config(disable=True)

    @torch.no_grad()
    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        images = self.pipe(**self.pipeline_kwargs(requests)).images
        return [GenResult(image=im) for im in images]


def check_controlnet(method: DiffusersBaseline, cfg: dict, unet: dict) -> None:
    """A ControlNet's config must match the base UNet it steers (any method that runs one)."""
    for key in ("cross_attention_dim", "block_out_channels", "in_channels"):
        mine, base = cfg.get(key), unet.get(key)
        if key == "block_out_channels" and mine is not None and base is not None:
            mine, base = list(mine), list(base)
        if mine is not None and base is not None and mine != base:
            raise method._wrong_base(key, mine, base)


class ControlNetBaseline(DiffusersBaseline):
    """The global mesh image through a diffusers ``ControlNetModel``, no TAS, no local branch."""

    name = "controlnet"
    module_class = "ControlNetModel"

    def check_module(self, cfg: dict, unet: dict) -> None:
        check_controlnet(self, cfg, unet)

    def load(self, device: torch.device) -> None:
        super().load(device)
        self.sampler = ControlNetSampler(
            self.base,
            self.module,
            self.scheduler,
            self.sampling,
            condition=self.condition,
            conditioning_scale=self.conditioning_scale,
        )

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        return self.sampler(requests)


class T2IAdapterBaseline(DiffusersBaseline):
    """The global condition image through a diffusers ``T2IAdapter`` (``StableDiffusionAdapterPipeline``)."""

    name = "t2i-adapter"
    module_class = "T2IAdapter"

    def check_module(self, cfg: dict, unet: dict) -> None:
        if str(cfg.get("adapter_type", "full_adapter")).endswith("_xl"):
            raise self._wrong_base("adapter_type", cfg["adapter_type"], "an SD-1.x UNet")
        mine, base = list(cfg.get("channels", [])), list(unet.get("block_out_channels", []))
        if mine and base and mine != base:
            raise self._wrong_base("channels", mine, base)

    def load(self, device: torch.device) -> None:
        from diffusers import StableDiffusionAdapterPipeline

        super().load(device)
        self.pipe = StableDiffusionAdapterPipeline(adapter=self.module, **self.parts())
        self.pipe.set_progress_bar_config(disable=True)

    @torch.no_grad()
    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        gray = self.module.config.get("in_channels", 3) == 1
        images = [r.conditions[self.condition].convert("L" if gray else "RGB") for r in requests]
        kw = self.pipeline_kwargs(requests)
        out = self.pipe(image=images, adapter_conditioning_scale=self.conditioning_scale, **kw).images
        return [GenResult(image=im) for im in out]


BASELINES = {cls.name: cls for cls in (SDBaseline, ControlNetBaseline, T2IAdapterBaseline)}


def _from_args(cls: type[DiffusersBaseline], args: argparse.Namespace) -> DiffusersBaseline:
    return cls(
        args.checkpoint,
        base_model=args.base_model or DEFAULT_BASE,
        sampling=sampling_from_args(args),
        condition=args.condition or "mesh",
        conditioning_scale=args.conditioning_scale,
    )


def sd_from_args(args: argparse.Namespace) -> SDBaseline:
    """``handsynth generate --method sd`` (registered in :mod:`handsynth.methods.registry`)."""
    return _from_args(SDBaseline, args)


def controlnet_from_args(args: argparse.Namespace) -> ControlNetBaseline:
    """``handsynth generate --method controlnet``."""
    return _from_args(ControlNetBaseline, args)


def t2i_adapter_from_args(args: argparse.Namespace) -> T2IAdapterBaseline:
    """``handsynth generate --method t2i-adapter``."""
    return _from_args(T2IAdapterBaseline, args)
