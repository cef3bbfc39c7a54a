"""The micro benchmark's yardstick requirements and gates (a), (b), measured once per run.

    Y1  world detector on real wild photos: MSE-2D of "all keypoints at the centre" / detector's >= 3
    Y2  detector says "hand" on <= 10 % of fresh no-hand photos (threshold set on another no-hand split)
    Y3  recon model trained on the real photos: constant-pose MPJPE and PA-MPJPE / its own >= 2 (real wild)
    Y4  Y1 on the held-out poses as real wild photos (the oracle set Table 1 is scored like)
    (a) detector PCK@0.1 on VAE reconstructions of real photos >= 0.8 x on the originals
    (b) text-only base samples: hand prompts hand-present >= 80 %, no-hand prompts <= 20 %, side and
        gesture group read back by the keypoint reader above chance (Cohen's kappa >= 0.25), judged
        only when the reader reads them from real photos of the same poses at that kappa

Gate (c) (guided samples follow the mesh) needs every guided set's PCK and is judged by the report
from the metrics stage. Each requirement is a :class:`handsynth.micro.yardsticks.Gate`.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch


def majority_kappa(accuracy: float, truth: list[str]) -> tuple[float, float]:
    """(chance = the majority label's rate, kappa of ``accuracy`` over that chance): (b3)'s measure,
    0 for always answering the commonest label whatever the reader's own label rates."""
    _, counts = np.unique(truth, return_counts=True)
    chance = float(counts.max() / counts.sum())
    return chance, (accuracy - chance) / max(1.0 - chance, 1e-9)


def readback(reader, detector, folder: Path) -> dict[str, tuple[float, float, float, int] | None]:
    """How well ``reader`` (:class:`handsynth.micro.reader.KeypointReader`) reads each image's side and
    gesture group from ``detector``'s keypoints in a dataset folder (truth: the records' first hands):
    {attr: (accuracy, majority rate, kappa, images) or None}."""
    from handsynth.data import read_dataset
    from handsynth.micro.reader import gesture_group
    from handsynth.micro.yardsticks import scan_detector

    recs = [s for s in read_dataset(folder) if s.file_name and s.hands]  # scan_detector's records
    if not recs:
        return {"side": None, "gesture": None}
    pred = reader.read(scan_detector(detector, folder).keypoints)
    truth = {
        "side": [s.hands[0].side for s in recs],
        "gesture": [gesture_group(np.asarray(s.hands[0].joints_3d)) for s in recs],
    }
    out: dict = {}
    for attr, t in truth.items():
        acc = float(np.mean([p == x for p, x in zip(pred[attr], t)]))
        chance, kappa = majority_kappa(acc, t)
        out[attr] = (acc, chance, kappa, len(t))
    return out


def _write_images(samples: list, images: list[np.ndarray], out: Path) -> Path:
    """A dataset folder: ``images`` with copies of ``samples``' records (labels kept)."""
    from PIL import Image

    from handsynth.data import write_metadata

    (out / "images").mkdir(parents=True, exist_ok=True)
    recs = []
    for s, img in zip(samples, images):
        t = copy.deepcopy(s)
        t.file_name = f"images/{s.id}.png"
        t.local = None
        Image.fromarray(img).save(out / t.file_name)
        recs.append(t)
    write_metadata(out / "metadata.jsonl", recs)
    return out


def vae_reconstructions(base: Path, folder: Path, out: Path) -> Path:
    """Encode and decode every photo of ``folder`` with the base's VAE (latent mean), labels kept."""
    from diffusers import AutoencoderKL

    from handsynth.data import read_dataset
    from handsynth.micro.yardsticks import load_images

    # fp32 whatever the folder stores (the embedded base is fp16 on disk)
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae", torch_dtype=torch.float32).eval()
    samples = [s for s in read_dataset(folder) if s.file_name]
    imgs = load_images(folder)
    recon = []
    with torch.no_grad():
        for i in range(0, len(imgs), 16):
            x = torch.from_numpy(np.stack(imgs[i : i + 16])).permute(0, 3, 1, 2).float() / 127.5 - 1
            y = vae.decode(vae.encode(x).latent_dist.mean).sample
            recon += list(((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
    return _write_images(samples, recon, out)


def sample_base(base: Path, prompts: list[str], size: int, steps: int, guidance: float, seed: int) -> list:
    """Text-only samples of the base (DDIM, no latent clipping, as ``handsynth generate --method sd``)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        base, safety_checker=None, requires_safety_checker=False, torch_dtype=torch.float32
    )
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False, steps_offset=1)
    pipe.set_progress_bar_config(disable=True)
    out = []
    for i in range(0, len(prompts), 16):
        g = torch.Generator().manual_seed(seed + i)
        res = pipe(
            prompts[i : i + 16],
            height=size,
            width=size,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=g,
            output_type="np",
        )
        out += list((res.images * 255).round().astype(np.uint8))
    return out


def measure_yardsticks(r) -> dict:
    """Every yardstick requirement and gate (a), (b) of runner ``r``; plus the trivial rows' values."""
    from handsynth.data import read_dataset
    from handsynth.micro.detector import WorldHandDetector
    from handsynth.micro.reader import KeypointReader
    from handsynth.micro.yardsticks import (
        at_least,
        at_most,
        centre_keypoints,
        confidences,
        constant_pose_rows,
        mse_2d,
        presence_threshold,
        scan_detector,
        wrist_mse_3d_cm2,
    )
    from handsynth.recon import ReconEstimator
    from handsynth.recon.evaluate import evaluate_checkpoint

    g = r.cfg.get("gates", {})
    size = r.cfg["size"]
    det = WorldHandDetector.load(r.tool("detector"))
    gates, info = [], {}

    # Y1: the detector against a constant on real wild test photos.
    scan = scan_detector(det, r.data("wild_test"))
    ratio = scan.centre_mse_2d / max(scan.mse_2d, 1e-9)
    gates.append(
        at_least(
            "Y1 detector vs constant keypoints (MSE-2D ratio, real wild)",
            ratio,
            g.get("detector_vs_constant", 3.0),
            f"detector {scan.mse_2d:.1f} px², all at the centre {scan.centre_mse_2d:.1f} px², PCK@0.1 {scan.pck:.3f}",
        )
    )
    info["detector_real_wild"] = {"mse_2d": scan.mse_2d, "centre_mse_2d": scan.centre_mse_2d, "pck": scan.pck}
    # Y4: the same on the photos Table 1 is actually scored against -- the held-out poses as real wild
    # photos (the oracle set). Their framing is the lab's (centred, larger hands), so a detector that only
    # learnt where wild hands usually are passes Y1 and fails here.
    if (r.data("wild_gen") / "metadata.jsonl").exists():
        orc = scan_detector(det, r.data("wild_gen"))
        gates.append(
            at_least(
                "Y4 detector vs constant keypoints on the held-out poses (MSE-2D ratio, oracle photos)",
                orc.centre_mse_2d / max(orc.mse_2d, 1e-9),
                g.get("detector_vs_constant", 3.0),
                f"detector {orc.mse_2d:.1f} px², all at the centre {orc.centre_mse_2d:.1f} px², PCK@0.1 {orc.pck:.3f}",
            )
        )
        info["detector_oracle"] = {"mse_2d": orc.mse_2d, "centre_mse_2d": orc.centre_mse_2d, "pck": orc.pck}

    # Y2: hand presence, threshold on one no-hand split, false positives on another.
    threshold = tail = None
    if (r.data("empty_wild_calib") / "metadata.jsonl").exists():
        no_hand = confidences(det, r.data("empty_wild_calib"))
        fpr = g.get("calib_fpr", 0.05)
        tail = presence_threshold(no_hand, fpr)
        # `presence: margin` (default): midway between the no-hand tail and real hand photos of poses the
        # detector never saw (the oracle photos of the held-out poses); `fpr`: the no-hand tail only.
        hands_calib = r.data("wild_gen")
        threshold = tail
        if g.get("presence", "margin") == "margin" and (hands_calib / "metadata.jsonl").exists():
            threshold = presence_threshold(no_hand, fpr, confidences(det, hands_calib))
        fp = float((confidences(det, r.data("empty_wild_test")) >= threshold).mean())
        hit = float((scan.confidence >= threshold).mean())
        how = (
            f"midway between the no-hand calibration split's {1 - fpr:.0%} quantile {tail:.3f} and the real "
            "held-out-pose photos' low tail"
            if threshold != tail
            else "the no-hand calibration split's tail"
        )
        gates.append(
            at_most(
                "Y2 detector finds a hand on no-hand photos",
                fp,
                g.get("no_hand_rate", 0.10),
                f"threshold {threshold:.3f} ({how}); real wild hands found {hit:.0%}",
            )
        )
    else:
        gates.append(at_most("Y2 detector finds a hand on no-hand photos", None, 0.10, "no no-hand photos"))
    info["presence_threshold"] = threshold
    info["presence_threshold_tail"] = tail

    # Y3: the recon model (the MSE-3D estimator, trained on the real photos) against constant poses.
    est = ReconEstimator.from_checkpoint(str(r.tool("recon")), device="cpu")
    rec = evaluate_checkpoint(est, r.data("wild_test"), r.work / "eval" / "recon_tool", progress=False)
    summ = rec.get("summary", rec)
    hand_models = {"right": est.model.hand_model}
    from handsynth.recon.model import load_hand_model_for

    hand_models["left"] = load_hand_model_for(est.cfg, "left")
    const = constant_pose_rows(
        read_dataset(r.data("wild_train")), read_dataset(r.data("wild_test")), hand_models
    )
    best = {k: min(row.get(k) or np.inf for row in const.values()) for k in ("MPJPE", "PA-MPJPE")}
    worst_ratio = min(best[k] / max(float(summ.get(k) or np.inf), 1e-9) for k in best)
    gates.append(
        at_least(
            "Y3 recon model vs constant pose (MPJPE and PA-MPJPE ratio, real wild)",
            worst_ratio,
            g.get("recon_vs_constant", 2.0),
            f"model MPJPE {summ.get('MPJPE', float('nan')):.1f} / PA {summ.get('PA-MPJPE', float('nan')):.1f} mm; "
            f"best constant {best['MPJPE']:.1f} / {best['PA-MPJPE']:.1f} mm",
        )
    )
    info["recon_real_wild"] = {k: summ.get(k) for k in ("MPJPE", "PA-MPJPE", "MPVPE", "PA-MPVPE")}

    # Trivial rows: Table 1 (constant keypoints / wrist on the held-out poses), Table 2 (constant poses
    # learnt from real lab, on real wild).
    poses = [s for s in read_dataset(r.gen_poses) if s.hands]
    gt2 = np.array([np.asarray(s.hands[0].joints_2d) * [size / s.width, size / s.height] for s in poses])
    info["trivial_t1"] = {
        "MSE-2D": mse_2d(centre_keypoints(gt2, size, size), gt2),
        "MSE-3D": wrist_mse_3d_cm2(np.array([s.hands[0].joints_3d for s in poses])),
    }
    info["trivial_t2"] = constant_pose_rows(
        read_dataset(r.data("lab_train")), read_dataset(r.data("wild_test")), hand_models
    )

    # (a) the VAE keeps what the detector needs.
    recon_dir = vae_reconstructions(r.base, r.data("wild_test"), r.work / "eval" / "vae_recon")
    pck_recon = scan_detector(det, recon_dir).pck
    gates.append(
        at_least(
            "(a) VAE reconstructions keep the detector's PCK@0.1 (ratio to originals)",
            pck_recon / scan.pck if scan.pck > 0 else None,  # undefined when the detector finds nothing
            g.get("vae_pck_ratio", 0.8),
            f"PCK@0.1 {pck_recon:.3f} on reconstructions vs {scan.pck:.3f} on the real wild photos",
        )
    )

    # (b) the base draws hands when asked, none when not, and the asked side / gesture.
    gen = r.cfg["generate"]
    sd = r.gen_dir("sd", r.cfg["seeds"][0])
    if threshold is not None and (sd / "metadata.jsonl").exists():
        sd_conf = confidences(det, sd)  # text-only samples at the benchmark's generation CFG
        hand_rate = float((sd_conf >= threshold).mean())
        empty = [s for s in read_dataset(r.data("empty_wild_test")) if s.prompt][
            : g.get("no_hand_samples", 64)
        ]
        imgs = sample_base(r.base, [s.prompt for s in empty], size, gen["steps"], gen["guidance"], 0)
        none_dir = _write_images(empty, imgs, r.work / "eval" / "base_no_hand")
        none_conf = confidences(det, none_dir)
        no_hand_rate = float((none_conf >= threshold).mean())
        at_tail = (
            f"at the no-hand tail threshold {tail:.3f}: {float((sd_conf >= tail).mean()):.2f} / "
            f"{float((none_conf >= tail).mean()):.2f} (hand / no-hand prompts)"
        )
        gates.append(
            at_least("(b1) base: hand prompts drawn with a hand", hand_rate, g.get("hand_rate", 0.8), at_tail)
        )
        gates.append(
            at_most(
                "(b2) base: no-hand prompts drawn with a hand",
                no_hand_rate,
                g.get("empty_rate", 0.2),
                f"{len(none_conf)} samples; {at_tail}",
            )
        )
        # The yardstick first: the reader on real photos of the same poses must read the attribute
        # itself (the world feature extractor did not: side kappa -0.13, gesture -0.06), else the base's
        # read-back says nothing about the base and the gate is not measured.
        has_reader = (r.tool("reader") / "model.safetensors").exists()
        reader = KeypointReader.load(r.tool("reader")) if has_reader else None
        oracle = r.data("wild_gen")
        real = readback(reader, det, oracle) if reader and (oracle / "metadata.jsonl").exists() else {}
        need = g.get("readback_kappa", 0.25)
        base_read = readback(reader, det, sd) if reader else {"side": None, "gesture": None}
        for attr, res in base_read.items():
            what = "gesture group (extended fingers 0 / 1-2 / 3-4)" if attr == "gesture" else attr
            name = f"(b3) base: {what} read back (kappa over the majority rate)"
            if res is None:
                why = "no reader tool" if not reader else "no labelled images"
                gates.append(at_least(name, None, need, why))
                continue
            acc, chance, kappa, n = res
            detail = f"accuracy {acc:.2f}, majority rate {chance:.2f}, {n} images"
            ref = real.get(attr)
            if ref is None:
                detail += "; no real photos of the same poses to check the reader on: not measured"
                kappa = None
            else:
                detail += f"; real photos of the same poses: accuracy {ref[0]:.2f}, kappa {ref[2]:.2f}"
                if ref[2] < need:
                    detail += " (the reader cannot read it from real photos: not measured)"
                    kappa = None
            gates.append(at_least(name, kappa, need, detail))
    else:
        gates.append(
            at_least("(b) base draws hands when asked", None, 0.8, "no text-only set or no threshold")
        )
    return {"gates": [x.to_dict() for x in gates], **info}
