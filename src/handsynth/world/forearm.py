"""The world's forearm (and sleeve): built in :mod:`handsynth.render.forearm`, where the `body` map
rebuilds it from a record; re-exported here for the world scene."""

from handsynth.render.forearm import Forearm, arm_direction, make_forearm

__all__ = ["Forearm", "arm_direction", "make_forearm"]
