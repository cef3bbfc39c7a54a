"""The Stable Diffusion base model every method builds on: a local folder, a hub id, or ``tiny``.

``tiny`` is the same architecture family as SD-1.5 (4 UNet levels, cross-attention in the first three
down blocks and last three up blocks, 8x VAE, CLIP text encoder with SD's real 49,408-token tokenizer),
built from small configs with random weights. It is saved once, in diffusers format, to a cache folder
and then loaded exactly like a real base, so tests, CPU runs and the micro benchmark exercise the same
loading code that users run with real SD weights. The parts themselves are built in
:mod:`handsynth.diffusion.components`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from handsynth.diffusion.components import sd15_components, tiny_components
from handsynth.errors import UserError

log = logging.getLogger(__name__)

TINY = "tiny"
SD15_RANDOM = "sd15-random"  # SD-1.5's architecture with random weights (timing only)
TINY_VERSION = "v3"  # v3: scheduler config states clip_sample=false
# What a diffusers-format SD folder must hold: subfolder -> (config file, accepted weight/data files).
REQUIRED_PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "unet": ("config.json", ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")),
    "vae": ("config.json", ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")),
    "text_encoder": ("config.json", ("model.safetensors", "pytorch_model.bin")),
    "tokenizer": ("tokenizer_config.json", ("vocab.json", "tokenizer.json")),
    "scheduler": ("scheduler_config.json", ()),
}


@dataclass
class BaseModel:
    """The frozen parts of an SD-1.x base, plus what training needs to know about it."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler_config: dict
    source: str  # 'tiny', a folder path or a hub id

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_scale(self) -> float:
        return float(getattr(self.vae.config, "scaling_factor", 0.18215))

    @property
    def prediction_type(self) -> str:
        return self.scheduler_config.get("prediction_type", "epsilon")

    def freeze(self) -> BaseModel:
        """φ_d, the VAE and the text encoder are never trained."""
        for m in (self.unet, self.vae, self.text_encoder):
            m.requires_grad_(False)
            m.eval()
        return self

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> BaseModel:
        for m in (self.unet, self.vae, self.text_encoder):
            m.to(device=device, dtype=dtype)
        return self


def cache_dir() -> Path:
    """Where built-in models are saved once (``HANDSYNTH_CACHE`` or ~/.cache/handsynth)."""
    root = os.environ.get("HANDSYNTH_CACHE") or Path.home() / ".cache" / "handsynth"
    return Path(root)


def save_base_folder(components: dict, folder: str | Path) -> Path:
    """Save parts as a standard diffusers SD folder (loadable by ``StableDiffusionPipeline``)."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe.save_pretrained(folder)
    return Path(folder)


def tiny_base_path() -> Path:
    """The cached tiny base folder, built and saved on first use (atomic rename, safe with parallel runs)."""
    target = cache_dir() / f"tiny-sd-{TINY_VERSION}"
    if not missing_parts(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tiny-sd-"))
    try:
        save_base_folder(tiny_components(), tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race, or a partial folder is in the way
            if missing_parts(target):
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def missing_parts(folder: str | Path) -> list[str]:
    """Relative paths a diffusers SD folder lacks (empty list: complete)."""
    folder = Path(folder)
    if not folder.is_dir():
        return ["the folder itself"]
    missing = []
    if not (folder / "model_index.json").exists():
        missing.append("model_index.json")
    for sub, (config, weights) in REQUIRED_PARTS.items():
        if not (folder / sub / config).exists():
            missing.append(f"{sub}/{config}")
        if weights and not any(_weight_files(folder / sub, w) for w in weights):
            missing.append(f"{sub}/{' or '.join(weights)}")
    return missing


def _weight_files(sub: Path, name: str) -> list[Path]:
    """``name`` and its variants (``diffusion_pytorch_model.fp16.safetensors`` for ``fp16``)."""
    stem, _, ext = name.partition(".")
    return [p for p in (sub / name, *sub.glob(f"{stem}.*.{ext}")) if p.is_file()]


def weight_variant(folder: str | Path, preferred: str | None = None) -> str | None:
    """The diffusers ``variant=`` to load ``folder`` with: ``preferred`` when given; None when plain
    weight files exist; else the one variant the folder holds (e.g. ``fp16``-only downloads)."""
    if preferred:
        return preferred
    folder = Path(folder)
    subs = [p for p in (folder, *folder.iterdir()) if p.is_dir()] if folder.is_dir() else []
    plain = variants = False
    found: set[str] = set()
    for sub in subs:
        for f in sub.iterdir():
            parts = f.name.split(".")
            if f.suffix not in (".safetensors", ".bin") or parts[0] not in (
                "diffusion_pytorch_model",
                "model",
            ):
                continue
            if len(parts) == 2:
                plain = True
            elif len(parts) == 3:
                variants = True
                found.add(parts[1])
    if plain or not variants:
        return None
    if len(found) > 1:
        raise UserError(f"{folder} holds weight variants {sorted(found)} only: pass --variant NAME")
    return found.pop()


def _is_local_spec(spec: str) -> bool:
    """A path (not ``tiny``, not a hub id ``org/name``)."""
    if spec in (TINY, SD15_RANDOM):
        return False
    return spec.startswith((".", "/", "~")) or spec.count("/") != 1 or spec.endswith("/")


def base_from_run(spec: str, run_folder: str | os.PathLike) -> str:
    """A base model named in a run folder's config, as a path usable from anywhere.

    Runs store local bases relative to the run folder (so a run folder can be moved or shipped with
    its base, as the embedded default model is); older runs stored them relative to the directory
    ``train`` ran in, which is kept when only that reading exists.
    """
    p = Path(spec).expanduser()
    if not _is_local_spec(spec) and not Path(run_folder, spec).exists() and not p.exists():
        return spec  # tiny, or a hub id
    if p.is_absolute():
        return str(p)
    beside = Path(run_folder).expanduser() / p
    if beside.exists() or not p.exists():
        return os.path.normpath(beside.resolve())
    return str(p.resolve())


def base_for_run(spec: str, run_folder: str | os.PathLike) -> str:
    """How a run folder's config stores ``spec``: local folders relative to the run folder."""
    p = Path(spec).expanduser()
    if not (_is_local_spec(spec) or p.exists()) or not p.exists():
        return spec
    return os.path.relpath(p.resolve(), Path(run_folder).expanduser().resolve())


