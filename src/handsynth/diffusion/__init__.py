"""Shared diffusion parts every method composes (one of each):

- :mod:`~handsynth.diffusion.base`: loading the SD base (``tiny`` / ``sd15-random`` / local folder / hub id),
- :mod:`~handsynth.diffusion.components`: SD-shaped parts of any size, random weights (tiny, micro),
- :mod:`~handsynth.diffusion.encoding`: prompt and image encoding,
- :mod:`~handsynth.diffusion.attention`: the cross-attention store and its processors,
- :mod:`~handsynth.diffusion.hand_bias`: SesaHand's hand structure attention enhancement (HSA),
- :mod:`~handsynth.diffusion.tas`: the text attention stage (training and A&E-style inference step),
- :mod:`~handsynth.diffusion.controlnet`: the ControlNet wrapper (guidance module phi_g),
- :mod:`~handsynth.diffusion.schedulers`: training schedule, samplers, targets,
- :mod:`~handsynth.diffusion.training`: the accelerate training loop;
- configs are typed YAML with ``a.b=value`` overrides (:mod:`handsynth.config`, shared with recon).
"""

from __future__ import annotations

from handsynth.lazy import lazy_exports

# Imported on first use: a module that needs one part (e.g. the samplers) does not load them all.
_EXPORTS = {
    "AttentionStore": "handsynth.diffusion.attention",
    "install_attention_store": "handsynth.diffusion.attention",
    "run_and_capture": "handsynth.diffusion.attention",
    "BaseModel": "handsynth.diffusion.base",
    "load_base": "handsynth.diffusion.base",
    "HSAConfig": "handsynth.diffusion.hand_bias",
    "HandBias": "handsynth.diffusion.hand_bias",
    "HandBiasAttnProcessor": "handsynth.diffusion.hand_bias",
    "install_hand_bias": "handsynth.diffusion.hand_bias",
    "remove_hand_bias": "handsynth.diffusion.hand_bias",
    "GuidanceModule": "handsynth.diffusion.controlnet",
    "controlled_unet_forward": "handsynth.diffusion.controlnet",
    "TASConfig": "handsynth.diffusion.tas",
    "TASInferenceConfig": "handsynth.diffusion.tas",
    "tas_inference_step": "handsynth.diffusion.tas",
    "tas_refine": "handsynth.diffusion.tas",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
