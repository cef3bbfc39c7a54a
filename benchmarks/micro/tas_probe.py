"""How far one TAS update moves the noisy latents of the micro base (a diagnostic for the TAS claim).

    python benchmarks/micro/tas_probe.py outputs/micro/full/base outputs/micro/full/data/wild_train

For N real wild training images and random timesteps: L_TAS before and after one update of the
paper's TAS (alpha 20 -> 10, 8x8 maps), and ||dX|| / ||eps|| -- the relative change of the noise
target eps_hat that AttentionHand trains against. A value near 0 means TAS leaves training unchanged.
"""

from __future__ import annotations

import json
import sys

import torch


def main(base_path: str, data: str, n: int = 32, seed: int = 0, resolution: int = 8) -> dict:
    from handsynth.diffusion.attention import checkpointing_off, install_attention_store
    from handsynth.diffusion.base import load_base
    from handsynth.diffusion.encoding import encode_images, prompt_lengths, tokenize
    from handsynth.diffusion.schedulers import training_scheduler
    from handsynth.diffusion.tas import TASConfig, measure_loss, tas_refine
    from handsynth.micro.base import load_images_and_captions
    from handsynth.text.tagging import hand_token_indices

    torch.manual_seed(seed)
    base = load_base(base_path)
    images, captions = load_images_and_captions(data, base.unet.config.sample_size * base.vae_scale_factor, n)
    g = torch.Generator().manual_seed(seed)
    x0 = encode_images(base, images, generator=g)
    ids = tokenize(base.tokenizer, captions)
    with torch.no_grad():
        text = base.text_encoder(ids)[0]
    lengths = prompt_lengths(ids, base.tokenizer.eos_token_id)
    indices = [hand_token_indices(c, base.tokenizer) for c in captions]
    sched = training_scheduler(base.scheduler_config)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, 1000, (len(x0),), generator=g)
    xt = sched.add_noise(x0, noise, t)
    store = install_attention_store(base.unet)
    cfg = TASConfig(resolution=resolution, iterations=1, loss_threshold=0.0)

    def forward(x):
        with checkpointing_off(base.unet):
            return base.unet(x, t, encoder_hidden_states=text)

    precondition = attention_in_hand(forward, store, xt, data, len(x0), indices, resolution)
    res = tas_refine(forward, store, xt, t, indices, lengths, cfg, 1000, g)
    with torch.no_grad():
        after = measure_loss(forward, store, res.latents, indices, lengths, cfg)
    a = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
    d_eps = (res.latents - xt) / (1 - a).sqrt()
    rel = (d_eps.flatten(1).norm(dim=1) / noise.flatten(1).norm(dim=1)).mean().item()
    out = {
        "images": len(x0),
        "tas_loss_before": res.loss_before.mean().item(),
        "tas_loss_after": float(after.mean()),
        "relative_change_of_noise_target": rel,
        **precondition,
    }
    print(json.dumps(out, indent=2))
    return out


def attention_in_hand(forward, store, latents, data: str, n: int, indices: list, resolution: int) -> dict:
    """TAS's precondition: the share of each hand token's cross-attention (normalised over space) that
    falls inside the hand box, over the box's share of the image. 1 = attention ignores the hand; TAS
    can only sharpen attention that already points at it (v2 asks >= 2)."""
    import numpy as np

    from handsynth.data import read_dataset
    from handsynth.diffusion.attention import run_and_capture

    samples = [s for s in read_dataset(data) if s.file_name and s.prompt][:n]
    with torch.no_grad():
        maps = run_and_capture(forward, store, latents, (resolution, resolution))  # (B, h, w, T)
    h, w = maps.shape[1:3]
    ratios, shares, masses = [], [], []
    for b, (s, idx) in enumerate(zip(samples, indices)):
        if not s.hands or not idx:
            continue
        x, y, bw, bh = np.asarray(s.hands[0].bbox, np.float64) * np.array([w / s.width, h / s.height] * 2)
        ys, xs = np.mgrid[0:h, 0:w] + 0.5
        mask = torch.from_numpy(((xs >= x) & (xs <= x + bw) & (ys >= y) & (ys <= y + bh)).astype(np.float32))
        share = float(mask.mean())
        if share <= 0:
            continue
        m = maps[b, :, :, idx].float()  # (h, w, k)
        m = m / m.sum((0, 1), keepdim=True).clamp_min(1e-12)
        mass = float((m * mask[..., None]).sum((0, 1)).mean())
        ratios.append(mass / share)
        shares.append(share)
        masses.append(mass)
    if not ratios:
        return {"attention_in_hand_ratio": None}
    return {
        "attention_in_hand_ratio": float(np.mean(ratios)),
        "attention_in_hand_mass": float(np.mean(masses)),
        "hand_box_area_share": float(np.mean(shares)),
        "precondition_images": len(ratios),
    }


if __name__ == "__main__":
    main(*sys.argv[1:3])
