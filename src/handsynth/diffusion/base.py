"""The Stable Diffusion base model every method builds on: a local folder, a single-file checkpoint
(``.safetensors`` / ``.ckpt``, read with diffusers' ``from_single_file``), a hub id, or ``tiny``.

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
from handsynth.runtime import cache_dir

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
            # no dtype argument when it is already right: diffusers warns on every dtype cast, even a no-op
            m.to(device=device, **({} if dtype in (None, m.dtype) else {"dtype": dtype}))
        return self


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


# Single-file checkpoints as SD-1.x weights are shared (A1111, ComfyUI, the original CompVis release).
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")
UNET_PREFIX = "model.diffusion_model."  # the original (LDM) layout's UNet keys
CLIP_PREFIX = "cond_stage_model.transformer."  # ... and its CLIP text encoder's
# The parts a diffusers folder must hold to configure a single file (weights not needed).
SINGLE_FILE_CONFIG_PARTS = (
    "model_index.json",
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "scheduler/scheduler_config.json",
)
CONFIG_ADVICE = (
    "pass --base-config DIR (a diffusers SD-1.x folder; its configs suffice, e.g. `hf download "
    "stable-diffusion-v1-5/stable-diffusion-v1-5 --exclude '*.safetensors' '*.bin' '*.ckpt' --local-dir DIR`) "
    "or --base-config FILE.yaml (the original SD config, e.g. v1-inference.yaml)"
)


def is_single_file(spec: object) -> bool:
    """Whether a base spec names one weight file rather than a folder, ``tiny`` or a hub id."""
    if not isinstance(spec, (str, os.PathLike)) or spec in (TINY, SD15_RANDOM):
        return False
    p = Path(spec).expanduser()
    return p.is_file() or (p.suffix in SINGLE_FILE_SUFFIXES and not p.is_dir())


def single_file_config(spec: str, base_config: str | None = None) -> Path:
    """The configuration a single-file checkpoint is read with: ``base_config``, else a ``.yaml`` of the
    same name beside the file (as A1111 keeps them). Offline diffusers cannot fetch one from the hub."""
    ckpt = Path(spec).expanduser()
    if base_config:
        cfg = Path(base_config).expanduser()
        if cfg.is_dir():
            missing = [part for part in SINGLE_FILE_CONFIG_PARTS if not (cfg / part).is_file()]
            if missing:
                raise UserError(
                    f"--base-config {cfg} is not a diffusers Stable Diffusion folder (missing "
                    f"{', '.join(missing)}); {CONFIG_ADVICE}"
                )
            return cfg
        if cfg.is_file() and cfg.suffix in (".yaml", ".yml"):
            return cfg
        raise UserError(
            f"--base-config {cfg} is neither a diffusers folder nor a .yaml file; {CONFIG_ADVICE}"
        )
    for sidecar in (ckpt.with_suffix(".yaml"), ckpt.with_suffix(".yml")):
        if sidecar.is_file():
            return sidecar
    raise UserError(
        f"single-file checkpoint {ckpt} needs its model configuration, which offline cannot come from "
        f"the hub: {CONFIG_ADVICE}, or put the .yaml beside it as {ckpt.stem}.yaml"
    )


def _single_file_tensors(path: Path, prefix: str | None) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` whose names start with ``prefix`` (None: all, as shape-only meta tensors
    for safetensors), reading no more of the file than that needs (safetensors: lazily; .ckpt:
    memory-mapped)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            names = list(f.keys())
            if prefix is None:
                return {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in names}
            return {k: f.get_tensor(k) for k in names if k.startswith(prefix)}
    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError:  # the legacy (non-zip) torch format cannot be memory-mapped
        state = torch.load(path, map_location="cpu", weights_only=True)
    while isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise TypeError(f"holds a {type(state).__name__}, not a state dict")
    return {k: v for k, v in state.items() if prefix is None or k.startswith(prefix)}


def read_single_file(path: str | Path, prefix: str | None = None) -> dict[str, torch.Tensor]:
    """Check that ``path`` is a readable SD checkpoint in the original layout; its ``prefix`` tensors."""
    path = Path(path).expanduser()
    if path.suffix not in SINGLE_FILE_SUFFIXES:
        raise UserError(
            f"base model {path} is a file of unknown kind ({path.suffix or 'no suffix'}): pass a "
            f"single-file checkpoint ({', '.join(SINGLE_FILE_SUFFIXES)}) or a diffusers folder"
        )
    try:
        names = _single_file_tensors(path, None)
    except Exception as err:  # a damaged or foreign file fails in many ways (safetensors, pickle, zip)
        raise UserError(
            f"could not read base model {path} as a single-file checkpoint ({type(err).__name__}); "
            "pass an intact .safetensors or .ckpt file, or a diffusers folder"
        ) from None
    if not any(k.startswith(UNET_PREFIX) for k in names) or not any(k.startswith(CLIP_PREFIX) for k in names):
        raise UserError(
            f"base model {path} is not a Stable Diffusion 1.x checkpoint (no {UNET_PREFIX}* or {CLIP_PREFIX}* "
            "weights): pass a full SD checkpoint, or a diffusers folder"
        )
    return names if prefix is None else _single_file_tensors(path, prefix)


def _original_config(path: Path) -> dict:
    import yaml

    try:
        cfg = yaml.safe_load(path.read_text())
        cfg["model"]["params"]["unet_config"]["params"]
        cfg["model"]["params"]["first_stage_config"]["params"]["ddconfig"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        raise UserError(
            f"--base-config {path} is not an original Stable Diffusion config (model.params.unet_config and "
            f"first_stage_config); {CONFIG_ADVICE}"
        ) from None
    return cfg


def scheduler_config_from_original(cfg: dict) -> dict:
    """SD's scheduler settings from an original config (betas, steps, epsilon or v prediction)."""
    params = cfg["model"]["params"]
    return dict(
        _class_name="PNDMScheduler",
        beta_start=float(params.get("linear_start", 0.00085)),
        beta_end=float(params.get("linear_end", 0.012)),
        beta_schedule="scaled_linear",
        num_train_timesteps=int(params.get("timesteps", 1000)),
        prediction_type="v_prediction" if params.get("parameterization") == "v" else "epsilon",
        skip_prk_steps=True,
        steps_offset=1,
        set_alpha_to_one=False,
        clip_sample=False,
    )


