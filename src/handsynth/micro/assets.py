"""Where the embedded default model lives, and how the micro benchmark installs one there.

The default model is the micro benchmark's micro base (a diffusers SD folder) plus its AttentionHand
guidance module (a ``handsynth train`` run folder holding ``controlnet/`` + ``handsynth_config.yaml``),
stored in fp16 safetensors inside the package (``handsynth/assets/default/``) so ``make demo`` runs
from a fresh clone with no download. ``info.json`` there names the command, profile and seed that made
it. ``--checkpoint default`` names this run folder wherever a command takes an AttentionHand checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from handsynth.diffusion.embedded import ASSETS, DEFAULT_NAME, DefaultModel, default_model, resolve_checkpoint
from handsynth.errors import UserError

__all__ = ["ASSETS", "DEFAULT_NAME", "DefaultModel", "default_model", "install_default", "resolve_checkpoint"]

MAX_BYTES = 20 * 1024 * 1024


# Records copied beside the weights when present: the base's training record and each artifact's recipe
# (budget + data fingerprints) and finished marker, so a micro run can take them as pretrained.
RECORDS = ("handsynth_micro.json", "handsynth_recipe.json", "training_seconds.json", ".done")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def install_default(
    base: str | Path,
    checkpoint: str | Path,
    info: dict,
    tools: dict[str, Path] | None = None,
    root: str | Path | None = None,
) -> DefaultModel:
    """Copy a micro base, an AttentionHand run and the world's evaluation tools into the package
    (diffusion weights as fp16 safetensors; <= 20 MB in all)."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel

    from handsynth.recon.checkpoint import resolve_checkpoint

    root = Path(root) if root is not None else ASSETS / DEFAULT_NAME
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    base, checkpoint = Path(base), Path(checkpoint)
    (tmp / "base").mkdir(parents=True)
    for name in ("model_index.json",):
        shutil.copy2(base / name, tmp / "base" / name)
    for sub in ("scheduler", "tokenizer"):
        shutil.copytree(base / sub, tmp / "base" / sub)
    half = dict(dtype=torch.float16)
    UNet2DConditionModel.from_pretrained(base, subfolder="unet").to(**half).save_pretrained(
        tmp / "base" / "unet"
    )
    AutoencoderKL.from_pretrained(base, subfolder="vae").to(**half).save_pretrained(tmp / "base" / "vae")
    CLIPTextModel.from_pretrained(base, subfolder="text_encoder").to(**half).save_pretrained(
        tmp / "base" / "text_encoder"
    )
    ah = tmp / "attentionhand"
    ah.mkdir()
    for sub in sorted(p.name for p in checkpoint.iterdir() if p.is_dir() and p.name.startswith("controlnet")):
        ControlNetModel.from_pretrained(checkpoint / sub).to(**half).save_pretrained(ah / sub)
    cfg_text = (checkpoint / "handsynth_config.yaml").read_text()
    # The run's config names the base it was trained on; the embedded copy points at its sibling.
    import yaml

    cfg = yaml.safe_load(cfg_text)
    cfg["model"]["base_model"] = "../base"
    (ah / "handsynth_config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    for name in RECORDS:  # what the base was trained from and on (the micro benchmark reuses it by these)
        if (base / name).exists():
            shutil.copy2(base / name, tmp / "base" / name)
    for name, folder in (tools or {}).items():
        (tmp / "tools" / name).mkdir(parents=True)
        weights = resolve_checkpoint(folder)  # the folder itself, or a recon run's latest checkpoint
        for f in ("model.safetensors", "config.json"):
            shutil.copy2(weights / f, tmp / "tools" / name / f)
        for f in RECORDS:
            if (Path(folder) / f).exists():
                shutil.copy2(Path(folder) / f, tmp / "tools" / name / f)
    (tmp / "info.json").write_text(json.dumps(info, indent=2))
    size = folder_bytes(tmp)
    if size > MAX_BYTES:
        shutil.rmtree(tmp)
        raise UserError(f"the default model would take {size / 2**20:.1f} MB, over the 20 MB limit")
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return default_model(root)
