"""The one method registry: every entry resolves, `train` and `generate` look methods up there, and a
flag of another method is refused."""

from __future__ import annotations

import argparse

import pytest

from handsynth.errors import UserError
from handsynth.generate.cli import add_arguments
from handsynth.methods.interface import GenerationMethod
from handsynth.methods.registry import METHODS, build_generator, get_method, resolve, trainable


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--in", "x", "--out", "y", *argv])


def test_every_entry_resolves_to_its_parts():
    for spec in METHODS.values():
        assert issubclass(resolve(spec.method), GenerationMethod), spec.name
        assert callable(resolve(spec.generator)), spec.name
        if spec.options:
            assert callable(resolve(spec.options)), spec.name
    assert "attentionhand" in trainable() and "sd" not in trainable()


def test_generate_builds_by_name_and_refuses_foreign_flags():
    method = build_generator(_args("--method", "sd", "--base-model", "tiny"))
    assert method.name == "sd"
    with pytest.raises(UserError, match=r"--mode and --tas belong to --method attentionhand, not controlnet"):
        build_generator(_args("--method", "controlnet", "--mode", "global+local", "--tas"))
    with pytest.raises(UserError, match=r"--method 'nope' is unknown; choose from attentionhand, sd"):
        get_method("nope")
