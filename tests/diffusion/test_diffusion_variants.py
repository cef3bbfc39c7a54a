"""Real weights as users download them: fp16-variant-only folders (``*.fp16.safetensors``)."""

from __future__ import annotations

import shutil

import pytest
import torch

from handsynth.diffusion.base import load_base, missing_parts, tiny_base_path, weight_variant
from handsynth.errors import UserError


@pytest.fixture(scope="module")
def fp16_only_base(tmp_path_factory):
    """The tiny base saved as an fp16 variant only (as `hf download --include '*fp16*'` leaves it)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    src, dst = tiny_base_path(), tmp_path_factory.mktemp("fp16") / "base"
    dst.mkdir()
    shutil.copy2(src / "model_index.json", dst)
    for sub in ("tokenizer", "scheduler"):
        shutil.copytree(src / sub, dst / sub)
    for sub, cls in (("unet", UNet2DConditionModel), ("vae", AutoencoderKL), ("text_encoder", CLIPTextModel)):
        cls.from_pretrained(src, subfolder=sub).to(torch.float16).save_pretrained(dst / sub, variant="fp16")
    return dst


def test_variant_only_folder_is_complete_and_loads(fp16_only_base):
    assert not list(fp16_only_base.glob("unet/diffusion_pytorch_model.safetensors"))
    assert missing_parts(fp16_only_base) == []
    assert weight_variant(fp16_only_base) == "fp16" and weight_variant(tiny_base_path()) is None
    base = load_base(str(fp16_only_base))  # found without --variant, upcast to fp32 for the CPU
    ref = load_base("tiny")
    assert base.unet.dtype == torch.float32
    a, b = next(base.unet.parameters()), next(ref.unet.parameters())
    assert torch.allclose(a, b.half().float())


def test_generate_with_variant_base_and_controlnet(fp16_only_base, tmp_path):
    from diffusers import ControlNetModel

    from handsynth.generate.job import JobConfig, run_job
    from handsynth.methods.baselines.generators import ControlNetBaseline
    from handsynth.methods.interface import SamplingConfig
    from handsynth.methods.synthetic import write_synthetic_dataset

    net = ControlNetModel.from_unet(load_base("tiny").unet)
    net.save_pretrained(tmp_path / "cn", variant="fp16")
    method = ControlNetBaseline(str(tmp_path / "cn"), str(fp16_only_base), SamplingConfig(steps=2))
    method.variant = "fp16"  # what --variant fp16 sets
    inp = write_synthetic_dataset(tmp_path / "in", n=1, size=64)
    result = run_job(method, JobConfig(str(inp), str(tmp_path / "out"), prompts="records", sheet_rows=0))
    assert result.total == 1


def test_two_variants_need_a_choice(tmp_path):
    sub = tmp_path / "unet"
    sub.mkdir()
    for v in ("fp16", "bf16"):
        (sub / f"diffusion_pytorch_model.{v}.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="--variant"):
        weight_variant(tmp_path)
    assert weight_variant(tmp_path, "bf16") == "bf16"
