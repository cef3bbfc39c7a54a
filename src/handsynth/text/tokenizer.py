"""The SD-1.x CLIP ViT-L/14 tokenizer, loaded offline from the tokenizer files the package ships.

Why: SD weights are often unavailable (or their ``tokenizer/`` folder missing), yet hand-token tagging
and prompt encoding need the exact ids the text encoder was trained on. The embedded default model's
base carries SD-1.x's own tokenizer files (``assets/default/base/tokenizer``: the same 49,408 tokens
and ids as OpenAI's and open_clip's), so no other package or download is needed.

OpenAI's tokenizer (and open_clip's) cleans text with ftfy + HTML unescaping and lowercases with
Python's ``str.lower``; the HF fast tokenizer does neither. :func:`clean_prompt` applies that cleaning,
and every handsynth code path tokenizes ``clean_prompt(text)`` so ids match open_clip's exactly.
"""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path
from typing import Any

from handsynth.errors import UserError

log = logging.getLogger(__name__)

CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408
# "a photo of a cat" in SD-1.5's tokenizer (a published, independent check of the build).
_CHECK_TEXT, _CHECK_IDS = "a photo of a cat", [49406, 320, 1125, 539, 320, 2368, 49407]

_memo: dict[str, Any] = {}


def shipped_tokenizer_dir() -> Path:
    """SD-1.x's tokenizer files, shipped inside the package (the embedded default model's base)."""
    return Path(__file__).resolve().parent.parent / "assets" / "default" / "base" / "tokenizer"


def load_shipped_tokenizer(folder: str | os.PathLike | None = None) -> Any:
    """The CLIP tokenizer from the package's own SD tokenizer files, checked against SD-1.x ids."""
    from transformers import CLIPTokenizer

    folder = Path(folder) if folder is not None else shipped_tokenizer_dir()
    if not (folder / "tokenizer.json").is_file() and not (folder / "vocab.json").is_file():
        raise UserError(
            f"the CLIP tokenizer files are missing from {folder}: reinstall handsynth, or pass a model "
            "folder that has a tokenizer/"
        )
    tok = CLIPTokenizer.from_pretrained(str(folder))
    _check(tok, str(folder))
    return tok


def _check(tok: Any, where: str) -> None:
    if len(tok) != VOCAB_SIZE or tok(_CHECK_TEXT).input_ids != _CHECK_IDS:
        raise UserError(
            f"the CLIP tokenizer in {where} does not give SD-1.x ids (vocab {len(tok)}); reinstall handsynth"
        )


def _user_tokenizer(model_path: str) -> Any:
    """A user's own tokenizer: ``<model>/tokenizer`` (diffusers layout), the folder itself, or a hub id."""
    from transformers import AutoTokenizer

    p = Path(model_path).expanduser()
    if p.is_dir():
        for cand in (p / "tokenizer", p):
            if any((cand / f).exists() for f in ("tokenizer.json", "vocab.json", "tokenizer_config.json")):
                log.info("tokenizer: using %s", cand)
                return AutoTokenizer.from_pretrained(str(cand))
        log.info("tokenizer: %s holds no tokenizer files; using the shipped CLIP tokenizer", p)
        return None
    if p.exists():
        raise UserError(f"{model_path} is a file; pass a model folder (with tokenizer/) or a hub id")
    if p.is_absolute() or model_path.startswith((".", "~")):
        raise UserError(f"tokenizer folder {model_path} does not exist")
    log.info("tokenizer: loading %s/tokenizer from the hub", model_path)
    try:
        return AutoTokenizer.from_pretrained(model_path, subfolder="tokenizer")
    except (OSError, ValueError) as err:
        raise UserError(
            f"{model_path} is neither a local folder nor a tokenizer the hub (or its offline cache) has ({err})"
        ) from None


def clip_tokenizer(model_path: str | os.PathLike | None = None) -> Any:
    """The SD-1.x CLIP tokenizer: the model folder's own ``tokenizer/`` when it has one, else the
    package's shipped copy (memoised per process)."""
    key = str(model_path) if model_path is not None else ""
    if key in _memo:
        return _memo[key]
    tok = _user_tokenizer(str(model_path)) if model_path is not None else None
    if tok is None:
        tok = load_shipped_tokenizer()
    _memo[key] = tok
    return tok


def fix_text(text: str) -> str:
    """OpenAI CLIP's text cleaning without the lowercasing: ftfy, HTML unescape twice, whitespace."""
    import ftfy

    return " ".join(html.unescape(html.unescape(ftfy.fix_text(text))).split())


def clean_prompt(text: str) -> str:
    """OpenAI CLIP's text cleaning: :func:`fix_text` then Python's ``str.lower`` (final sigma included)."""
    return fix_text(text).lower()


def encode_prompts(prompts: list[str] | str, tokenizer: Any | None = None) -> Any:
    """``(N, 77)`` LongTensor of CLIP ids, cleaned like OpenAI's tokenizer, truncated with an end token,
    padded with the tokenizer's pad token (``<|endoftext|>`` for SD-1.x)."""
    tok = tokenizer if tokenizer is not None else clip_tokenizer()
    if isinstance(prompts, str):
        prompts = [prompts]
    return tok(
        [clean_prompt(p) for p in prompts],
        padding="max_length",
        max_length=CONTEXT_LENGTH,
        truncation=True,
        return_tensors="pt",
    ).input_ids