def resolve_base(spec: str) -> str:
    """``tiny`` -> cached tiny folder; an existing folder -> itself (checked); else a hub id."""
    if spec == TINY:
        return str(tiny_base_path())
    if spec == SD15_RANDOM:
        return spec
    p = Path(spec).expanduser()
    # A hub id is exactly "org/name"; anything else (or anything that exists) is a folder.
    if p.exists() or _is_local_spec(spec):
        missing = missing_parts(p)
        if missing:
            raise UserError(
                f"base model folder {p} is not a complete diffusers Stable Diffusion folder: missing "
                f"{', '.join(missing)}; download it with `hf download "
                "stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir PATH` or pass --base-model tiny"
            )
        return str(p)
    return spec  # a hub id, e.g. stable-diffusion-v1-5/stable-diffusion-v1-5


def load_base(spec: str = TINY, dtype: torch.dtype = torch.float32, variant: str | None = None) -> BaseModel:
    """Load the frozen SD parts from ``tiny``, ``sd15-random``, a local diffusers folder or a hub id.

    ``variant`` (e.g. ``fp16``) loads ``*.fp16.safetensors`` weights; for a local folder holding only
    one variant it is found without being named."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    if spec == SD15_RANDOM:  # in memory only: ~1 GB of random weights is not worth caching
        parts = sd15_components()
        base = BaseModel(
            unet=parts["unet"],
            vae=parts["vae"],
            text_encoder=parts["text_encoder"],
            tokenizer=parts["tokenizer"],
            scheduler_config=dict(parts["scheduler"].config),
            source=spec,
        )
        return base.to("cpu", dtype).freeze()
    where = resolve_base(spec)
    if Path(where).is_dir():
        variant = weight_variant(where, variant)
    try:
        unet = UNet2DConditionModel.from_pretrained(
            where, subfolder="unet", torch_dtype=dtype, variant=variant
        )
        vae = AutoencoderKL.from_pretrained(where, subfolder="vae", torch_dtype=dtype, variant=variant)
        text_encoder = CLIPTextModel.from_pretrained(
            where, subfolder="text_encoder", dtype=dtype, variant=variant
        )
        tokenizer = CLIPTokenizer.from_pretrained(where, subfolder="tokenizer")
        from diffusers import DDPMScheduler

        scheduler_config = dict(DDPMScheduler.load_config(where, subfolder="scheduler"))
    except (OSError, ValueError) as err:
        if Path(where).exists():
            raise
        raise UserError(
            f"could not load base model {spec!r} from the Hugging Face hub ({type(err).__name__}); "
            "pass a local diffusers folder with --base-model PATH, or --base-model tiny"
        ) from None
    if len(tokenizer) != text_encoder.config.vocab_size:
        raise UserError(
            f"base model {spec!r}: tokenizer has {len(tokenizer)} tokens but the text encoder expects "
            f"{text_encoder.config.vocab_size}; the folder mixes parts of different models"
        )
    return BaseModel(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler_config=scheduler_config,
        source=spec,
    ).freeze()
