"""CLIP score on a tiny random CLIP saved as a local folder (offline), against direct computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from handsynth.errors import UserError
from handsynth.eval.clip_score import ClipScorer


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from transformers import CLIPConfig, CLIPModel

    d = tmp_path_factory.mktemp("clip")
    chars = "abcdefghijklmnopqrstuvwxyz<>/"
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=16, bos_token_id=len(vocab) - 2,
                         eos_token_id=len(vocab) - 1, pad_token_id=len(vocab) - 1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )  # fmt: skip
    CLIPModel(cfg).save_pretrained(d)
    return d


def test_clip_score_matches_direct_computation(clip_dir):
    from transformers import CLIPImageProcessor

    scorer = ClipScorer(clip_dir)
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8),
        rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8),
    ]
    prompts = [
        "a hand holding a cup",
        "two hands <script>alert(1)</script> clapping over and over again and again",
    ]
    got = scorer.score(images, prompts)
    # Preprocessing equals transformers' (PIL) CLIP image processor with the model's size.
    proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    ref_px = torch.as_tensor(np.asarray(proc(images=images, return_tensors="np")["pixel_values"]))
    ours_px = torch.cat([scorer.preprocess(im) for im in images])
    torch.testing.assert_close(ours_px, ref_px, atol=2e-2, rtol=0)
    # Score = 100 * max(cos, 0) of the model's projected embeddings.
    with torch.no_grad():
        tok = scorer.tokenizer(
            prompts, padding="max_length", truncation=True, max_length=16, return_tensors="pt"
        )
        t = scorer.model.get_text_features(input_ids=tok["input_ids"])
        v = scorer.model.get_image_features(pixel_values=ours_px)
        t, v = getattr(t, "pooler_output", t), getattr(v, "pooler_output", v)
    ref = 100 * torch.clamp(torch.nn.functional.cosine_similarity(t, v), min=0)
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-5, atol=1e-5)
    assert got.shape == (2,) and (got >= 0).all() and (got <= 100).all()


def test_clip_folder_must_exist(tmp_path):
    with pytest.raises(UserError, match="--clip"):
        ClipScorer(tmp_path)
