"""SesaHand's chain of thought over a VLM/LLM: describe -> behaviour semantics (JSON) -> human-centric prompt.

Why: a raw VLM caption mixes the person and hands with environment detail; generating from it spends
the text conditioning on scenery. Each step's output is kept (``source.caption_chain``) so the chain
can be inspected; JSON is extracted leniently and re-asked a bounded number of times, then the rule
extractor takes over, so one bad answer never loses a record.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from handsynth.text.captioner import ChatRequest
from handsynth.text.jsonx import extract_json_object
from handsynth.text.semantics import Semantics, compose_prompt, rule_semantics

log = logging.getLogger(__name__)

SEMANTICS_QUESTION = """Here is a description of an image:
\"\"\"{description}\"\"\"

Extract the human-behaviour semantics as one JSON object with exactly these keys:
"subject": who the person is (e.g. "a young woman"),
"hands": which hands are used: "left", "right", "both", "one" or "unspecified",
"action": what the hands are doing (a short verb phrase, e.g. "holding"),
"object": the object the hands interact with, or null,
"posture": the body posture (e.g. "sitting"), or null,
"environment": a list of the phrases that only describe the surroundings or background.
Answer with the JSON object only."""

RETRY_PREFIX = "Your previous answer was not a valid JSON object with those keys:\n{bad}\n\n"

COMPOSE_QUESTION = """Facts about a photo, as JSON:
{semantics}

Write one short image-generation prompt (at most 30 words) describing the person and what their
hands are doing: keep the subject, the hands, the action, the object and the posture; leave out the
environment and the background. Answer with the prompt only."""

MAX_PROMPT_WORDS = 60


@dataclass
class ChainResult:
    prompt: str
    description: str
    chain: dict


def _valid_prompt(answer: str | None) -> str | None:
    """First non-empty line, without a "Prompt:" label; None when empty or far too long."""
    if not answer:
        return None
    lines = [x.strip() for x in answer.strip().splitlines() if x.strip()]
    if not lines:
        return None
    text = lines[0]
    for label in ("prompt:", "image prompt:", "final prompt:"):
        if text.lower().startswith(label):
            text = text[len(label) :].strip()
    text = text.strip("\"'` ")
    if not text or len(text.split()) > MAX_PROMPT_WORDS or text.startswith("{"):
        return None
    return text


def run_chain(
    backend: Any,
    samples: list[Any],
    images: list[Any | None],
    question: str,
    semantics: str = "auto",
    max_json_retries: int = 2,
) -> list[ChainResult | None]:
    """The three steps for a batch. ``semantics``: "model" (ask the back-end), "rule" (offline
    extractor), "auto" (model when the back-end can chat). None for a sample whose request failed."""
    use_model = semantics == "model" or (semantics == "auto" and backend.can_chat)
    descriptions = backend.caption(samples, images, question)
    steps: list[list[dict]] = [
        [{"step": "describe", "question": question, "output": d}] for d in descriptions
    ]
    alive = [i for i, d in enumerate(descriptions) if d]
    sems: dict[int, Semantics] = {}

    # step 2: semantics
    if use_model:
        attempts: dict[int, list[Any]] = {i: [] for i in alive}
        pending = list(alive)
        for round_ in range(max_json_retries + 1):
            if not pending:
                break
            reqs = []
            for i in pending:
                q = SEMANTICS_QUESTION.format(description=descriptions[i])
                if round_:
                    q = RETRY_PREFIX.format(bad=str(attempts[i][-1])[:2000]) + q
                reqs.append(ChatRequest(q))
            answers = backend.chat(reqs)
            still = []
            for i, a in zip(pending, answers):
                if a is None:  # transport failure: the record stays uncaptioned, a rerun retries
                    alive.remove(i)
                    continue
                attempts[i].append(a)
                obj = extract_json_object(a)
                sem = Semantics.from_json(obj) if obj is not None else None
                if sem is None:
                    still.append(i)
                else:
                    sems[i] = sem
            pending = still
        for i in alive:
            fallback = i not in sems
            if fallback:
                log.info(
                    "semantics JSON unusable after %d attempts; using the rule extractor", len(attempts[i])
                )
                sems[i] = rule_semantics(descriptions[i])
            steps[i].append(
                {
                    "step": "semantics",
                    "method": "rule" if fallback else "model",
                    "attempts": attempts[i],
                    "output": sems[i].to_dict(),
                    "fallback": fallback,
                }
            )
    else:
        for i in alive:
            sems[i] = rule_semantics(descriptions[i])
            steps[i].append(
                {"step": "semantics", "method": "rule", "output": sems[i].to_dict(), "fallback": False}
            )

    # step 3: compose
    prompts: dict[int, str] = {}
    if use_model and alive:
        reqs = [
            ChatRequest(COMPOSE_QUESTION.format(semantics=json.dumps(_facts(sems[i]), ensure_ascii=False)))
            for i in alive
        ]
        answers = backend.chat(reqs)
        for i, a in zip(list(alive), answers):
            if a is None:
                alive.remove(i)
                continue
            p = _valid_prompt(a)
            fallback = p is None
            prompts[i] = p if p is not None else compose_prompt(sems[i])
            steps[i].append(
                {
                    "step": "compose",
                    "method": "rule" if fallback else "model",
                    "raw": a,
                    "output": prompts[i],
                    "fallback": fallback,
                }
            )
    else:
        for i in alive:
            prompts[i] = compose_prompt(sems[i])
            steps[i].append({"step": "compose", "method": "rule", "output": prompts[i], "fallback": False})

    out: list[ChainResult | None] = [None] * len(samples)
    for i in alive:
        chain = {"backend": backend.name, "model": backend.model, "steps": steps[i]}
        out[i] = ChainResult(prompt=prompts[i], description=descriptions[i], chain=chain)
    return out


def _facts(sem: Semantics) -> dict:
    """What step 3 sees: everything but the environment (so the model is not tempted to keep it)."""
    d = sem.to_dict()
    for k in ("environment", "hand_phrase", "action_phrase"):
        d.pop(k, None)
    return d
