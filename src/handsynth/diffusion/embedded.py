"""The embedded default model: a micro base folder, an AttentionHand run folder and the world's evaluation
tools shipped inside the package (``handsynth/assets/default/``), so ``make demo`` runs offline.

Only the locator lives here (every stage that takes ``--checkpoint default`` or the world tools may use
it); how the micro benchmark builds and installs the model is the lab's business (``micro/assets.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from handsynth.diffusion.base import missing_parts
from handsynth.errors import UserError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_NAME = "default"


@dataclass
class DefaultModel:
    """Paths of the embedded default model."""

    root: Path
    base: Path  # diffusers SD folder: --base-model
    checkpoint: Path  # AttentionHand run folder: --checkpoint

    def tool(self, name: str) -> Path | None:
        """A world evaluation tool shipped with the model (``features``, ``detector``), if present."""
        p = self.root / "tools" / name
        return p if (p / "model.safetensors").exists() else None

    @property
    def info(self) -> dict:
        p = self.root / "info.json"
        return json.loads(p.read_text()) if p.exists() else {}


def default_model(root: str | Path | None = None) -> DefaultModel:
    """The embedded default model (base + AttentionHand checkpoint); a clear error if it is missing."""
    root = Path(root) if root is not None else ASSETS / DEFAULT_NAME
    base, ckpt = root / "base", root / "attentionhand"
    missing = missing_parts(base)
    if missing or not (ckpt / "controlnet" / "config.json").exists():
        raise UserError(
            f"the default model in {root} is incomplete (missing {', '.join(missing) or 'attentionhand/controlnet'}); "
            "reinstall handsynth, rebuild it with `python benchmarks/micro/run.py --install-default`, "
            "or pass --base-model PATH --checkpoint RUN"
        )
    return DefaultModel(root, base, ckpt)


def resolve_checkpoint(spec: str) -> str:
    """``default`` -> the embedded default AttentionHand run folder; anything else unchanged."""
    return str(default_model().checkpoint) if spec == DEFAULT_NAME else spec


def world_tool(name: str) -> Path:
    """Folder of a world evaluation tool (``features``/``detector``) shipped with the default model."""
    folder = default_model().tool(name)
    if folder is None:
        raise UserError(f"the embedded default model ships no world {name} tool; reinstall handsynth")
    return folder
