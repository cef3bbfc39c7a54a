"""Guidance switched off must give Stable Diffusion's own images.

The reference side is diffusers' ``StableDiffusionPipeline`` with a scheduler built straight from the
raw config (no handsynth code), so a sampler set-up bug on our side cannot hide on both sides: DDIM and
DDPM default to ``clip_sample=True``, which clipped the predicted latent x0 at every step and collapsed
every guided image while the ``sd`` baseline (diffusers' pipeline) stayed correct.
"""

from __future__ import annotations

import diffusers
import numpy as np
import pytest
import torch
from test_generate_job import pixels
from test_generate_methods import PROMPTS, SIZE, arr, diffusers_pipeline, requests, seed_noise

from handsynth.data import read_dataset
from handsynth.diffusion.schedulers import SAMPLERS, sampling_scheduler
from handsynth.methods.interface import SamplingConfig, encode_prompts

STEPS = 3


def _configs(base_config: dict) -> dict[str, dict]:
    """The base's scheduler config without the ``clip_sample`` key (as the micro base and some SD-1.x
    folders save it) and with it set explicitly (as SD-1.5's own scheduler_config.json)."""
    without = {k: v for k, v in base_config.items() if k != "clip_sample"}
    return {"no_clip_key": without, "clip_key_false": {**without, "clip_sample": False}}


@pytest.mark.parametrize("config_kind", ["no_clip_key", "clip_key_false"])
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_controlnet_loop_at_scale_0_equals_stable_diffusion_pipeline(
    tiny_base, controlnet_dir, name, config_kind
):
    from diffusers import ControlNetModel, StableDiffusionPipeline

    from handsynth.methods.sampler import ControlNetSampler

    config = _configs(tiny_base.scheduler_config)[config_kind]
    sampling = SamplingConfig(steps=STEPS, guidance=5.0, scheduler=name)
    controlnet = ControlNetModel.from_pretrained(controlnet_dir)
    ours = ControlNetSampler(
        tiny_base, controlnet, sampling_scheduler(config, name), sampling, conditioning_scale=0.0
    )
    reqs = requests(2)
    got = arr(r.image for r in ours(reqs))

    reference = getattr(diffusers, SAMPLERS[name]).from_config(config)  # independent of handsynth
    pipe = diffusers_pipeline(StableDiffusionPipeline, tiny_base, reference)
    noise = seed_noise(reqs)
    step_gens = [torch.Generator().manual_seed(r.seed + 1) for r in reqs]
    ref = pipe(
        prompt_embeds=encode_prompts(tiny_base, PROMPTS, "cpu"),
        negative_prompt_embeds=encode_prompts(tiny_base, ["", ""], "cpu"),
        height=SIZE,
        width=SIZE,
        num_inference_steps=STEPS,
        guidance_scale=5.0,
        latents=noise,
        generator=step_gens,
        output_type="pil",
    ).images
    assert np.abs(got - arr(ref)).max() <= 1


def test_latent_samplers_never_clip_x0_but_pixel_samplers_keep_the_config(tiny_base):
    config = _configs(tiny_base.scheduler_config)["no_clip_key"]
    for name in ("ddim", "ddpm"):
        assert sampling_scheduler(config, name).config.clip_sample is False
        assert sampling_scheduler({**config, "clip_sample": True}, name).config.clip_sample is False
        # Pixel space (HandBooster's x0 model): clipping to the image range is right and stays.
        assert sampling_scheduler(config, name, latent=False).config.clip_sample is True
    assert sampling_scheduler({**config, "steps_offset": 0}, "ddim").config.steps_offset == 1


def test_saved_bases_state_clip_sample():
    """The base writer says ``clip_sample: false`` explicitly, so no reader falls back to DDIM's default."""
    from handsynth.diffusion.base import load_base
    from handsynth.micro.base import MicroBaseConfig, build_components

    assert load_base("tiny").scheduler_config.get("clip_sample") is False
    assert build_components(MicroBaseConfig())["scheduler"].config.get("clip_sample") is False


def _generate(cli, method: str, checkpoint, poses_dir, out, scale: float) -> list[np.ndarray]:
    argv = ["--method", method, "--in", str(poses_dir), "--out", str(out), "--steps", "3"]
    argv += ["--base-model", "tiny", "--limit", "2", "--guidance", "5"]
    if checkpoint is not None:
        argv += ["--checkpoint", str(checkpoint), "--conditioning-scale", str(scale)]
    assert cli(argv) == 0
    return [pixels(out / r.file_name) for r in read_dataset(out)]


@pytest.fixture(scope="module")
def attentionhand_run(tmp_path_factory, controlnet_dir):
    from diffusers import ControlNetModel

    from handsynth.config import save_config
    from handsynth.diffusion.controlnet import GuidanceModule
    from handsynth.methods.attentionhand.training import CONFIG_NAME, AttentionHandConfig

    run = tmp_path_factory.mktemp("ah") / "run"  # what `handsynth train --method attentionhand` leaves
    GuidanceModule({"shared": ControlNetModel.from_pretrained(controlnet_dir)}).save(run)
    save_config(AttentionHandConfig(), run / CONFIG_NAME)
    return run


def test_cli_guided_methods_at_scale_0_equal_sd(
    cli, tmp_path, poses_dir, controlnet_dir, adapter_dir, attentionhand_run
):
    sd = _generate(cli, "sd", None, poses_dir, tmp_path / "sd", 0)
    checkpoints = {
        "attentionhand": attentionhand_run,
        "controlnet": controlnet_dir,
        "t2i-adapter": adapter_dir,
    }
    for method, ckpt in checkpoints.items():
        off = _generate(cli, method, ckpt, poses_dir, tmp_path / method, 0.0)
        for a, b in zip(off, sd):
            assert np.abs(a - b).mean() <= 1.0, method  # ≤ 1/255 per pixel on average
        on = _generate(cli, method, ckpt, poses_dir, tmp_path / f"{method}_on", 1.0)
        assert np.mean([np.abs(a - b).mean() for a, b in zip(on, sd)]) > 1.0, method  # guidance acts


@pytest.mark.parametrize("name", ["ddpm", "euler_a"])
def test_ancestral_step_noise_comes_from_each_image_seed(tiny_base, controlnet_dir, name):
    from diffusers import ControlNetModel

    from handsynth.methods.sampler import ControlNetSampler

    net = ControlNetModel.from_pretrained(controlnet_dir)
    sampling = SamplingConfig(steps=STEPS, guidance=5.0, scheduler=name)

    def run(reqs):
        sampler = ControlNetSampler(
            tiny_base, net, sampling_scheduler(tiny_base.scheduler_config, name), sampling
        )
        return arr(r.image for r in sampler(reqs))

    reqs = requests(2)
    together = run(reqs)
    torch.manual_seed(123)  # the global generator must not matter
    alone = np.concatenate([run([reqs[0]]), run([reqs[1]])])
    assert np.abs(together - alone).max() <= 1
