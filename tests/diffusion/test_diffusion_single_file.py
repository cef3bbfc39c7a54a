"""Single-file checkpoints (``.safetensors`` / ``.ckpt`` in the original SD layout) as bases, offline:
configured by a diffusers folder or the original .yaml, they load the same weights and make the same
images as the folder they were converted from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from original_layout import original_yaml, to_original

from handsynth.config import CONFIG_NAME
from handsynth.diffusion.base import (
    load_base,
    resolve_base,
    save_base_folder,
    tiny_base_path,
)
from handsynth.diffusion.components import SDArchitecture, sd_components
from handsynth.errors import UserError

# The original layout hard-codes GroupNorm(32) and CLIP's 64-wide heads: a tiny base that an original
# .yaml can describe (the built-in tiny base uses 8 groups, so only a diffusers folder configures it).
YAML_ARCH = SDArchitecture(
    unet_channels=(32, 32, 64, 64), unet_layers=1, unet_groups=32, cross_attention_dim=64, latent_size=8,
    vae_channels=(32, 32, 32, 32), vae_layers=1, vae_groups=32,
    text_intermediate=64, text_layers=1, text_heads=1,
)  # fmt: skip


def _save_single_file(parts: dict, path: Path) -> Path:
    state = to_original(parts)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:  # .ckpt: a pickled dict with the weights under "state_dict", as CompVis released SD
        torch.save({"state_dict": state, "global_step": 0}, path)
    return path


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[str, Path]:
    """The built-in tiny base as a .safetensors and a .ckpt single file."""
    folder = tmp_path_factory.mktemp("single")
    base = load_base("tiny")
    parts = {"unet": base.unet, "vae": base.vae, "text_encoder": base.text_encoder}
    return {ext: _save_single_file(parts, folder / f"tiny{ext}") for ext in (".safetensors", ".ckpt")}


def _same_weights(a, b) -> None:
    for name in ("unet", "vae", "text_encoder"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert set(sa) == set(sb), name
        for key in sa:
            assert torch.equal(sa[key], sb[key]), f"{name}.{key}"


@pytest.mark.parametrize("ext", [".safetensors", ".ckpt"])
def test_single_file_with_diffusers_config_loads_the_folder_weights(tiny_files, ext):
    base = load_base(str(tiny_files[ext]), base_config=str(tiny_base_path()))
    ref = load_base("tiny")
    _same_weights(base, ref)
    assert base.scheduler_config["beta_schedule"] == ref.scheduler_config["beta_schedule"]
    assert len(base.tokenizer) == len(ref.tokenizer)


def test_single_file_with_original_yaml(tmp_path):
    parts = sd_components(YAML_ARCH, seed=3)
    folder = save_base_folder(parts, tmp_path / "folder")
    path = _save_single_file(parts, tmp_path / "model.safetensors")
    (tmp_path / "v1-tiny.yaml").write_text(original_yaml(parts))
    base = load_base(str(path), base_config=str(tmp_path / "v1-tiny.yaml"))
    _same_weights(base, load_base(str(folder)))
    assert base.text_encoder.config.num_attention_heads == 1
    # a .yaml of the same name beside the file is found without --base-config (A1111's convention)
    (tmp_path / "v1-tiny.yaml").rename(tmp_path / "model.yaml")
    assert resolve_base(str(path)) == str(path)


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("images/*.png"))}


def _realigned(base):
    """The base with every weight in a fresh allocation. CPU kernels pick code paths by a weight's
    address alignment, and a folder's weights are memory-mapped at offsets set by the file header:
    equal weights at other addresses differ in the last float bits. Fresh copies compare exactly."""
    for module in (base.unet, base.vae, base.text_encoder):
        for param in module.parameters():
            param.data = param.data.clone()
    return base


def test_generated_images_from_single_file_equal_the_folder_base(tiny_files, tmp_path):
    from handsynth.generate.job import JobConfig, run_job
    from handsynth.methods.baselines.generators import SDBaseline
    from handsynth.methods.interface import SamplingConfig
    from handsynth.methods.synthetic import write_synthetic_dataset

    inp = write_synthetic_dataset(tmp_path / "in", n=2, size=64)
    bases = {
        "folder": load_base(str(tiny_base_path())),
        "single": load_base(str(tiny_files[".ckpt"]), base_config=str(tiny_base_path())),
    }
    for name, base in bases.items():
        method = SDBaseline(base_model=_realigned(base), sampling=SamplingConfig(steps=2))
        run_job(method, JobConfig(str(inp), str(tmp_path / name), prompts="records", sheet_rows=0))
    folder, single = _pngs(tmp_path / "folder"), _pngs(tmp_path / "single")
    assert len(folder) == 2 and folder == single


def test_generate_cli_with_base_config(tiny_files, tmp_path):
    import numpy as np
    from PIL import Image

    from handsynth.cli import main
    from handsynth.methods.synthetic import write_synthetic_dataset

    inp = write_synthetic_dataset(tmp_path / "in", n=2, size=64)
    common = ["generate", "--method", "sd", "--in", str(inp), "--steps", "2", "--prompts", "records"]
    common += ["--sheet-rows", "0", "--threads", "1"]
    assert main([*common, "--out", str(tmp_path / "a"), "--base-model", str(tiny_base_path())]) == 0
    single = ["--base-model", str(tiny_files[".safetensors"]), "--base-config", str(tiny_base_path())]
    assert main([*common, "--out", str(tmp_path / "b"), *single]) == 0
    for name in ("000000.png", "000001.png"):  # mmap'd vs fresh weights: at most one level apart
        a, b = (np.asarray(Image.open(tmp_path / d / "images" / name), dtype=int) for d in "ab")
        assert np.abs(a - b).max() <= 1
    record = json.loads((tmp_path / "b" / "metadata.jsonl").read_text().splitlines()[0])
    assert str(tiny_base_path()) in json.dumps(record)  # provenance names the configuration


def test_single_file_without_config_names_the_flag(tiny_files):
    with pytest.raises(UserError, match="--base-config DIR") as err:
        resolve_base(str(tiny_files[".safetensors"]))
    assert "offline" in str(err.value)
    with pytest.raises(UserError, match="drop --base-config"):  # a folder base needs none
        resolve_base("tiny", str(tiny_base_path()))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.safetensors", b"not a safetensors file", "could not read base model"),
        ("broken.ckpt", b"\x80\x04garbage", "could not read base model"),
        ("weights.onnx", b"", "unknown kind"),
    ],
)
def test_unreadable_single_file_is_one_sentence(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as err:
        load_base(str(path), base_config=str(tiny_base_path()))
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_foreign_safetensors_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"encoder.weight": torch.zeros(2)}, str(tmp_path / "lora.safetensors"))
    with pytest.raises(UserError, match="not a Stable Diffusion 1.x checkpoint"):
        resolve_base(str(tmp_path / "lora.safetensors"), str(tiny_base_path()))


def test_train_on_a_single_file_then_generate_from_the_run(tiny_files, tmp_path):
    """The run folder stores the file and its configuration (relative to the run), and generate
    finds both there."""
    import yaml

    from handsynth.cli import main
    from handsynth.methods.synthetic import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "data", n=2, size=64)
    run = tmp_path / "run"
    settings = ("model.resolution=64", "train.validate_every=0", "train.checkpoint_every=0")
    fast = [arg for setting in settings for arg in ("--set", setting)]
    args = ["train", "--config", str(Path(__file__).parents[2] / "configs" / "attentionhand_tiny.yaml")]
    args += ["--in", str(data), "--out", str(run), "--max-steps", "1", *fast, "--threads", "1"]
    args += ["--base-model", str(tiny_files[".safetensors"]), "--base-config", str(tiny_base_path())]
    assert main(args) == 0
    stored = yaml.safe_load((run / CONFIG_NAME).read_text())["model"]
    assert stored["base_model"].endswith("tiny.safetensors") and not Path(stored["base_config"]).is_absolute()
    out = tmp_path / "gen"
    gen = [
        "generate",
        "--method",
        "attentionhand",
        "--checkpoint",
        str(run),
        "--in",
        str(data),
        "--out",
        str(out),
    ]
    assert main([*gen, "--steps", "1", "--limit", "1", "--sheet-rows", "0", "--threads", "1"]) == 0
    assert len(list(out.glob("images/*.png"))) == 1
