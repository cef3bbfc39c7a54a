"""What the generation job needs from a method, and the sampling settings every method shares.

Methods implement :class:`GenerationMethod`; the job (``handsynth.generate.job``) is method-agnostic: it
validates inputs, orders and splits the work, resumes and writes records. A method only turns a batch of
:class:`GenRequest` into images.
"""

from __future__ import annotations

import abc
import argparse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from PIL import Image

from handsynth.config import CONFIG_NAME, load_config
from handsynth.data.records import Sample
from handsynth.errors import UserError
from handsynth.text.tokenizer import encode_prompts as token_ids

T = TypeVar("T")

if TYPE_CHECKING:  # torch is imported where it is used: ``handsynth generate --help`` stays quick
    import torch
    from diffusers import SchedulerMixin

# The deterministic samplers of the shared scheduler setup (handsynth.diffusion.schedulers): an image
# must depend on its seed only, so ancestral samplers (ddpm, euler_a), whose steps draw fresh noise from
# a global generator, are not offered. DDIM's eta > 0 noise is drawn per sample from its seed.
MODES = ("global", "global+local")  # the ControlNet loop's inference modes (methods.sampler)
SCHEDULERS = ("ddim", "ddpm", "dpm++", "unipc", "pndm", "euler", "euler_a")  # = schedulers.SAMPLERS
DTYPES = ("fp32", "fp16", "bf16")


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a ``--dtype`` name (one of :data:`DTYPES`)."""
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


@dataclass
class WorkItem:
    """One image to generate: the input pose, which of its K prompts, the output id and the seed (a unit
    of the job's plan, :mod:`handsynth.generate.plan`)."""

    index: int  # position in the plan (plan order = output order of metadata.jsonl)
    sample: Sample  # the input record (labels, conditions, local crop)
    prompt_index: int
    out_id: str
    prompt: str = ""
    seed: int = 0
    hand_token_indices: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SamplingConfig:
    """Settings shared by every diffusion method (released AttentionHand code: DDIM 20 steps, CFG 9.0)."""

    scheduler: str = "ddim"
    steps: int = 20
    guidance: float = 9.0
    negative_prompt: str = ""
    eta: float = 0.0  # DDIM only; 0 = deterministic given the initial noise
    dtype: str = "fp32"

    def check(self) -> SamplingConfig:
        if self.scheduler not in SCHEDULERS:
            raise UserError(f"--scheduler {self.scheduler!r} is unknown; choose from {', '.join(SCHEDULERS)}")
        if self.steps < 1:
            raise UserError(f"--steps must be at least 1, got {self.steps}")
        if self.guidance < 0:
            raise UserError(f"--guidance must be non-negative, got {self.guidance}")
        if self.dtype not in DTYPES:
            raise UserError(f"--dtype {self.dtype!r} is unknown; choose from {', '.join(DTYPES)}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def sampling_from_args(args: argparse.Namespace, defaults: SamplingConfig | None = None) -> SamplingConfig:
    """The shared sampling flags of ``handsynth generate``, checked; a flag left unset (None) takes the
    method's default from ``defaults`` (else :class:`SamplingConfig`'s)."""
    defaults = defaults or SamplingConfig()

    def flag(name: str) -> Any:
        value = getattr(args, name, None)
        return getattr(defaults, name) if value is None else value

    return SamplingConfig(
        scheduler=flag("scheduler"),
        steps=flag("steps"),
        guidance=flag("guidance"),
        negative_prompt=flag("negative_prompt"),
        eta=flag("eta"),
        dtype=flag("dtype"),
    ).check()


def read_run_config(
    checkpoint: str | Path, cls: type[T], method: str, title: str, parts: tuple[str, ...]
) -> T:
    """The training config of a ``handsynth train --method METHOD`` run folder, checked first: the folder
    exists, holds the config and ``parts`` (a trailing ``/`` marks a folder), and was written by METHOD."""
    folder = Path(checkpoint).expanduser()
    if not folder.is_dir():
        raise UserError(f"checkpoint {checkpoint} does not exist: pass the folder `handsynth train` wrote")
    need = [
        n
        for n in (CONFIG_NAME, *parts)
        if not ((folder / n).is_dir() if n.endswith("/") else (folder / n).is_file())
    ]
    if need:
        raise UserError(
            f"checkpoint {checkpoint} has no {', '.join(need)}: it is not a {title} run folder (train one with "
            f"`handsynth train --method {method}`)"
        )
    cfg = load_config(cls, folder / CONFIG_NAME)
    if cfg.method != method:
        raise UserError(f"checkpoint {checkpoint} is a {cfg.method!r} run, not a {title} run")
    return cfg


def require_run_folder(args: argparse.Namespace, method: str, reads_maps: bool = True) -> None:
    """The flag checks every trained-run method shares: --checkpoint given; --condition refused when
    the run's own training config says which maps it reads."""
    if reads_maps and args.condition is not None:
        raise UserError(
            f"--condition does not apply to --method {method}: it reads the maps its training config lists "
            "(model.maps)"
        )
    if args.checkpoint is None:
        raise UserError(f"--method {method} needs --checkpoint (the folder `handsynth train` wrote)")


@dataclass
class GenRequest:
    """One image to make: its work item, output size, the condition maps (RGB PIL, output size) and,
    for methods with a local branch, the local maps and the crop box in output pixels."""

    item: WorkItem
    width: int
    height: int
    conditions: dict[str, Image.Image] = field(default_factory=dict)
    local_conditions: dict[str, Image.Image] = field(default_factory=dict)
    box: list[float] | None = None

    @property
    def prompt(self) -> str:
        return self.item.prompt

    @property
    def seed(self) -> int:
        return self.item.seed


@dataclass
class GenResult:
    """A generated image, plus the local crop image and hand-token attention maps when a method has them."""

    image: Image.Image
    local_image: Image.Image | None = None
    attention: dict[int, np.ndarray] | None = None  # CLIP token index -> (h, w) map, for overlays
    # A method whose image is not the input record's picture (HandBooster: a hand crop) returns the
    # output record itself (camera, size, labels) and the condition maps to store beside it.
    record: Sample | None = None
    conditions: dict[str, Image.Image] = field(default_factory=dict)


class GenerationMethod(abc.ABC):
    """A method as the job sees it. Subclasses load their weights in :meth:`load` (after validation)."""

    name: str = ""
    maps: tuple[str, ...] = ()  # global condition maps the method reads
    optional_maps: tuple[str, ...] = ()  # of those, maps a record may lack (the method fills them in)
    needs_local: bool = False  # reads the local (hand crop) maps too
    uses_prompts: bool = True  # False: the job assigns no prompts (and checks none)

    def plan_samples(self, samples: list[Sample]) -> list[Sample]:
        """The records the job's plan is built from (default: the inputs; a per-hand method splits)."""
        return samples

    @abc.abstractmethod
    def check(self) -> None:
        """Validate checkpoint/base compatibility from configs only: no weights, no GPU."""

    @abc.abstractmethod
    def tokenizer(self) -> Any:
        """The tokenizer prompts are checked and tagged with (the base's own)."""

    @abc.abstractmethod
    def fingerprint(self) -> dict:
        """Everything that changes the images (stored in handsynth_run.json; a resume must match)."""

    def provenance(self) -> dict:
        """What each record's ``source`` carries about the method (default: the fingerprint)."""
        return self.fingerprint()

    def check_size(self, width: int, height: int, where: str) -> None:
        """Refuse an output size the model cannot produce (latents must survive every downsampling)."""
        from handsynth.cli_args import MAX_IMAGE_SIDE

        if max(width, height) > MAX_IMAGE_SIDE:
            raise UserError(
                f"{where}: size {width}x{height} is larger than handsynth generates or renders "
                f"({MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}); pass a smaller --size"
            )
        mult = self.size_multiple()
        if width % mult or height % mult:
            raise UserError(
                f"{where}: size {width}x{height} is not a multiple of {mult} (what this base needs); "
                f"pass --size with a multiple of {mult}"
            )

    def size_multiple(self) -> int:
        return 8

    @abc.abstractmethod
    def load(self, device: torch.device) -> None:
        """Load the weights onto ``device`` (called once, after every input was validated)."""

    @abc.abstractmethod
    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """Images for a batch of requests (all the same size), each from its own seed."""


def make_scheduler(name: str, base_config: dict) -> SchedulerMixin:
    """A diffusers sampler from the base's own scheduler config (the project's one scheduler setup)."""
    from handsynth.diffusion.schedulers import sampling_scheduler

    return sampling_scheduler(base_config, name)


def generators(requests: list[GenRequest], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per request, seeded by the request's own seed (CPU: same noise on every machine)."""
    import torch

    return [torch.Generator(device).manual_seed(r.seed) for r in requests]


def encode_prompts(base: Any, prompts: list[str], device: torch.device | str) -> torch.Tensor:
    """CLIP hidden states (B, 77, D) for prompts, cleaned like OpenAI's tokenizer (exact SD ids)."""
    import torch

    ids = token_ids(list(prompts), base.tokenizer).to(device)
    with torch.no_grad():
        return base.text_encoder(ids)[0]


def latent_shape(base: Any, batch: int, width: int, height: int) -> tuple[int, int, int, int]:
    f = base.vae_scale_factor
    return (batch, base.unet.config.in_channels, height // f, width // f)
