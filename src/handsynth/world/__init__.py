"""The micro world: procedural "photographs" of hands with exact labels, in a lab and a wild domain
(and their hand–object versions ``holab`` / ``howild``, whose records carry the held object).

No real photos or pretrained weights reach this project's machines, so the papers' effects (the
lab-vs-wild gap, hand-aware text attention) are shown in a small world whose every part is made here.
``handsynth world render`` writes a dataset folder of such photos, captions and condition maps.
"""

from __future__ import annotations

from handsynth.lazy import lazy_exports

# name -> home module, imported on first use (``handsynth --help`` must not pay for torch)
_EXPORTS = {
    "DOMAINS": "handsynth.world.config",
    "WorldConfig": "handsynth.world.config",
    "WorldGenerator": "handsynth.world.scene",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
