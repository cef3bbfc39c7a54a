"""Base model loading (tiny / folder / errors), configs, and the ControlNet wrapper."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

import pytest
import torch

from handsynth.config import load_config
from handsynth.diffusion.base import load_base, missing_parts, resolve_base, tiny_base_path
from handsynth.diffusion.controlnet import GuidanceModule, controlled_unet_forward
from handsynth.errors import UserError


def test_tiny_base_is_sd_shaped_with_real_tokenizer(tiny_base):
    assert len(tiny_base.tokenizer) == 49408
    assert tiny_base.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tiny_base.text_encoder.config.vocab_size == 49408
    assert tiny_base.vae_scale_factor == 8 and tiny_base.latent_scale == pytest.approx(0.18215)
    assert tiny_base.scheduler_config["beta_schedule"] == "scaled_linear"
    assert not any(p.requires_grad for p in tiny_base.unet.parameters())
    assert missing_parts(tiny_base_path()) == []


def test_tiny_folder_loads_in_stock_diffusers_pipeline():
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_base_path()), safety_checker=None)
    out = pipe("a hand", num_inference_steps=2, height=64, width=64, output_type="np").images
    assert out.shape == (1, 64, 64, 3)


def test_partial_or_missing_base_folder_is_one_clear_error(tmp_path):
    part = tmp_path / "sd"
    shutil.copytree(tiny_base_path(), part)
    (part / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    shutil.rmtree(part / "tokenizer")
    with pytest.raises(UserError) as err:
        load_base(str(part))
    msg = str(err.value)
    assert "unet/diffusion_pytorch_model.safetensors" in msg and "tokenizer/tokenizer_config.json" in msg
    with pytest.raises(UserError, match="not a complete diffusers"):
        resolve_base(str(tmp_path / "nowhere"))
    assert (
        resolve_base("stable-diffusion-v1-5/stable-diffusion-v1-5")
        == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    )


@dataclass
class _Inner:
    iterations: int = 1
    kernel: str = "ae"
    ratio: float = 0.5
    values: list[int] = field(default_factory=lambda: [1, 2])


@dataclass
class _Outer:
    name: str = "x"
    inner: _Inner = field(default_factory=_Inner)
    limit: int | None = None


def test_config_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("inner:\n  iterations: 7\n  ratio: 1\n")
    cfg = load_config(_Outer, p, ["inner.kernel=textbook", "limit=3", "inner.values=[4, 5]"])
    assert cfg.inner.iterations == 7 and cfg.inner.ratio == 1.0 and cfg.inner.kernel == "textbook"
    assert cfg.limit == 3 and cfg.inner.values == [4, 5] and cfg.name == "x"
    assert load_config(_Outer, None, ["limit=null"]).limit is None
    with pytest.raises(UserError, match="inner.iteration"):
        load_config(_Outer, None, ["inner.iteration=3"])
    with pytest.raises(UserError, match="must be an integer"):
        load_config(_Outer, None, ["inner.iterations=lots"])


def test_zero_convs_make_controlled_unet_equal_bare_unet(tiny_base):
    unet = tiny_base.unet
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn(4, 4, 16, 16, generator=g), torch.randn(4, 77, 32, generator=g)
    cond, t = torch.rand(4, 3, 128, 128, generator=g), torch.tensor([10, 300, 600, 999])
    with torch.no_grad():
        bare = controlled_unet_forward(unet, None, x, t, text)
        for branches in (None, ["global", "local"]):
            gm = GuidanceModule.from_unet(unet, branches, [8, 16, 16, 16])
            groups = [("global", 2), ("local", 2)] if branches else None
            ctrl = controlled_unet_forward(unet, gm, x, t, text, cond, groups)
            assert torch.allclose(ctrl, bare, atol=1e-5)


def test_separate_weights_route_each_group_to_its_own_net(tiny_base):
    gm = GuidanceModule.from_unet(tiny_base.unet, ["global", "local"], [8, 16, 16, 16])
    with torch.no_grad():
        for p in gm.nets["local"].parameters():
            p.add_(0.01)  # make the local net differ (its zero convs become non-zero)
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn(4, 4, 16, 16, generator=g), torch.randn(4, 77, 32, generator=g)
    cond, t = torch.rand(4, 3, 128, 128, generator=g), torch.tensor([10, 300, 10, 300])
    with torch.no_grad():
        down, mid = gm(x, t, text, cond, [("global", 2), ("local", 2)])
        g_down, _ = gm.nets["global"](x[:2], t[:2], text[:2], cond[:2], return_dict=False)
        l_down, l_mid = gm.nets["local"](x[2:], t[2:], text[2:], cond[2:], return_dict=False)
    assert torch.equal(down[0][:2], g_down[0]) and torch.equal(down[0][2:], l_down[0])
    assert torch.equal(mid[2:], l_mid) and float(mid[2:].abs().sum()) > 0 and float(mid[:2].abs().sum()) == 0


def test_moving_the_base_to_its_own_dtype_logs_no_diffusers_cast_warning(tiny_base):
    """diffusers warns on any dtype argument to ``to()``; training printed it twice per run for a no-op."""
    import logging

    from diffusers.utils import logging as diffusers_logging

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = diffusers_logging.get_logger("diffusers.models.modeling_utils")
    logger.addHandler(handler)
    try:
        tiny_base.to("cpu", torch.float32)
    finally:
        logger.removeHandler(handler)
    assert not [m for m in seen if "kept in float32" in m]
    assert tiny_base.unet.dtype == torch.float32


def test_loading_a_base_folder_shows_no_transformers_weight_bar_and_leaves_bars_on(capsys, monkeypatch):
    """transformers draws a raw "Loading weights" bar for the text encoder (carriage returns in a log)."""
    from transformers.utils import logging as transformers_logging

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    transformers_logging.enable_progress_bar()
    load_base(str(tiny_base_path()))
    assert "Loading weights" not in capsys.readouterr().err
    assert transformers_logging.is_progress_bar_enabled()  # the caller's setting is given back
