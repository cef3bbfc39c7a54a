"""Local VLM captions with transformers (Qwen2-VL / Qwen2.5-VL, LLaVA, BLIP-2 ... any image-text-to-text).

Why: most users caption their training photos on their own GPU with a checkpoint folder or hub id.
Requests are batched with left padding, greedy-decoded, and only the newly generated tokens are
decoded (decoder-only models echo the prompt; encoder-decoder ones do not).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from handsynth.errors import UserError
from handsynth.text.captioner import ChatBackend, ChatRequest, clean_answer

log = logging.getLogger(__name__)
DTYPES = ("auto", "float32", "float16", "bfloat16")


def new_tokens(generated: Any, input_ids: Any) -> Any:
    """The generated continuation: drops the echoed prompt when the output starts with it."""
    import torch

    n = input_ids.shape[1]
    if generated.shape[1] >= n and torch.equal(generated[:, :n].to(input_ids.device), input_ids):
        return generated[:, n:]
    return generated


class TransformersCaptioner(ChatBackend):
    name = "transformers"

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        batch_size: int = 4,
        max_new_tokens: int = 128,
        model_name: str = "",
    ) -> None:
        self.m = model
        self.processor = processor
        self.batch_size = max(1, int(batch_size))
        self.max_new_tokens = max_new_tokens
        self.model = model_name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        tok = getattr(processor, "tokenizer", None)
        if tok is not None:
            tok.padding_side = "left"  # decoder-only batched generation needs left padding
            if tok.pad_token is None and tok.eos_token is not None:
                tok.pad_token = tok.eos_token

    @classmethod
    def load(
        cls,
        model: str,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 4,
        max_new_tokens: int = 128,
        trust_remote_code: bool = False,
    ) -> TransformersCaptioner:
        """Load a checkpoint folder or hub id with ``AutoProcessor`` + ``AutoModelForImageTextToText``."""
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if dtype not in DTYPES:
            raise UserError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        torch_dtype = (
            (torch.bfloat16 if device.startswith("cuda") else torch.float32)
            if dtype == "auto"
            else getattr(torch, dtype)
        )
        p = Path(model).expanduser()
        if (model.startswith((".", "/", "~")) or p.exists()) and not p.is_dir():
            raise UserError(f"--model {model} is not a folder; pass a model folder or a hub id")
        try:
            processor = AutoProcessor.from_pretrained(
                str(p) if p.is_dir() else model, trust_remote_code=trust_remote_code
            )
            m = AutoModelForImageTextToText.from_pretrained(
                str(p) if p.is_dir() else model, dtype=torch_dtype, trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError) as err:
            raise UserError(
                f"could not load the captioning model {model!r}: {str(err).splitlines()[0]}"
            ) from err
        m = m.to(device).eval()
        log.info("captioner: %s on %s (%s)", model, device, torch_dtype)
        return cls(m, processor, batch_size=batch_size, max_new_tokens=max_new_tokens, model_name=model)

    @classmethod
    def from_options(cls, model: str | None = None, **opts: Any) -> TransformersCaptioner:
        if not model:
            raise UserError("--backend transformers needs --model (a local model folder or a hub id)")
        keys = ("device", "dtype", "batch_size", "max_new_tokens", "trust_remote_code")
        return cls.load(model, **{k: opts[k] for k in keys if opts.get(k) is not None})

    def build_prompt(self, req: ChatRequest) -> str:
        """The model's chat template around the question (image placeholder first), or a BLIP-style
        "Question: ... Answer:" when the processor has no template."""
        content: list[dict] = ([{"type": "image"}] if req.image is not None else []) + [
            {"type": "text", "text": req.text}
        ]
        if getattr(self.processor, "chat_template", None):
            return self.processor.apply_chat_template(
                [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
            )
        return f"Question: {req.text} Answer:"

    def chat(self, requests: list[ChatRequest]) -> list[str | None]:
        import torch

        out: list[str | None] = [None] * len(requests)
        with_img = [i for i, r in enumerate(requests) if r.image is not None]
        without = [i for i, r in enumerate(requests) if r.image is None]
        for group in (with_img, without):
            for b in range(0, len(group), self.batch_size):
                idx = group[b : b + self.batch_size]
                texts = [self.build_prompt(requests[i]) for i in idx]
                kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
                if requests[idx[0]].image is not None:
                    kwargs["images"] = [requests[i].image.convert("RGB") for i in idx]
                inputs = self.processor(**kwargs).to(self.m.device)
                if "pixel_values" in inputs and torch.is_floating_point(inputs["pixel_values"]):
                    inputs["pixel_values"] = inputs["pixel_values"].to(self.m.dtype)
                with torch.no_grad():
                    gen = self.m.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
                answers = self.processor.batch_decode(
                    new_tokens(gen, inputs["input_ids"]), skip_special_tokens=True
                )
                for i, a in zip(idx, answers):
                    out[i] = clean_answer(a)
        return out
