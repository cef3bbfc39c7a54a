"""Does the micro base *know* the side and gesture words? A diffusion-classifier probe on real photos.

Why: gate (b3) reads the base's text-only samples at chance for side and gesture group, and the prompt
contrast probe found that "left" and "right" give nearly the same images. That can mean the base never
learned what the word looks like, or that it learned it but sampling or the reader cannot show it. The
base's own denoising loss answers without sampling or reader (Li et al. 2023, "Your diffusion model is
secretly a zero-shot classifier"): on a real photo, the true caption should predict the noise better
than the same caption with one fact changed. For each photo and each change, the loss is averaged over
the same fixed (timestep, noise) pairs for both captions; the table gives the share of photos where the
true caption wins (chance 50 %) with a 95 % interval.

Rows: ``hand vs empty`` (the caption against an empty-scene caption: a positive control), ``side``
(left <-> right), ``background`` (the background phrase replaced by another background of the split:
a plainly visible fact, for scale), ``gesture group`` (the gesture phrase replaced by one from another group: closed,
few or many extended fingers), ``who`` (a man <-> a woman: the photos do not show it, a null control
that must stay near 50 %).

    python benchmarks/micro/caption_classifier_probe.py --work outputs/micro/full \
        --out benchmarks/results/micro_caption_classifier.md
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

import numpy as np

# gesture phrases of the world's captions (handsynth.world.captions.gesture) whose group is fixed by the
# phrase; "showing two/three fingers" depends on the thumb and is left out
GROUP_PHRASES = {
    "closed": ("making a fist", "giving a thumbs up"),
    "few": ("pointing with the index finger", "making a peace sign", "making a hang loose sign"),
    "many": ("waving with the fingers spread", "showing four fingers"),
}
SIDE_SWAP = {"left": "right", "right": "left"}
WHO_SWAP = {"a man": "a woman", "a woman": "a man"}


def changed_captions(
    prompt: str,
    empty: str,
    rng: np.random.Generator,
    background: str | None = None,
    backgrounds: tuple[str, ...] = (),
) -> dict[str, str]:
    """The one-fact changes of ``prompt`` that apply to it (name -> changed caption).

    ``background`` is the photo's background phrase, ``backgrounds`` every phrase the split uses.
    """
    out = {"hand vs empty": empty}
    others = [b for b in backgrounds if b != background]
    if background and background in prompt and others:
        out["background"] = prompt.replace(background, others[rng.integers(len(others))])
    side = re.search(r"\b(left|right)\b", prompt)
    if side:
        s = side.group(1)
        out["side"] = prompt[: side.start()] + SIDE_SWAP[s] + prompt[side.end() :]
    for group, phrases in GROUP_PHRASES.items():
        for phrase in phrases:
            if phrase in prompt:
                elsewhere = [p for g, ps in GROUP_PHRASES.items() if g != group for p in ps]
                out["gesture group"] = prompt.replace(phrase, elsewhere[rng.integers(len(elsewhere))])
    who = re.search(r"\b(a man|a woman)\b", prompt)
    if who:
        out["who"] = prompt[: who.start()] + WHO_SWAP[who.group(1)] + prompt[who.end() :]
    return out


def wilson(k: int, n: int) -> tuple[float, float]:
    """95 % Wilson interval of a proportion k / n."""
    if n == 0:
        return float("nan"), float("nan")
    p, z = k / n, 1.96
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def main(argv: list[str] | None = None) -> int:
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from PIL import Image
    from transformers import CLIPTextModel, CLIPTokenizer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, type=Path, help="a finished micro run's work folder")
    p.add_argument("--split", default="wild_test", help="the real photos to score (default wild_test)")
    p.add_argument("--n", type=int, default=256, help="photos (default 256)")
    p.add_argument("--pairs", type=int, default=16, help="(timestep, noise) pairs per photo (default 16)")
    p.add_argument("--out", type=Path, default=None, help="markdown table (and .json beside it)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    base, data = a.work / "base", a.work / "data"
    tok = CLIPTokenizer.from_pretrained(base / "tokenizer")
    # fp32 whatever the folder stores (the embedded base, which runs take pretrained, is fp16)
    fp32 = torch.float32
    text = CLIPTextModel.from_pretrained(base / "text_encoder", dtype=fp32).eval()
    vae = AutoencoderKL.from_pretrained(base / "vae", torch_dtype=fp32).eval()
    unet = UNet2DConditionModel.from_pretrained(base / "unet", torch_dtype=fp32).eval()
    sched = DDPMScheduler.from_pretrained(base / "scheduler")

    records = [json.loads(x) for x in (data / a.split / "metadata.jsonl").read_text().splitlines()][: a.n]
    empties = [
        json.loads(x)["prompt"]
        for x in (data / "empty_wild_test" / "metadata.jsonl").read_text().splitlines()
    ]
    phrases = tuple(sorted({r["source"]["attributes"]["background"]["phrase"] for r in records}))
    rng = np.random.default_rng(0)
    g = torch.Generator().manual_seed(0)
    steps = torch.linspace(20, sched.config.num_train_timesteps - 20, a.pairs).round().long()

    @torch.no_grad()
    def embed(prompts: list[str]) -> torch.Tensor:
        ids = tok(
            prompts,
            padding="max_length",
            max_length=tok.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return text(ids.input_ids)[0]

    wins: dict[str, list[bool]] = {}
    gaps: dict[str, list[float]] = {}
    t0 = time.time()
    for i, rec in enumerate(records):
        img = np.asarray(Image.open(data / a.split / rec["file_name"]).convert("RGB"), dtype=np.float32)
        x = torch.from_numpy(img / 127.5 - 1).permute(2, 0, 1)[None]
        with torch.no_grad():
            z0 = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
        noise = torch.randn((a.pairs, *z0.shape[1:]), generator=g)
        zt = sched.add_noise(z0.expand(a.pairs, -1, -1, -1), noise, steps)
        bg = rec["source"]["attributes"]["background"]["phrase"]
        changes = changed_captions(rec["prompt"], empties[i % len(empties)], rng, bg, phrases)
        captions = [rec["prompt"], *changes.values()]
        emb = embed(captions)
        losses = []
        with torch.no_grad():
            for e in emb:
                pred = unet(zt, steps, encoder_hidden_states=e[None].expand(a.pairs, -1, -1)).sample
                losses.append(((pred - noise) ** 2).mean().item())
        for name, loss in zip(changes, losses[1:]):
            wins.setdefault(name, []).append(losses[0] < loss)
            gaps.setdefault(name, []).append((loss - losses[0]) / losses[0])
        if (i + 1) % 32 == 0 or i + 1 == len(records):
            rate = (i + 1) / (time.time() - t0)
            print(
                f"  {i + 1}/{len(records)} photos, {rate:.1f}/s, eta {(len(records) - i - 1) / rate:.0f} s",
                flush=True,
            )

    table = [
        f"Base `{base}` scored on `{a.split}` ({len(records)} real photos, {a.pairs} (t, noise) pairs each).",
        "",
        "| change to the true caption | photos | true caption wins | 95 % interval | mean loss gap |",
        "|---|---|---|---|---|",
    ]
    result = {}
    for name in ("hand vs empty", "background", "side", "gesture group", "who"):
        w = wins.get(name, [])
        k, n = int(sum(w)), len(w)
        lo, hi = wilson(k, n)
        gap = float(np.mean(gaps[name])) if n else float("nan")
        result[name] = {"n": n, "wins": k, "interval": [lo, hi], "mean_relative_gap": gap}
        table.append(f"| {name} | {n} | {k / max(n, 1):.0%} | {lo:.0%}–{hi:.0%} | {gap:+.2%} |")
    print("\n".join(table))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(
            "# Caption classifier probe\n\n"
            + (__doc__ or "").split("\n\n")[1]
            + "\n\n"
            + "\n".join(table)
            + "\n"
        )
        a.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
