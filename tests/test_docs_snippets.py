"""The ```python blocks of README.md and docs/*.md run as printed.

Every block carries a marker on the line above its fence: ``<!-- snippet: NAME -->`` (run here) or
``<!-- snippet: NAME; skip: WHY -->`` (needs what an offline CPU machine lacks: Stable Diffusion
weights, a GPU ...; its ``handsynth`` imports are still checked). A runnable block runs in a fresh
folder; the names it takes as given (``sample``, ``K`` ...) come from ``GIVEN[NAME]``, and ``PATHS[NAME]``
swaps a path the doc names (``/models/sd15``) for one in that folder.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from docs_markdown import DOC_FILES, Block, fenced_blocks


def python_blocks() -> list[Block]:
    return [b for path in DOC_FILES for b in fenced_blocks(path) if b.lang == "python"]


def snippet_name(block: Block) -> str:
    return (block.marker or "").split(";", 1)[0].strip()


def skip_reason(block: Block) -> str | None:
    _, _, rest = (block.marker or "").partition(";")
    key, _, why = rest.partition(":")
    return why.strip() if key.strip() == "skip" else None


def where(block: Block) -> str:
    return f"{block.path.name}:{block.line}"


# ---- what a runnable snippet takes as given --------------------------------------------------------


def hand_models() -> dict:
    from handsynth.hand import load_hand_model

    return {side: load_hand_model("openhand", side=side).eval() for side in ("right", "left")}


def two_hand_sample(size: int = 256):
    """A real record of the pose prior (two hands), with an image and a mesh condition map."""
    from handsynth.data import Sample
    from handsynth.hand.priors import SceneConfig, sample_records

    (record,) = sample_records(1, 0, hand_models(), SceneConfig(size=size, two_hands=True), progress=False)
    files = {
        "file_name": f"images/{record.id}.png",
        "conditions": {"mesh": f"conditions/mesh/{record.id}.png"},
    }
    return Sample.from_dict({**record.to_dict(), **files})


def given_dataset_writer(tmp: Path) -> dict:
    sample = two_hand_sample()
    image = np.full((sample.height, sample.width, 3), 128, np.uint8)
    return {"sample": sample, "image_array": image, "mesh_png": image}


def given_hand_model(tmp: Path) -> dict:
    import torch

    return {
        "global_orient": torch.zeros(2, 3),
        "hand_pose": torch.zeros(2, 45),
        "betas": torch.zeros(2, 10),
        "transl": torch.zeros(2, 3),
    }


def given_renderer(tmp: Path) -> dict:
    import trimesh

    from handsynth.hand.priors import SceneConfig, sample_scene

    K, hands = sample_scene(np.random.default_rng(0), hand_models(), SceneConfig(size=512, two_hands=True))
    right, left = sorted(hands, key=lambda h: h.side != "right")
    box = trimesh.creation.box(extents=(0.04, 0.04, 0.04))
    return {
        "K": K,
        "v_right": right.vertices,
        "faces_r": hand_models()["right"].faces,
        "j_right": right.joints,
        "v_left": left.vertices,
        "faces_l": hand_models()["left"].faces,
        "j_left": left.joints,
        "v_obj": np.asarray(box.vertices) + right.joints[9],
        "faces_o": np.asarray(box.faces),
        "rgb": np.zeros((512, 512, 3), np.uint8),
    }


def given_recon_estimator(tmp: Path) -> dict:
    """An untrained, small reconstruction checkpoint at runs/recon, and two hands to predict."""
    from handsynth.recon.checkpoint import save_checkpoint
    from handsynth.recon.config import ModelConfig
    from handsynth.recon.model import ReconNet

    cfg = ModelConfig(width=0.25, img_size=64, hidden=64)
    save_checkpoint(tmp / "runs" / "recon", ReconNet(cfg), cfg)
    K = np.array([[300.0, 0, 128], [0, 300.0, 128], [0, 0, 1]])
    return {
        "images": [np.zeros((256, 256, 3), np.uint8)] * 2,
        "bboxes": [[80.0, 80.0, 64.0, 64.0]] * 2,
        "sides": ["right", "left"],
        "Ks": [K, K],
    }


def given_tokenizer_folder(tmp: Path) -> dict:
    (tmp / "sd15").mkdir()  # a model folder without tokenizer files: the shipped tokenizer is used
    return {}


GIVEN: dict[str, Callable[[Path], dict]] = {
    "format-dataset-writer": given_dataset_writer,
    "hand-model": given_hand_model,
    "render-renderer": given_renderer,
    "recon-estimator": given_recon_estimator,
    "text-tokenizer": given_tokenizer_folder,
    "text-tagging": lambda tmp: {"p": "A man holding a red mug with his right hand."},
    "text-prompts": lambda tmp: {"sample": two_hand_sample()},
}
PATHS: dict[str, dict[str, str]] = {  # printed text -> what runs here ({tmp}: the snippet's folder)
    "text-tokenizer": {'"/models/sd15"': '"{tmp}/sd15"'},
    "recon-estimator": {'device="cuda"': 'device="cpu"'},
}


def promise_rule_prompt(ns: dict) -> None:
    """docs/text.md: what rule_prompt makes of its example caption."""
    assert ns["prompt"] == "a man typing on a laptop with both hands"
    assert ns["sem"].environment == ["in an office", "The background is blurred"]


# What a snippet's comments promise, checked after it ran.
PROMISES: dict[str, Callable[[dict], None]] = {"text-semantics": promise_rule_prompt}

BLOCKS = python_blocks()


def test_every_python_block_is_marked_once():
    names = [snippet_name(b) for b in BLOCKS]
    unmarked = [where(b) for b in BLOCKS if not snippet_name(b)]
    assert not unmarked, f"add a <!-- snippet: NAME --> (or NAME; skip: WHY) line above: {unmarked}"
    assert len(set(names)) == len(names), f"snippet names repeat: {sorted(names)}"
    runnable = {snippet_name(b) for b in BLOCKS if not skip_reason(b)}
    stale = (set(GIVEN) | set(PATHS) | set(PROMISES)) - runnable
    assert not stale, f"GIVEN/PATHS/PROMISES name no runnable snippet: {sorted(stale)}"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: snippet_name(b) or where(b))
def test_snippet_runs(block: Block, tmp_path, monkeypatch):
    name = snippet_name(block)
    source = block.text
    compile(source, where(block), "exec")  # every block is valid Python, skipped ones too
    reason = skip_reason(block)
    if reason is not None:
        for node in ast.walk(ast.parse(source)):  # its handsynth names exist
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("handsynth"):
                module = importlib.import_module(node.module)
                missing = [a.name for a in node.names if not hasattr(module, a.name)]
                assert not missing, f"{where(block)}: {node.module} has no {missing}"
        pytest.skip(f"{where(block)} {name}: {reason}")
    for printed, here in PATHS.get(name, {}).items():
        assert printed in source, f"{where(block)}: PATHS[{name!r}] expects {printed!r} in the snippet"
        source = source.replace(printed, here.format(tmp=tmp_path))
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"snippet_{name}", **GIVEN.get(name, lambda tmp: {})(tmp_path)}
    exec(compile(source, where(block), "exec"), namespace)
    PROMISES.get(name, lambda ns: None)(namespace)
