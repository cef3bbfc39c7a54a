"""Robust extraction of one JSON object from a language model's answer.

Why: chat models wrap JSON in prose or code fences, use single quotes, trailing commas or Python
literals, or cut the answer short. This recovers the object when it is recoverable and says None
otherwise, so the caller can re-ask (bounded) or fall back.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)


def _balanced_objects(text: str) -> list[str]:
    """Every top-level ``{...}`` substring, matching braces outside strings."""
    out, depth, start, quote, esc = [], 0, -1, "", False
    for i, ch in enumerate(text):
        if quote:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == quote:
                quote = ""
            continue
        if ch in "\"'" and depth > 0:
            # an apostrophe inside a word ("person's") is not a string delimiter
            if ch == "'" and i > 0 and text[i - 1].isalnum():
                continue
            quote = ch
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                out.append(text[start : i + 1])
    return out


def _loads_lenient(s: str) -> Any:
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        pass
    fixed = re.sub(r",\s*([}\]])", r"\1", s)  # trailing commas
    fixed = fixed.replace("“", '"').replace("”", '"')
    try:
        return json.loads(fixed)
    except json.JSONDecodeError:
        pass
    try:  # single quotes, True/False/None
        return ast.literal_eval(
            re.sub(r"\bnull\b", "None", re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", fixed)))
        )
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def extract_json_object(text: str | None) -> dict | None:
    """The first JSON object in ``text`` (fenced or bare, lenient syntax), or None."""
    if not text:
        return None
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for cand in candidates:
        for obj in _balanced_objects(cand):
            val = _loads_lenient(obj)
            if isinstance(val, dict):
                return val
    return None
