"""Captioner back-ends: one interface over template (offline), transformers and OpenAI-compatible VLMs.

Why: AttentionHand captions its training photos with a VLM (Qwen-VL) and SesaHand chains VLM/LLM
calls; users run these locally (transformers) or behind a server (vLLM, Ollama, llama.cpp). The
chain and the dataset loop talk to :class:`Backend` only, so each back-end is a small module
(``caption_hf``, ``caption_openai``) and :mod:`handsynth.text.backends` picks one by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from handsynth.errors import UserError
from handsynth.text.prompts import object_phrase

DEFAULT_QUESTION = "Describe what a person is doing with his or her hands in the image."
BACKENDS = ("template", "record", "transformers", "openai")  # built by handsynth.text.backends.make_backend


@dataclass
class ChatRequest:
    """One single-turn question, with an optional image (a PIL image)."""

    text: str
    image: Any | None = None


class Backend(Protocol):
    name: str
    model: str
    can_chat: bool  # False: only :meth:`caption` from metadata (template)

    def chat(self, requests: list[ChatRequest]) -> list[str | None]:
        """Answers in order; None for a request that failed (logged), so a rerun retries it."""
        ...

    def caption(self, samples: list[Any], images: list[Any | None], question: str) -> list[str | None]: ...


class ChatBackend:
    """Base for model back-ends: a caption is the answer to ``question`` about the image."""

    name = "chat"
    model = ""
    can_chat = True

    def chat(self, requests: list[ChatRequest]) -> list[str | None]:  # pragma: no cover - abstract
        raise NotImplementedError

    def caption(self, samples: list[Any], images: list[Any | None], question: str) -> list[str | None]:
        return self.chat([ChatRequest(question, img) for img in images])


class TemplateCaptioner:
    """Offline captions from record metadata: which hand(s), and the object when the record names one."""

    name = "template"
    model = "template"
    can_chat = False

    def chat(self, requests: list[ChatRequest]) -> list[str | None]:
        raise UserError("the template back-end cannot answer questions; use --backend transformers or openai")

    def caption(self, samples: list[Any], images: list[Any | None], question: str = "") -> list[str | None]:
        return [template_caption(s) for s in samples]


class RecordCaptioner(TemplateCaptioner):
    """The record's own ``caption`` field as the description (offline): e.g. the verbose captions of
    ``handsynth world render --caption-style verbose``, which ``--cot`` then turns into prompts."""

    name = "record"
    model = "record"

    def chat(self, requests: list[ChatRequest]) -> list[str | None]:
        raise UserError("the record back-end cannot answer questions; use --semantics rule")

    def caption(self, samples: list[Any], images: list[Any | None], question: str = "") -> list[str | None]:
        return [record_caption(s) for s in samples]


def record_caption(sample: Any) -> str | None:
    """The record's ``caption`` field (None when it has none)."""
    text = sample.extra.get("caption")
    return text if isinstance(text, str) and text.strip() else None


def template_caption(sample: Any) -> str:
    """E.g. "A person is holding a mustard bottle in their right hand." (deterministic)."""
    sides = sorted(h.side for h in sample.hands)
    obj = sample.extra.get("object")
    name = obj.get("name") if isinstance(obj, dict) else None
    if not sides:
        return "A photo of a person." if not name else f"A photo of {object_phrase(name)}."
    where = "with both hands" if len(sides) == 2 else f"in their {sides[0]} hand"
    if name:
        return f"A person is holding {object_phrase(name)} {where}."
    if len(sides) == 2:
        return "A close-up photo of a person's left and right hands."
    return f"A close-up photo of a person's {sides[0]} hand with the fingers clearly visible."


def clean_answer(text: str) -> str:
    """Strip whitespace, role prefixes and wrapping quotes from a generated answer."""
    t = text.strip()
    for prefix in ("ASSISTANT:", "Assistant:", "assistant\n", "Answer:"):
        if t.startswith(prefix):
            t = t[len(prefix) :].strip()
    if len(t) > 1 and t[0] == t[-1] and t[0] in "\"'":
        t = t[1:-1].strip()
    return t
