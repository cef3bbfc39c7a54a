"""Input checks of a generation job, all done before any model is loaded.

A job reads a dataset folder (records with rendered condition maps, e.g. from ``handsynth render``)
or bare poses (records without maps: the maps are rendered on the fly). Every problem found here is
one :class:`UserError` naming the record: a non-finite number (caught by the record validation), a
missing condition file, a prompt longer than the text encoder reads, an output size the base cannot
make.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handsynth.data import Sample, dataset_root, metadata_path, read_dataset
from handsynth.data.images import check_image
from handsynth.errors import UserError
from handsynth.generate.plan import WorkItem, item_seed

PROMPT_SOURCES = ("auto", "records", "generator", "file")
MAX_TOKENS = 77


@dataclass
class Inputs:
    """The validated input records, the folder their paths are relative to, and whether to render."""

    samples: list[Sample]
    root: Path
    render: bool  # True: no record has the maps the method reads; they are rendered from the poses
    sha256: str  # of metadata.jsonl: a resumed run must read the same inputs


def load_inputs(
    path: str | Path, maps: tuple[str, ...], needs_local: bool, optional: tuple[str, ...] = ()
) -> Inputs:
    """Read and check the input records and the condition files the method will read.

    A map in ``optional`` may be absent from a record (the method fills it in); when no record has
    any of ``maps``, all of them are rendered from the poses.
    """
    samples = read_dataset(path)
    if not samples:
        raise UserError(f"{path} holds no records: pass poses (jsonl) or a dataset folder with records")
    root = dataset_root(path)
    sha = hashlib.sha256(metadata_path(path).read_bytes()).hexdigest()
    have = any(m in s.conditions for s in samples for m in maps)
    render = bool(maps) and not have
    if render:
        for s in samples:
            if not s.hands:
                raise UserError(f"record {s.id} has no hands and no condition maps: nothing to render")
        return Inputs(samples, root, True, sha)
    stored = {m for s in samples for m in s.conditions}
    for s in samples:
        for m in maps:
            if m in optional and m not in s.conditions:
                continue
            _check_file(root, s, m, s.conditions.get(m), "condition", m in stored)
            if needs_local and s.local is not None and m in s.local.conditions:
                _check_file(root, s, m, s.local.conditions[m], "local condition")
        for field_name, rel in s.paths().items():  # every map is carried into the output: all must load
            if field_name != "file_name" and (root / rel).is_file():
                check_image(root / rel, f"record {s.id} ({field_name})")
        if needs_local and s.local is None and not s.hands:
            raise UserError(
                f"record {s.id} has neither a local crop box nor hands to make one; the local branch "
                "needs one (render the input with `handsynth render`)"
            )
    return Inputs(samples, root, False, sha)


def _check_file(root: Path, s: Sample, name: str, rel: str | None, what: str, others: bool = True) -> None:
    if rel is None:
        raise UserError(
            f"record {s.id} has no {what} map '{name}'{' (other records do)' if others else ''}; render it "
            "with `handsynth render` or remove the record"
        )
    if not (root / rel).is_file():
        raise UserError(f"record {s.id}: {what} file {root / rel} does not exist")


def read_prompt_file(path: str | Path) -> list[str]:
    """Non-empty lines of a prompt file (one prompt per line)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--prompt-file {p} does not exist")
    prompts = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not prompts:
        raise UserError(f"--prompt-file {p} holds no prompts (one prompt per line)")
    return prompts


def assign_prompts(
    items: list[WorkItem], source: str, global_seed: int, prompt_file: str | Path | None = None
) -> str:
    """Fill each item's prompt; returns the source actually used.

    ``records``: the record's own prompt (K images per pose share it, with different seeds);
    ``file``: line ``j mod n`` for plan item j; ``generator``: the seeded hand prompt generator,
    agreeing with the record's hands and object, one prompt per (pose, k); ``auto``: records when
    every record has a prompt, else the generator.
    """
    if source not in PROMPT_SOURCES:
        raise UserError(f"--prompts {source!r} is unknown; choose from {', '.join(PROMPT_SOURCES)}")
    if prompt_file is not None:
        if source not in ("auto", "file"):
            raise UserError(f"--prompt-file cannot be combined with --prompts {source}")
        source = "file"
    if source == "file":
        if prompt_file is None:
            raise UserError("--prompts file needs --prompt-file PATH")
        lines = read_prompt_file(prompt_file)
        for it in items:
            it.prompt = lines[it.index % len(lines)]
        return source
    if source == "auto":
        source = "records" if all(it.sample.prompt.strip() for it in items) else "generator"
    if source == "records":
        for it in items:
            it.prompt = it.sample.prompt
        return source
    from handsynth.text.prompts import prompt_for_sample

    for it in items:
        it.prompt = prompt_for_sample(it.sample, seed=item_seed(global_seed, "prompt", it.prompt_index))
    return source


def check_prompts(items: list[WorkItem], tokenizer: Any, tag: bool = True) -> None:
    """Refuse prompts longer than the text encoder reads; fill the hand-token positions (for TAS)."""
    from handsynth.text.tokenizer import clean_prompt

    cache: dict[str, list[int]] = {}
    for it in items:
        if it.prompt not in cache:
            n = len(tokenizer(clean_prompt(it.prompt)).input_ids)
            limit = getattr(tokenizer, "model_max_length", MAX_TOKENS) or MAX_TOKENS
            if n > min(limit, MAX_TOKENS):
                raise UserError(
                    f"record {it.sample.id} (prompt {it.prompt_index}): the prompt has {n} CLIP tokens, more "
                    f"than the {MAX_TOKENS} the text encoder reads; shorten it: {it.prompt[:60]!r}..."
                )
            cache[it.prompt] = _hand_tokens(it.prompt, tokenizer) if tag else []
        it.hand_token_indices = list(cache[it.prompt])


def _hand_tokens(prompt: str, tokenizer: Any) -> list[int]:
    from handsynth.text.tagging import hand_token_indices

    return hand_token_indices(prompt, tokenizer) if prompt.strip() else []
