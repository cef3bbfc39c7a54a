"""``handsynth generate --method handbooster``: hand crops from a trained HandBooster run folder.

A checkpoint is the run folder ``handsynth train --method handbooster`` wrote: ``unet/``,
``orientation.safetensors`` and ``handsynth_config.yaml`` (the condition maps in channel order, crop and
mirroring settings). Every hand of an input record is one image (a record with two hands: ids
``<id>-right`` / ``<id>-left``): the square crop around the hand, generated at ``model.sample_size``.

Sampling (released code): DDIM 250 steps from t = 999 (trailing spacing), eta 1.0, the noise
direction taken from the clipped x0, classifier-free guidance 3 on the orientation only (the condition
maps stay in both halves); ``--scheduler ddpm`` is the 1000-step ancestral sampler. Both
draw their per-step noise per image from the image's own seed, so an image depends on its seed only
(not on the batch or the process). Prompts are not used. With few steps, ``--timestep-spacing leading``
(or ``linspace``) ends at t = 0 where the released spacing's last call is at t = 1000/steps - 1 (noisier
images, fewer kept by the edge-case filter at 10 steps: benchmarks/results/micro_handbooster_sampler_probe.md).

Output records are the crops: ``camera.K`` = the crop intrinsics, joints re-projected, the crop's
condition maps beside the image (objects keep their camera-frame pose: the camera did not move).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from handsynth.config import CONFIG_NAME
from handsynth.data.folder import dataset_root
from handsynth.data.provenance import tree_sha256
from handsynth.data.records import Sample
from handsynth.diffusion.schedulers import sampling_scheduler
from handsynth.errors import UserError
from handsynth.methods.handbooster.config import ORIENTATION_FILE, UNET_DIR, HandBoosterConfig
from handsynth.methods.handbooster.data import (
    SEG,
    condition_tensor,
    crop_maps,
    hand_box,
    render_crop_maps,
    rendered_seg,
)
from handsynth.methods.handbooster.model import check_unet_config, orientation_quaternion
from handsynth.methods.handbooster.options import RELEASED_SPACING, SPACINGS
from handsynth.methods.interface import (
    GenerationMethod,
    GenRequest,
    GenResult,
    SamplingConfig,
    read_run_config,
    sampling_from_args,
    torch_dtype,
)
from handsynth.render.conditions import ConditionRenderer
from handsynth.render.crop import crop_intrinsics

if TYPE_CHECKING:
    from diffusers import SchedulerMixin

    from handsynth.methods.handbooster.model import HandBoosterModel

# The released sampler: DDIM 250 steps, eta 1, CFG 3 on the orientation.
DEFAULT_SAMPLING = SamplingConfig(scheduler="ddim", steps=250, guidance=3.0, eta=1.0)
DDPM_STEPS = 1000
HAND_KEY = "handbooster_hand"  # plan records of a two-hand input: which hand (side) the image is of


def sampler_scheduler(
    cfg: HandBoosterConfig, name: str, steps: int, spacing: str = RELEASED_SPACING
) -> SchedulerMixin:
    """DDIM or DDPM on the run's own schedule (pixel space: x0 clipping kept), set to ``steps``.

    ``trailing`` spacing starts at t = T-1 like the released sampler (T-1, T-1-T/n, ..., T/n-1, then
    x0): diffusers' default ``leading`` would start at T - T/n and end at t = 0; ``linspace`` runs from
    T-1 to 0. At 250 steps the three barely differ; at 10, trailing's last call sees x_99 and its x0 keeps
    that noise (benchmarks/results/micro_handbooster_sampler_probe.md).
    """
    if name not in ("ddim", "ddpm"):
        raise UserError(f"--method handbooster samples with --scheduler ddim or ddpm, not {name}")
    config = {**cfg.scheduler_config(), "timestep_spacing": spacing}
    scheduler = sampling_scheduler(config, name, latent=False)
    scheduler.set_timesteps(steps)
    return scheduler


def guided_x0(
    model: HandBoosterModel,
    x: torch.Tensor,
    t: torch.Tensor,
    conditions: torch.Tensor,
    quaternion: torch.Tensor,
    guidance: float,
) -> torch.Tensor:
    """x0 with classifier-free guidance on the orientation: x0_null + g (x0_q - x0_null).

    g = 1 (or a model without orientation) is the conditional prediction alone, in one forward.
    """
    if model.orientation is None or guidance == 1.0:
        return model(x, t, conditions, quaternion)
    n = x.shape[0]
    drop = torch.cat([torch.zeros(n), torch.ones(n)]).to(x.device)
    out = model(
        torch.cat([x, x]),
        torch.cat([t, t]),
        torch.cat([conditions, conditions]),
        torch.cat([quaternion] * 2),
        drop,
    )
    cond, null = out.chunk(2)
    return null + guidance * (cond - null)


@torch.no_grad()
def denoise(
    model: HandBoosterModel,
    scheduler: SchedulerMixin,
    conditions: torch.Tensor,
    quaternion: torch.Tensor,
    generators: list[torch.Generator],
    guidance: float,
    eta: float = 0.0,
    clipped_direction: bool = True,
) -> torch.Tensor:
    """Images (B, 3, S, S) in [-1, 1]; image i's initial and per-step noise come from ``generators[i]``.

    ``clipped_direction=False`` (diffusers' default, for experiments) takes DDIM's noise direction from
    the unclipped x0."""
    param = next(model.parameters())
    size = model.unet.config.sample_size
    x = torch.stack([torch.randn(3, size, size, generator=g) for g in generators]).to(param)
    conditions, quaternion = conditions.to(param), quaternion.to(param)
    ddim = type(scheduler).__name__ == "DDIMScheduler"
    for t in scheduler.timesteps:
        tt = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        x0 = guided_x0(model, x, tt, conditions, quaternion, guidance)
        steps = []
        for i, g in enumerate(generators):  # per image: its noise never depends on its batch neighbours
            # DDIM: the step's noise direction comes from the CLIPPED x0 (released code; the DDPM
            # posterior does the same). diffusers' default takes it from the unclipped x0, which CFG 3
            # pushes far outside [-1, 1].
            kw = {"eta": eta, "use_clipped_model_output": clipped_direction} if ddim else {}
            steps.append(scheduler.step(x0[i : i + 1], t, x[i : i + 1], generator=g, **kw).prev_sample)
        x = torch.cat(steps)
    return x.clamp(-1, 1)


def plan_hands(samples: list[Sample]) -> list[Sample]:
    """One plan record per hand: a record with several hands becomes ``<id>-<side>`` copies."""
    out = []
    for s in samples:
        if not s.hands:
            raise UserError(f"record {s.id} has no hand: HandBooster generates one crop per hand; remove it")
        if len(s.hands) == 1:
            out.append(s)
            continue
        for h in s.hands:
            c = copy.copy(s)
            c.id, c.extra = f"{s.id}-{h.side}", {**s.extra, HAND_KEY: h.side}
            out.append(c)
    return out


def crop_record(sample: Sample, box: list[float], size: int) -> Sample:
    """The record of a ``size``^2 crop: crop intrinsics, joints projected through them, hand boxes moved;
    hands whose box misses the crop are left out."""
    rec = copy.deepcopy(sample)
    rec.extra.pop(HAND_KEY, None)
    K = crop_intrinsics(np.asarray(sample.K), box, size)
    rec.width = rec.height = size
    rec.K = K.tolist()
    rec.local = None
    s = size / box[2]
    hands = []
    for h in rec.hands:
        j3 = np.asarray(h.joints_3d)
        uvw = j3 @ K.T
        h.joints_2d = (uvw[:, :2] / uvw[:, 2:]).tolist()
        x, y, w, hh = h.bbox
        h.bbox = [(x - box[0]) * s, (y - box[1]) * s, w * s, hh * s]
        bx, by, bw, bh = h.bbox
        if bx + bw > 0 and by + bh > 0 and bx < size and by < size:
            hands.append(h)
    rec.hands = hands
    return rec


class HandBoosterGenerator(GenerationMethod):
    """``--method handbooster``: a run folder's UNet + orientation encoder."""

    name = "handbooster"
    uses_prompts = False

    def __init__(
        self,
        checkpoint: str | Path,
        sampling: SamplingConfig | None = None,
        train_config: HandBoosterConfig | None = None,
        data_root: str | Path | None = None,
        spacing: str = RELEASED_SPACING,
        clipped_direction: bool = True,
    ) -> None:
        self.checkpoint = Path(checkpoint).expanduser()
        # the released sampler by default; other values join the fingerprint (--timestep-spacing; the
        # unclipped direction only for experiments: benchmarks/micro/handbooster_sampler_probe.py)
        if spacing not in SPACINGS:
            raise UserError(f"--timestep-spacing {spacing!r} is unknown; choose from {', '.join(SPACINGS)}")
        self.spacing, self.clipped_direction = spacing, clipped_direction
        self.data_root = data_root  # where relative object mesh paths are read from (the input folder)
        self.cfg = (train_config or self._read_config(self.checkpoint)).check()
        self.sampling = (sampling or copy.deepcopy(DEFAULT_SAMPLING)).check()
        if self.sampling.scheduler not in ("ddim", "ddpm"):
            raise UserError(
                f"--method handbooster samples with --scheduler ddim or ddpm, not {self.sampling.scheduler}"
            )
        conditions = list(self.cfg.model.conditions)
        # seg, when a record has it, puts a held object into the crop box (as at training)
        self.maps = tuple(dict.fromkeys([*conditions, SEG]))
        self.optional_maps = () if SEG in conditions else (SEG,)
        self.model: HandBoosterModel | None = None
        self.device = torch.device("cpu")
        self._sha: str | None = None
        self._renderer: ConditionRenderer | None = None  # data.conditions_from render: as at training
        if self.cfg.data.conditions_from == "render":  # the maps are drawn here: stored ones not needed
            self.optional_maps = self.maps

    def renderer(self) -> ConditionRenderer:
        """The renderer of the crops' maps (relative object mesh paths are read from ``data_root``)."""
        if self._renderer is None:
            self._renderer = ConditionRenderer(model_dir=self.cfg.data.mano_dir, data_root=self.data_root)
        return self._renderer

    def _crops(self, sample: Sample, hand, maps: dict, width: int, height: int, mirror: bool):
        """(box, the crop's condition maps as the model reads them, the same unmirrored to store)."""
        cfg, size = self.cfg, self.cfg.model.sample_size
        if cfg.data.conditions_from == "stored":
            box = hand_box(hand, width, height, cfg.data.crop_expand, maps.get(SEG))
            return box, crop_maps(maps, box, size, mirror), crop_maps(maps, box, size, mirror=False)
        renderer = self.renderer()
        box = hand_box(
            hand, sample.width, sample.height, cfg.data.crop_expand, rendered_seg(renderer, sample)
        )
        needed = list(self.maps)
        plain = render_crop_maps(renderer, sample, needed, box, cfg.data.condition_size, size, False)
        if not mirror:
            return box, plain, plain
        seen = render_crop_maps(renderer, sample, needed, box, cfg.data.condition_size, size, True)
        return box, seen, plain

    @staticmethod
    def _read_config(folder: Path) -> HandBoosterConfig:
        return read_run_config(folder, HandBoosterConfig, "handbooster", "HandBooster", (f"{UNET_DIR}/",))

    # -- what the job checks ---------------------------------------------------------------------------
    def check(self) -> None:
        from diffusers import UNet2DModel

        check_unet_config(UNet2DModel.load_config(str(self.checkpoint / UNET_DIR)), self.cfg, self.checkpoint)
        if self.cfg.orientation.enabled and not (self.checkpoint / ORIENTATION_FILE).is_file():
            raise UserError(
                f"checkpoint {self.checkpoint} has no {ORIENTATION_FILE} but its config reads the orientation; "
                "the run folder is incomplete (did training finish?)"
            )

    def tokenizer(self) -> Any:
        return None

    def unet_config(self) -> dict:
        """What the job's thread heuristic reads (a tiny UNet runs best on few CPU threads)."""
        return {"block_out_channels": list(self.cfg.model.block_out_channels)}

    def size_multiple(self) -> int:
        return 1  # any input size: the crop is resampled to model.sample_size

    def plan_samples(self, samples: list[Sample]) -> list[Sample]:
        if self.cfg.data.conditions_from == "render":  # every record drawable: before any output
            for s in samples:
                self.renderer().check_record(s)
        return plan_hands(samples)

    def checkpoint_sha256(self) -> str:
        """Content hash of the weights and the config (not of logs or training checkpoints)."""
        if self._sha is None:
            h = hashlib.sha256()
            for part in (UNET_DIR, ORIENTATION_FILE, CONFIG_NAME):
                if (self.checkpoint / part).exists():
                    h.update(f"{part}\0{tree_sha256(self.checkpoint / part)}\0".encode())
            self._sha = h.hexdigest()
        return self._sha

    def fingerprint(self) -> dict:
        s = self.sampling
        return {
            "method": self.name,
            "checkpoint_sha256": self.checkpoint_sha256(),
            "conditions": list(self.cfg.model.conditions),
            "sample_size": self.cfg.model.sample_size,
            "sampler": {"scheduler": s.scheduler, "steps": s.steps, "eta": s.eta, "guidance": s.guidance},
            "dtype": s.dtype,
            **self._experiment(),
        }

    def _experiment(self) -> dict:
        """Sampler settings other than the released ones (none: fingerprints of released runs unchanged)."""
        out = {}
        if self.spacing != RELEASED_SPACING:
            out["timestep_spacing"] = self.spacing
        if not self.clipped_direction:
            out["clipped_direction"] = False
        return out

    def provenance(self) -> dict:
        return {"checkpoint": str(self.checkpoint), **self.fingerprint()}

    # -- running ---------------------------------------------------------------------------------------
    def load(self, device: torch.device) -> None:
        from handsynth.methods.handbooster.model import HandBoosterModel

        dtype = torch_dtype(self.sampling.dtype)
        if dtype == torch.float16 and device.type == "cpu":
            raise UserError("--dtype fp16 needs a GPU; use fp32 (or bf16) on the CPU")
        self.device = torch.device(device)
        self.model = HandBoosterModel.load(self.checkpoint, self.cfg).to(self.device, dtype)

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        if self.model is None:
            raise RuntimeError("call load() before generate()")
        cfg, size = self.cfg, self.cfg.model.sample_size
        conds, quats, plans = [], [], []
        for r in requests:
            s = r.item.sample
            side = s.extra.get(HAND_KEY)
            hand = s.hand(side) if side else s.hands[0]
            mirror = cfg.data.mirror_left and hand.side == "left"
            maps = {m: np.asarray(r.conditions[m].convert("RGB")) for m in self.maps if m in r.conditions}
            box, seen, stored = self._crops(s, hand, maps, r.width, r.height, mirror)
            conds.append(condition_tensor(seen, list(cfg.model.conditions)))
            quats.append(
                torch.from_numpy(orientation_quaternion(hand.global_orient, mirror).astype(np.float32))
            )
            plans.append((s, stored, box, mirror))
        s = self.sampling
        scheduler = sampler_scheduler(cfg, s.scheduler, s.steps, self.spacing)
        gens = [torch.Generator().manual_seed(r.seed) for r in requests]
        x = denoise(
            self.model,
            scheduler,
            torch.stack(conds),
            torch.stack(quats),
            gens,
            s.guidance,
            s.eta,
            self.clipped_direction,
        )
        results = []
        for img, (sample, crops, box, mirror) in zip(x.float().cpu(), plans):
            arr = ((img + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
            if mirror:
                arr = arr[:, ::-1]
            record = crop_record(sample, box, size)
            results.append(
                GenResult(
                    image=Image.fromarray(np.ascontiguousarray(arr)),
                    record=record,
                    conditions={m: Image.fromarray(crops[m]) for m in crops},
                )
            )
        return results


def from_args(args: argparse.Namespace) -> HandBoosterGenerator:
    """``handsynth generate --method handbooster`` (registered in :mod:`handsynth.methods.registry`)."""
    if args.checkpoint is None:
        raise UserError("--method handbooster needs --checkpoint (the folder `handsynth train` wrote)")
    refused = {
        "--prompts": getattr(args, "prompts", "auto") != "auto",
        "--prompt-file": getattr(args, "prompt_file", None) is not None,
        "--negative-prompt": bool(getattr(args, "negative_prompt", "")),
        "--condition": getattr(args, "condition", None) is not None,
        "--base-model": getattr(args, "base_model", None) is not None,
        "--base-config": getattr(args, "base_config", None) is not None,
    }
    bad = [flag for flag, set_ in refused.items() if set_]
    if bad:
        raise UserError(
            f"{', '.join(bad)} do(es) not apply to --method handbooster: it reads no prompt and no base "
            "model, only the condition maps its training config lists and the hand's orientation"
        )
    defaults = copy.deepcopy(DEFAULT_SAMPLING)
    if getattr(args, "scheduler", None) == "ddpm":
        defaults.steps = DDPM_STEPS
    inp = getattr(args, "inp", None)
    return HandBoosterGenerator(
        args.checkpoint,
        sampling=sampling_from_args(args, defaults),
        data_root=dataset_root(inp) if inp else None,
        spacing=getattr(args, "timestep_spacing", None) or RELEASED_SPACING,
    )
