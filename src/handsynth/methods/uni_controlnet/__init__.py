"""Uni-ControlNet (Zhao et al., NeurIPS 2023): its local control adapter, as a baseline of AttentionHand.

One folder holds the whole method: the config (:mod:`.config`), the adapter (:mod:`.adapter`: the
multi-scale condition injection network, feature denormalisation and the encoder copy), the data
(:mod:`.data`), the training task (:mod:`.task`) and the generator (:mod:`.generator`). What is taken
from the paper / released code and what is our reading is listed in docs/uni_controlnet.md.
"""

from handsynth.methods.uni_controlnet.config import UniControlNetConfig

__all__ = ["UniControlNetConfig"]
