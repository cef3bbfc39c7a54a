"""The micro world: procedural "photographs" of hands with exact labels, in a lab and a wild domain
(and their hand–object versions ``holab`` / ``howild``, whose records carry the held object).

No real photos or pretrained weights reach this project's machines, so the papers' effects (the
lab-vs-wild gap, hand-aware text attention) are shown in a small world whose every part is made here.
``handsynth world render`` writes a dataset folder of such photos, captions and condition maps.
"""

from handsynth.world.scene import DOMAINS, WorldConfig, WorldGenerator

__all__ = ["DOMAINS", "WorldConfig", "WorldGenerator"]
