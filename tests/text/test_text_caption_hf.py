"""The transformers captioner on a tiny random LLaVA built from configs (processor built offline).

Qwen2-VL cannot be built here: its processor requires a video processor, which needs torchvision.
LLaVA exercises the same path (AutoProcessor + AutoModelForImageTextToText, chat template, batching).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from handsynth.text.caption_hf import TransformersCaptioner, new_tokens
from handsynth.text.captioner import ChatRequest, clean_answer

TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() }}: {% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}"
    "{% endif %}{% endfor %}{% endif %}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    specials = ["<pad>", "<s>", "</s>", "<image>"]
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for s in specials:
        vocab[s] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    ip = CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    proc = LlavaProcessor(
        image_processor=ip,
        tokenizer=tok,
        chat_template=TEMPLATE,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    ids = {s: tok.convert_tokens_to_ids(s) for s in specials}
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
            projection_dim=32,
        ),
        text_config=LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=len(tok),
            bos_token_id=ids["<s>"],
            eos_token_id=ids["</s>"],
            pad_token_id=ids["<pad>"],
        ),
        image_token_id=ids["<image>"],
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(cfg).eval()
    folder = tmp_path_factory.mktemp("tiny_llava")
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


def _images(n):
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (40 + 9 * i, 50, 3), dtype=np.uint8)) for i in range(n)]


def test_batched_answers_equal_one_by_one(tiny_llava):
    cap = TransformersCaptioner.load(
        str(tiny_llava), device="cpu", dtype="float32", batch_size=2, max_new_tokens=6
    )
    imgs = _images(3)
    reqs = [ChatRequest("Describe the hands.", im) for im in imgs] + [ChatRequest("Say hi.")]
    batched = cap.chat(reqs)
    assert len(batched) == 4 and all(isinstance(a, str) for a in batched)
    # reference: one request at a time through model.generate, decoding only the new tokens by hand
    for req, got in zip(reqs, batched):
        text = cap.build_prompt(req)
        assert text.startswith("USER: ") and text.endswith("ASSISTANT:") and req.text in text
        kw = {"text": [text], "return_tensors": "pt"}
        if req.image is not None:
            kw["images"] = [req.image]
            assert "<image>" in text
        inp = cap.processor(**kw)
        out = cap.m.generate(**inp, max_new_tokens=6, do_sample=False)
        n = inp["input_ids"].shape[1]
        ref = cap.processor.batch_decode(out[:, n:], skip_special_tokens=True)[0].strip()
        assert got == ref


def test_caption_uses_question_per_image(tiny_llava):
    cap = TransformersCaptioner.load(str(tiny_llava), device="cpu", batch_size=4, max_new_tokens=3)
    assert cap.m.dtype == torch.float32  # auto dtype on CPU
    out = cap.caption([None, None], _images(2), "What are the hands doing?")
    assert len(out) == 2 and cap.processor.tokenizer.padding_side == "left"


def test_new_tokens_and_clean_answer():
    inp = torch.tensor([[5, 6, 7]])
    assert new_tokens(torch.tensor([[5, 6, 7, 8, 9]]), inp).tolist() == [[8, 9]]  # decoder-only echo removed
    assert new_tokens(torch.tensor([[8, 9]]), inp).tolist() == [[8, 9]]  # encoder-decoder: kept
    assert clean_answer('  ASSISTANT: "A hand holding a cup."  ') == "A hand holding a cup."


def test_bad_model_is_user_error(tmp_path):
    from handsynth.errors import UserError

    with pytest.raises(UserError, match="could not load"):
        TransformersCaptioner.load(str(tmp_path), device="cpu")
    with pytest.raises(UserError, match="dtype"):
        TransformersCaptioner.load(str(tmp_path), dtype="int3")
