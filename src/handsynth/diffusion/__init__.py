"""Shared diffusion parts every method composes (one of each):

- :mod:`~handsynth.diffusion.base`: loading the SD base (``tiny`` / ``sd15-random`` / local folder / hub id),
- :mod:`~handsynth.diffusion.components`: SD-shaped parts of any size, random weights (tiny, micro),
- :mod:`~handsynth.diffusion.encoding`: prompt and image encoding,
- :mod:`~handsynth.diffusion.attention`: the cross-attention store and its processors,
- :mod:`~handsynth.diffusion.tas`: the text attention stage (training and A&E-style inference step),
- :mod:`~handsynth.diffusion.controlnet`: the ControlNet wrapper (guidance module phi_g),
- :mod:`~handsynth.diffusion.schedulers`: training schedule, samplers, targets,
- :mod:`~handsynth.diffusion.training`: the accelerate training loop;
- configs are typed YAML with ``a.b=value`` overrides (:mod:`handsynth.config`, shared with recon).
"""

from handsynth.diffusion.attention import AttentionStore, install_attention_store, run_and_capture
from handsynth.diffusion.base import BaseModel, load_base
from handsynth.diffusion.controlnet import GuidanceModule, controlled_unet_forward
from handsynth.diffusion.tas import TASConfig, TASInferenceConfig, tas_inference_step, tas_refine

__all__ = [
    "AttentionStore",
    "BaseModel",
    "GuidanceModule",
    "TASConfig",
    "TASInferenceConfig",
    "controlled_unet_forward",
    "install_attention_store",
    "load_base",
    "run_and_capture",
    "tas_inference_step",
    "tas_refine",
]
