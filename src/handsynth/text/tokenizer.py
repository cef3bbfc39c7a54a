"""The SD-1.x CLIP ViT-L/14 tokenizer, built offline from the BPE file that ``open-clip-torch`` ships.

Why: SD weights are often unavailable (or their ``tokenizer/`` folder missing), yet hand-token tagging
and prompt encoding need the exact ids the text encoder was trained on. The BPE merges file in the
open_clip wheel holds everything: byte table + the first 48,894 merges give the same 49,408-token
vocabulary. The built tokenizer is a plain ``transformers.CLIPTokenizer`` saved under the user cache,
so the next load is a ``from_pretrained``.

OpenAI's tokenizer (and open_clip's) cleans text with ftfy + HTML unescaping and lowercases with
Python's ``str.lower``; the HF fast tokenizer does neither. :func:`clean_prompt` applies that cleaning,
and every handsynth code path tokenizes ``clean_prompt(text)`` so ids match open_clip's exactly.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from handsynth.errors import UserError

log = logging.getLogger(__name__)

CONTEXT_LENGTH = 77
NUM_MERGES = 49152 - 256 - 2  # 48,894: what CLIP ViT-L/14 (and SD-1.x) use
VOCAB_SIZE = 49408
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# "a photo of a cat" in SD-1.5's tokenizer (a published, independent check of the build).
_CHECK_TEXT, _CHECK_IDS = "a photo of a cat", [49406, 320, 1125, 539, 320, 2368, 49407]
_CACHE_NAME = "clip-vit-large-patch14-tokenizer"

_memo: dict[str, Any] = {}


def cache_root() -> Path:
    """handsynth's cache folder: ``$HANDSYNTH_CACHE`` or ``~/.cache/handsynth``."""
    env = os.environ.get("HANDSYNTH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "handsynth"


def openclip_bpe_path() -> Path:
    """Path of ``bpe_simple_vocab_16e6.txt.gz`` inside the installed open_clip, found without importing it."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the CLIP BPE file comes from the open-clip-torch wheel, which is not installed: "
            "run `pip install --no-deps open-clip-torch` or pass a model folder that has a tokenizer/"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.exists():
        raise UserError(f"{path} is missing from the open-clip-torch install; reinstall open-clip-torch")
    return path


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode table (printable bytes first, the rest from U+0100)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build_clip_tokenizer(bpe_path: str | os.PathLike | None = None) -> Any:
    """Build the CLIP tokenizer from a BPE merges file (gzip text, one merge per line after a header).

    Uses ``CLIPTokenizer(vocab=..., merges=...)``: in transformers 5 the old ``vocab_file=`` /
    ``merges_file=`` keywords are silently ignored and give an empty tokenizer.
    """
    from transformers import CLIPTokenizer

    path = Path(bpe_path) if bpe_path is not None else openclip_bpe_path()
    with gzip.open(path) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1]]
    if len(merges) != NUM_MERGES or any(len(m) != 2 for m in merges):
        raise UserError(f"{path} is not a CLIP BPE file ({len(merges)} merges read, {NUM_MERGES} expected)")
    symbols = list(bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CONTEXT_LENGTH)
    _check(tok, str(path))
    return tok


def _check(tok: Any, where: str) -> None:
    if len(tok) != VOCAB_SIZE or tok(_CHECK_TEXT).input_ids != _CHECK_IDS:
        raise UserError(
            f"the CLIP tokenizer from {where} does not give SD-1.x ids (vocab {len(tok)}); "
            f"delete it (cache: {cache_root() / _CACHE_NAME}) so it is rebuilt"
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
        return None
    if p.exists():
        raise UserError(f"{model_path} is a file; pass a model folder (with tokenizer/) or a hub id")
    log.info("tokenizer: loading %s/tokenizer from the hub", model_path)
    return AutoTokenizer.from_pretrained(model_path, subfolder="tokenizer")


def clip_tokenizer(model_path: str | os.PathLike | None = None) -> Any:
    """The SD-1.x CLIP tokenizer: the model folder's own ``tokenizer/`` when it has one, else the
    offline build (cached in memory and under :func:`cache_root` in ``save_pretrained`` format)."""
    key = str(model_path) if model_path is not None else ""
    if key in _memo:
        return _memo[key]
    tok = _user_tokenizer(str(model_path)) if model_path is not None else None
    if tok is None:
        tok = _cached_build()
    _memo[key] = tok
    return tok


def _cached_build() -> Any:
    from transformers import CLIPTokenizer

    folder = cache_root() / _CACHE_NAME
    if (folder / "tokenizer.json").exists():
        try:
            tok = CLIPTokenizer.from_pretrained(str(folder))
            _check(tok, str(folder))
            return tok
        except Exception as err:  # a corrupt or foreign cache is rebuilt, never trusted
            log.warning("tokenizer cache %s unusable (%s); rebuilding", folder, err)
            shutil.rmtree(folder, ignore_errors=True)
    tok = build_clip_tokenizer()
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{_CACHE_NAME}."))
        tok.save_pretrained(str(tmp))
        try:
            os.replace(tmp, folder)  # atomic; if another process won the race, keep theirs
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as err:
        log.warning("could not cache the CLIP tokenizer under %s (%s); it is rebuilt each run", folder, err)
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
