"""handsynth.recon: the downstream single-image 3D hand reconstruction model, its trainer and predictor.

Names are imported lazily so ``handsynth --help`` does not pay for torch.
"""

from __future__ import annotations

from handsynth.lazy import lazy_exports

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

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
