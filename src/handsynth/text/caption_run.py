"""Caption, tag and prompt a dataset folder in place (``metadata.jsonl`` rewritten atomically).

Why: captions and prompts are record fields, so these commands edit records rather than write new
datasets. Progress is checkpointed (atomic rewrite every ``save_interval`` seconds) and records that
are already captioned are skipped, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handsynth.data.folder import check_editable, dataset_root, read_dataset, write_metadata
from handsynth.data.images import load_rgb
from handsynth.data.lock import FolderLock
from handsynth.errors import UserError
from handsynth.progress import progress
from handsynth.text.captioner import DEFAULT_QUESTION
from handsynth.text.cot import run_chain
from handsynth.text.prompts import prompt_for_sample
from handsynth.text.tagging import TagResult, TagRules, tag_prompt

log = logging.getLogger(__name__)


@dataclass
class CaptionReport:
    total: int = 0
    skipped: int = 0
    captioned: int = 0
    failed: list[str] = field(default_factory=list)


def _is_done(sample: Any, cot: bool) -> bool:
    return ("caption_chain" if cot else "caption") in sample.source


def _load_images(root: Path, batch: list[Any], rep: CaptionReport) -> tuple[list[Any], list[Any]]:
    """The batch's records whose image loads, and their images; a bad image fails only its record."""
    kept, images = [], []
    for s in batch:
        try:
            images.append(load_rgb(root / s.file_name, f"record {s.id}"))
        except UserError as err:
            log.warning("%s", err)
            rep.failed.append(s.id)
            continue
        kept.append(s)
    return kept, images


class PromptFitter:
    """Cuts captions to the 77 CLIP tokens the text encoder reads, at a word boundary.

    Why: a VLM easily writes 200+ tokens; stored whole, the next stage (``generate``) refuses the
    record. The cut is recorded in the caption's provenance, so nothing is shortened silently.
    """

    def __init__(self, tokenizer: Any | None = None) -> None:
        self._tokenizer = tokenizer

    def count(self, text: str) -> int:
        """CLIP tokens of ``text`` as the text encoder sees it (start and end tokens included)."""
        from handsynth.text.tokenizer import clean_prompt, clip_tokenizer

        if self._tokenizer is None:
            self._tokenizer = clip_tokenizer()
        return len(self._tokenizer(clean_prompt(text)).input_ids)

    def fit(self, text: str) -> tuple[str, int | None]:
        """``(text, None)`` when it fits, else the longest word prefix that fits and the original count."""
        from handsynth.text.tokenizer import CONTEXT_LENGTH

        if len(text.encode("utf-8")) <= CONTEXT_LENGTH - 2:  # a token covers at least one byte
            return text, None
        n = self.count(text)
        if n <= CONTEXT_LENGTH:
            return text, None
        words = text.split()
        lo, hi = 0, len(words)  # the longest prefix of lo words fits; hi words does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.count(" ".join(words[:mid])) <= CONTEXT_LENGTH:
                lo = mid
            else:
                hi = mid
        return " ".join(words[:lo]).rstrip(",;:"), n


GIVE_UP_AFTER = 16  # consecutive failed records: a dead server, not a few unreadable images


