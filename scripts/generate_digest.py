"""sha256 of every PNG ``handsynth generate`` writes on the tiny base, for each method: a refactor must
leave them byte-identical.

    python scripts/generate_digest.py fixtures DIR        # tiny checkpoints + poses (once, any version)
    PYTHONPATH=OLD/src python scripts/generate_digest.py run DIR before.json
    PYTHONPATH=NEW/src python scripts/generate_digest.py run DIR after.json
    diff before.json after.json

Only the command line is used for ``run``, so the same script drives old and new source trees.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

CASES = {
    "sd": ["--method", "sd", "--base-model", "tiny"],
    "controlnet": ["--method", "controlnet", "--checkpoint", "{dir}/controlnet", "--base-model", "tiny"],
    "t2i-adapter": ["--method", "t2i-adapter", "--checkpoint", "{dir}/adapter", "--base-model", "tiny"],
    "attentionhand": ["--method", "attentionhand", "--checkpoint", "{dir}/run"],
    "attentionhand-local-tas": [
        "--method",
        "attentionhand",
        "--checkpoint",
        "{dir}/run",
        "--mode",
        "global+local",
        "--tas",
        "--tas-steps",
        "1",
        "--tas-iterations",
        "1",
    ],  # fmt: skip
}


def fixtures(folder: Path) -> None:
    import torch
    import yaml
    from diffusers import ControlNetModel, T2IAdapter

    from handsynth.diffusion.base import load_base
    from handsynth.methods.synthetic import write_synthetic_dataset

    def perturb(module: torch.nn.Module, seed: int) -> torch.nn.Module:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for _, p in module.named_parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
        return module

    base = load_base("tiny")
    torch.manual_seed(0)
    net = perturb(ControlNetModel.from_unet(base.unet), 1)
    net.save_pretrained(folder / "controlnet")
    net.save_pretrained(folder / "run" / "controlnet")
    cfg = {"method": "attentionhand", "model": {"base_model": "tiny"}, "tas": {"resolution": 4}}
    (folder / "run" / "handsynth_config.yaml").write_text(yaml.safe_dump(cfg))
    channels = list(base.unet.config.block_out_channels)
    adapter = T2IAdapter(in_channels=3, channels=channels, num_res_blocks=1, downscale_factor=8)
    perturb(adapter, 2).save_pretrained(folder / "adapter")
    write_synthetic_dataset(folder / "poses", n=3, size=64)


def run(folder: Path, out_json: Path) -> None:
    digests = {}
    for name, argv in CASES.items():
        out = folder / "out" / name
        argv = [a.format(dir=folder) for a in argv]
        cmd = [sys.executable, "-m", "handsynth.cli", "generate", *argv, "--in", str(folder / "poses")]
        cmd += ["--out", str(out), "--steps", "2", "--overwrite", "--sheet-rows", "2", "--cpu"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        for png in sorted(out.rglob("*.png")):
            digests[f"{name}/{png.relative_to(out)}"] = hashlib.sha256(png.read_bytes()).hexdigest()
    out_json.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    print(f"{len(digests)} PNGs -> {out_json}")


if __name__ == "__main__":
    if sys.argv[1] == "fixtures":
        fixtures(Path(sys.argv[2]))
    else:
        run(Path(sys.argv[2]), Path(sys.argv[3]))
