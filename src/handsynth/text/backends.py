"""The captioner back-ends by name (``--backend``): the factory sits above the interface
(:mod:`handsynth.text.captioner`) and the back-end modules, so neither imports the other."""

from __future__ import annotations

from typing import Any

from handsynth.errors import UserError
from handsynth.text.caption_hf import TransformersCaptioner
from handsynth.text.caption_openai import OpenAICaptioner
from handsynth.text.captioner import BACKENDS, RecordCaptioner, TemplateCaptioner


def make_backend(name: str, **options: Any) -> Any:
    """The back-end called ``name`` with its command-line options (unknown ones are ignored)."""
    if name == "template":
        return TemplateCaptioner()
    if name == "record":
        return RecordCaptioner()
    if name == "transformers":
        return TransformersCaptioner.from_options(**options)
    if name == "openai":
        return OpenAICaptioner.from_options(**options)
    raise UserError(f"unknown captioner back-end {name!r}; choose one of {', '.join(BACKENDS)}")
