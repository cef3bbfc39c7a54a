"""Methods on the tiny base: our ControlNet loop equals diffusers' pipeline; batching, seeds, the local
branch, TAS at inference and the base-compatibility checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from handsynth.errors import UserError
from handsynth.generate.plan import WorkItem
from handsynth.methods.interface import GenRequest, SamplingConfig, encode_prompts, make_scheduler

SIZE = 64
PROMPTS = ["a person holding a red cup with the right hand", "a woman waving her hand at the camera"]


def requests(n: int = 2, seed0: int = 0, box: list[float] | None = None) -> list[GenRequest]:
    from handsynth.text.tagging import hand_token_indices
    from handsynth.text.tokenizer import clip_tokenizer

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        cond = Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8))
        prompt = PROMPTS[i % 2]
        item = WorkItem(index=i, sample=None, prompt_index=0, out_id=str(i), prompt=prompt, seed=seed0 + i)
        item.hand_token_indices = hand_token_indices(prompt, clip_tokenizer())
        out.append(
            GenRequest(
                item,
                SIZE,
                SIZE,
                {"mesh": cond},
                {"mesh": cond.transpose(Image.Transpose.FLIP_LEFT_RIGHT)},
                box,
            )
        )
    return out


def diffusers_pipeline(cls, base, scheduler, **modules):
    """diffusers' own pipeline ``cls`` on the base's parts: the independent side of a parity test."""
    pipe = cls(
        vae=base.vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        unet=base.unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **modules,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def seed_noise(reqs: list[GenRequest]) -> torch.Tensor:
    """Each request's initial latent noise, drawn from its seed (what our loop draws)."""
    return torch.cat(
        [torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(r.seed)) for r in reqs]
    )


def arr(images) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.int16) for im in images])


@pytest.fixture(scope="module")
def controlnet(controlnet_dir):
    from diffusers import ControlNetModel

    return ControlNetModel.from_pretrained(controlnet_dir)


def test_our_loop_equals_diffusers_controlnet_pipeline(tiny_base, controlnet):
    from diffusers import DDIMScheduler, StableDiffusionControlNetPipeline

    from handsynth.methods.sampler import ControlNetSampler

    sampling = SamplingConfig(steps=2, guidance=5.0)
    reqs = requests(2)
    ours = ControlNetSampler(
        tiny_base, controlnet, make_scheduler("ddim", tiny_base.scheduler_config), sampling
    )
    got = arr(r.image for r in ours(reqs))
    # The reference's scheduler comes straight from diffusers (the pipeline sets it up itself).
    scheduler = DDIMScheduler.from_config(tiny_base.scheduler_config)
    pipe = diffusers_pipeline(StableDiffusionControlNetPipeline, tiny_base, scheduler, controlnet=controlnet)
    noise = seed_noise(reqs)
    ref = pipe(
        prompt_embeds=encode_prompts(tiny_base, PROMPTS, "cpu"),
        negative_prompt_embeds=encode_prompts(tiny_base, ["", ""], "cpu"),
        image=[r.conditions["mesh"] for r in reqs],
        height=SIZE,
        width=SIZE,
        num_inference_steps=2,
        guidance_scale=5.0,
        latents=noise,
        output_type="pil",
    ).images
    assert np.abs(got - arr(ref)).max() <= 1
    # The control image is used: another condition gives another picture.
    other = requests(2)
    for r in other:
        r.conditions["mesh"] = Image.new("RGB", (SIZE, SIZE))
    assert np.abs(arr(r.image for r in ours(other)) - got).mean() > 0.1


def test_controlnet_method_is_batch_and_seed_deterministic(tiny_base, controlnet):
    from handsynth.methods.baselines.generators import ControlNetBaseline

    m = ControlNetBaseline(controlnet, tiny_base, SamplingConfig(steps=2, scheduler="dpm++"))
    m.load(torch.device("cpu"))
    reqs = requests(2)
    together = arr(r.image for r in m.generate(reqs))
    alone = arr([m.generate([reqs[0]])[0].image, m.generate([reqs[1]])[0].image])
    assert np.abs(together - alone).max() <= 1  # a seed's image does not depend on its batch
    reseeded = arr(r.image for r in m.generate(requests(2, seed0=10)))
    assert np.abs(reseeded - together).mean() > 1
    # DDIM with eta > 0 draws step noise too: per sample, from its seed.
    noisy = ControlNetBaseline(controlnet, tiny_base, SamplingConfig(steps=2, eta=1.0))
    noisy.load(torch.device("cpu"))
    together = arr(r.image for r in noisy.generate(reqs))
    alone = arr([noisy.generate([reqs[0]])[0].image, noisy.generate([reqs[1]])[0].image])
    assert np.abs(together - alone).max() <= 1


def test_sd_and_t2i_adapter_run_diffusers_pipelines(tiny_base, adapter_dir):
    from handsynth.methods.baselines.generators import SDBaseline, T2IAdapterBaseline

    sd = SDBaseline(base_model=tiny_base, sampling=SamplingConfig(steps=2, scheduler="unipc"))
    sd.load(torch.device("cpu"))
    assert sd.maps == ()  # text only: no condition map is read
    a = arr(r.image for r in sd.generate(requests(2)))
    assert a.shape == (2, SIZE, SIZE, 3) and np.abs(a[0] - a[1]).mean() > 1

    ad = T2IAdapterBaseline(str(adapter_dir), tiny_base, SamplingConfig(steps=2))
    ad.check()
    ad.load(torch.device("cpu"))
    reqs = requests(1)
    x = arr(r.image for r in ad.generate(reqs))
    reqs[0].conditions["mesh"] = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    y = arr(r.image for r in ad.generate(reqs))
    assert np.abs(x - y).mean() > 0.5  # the adapter reads the condition


