"""handsynth.text: CLIP tokenizer, hand-token tagging, prompts, captioners, CoT semantics (docs/text.md)."""

from handsynth.text.prompts import PromptGenerator, prompt_for_sample
from handsynth.text.semantics import Semantics, compose_prompt, rule_prompt
from handsynth.text.tagging import TagRules, hand_token_indices, tag_prompt
from handsynth.text.tokenizer import clean_prompt, clip_tokenizer, encode_prompts

__all__ = [
    "PromptGenerator",
    "Semantics",
    "TagRules",
    "clean_prompt",
    "clip_tokenizer",
    "compose_prompt",
    "encode_prompts",
    "hand_token_indices",
    "prompt_for_sample",
    "rule_prompt",
    "tag_prompt",
]
