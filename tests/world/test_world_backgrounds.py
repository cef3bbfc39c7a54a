"""``world render --backgrounds K``: a small fixed background set shared by every seed and split."""

from __future__ import annotations

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np
import pytest

from handsynth.errors import UserError
from handsynth.world import WorldConfig, WorldGenerator
from handsynth.world.backgrounds import fixed_background


def _backgrounds(seed: int, k: int, n: int = 8) -> list[str]:
    gen = WorldGenerator(WorldConfig(domain="wild", size=64, seed=seed, maps=("mesh",), backgrounds=k))
    try:
        return [gen.generate(i)[0].source["attributes"]["background"]["phrase"] for i in range(n)]
    finally:
        gen.release()


def test_every_image_uses_one_of_the_fixed_backgrounds_whatever_the_seed():
    fixed = {fixed_background("wild", k, 64).phrase for k in range(2)}
    seen = set(_backgrounds(0, 2)) | set(_backgrounds(5, 2))
    assert seen <= fixed
    assert len(set(_backgrounds(0, 0))) > 2  # without the option: a new background per image


def test_fixed_background_depends_only_on_domain_index_and_size():
    a, b = fixed_background("wild", 3, 64), fixed_background("wild", 3, 64)
    assert np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, fixed_background("wild", 4, 64).image)


def test_negative_background_count_is_refused():
    with pytest.raises(UserError, match="--backgrounds"):
        WorldConfig(domain="wild", backgrounds=-1)
