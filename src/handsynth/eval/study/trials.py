"""User-study trials: the same record id in every method folder, its mesh condition, and the prompt.

The candidate order is a permutation drawn from sha256(seed, participant, trial), so each participant
sees a different order (no position bias) and the server can map a chosen position back to its
method without ever sending method names to the page.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from handsynth.errors import UserError

# AttentionHand's user study (Fig. C of the supplementary material), one answer per question.
QUESTIONS = [
    ("alignment", "Has a well-aligned image generated in a given hand image (leftmost image)?"),
    ("text", "Has an image been generated that reflects the given text (bottom of images) well?"),
    ("quality", "Is the overall quality of the generated image good?"),
]


@dataclass
class StudyConfig:
    """What a study asks: the page title and the questions (key, text), one answer per question."""

    title: str = "Hand image study"
    questions: list[tuple[str, str]] | None = None

    def __post_init__(self) -> None:
        if self.questions is None:
            self.questions = list(QUESTIONS)


def load_study_config(path: str | Path) -> StudyConfig:
    """A study config file (YAML: ``title``, ``questions: [{key, text}, ...]``; configs/study_*.yaml)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UserError(
            f"--config {p}: no such file; pass a study config such as configs/study_sesahand.yaml"
        )
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    where = f"study config {p}"
    if not isinstance(data, dict) or set(data) - {"title", "questions"}:
        raise UserError(f"{where} must be a mapping with `title` and `questions` only")
    items = data.get("questions")
    if not isinstance(items, list) or not items or not all(isinstance(q, dict) for q in items):
        raise UserError(f"{where}: `questions` must be a non-empty list of {{key, text}} entries")
    questions = []
    for i, q in enumerate(items):
        key, text = q.get("key"), q.get("text")
        if set(q) != {"key", "text"} or not isinstance(key, str) or not key.isidentifier():
            raise UserError(
                f"{where}: questions[{i}] needs exactly a `key` (a short identifier) and a `text`"
            )
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"{where}: questions[{i}].text must be the question shown to participants")
        questions.append((key, text.strip()))
    if len({k for k, _ in questions}) != len(questions):
        raise UserError(f"{where}: question keys must be distinct")
    title = data.get("title", StudyConfig.title)
    if not isinstance(title, str) or not title.strip():
        raise UserError(f"{where}: `title` must be a non-empty string")
    return StudyConfig(title=title.strip(), questions=questions)


@dataclass
class Trial:
    id: str
    prompt: str
    mesh: Path | None
    candidates: list[tuple[str, Path]]  # (method, image path), canonical order
    roots: tuple[Path, ...] = ()  # the dataset folders the files come from: the server serves nothing else


def build_trials(
    dirs: list[str | Path], names: list[str] | None = None, limit: int | None = None
) -> list[Trial]:
    """Trials for ids present (with an image) in every folder, in the first folder's order."""
    from handsynth.data.folder import dataset_root, read_dataset

    if len(dirs) < 2:
        raise UserError("--dirs needs at least two method folders to compare")
    names = names or [Path(d).resolve().name for d in dirs]
    if len(names) != len(dirs) or len(set(names)) != len(names):
        raise UserError("--names must give one distinct name per --dirs folder (folder names collide)")
    tables = []
    for d in dirs:
        root = dataset_root(d)
        records = read_dataset(d)
        with_images = {s.id: s for s in records if s.file_name}
        if records and not with_images:
            raise UserError(
                f"--dirs {d}: its records have no image (a conditions folder?); pass generated sets"
            )
        tables.append((root, with_images))
    first_root, first = tables[0]
    trials = []
    for sid, s in first.items():
        if not all(sid in t for _, t in tables):
            continue
        mesh = None
        for root, t in tables:
            rel = t[sid].conditions.get("mesh")
            if rel and (root / rel).is_file():
                mesh = root / rel
                break
        cands = [(n, root / t[sid].file_name) for n, (root, t) in zip(names, tables)]
        missing = [str(p) for _, p in cands if not p.is_file()]
        if missing:
            raise UserError(
                f"image {missing[0]} listed in a metadata.jsonl is missing; regenerate or remove the record"
            )
        trials.append(Trial(sid, s.prompt, mesh, cands, tuple(root for root, _ in tables)))
        if limit and len(trials) >= limit:
            break
    if not trials:
        raise UserError("no record id appears in every --dirs folder; the folders must hold the same ids")
    return trials


def permutation(n: int, seed: int, participant: str, trial_id: str) -> list[int]:
    """The displayed order: position i shows canonical candidate perm[i]."""
    digest = hashlib.sha256(f"{seed}\x00{participant}\x00{trial_id}".encode()).digest()
    perm = list(range(n))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(perm)
    return perm