def _text_encoder_from_original(path: Path, dtype: torch.dtype) -> torch.nn.Module:
    """SD-1.x's CLIP text encoder from a single file, sized by its weights.

    An original config names the encoder (FrozenCLIPEmbedder: CLIP ViT-L/14) but not its sizes, and
    diffusers would fetch them from the hub; the weights' shapes give all but the head count, which
    follows CLIP's 64-wide heads."""
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModel

    from handsynth.text.tokenizer import clip_tokenizer

    weights = convert_ldm_clip_checkpoint(read_single_file(path, CLIP_PREFIX))
    weights = {k.removeprefix("text_model."): v for k, v in weights.items()}
    vocab, hidden = weights["embeddings.token_embedding.weight"].shape
    layers = 1 + max(int(k.split(".")[2]) for k in weights if k.startswith("encoder.layers."))
    if hidden % 64:
        raise UserError(
            f"base model {path}: its text encoder ({hidden} wide) is not CLIP-shaped; pass --base-config "
            "a diffusers folder whose text_encoder/config.json describes it"
        )
    tok = clip_tokenizer()
    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=weights["encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        max_position_embeddings=weights["embeddings.position_embedding.weight"].shape[0],
        hidden_act="quick_gelu",
        projection_dim=hidden,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = CLIPTextModel(config)
    model.load_state_dict({k: v for k, v in weights.items() if not k.endswith("position_ids")}, strict=False)
    return model.to(dtype)


def _load_single_file(spec: str, base_config: str | None, dtype: torch.dtype) -> BaseModel:
    """A base from one original-layout file, through diffusers' ``from_single_file``, fully offline."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from handsynth.text.tokenizer import clip_tokenizer

    ckpt = Path(spec).expanduser()
    read_single_file(ckpt)  # one clear sentence for a damaged or foreign file, before diffusers reads it
    config = single_file_config(spec, base_config)
    kwargs: dict = dict(
        torch_dtype=dtype,
        local_files_only=True,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    if config.is_dir():
        kwargs["config"] = str(config)
        scheduler_config = dict(DDIMScheduler.load_config(str(config), subfolder="scheduler"))
        if not (config / "tokenizer").is_dir():
            kwargs["tokenizer"] = clip_tokenizer()
    else:
        original = _original_config(config)
        kwargs["original_config"] = str(config)
        scheduler_config = scheduler_config_from_original(original)
        kwargs["text_encoder"] = _text_encoder_from_original(ckpt, dtype)
        kwargs["tokenizer"] = clip_tokenizer()
    kwargs["scheduler"] = DDIMScheduler.from_config(scheduler_config)
    try:
        pipe = StableDiffusionPipeline.from_single_file(str(ckpt), **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise UserError(
            f"could not build a Stable Diffusion base from {ckpt} with the configuration {config} "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); the two must describe "
            "the same model"
        ) from None
    return BaseModel(
        unet=pipe.unet,
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        scheduler_config=scheduler_config,
        source=spec,
    ).freeze()


def base_unet_config(spec: str, base_config: str | None = None) -> dict:
    """The UNet config of a single-file base without loading its weights (checks need only sizes)."""
    from diffusers import UNet2DConditionModel

    config = single_file_config(spec, base_config)
    if config.is_dir():
        return dict(UNet2DConditionModel.load_config(str(config), subfolder="unet"))
    from diffusers.loaders.single_file_utils import create_unet_diffusers_config_from_ldm

    names = read_single_file(spec)
    return create_unet_diffusers_config_from_ldm(_original_config(config), names)


def base_config_folder(spec: str, base_config: str | None = None) -> str | None:
    """Where a base's configs and tokenizer live: the folder itself, a single file's --base-config
    folder, or None (a single file configured by a .yaml: the shipped SD tokenizer)."""
    if is_single_file(spec):
        config = single_file_config(spec, base_config)
        return str(config) if config.is_dir() else None
    return resolve_base(spec)


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


def resolve_base(spec: str, base_config: str | None = None) -> str:
    """``tiny`` -> cached tiny folder; an existing folder or single file -> itself (checked, with its
    ``base_config``); else a hub id."""
    if is_single_file(spec):
        read_single_file(spec)
        single_file_config(spec, base_config)
        return str(Path(spec).expanduser())
    if base_config:
        raise UserError(
            f"--base-config {base_config} configures a single-file --base-model (.safetensors/.ckpt), but "
            f"{spec} is not one: drop --base-config"
        )
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


def _load_text_encoder(where: str, dtype: torch.dtype, variant: str | None) -> torch.nn.Module:
    """The base's CLIP text encoder, without transformers' raw "Loading weights" bar (a second of
    loading; in a log it is a line of carriage returns beside handsynth's own progress)."""
    from transformers import CLIPTextModel
    from transformers.utils import logging as transformers_logging

    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        return CLIPTextModel.from_pretrained(where, subfolder="text_encoder", dtype=dtype, variant=variant)
    finally:
        if shown:
            transformers_logging.enable_progress_bar()


def load_base(
    spec: str = TINY,
    dtype: torch.dtype = torch.float32,
    variant: str | None = None,
    base_config: str | None = None,
) -> BaseModel:
    """Load the frozen SD parts from ``tiny``, ``sd15-random``, a local diffusers folder, a single-file
    checkpoint (configured by ``base_config``: a diffusers folder or the original .yaml) or a hub id.

    ``variant`` (e.g. ``fp16``) loads ``*.fp16.safetensors`` weights; for a local folder holding only
    one variant it is found without being named."""
    if is_single_file(spec):
        return _load_single_file(spec, base_config, dtype)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTokenizer

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
        text_encoder = _load_text_encoder(where, dtype, variant)
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
