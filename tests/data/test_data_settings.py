"""The one resume check: changed keys are named leaf by leaf, ignored keys (and what is below them) pass."""

from __future__ import annotations

import pytest

from handsynth.data.settings import changed_settings, refuse_other_settings
from handsynth.errors import UserError


def test_changed_settings_names_nested_leaves_and_skips_ignored_ones():
    old = {"seed": 0, "train": {"max_steps": 10, "lr": 1e-4}, "model": {"width": 1.0}, "steps": 20}
    new = {"seed": 1, "train": {"max_steps": 99, "lr": 2e-4}, "model": {"width": 2.0}, "extra": True}
    assert changed_settings(old, new) == [
        "extra",
        "model.width",
        "seed",
        "steps",
        "train.lr",
        "train.max_steps",
    ]
    assert changed_settings(old, new, ignore=("train.max_steps", "model", "steps")) == [
        "extra",
        "seed",
        "train.lr",
    ]
    assert changed_settings(old, dict(old)) == []


def test_refuse_other_settings_says_what_to_do(tmp_path):
    refuse_other_settings(tmp_path, {"a": 1}, {"a": 1}, "start again")  # same settings: no error
    with pytest.raises(UserError, match=r"holds a run with different settings \(a, b.c\); start again"):
        refuse_other_settings(tmp_path, {"a": 1, "b": {"c": 2}}, {"a": 2, "b": {"c": 3}}, "start again")


def test_a_path_written_another_way_is_the_same_setting(tmp_path, monkeypatch):
    """A resume that types its input as "./poses", "poses/" or the absolute path (or through a symlink)
    names the same folder: not a change. Another folder, or one that does not exist, still is."""
    (tmp_path / "poses").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "poses")
    monkeypatch.chdir(tmp_path)
    old = {"poses": "poses", "inputs": ["poses", "other"], "maps": "normal"}
    for same in ("./poses", "poses/", str(tmp_path / "poses"), "link"):
        new = {"poses": same, "inputs": [same, "./other"], "maps": "normal"}
        assert changed_settings(old, new) == [], same
    new = {"poses": "other", "inputs": ["poses"], "maps": "./normal"}
    # another folder, a shorter list, a file that does not exist
    assert changed_settings(old, new) == ["inputs", "maps", "poses"]
    assert changed_settings({"a": 1}, {}) == ["a"]  # a key that vanishes is a change
