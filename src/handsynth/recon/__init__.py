"""handsynth.recon: the downstream single-image 3D hand reconstruction model, its trainer and predictor.

Names are imported lazily so ``handsynth --help`` does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelConfig": "handsynth.recon.model",
    "ReconModel": "handsynth.recon.model",
    "ReconNet": "handsynth.recon.model",
    "TrainConfig": "handsynth.recon.config",
    "train": "handsynth.recon.train",
    "ReconEstimator": "handsynth.recon.predict",
    "load_estimator": "handsynth.recon.predict",
    "predict_dataset": "handsynth.recon.predict",
    "write_freihand_pred": "handsynth.recon.predict",
    "RatioSampler": "handsynth.recon.sampler",
    "build_backbone": "handsynth.recon.backbone",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'handsynth.recon' has no attribute {name!r}")