def test_checkpoint_for_another_base_is_refused(tmp_path, tiny_base):
    from diffusers import ControlNetModel, T2IAdapter

    from handsynth.methods.baselines.generators import ControlNetBaseline, T2IAdapterBaseline

    cfg = dict(tiny_base.unet.config)
    net = ControlNetModel(
        block_out_channels=cfg["block_out_channels"],
        down_block_types=cfg["down_block_types"],
        layers_per_block=1,
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    net.save_pretrained(tmp_path / "cn")
    with pytest.raises(
        UserError, match="another base model: its cross_attention_dim is 64 but base tiny has 32"
    ):
        ControlNetBaseline(str(tmp_path / "cn"), "tiny").check()
    T2IAdapter(channels=[320, 640, 1280, 1280]).save_pretrained(tmp_path / "ad")
    with pytest.raises(UserError, match="its channels is \\[320, 640, 1280, 1280\\]"):
        T2IAdapterBaseline(str(tmp_path / "ad"), "tiny").check()
    with pytest.raises(UserError, match="is a T2IAdapter, not a ControlNetModel"):
        ControlNetBaseline(str(tmp_path / "ad"), "tiny").check()
    with pytest.raises(UserError, match="does not exist"):
        ControlNetBaseline(str(tmp_path / "none"), "tiny").check()


def test_global_local_and_tas(tiny_base, controlnet):
    from handsynth.diffusion.tas import TASConfig, TASInferenceConfig
    from handsynth.methods.sampler import ControlNetSampler, LocalBlend, TASOptions

    sched = make_scheduler("ddim", tiny_base.scheduler_config)
    sampling = SamplingConfig(steps=2, guidance=5.0)
    box = [8.0, 8.0, 32.0]
    glob = ControlNetSampler(tiny_base, controlnet, sched, sampling)
    base_img = arr(r.image for r in glob(requests(1, box=box)))
    # Weight 0: the branches never meet, so the global image is the global mode's.
    apart = ControlNetSampler(
        tiny_base, controlnet, sched, sampling, mode="global+local", local_blend=LocalBlend(0.0)
    )
    res = apart(requests(1, box=box))
    assert res[0].local_image is not None
    assert np.abs(arr([res[0].image]) - base_img).max() <= 1
    joined = ControlNetSampler(
        tiny_base, controlnet, sched, sampling, mode="global+local", local_blend=LocalBlend(1.0)
    )
    diff = np.abs(arr([joined(requests(1, box=box))[0].image]) - base_img).mean(-1)[0]
    assert diff.mean() > 0.5
    # TAS at inference updates the latents and hands back one map per hand token.
    tas = TASOptions(
        TASConfig(resolution=4), TASInferenceConfig(enabled=True, max_steps=1, max_refinement_iterations=2)
    )
    with_tas = ControlNetSampler(tiny_base, controlnet, sched, sampling, tas=tas)
    reqs = requests(1)
    out = with_tas(reqs)[0]
    assert set(out.attention) == set(reqs[0].item.hand_token_indices) and out.attention
    for m in out.attention.values():
        assert m.shape == (4, 4) and np.isfinite(m).all() and m.min() >= 0 and m.max() <= 1
    assert np.abs(arr([out.image]) - arr([glob(requests(1))[0].image])).mean() > 0.1
    from handsynth.diffusion.attention import remove_attention_store

    remove_attention_store(tiny_base.unet)


def test_attentionhand_checkpoint_loading(tmp_path, tiny_base, controlnet, perturb):
    from handsynth.config import save_config
    from handsynth.diffusion.controlnet import GuidanceModule
    from handsynth.methods.attentionhand.generator import AttentionHandGenerator, parse_thresholds
    from handsynth.methods.attentionhand.training import CONFIG_NAME, AttentionHandConfig

    run = tmp_path / "run"
    GuidanceModule({"shared": perturb(controlnet, 3, 0.0)}).save(run)
    save_config(AttentionHandConfig(), run / CONFIG_NAME)
    gen = AttentionHandGenerator(str(run), sampling=SamplingConfig(steps=2), mode="global+local", tas=True)
    gen.check()
    assert gen.base_model == "tiny" and gen.maps == ("mesh",) and gen.needs_local
    fp = gen.fingerprint()
    assert fp["mode"] == "global+local" and fp["tas"]["max_refinement_iterations"] == 20
    assert len(fp["checkpoint_sha256"]) == 64
    with pytest.raises(UserError, match="square"):
        gen.check_size(64, 128, "record x")
    with pytest.raises(UserError, match="not an AttentionHand run folder"):
        AttentionHandGenerator(str(tmp_path))
    with pytest.raises(UserError, match="between 0 and 20"):
        AttentionHandGenerator(str(run), tas_iterations=50)
    assert parse_thresholds("0:0.05, 10:0.5") == {0: 0.05, 10: 0.5}
    with pytest.raises(UserError):
        parse_thresholds("0-0.05")
