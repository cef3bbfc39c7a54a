"""The arrays a MANO-style hand model is made of: what OpenHand and MANO both produce and
:class:`handsynth.hand.model.HandModel` consumes (a leaf, so the producers need not import the model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handsynth.hand.joints import MANO_PARENTS


@dataclass
class HandArrays:
    """The plain arrays of a MANO-style model (the schema of MANO's pickle, without chumpy).

    ``posedirs`` is ``(V, 3, 135)`` as in MANO's pickle, or ``None`` (OpenHand has no pose correctives).
    """

    v_template: np.ndarray  # (V, 3)
    shapedirs: np.ndarray  # (V, 3, 10)
    posedirs: np.ndarray | None  # (V, 3, 135)
    J_regressor: np.ndarray  # (16, V) dense
    weights: np.ndarray  # (V, 16)
    faces: np.ndarray  # (F, 3)
    hands_mean: np.ndarray  # (45,)
    tip_vertices: tuple[int, ...]  # thumb, index, middle, ring, little
    side: str
    parents: tuple[int, ...] = MANO_PARENTS
