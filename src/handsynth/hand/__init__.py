"""Hand models (OpenHand, MANO), the shared LBS core, joint orders, canonical poses and the pose prior.

Public entry points: :func:`load_hand_model`, :func:`canonical_pose`, :data:`CANONICAL_POSES`,
:func:`to_openpose` / :func:`from_openpose`, and :mod:`handsynth.hand.priors` for random poses.
"""

from handsynth.hand.joints import from_openpose, to_openpose
from handsynth.hand.model import HandModel, HandOutput, load_hand_model
from handsynth.hand.poses import CANONICAL_POSES, anatomical_to_pose, canonical_pose

__all__ = [
    "CANONICAL_POSES",
    "HandModel",
    "HandOutput",
    "anatomical_to_pose",
    "canonical_pose",
    "from_openpose",
    "load_hand_model",
    "to_openpose",
]
