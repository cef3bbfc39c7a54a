"""Hand models (OpenHand, MANO), the shared LBS core, joint orders, canonical poses and the pose prior.

Public entry points: :func:`load_hand_model`, :func:`canonical_pose`, :data:`CANONICAL_POSES`,
:func:`to_openpose` / :func:`from_openpose`, and :mod:`handsynth.hand.priors` for random poses.
"""

from __future__ import annotations

from handsynth.lazy import lazy_exports

# name -> home module, imported on first use (``handsynth --help`` must not pay for torch)
_EXPORTS = {
    "from_openpose": "handsynth.hand.joints",
    "to_openpose": "handsynth.hand.joints",
    "HandModel": "handsynth.hand.model",
    "HandOutput": "handsynth.hand.model",
    "load_hand_model": "handsynth.hand.model",
    "CANONICAL_POSES": "handsynth.hand.poses",
    "anatomical_to_pose": "handsynth.hand.poses",
    "canonical_pose": "handsynth.hand.poses",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