def caption_dataset(
    path: str | Path,
    backend: Any,
    question: str = DEFAULT_QUESTION,
    cot: bool = False,
    semantics: str = "auto",
    overwrite: bool = False,
    batch_size: int = 8,
    save_interval: float = 30.0,
    max_json_retries: int = 2,
) -> CaptionReport:
    """Caption every record not yet captioned; the caption (or the CoT prompt) becomes ``prompt``."""
    samples = read_dataset(path)
    check_editable(path)
    lock = FolderLock(dataset_root(path))  # noqa: F841 (held until the function returns)
    root = dataset_root(path)
    todo = [s for s in samples if overwrite or not _is_done(s, cot)]
    rep = CaptionReport(total=len(samples), skipped=len(samples) - len(todo))
    needs_image = backend.name not in ("template", "record")
    if backend.name == "record":
        from handsynth.text.captioner import record_caption

        bare = [s.id for s in todo if record_caption(s) is None]
        if bare:
            raise UserError(
                f"{len(bare)} record(s) in {root} have no `caption` field for --backend record "
                f"(first: {bare[0]}); render them with `handsynth world render --caption-style verbose` "
                "or use --backend template"
            )
    if needs_image:
        missing = [s.id for s in todo if not s.file_name or not (root / s.file_name).exists()]
        if missing:
            raise UserError(
                f"{len(missing)} record(s) in {root} have no image file to caption (first: {missing[0]}); "
                "use --backend template for condition-only records"
            )
    last_save = time.monotonic()
    dirty, streak = False, 0
    fitter = PromptFitter()
    try:
        for b in progress(range(0, len(todo), batch_size), desc="caption", unit="batch", disable=not todo):
            batch = todo[b : b + batch_size]
            if needs_image:
                batch, images = _load_images(root, batch, rep)
            else:
                images = [None] * len(batch)
            if not batch:
                continue
            if cot:
                results = run_chain(backend, batch, images, question, semantics, max_json_retries)
                texts = [r.prompt if r else None for r in results]
            else:
                results = [None] * len(batch)
                texts = backend.caption(batch, images, question)
            for s, text, res in zip(batch, texts, results):
                if not text:
                    rep.failed.append(s.id)
                    streak += 1
                    if streak >= GIVE_UP_AFTER:
                        raise UserError(
                            f"the {backend.name} back-end failed on {streak} records in a row (first: "
                            f"{rep.failed[-streak]}; see the warnings above): is its server or model up? "
                            "Rerun the same command to continue"
                        )
                    continue
                streak = 0
                _set_caption(s, text, res, backend, question, fitter)
                rep.captioned += 1
                dirty = True
            if dirty and time.monotonic() - last_save >= save_interval:
                write_metadata(path, samples)
                last_save, dirty = time.monotonic(), False
    finally:
        # A run that stops early (Ctrl-C, a dead back-end, an error) keeps what it captioned: the
        # message of an interrupted command promises the finished work, not only the last save's.
        if dirty:
            write_metadata(path, samples)
    return rep


def _set_caption(s: Any, text: str, res: Any, backend: Any, question: str, fitter: PromptFitter) -> None:
    """Store one record's caption; the slow part (fitting to 77 tokens) runs before the record changes,
    so an interrupt leaves it either captioned whole or untouched (never marked done on its old prompt)."""
    caption = res.description if res is not None else text
    prompt, tokens = fitter.fit(text)
    source = {"backend": backend.name, "model": backend.model, "question": question, "text": caption}
    if tokens is not None:
        source["prompt_truncated"] = {"tokens": tokens, "kept": prompt}
        log.warning("record %s: caption of %d CLIP tokens cut to 77 at a word boundary", s.id, tokens)
    if s.prompt != prompt and "hand_token_indices" in s.extra:
        del s.extra["hand_token_indices"]  # stale: positions belong to the old prompt
    s.prompt = prompt
    if res is not None:
        s.source["caption_chain"] = res.chain
    else:
        s.source.pop("caption_chain", None)  # an earlier CoT run's chain does not explain this caption
    s.source["caption"] = source  # what marks the record done: set last, after its chain (CoT)


def tag_dataset(
    path: str | Path, tokenizer: Any, rules: TagRules, tagger: Any
) -> list[tuple[Any, TagResult]]:
    """Add ``hand_token_indices`` to every record; returns (sample, result) pairs for the table."""
    samples = read_dataset(path)
    check_editable(path)
    lock = FolderLock(dataset_root(path))  # noqa: F841 (held until the function returns)
    out = []
    for s in progress(samples, desc="tag", unit="record", disable=len(samples) < 200):
        res = tag_prompt(s.prompt, tokenizer, rules, tagger)
        s.extra["hand_token_indices"] = res.positions
        out.append((s, res))
    write_metadata(path, samples)
    return out


def fill_prompts(path: str | Path, seed: int = 0, overwrite: bool = False) -> tuple[int, int]:
    """Give a generated prompt to every record without one (all records with ``overwrite``); returns
    (prompts written, records in the dataset)."""
    samples = read_dataset(path)
    check_editable(path)
    lock = FolderLock(dataset_root(path))  # noqa: F841 (held until the function returns)
    n = 0
    for s in samples:
        if overwrite or not s.prompt.strip():
            new = prompt_for_sample(s, seed)
            if new != s.prompt and "hand_token_indices" in s.extra:
                del s.extra["hand_token_indices"]
            s.prompt = new
            s.source["prompt_generator"] = {"seed": seed}
            n += 1
    if n:
        write_metadata(path, samples)
    return n, len(samples)
