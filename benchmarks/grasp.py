"""Grasp synthesis speed and yield (issue 12 §7): annealing steps per second for a batch of hands on one
object, energy evaluations per second (steps x batch), the SDF grid's build time, validation time per
grasp, and the validation pass rates of the grasps this short run made.

    OMP_NUM_THREADS=1 python benchmarks/grasp.py                 # CPU, batch 64, ~2 minutes
    python benchmarks/grasp.py --device cuda --batch 1024 --iters 6000

Writes benchmarks/results/grasp.{md,json}. A short run (few steps) is far from converged: its pass
rates say little about the released 6000-step schedule.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from handsynth.hand.model import load_hand_model
from handsynth.objects.shapes import canonical_shape
from handsynth.poses.grasp import AnnealConfig, anneal, initial_hands, object_sdf
from handsynth.poses.grasp_energy import GraspProblem
from handsynth.poses.validate import ValidationRule, validate_hand

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--object", default="box", help="world shape to grasp")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--hand-model", default="openhand")
    args = ap.parse_args()

    t = time.perf_counter()
    sdf_cpu = object_sdf(f"world:{args.object}")
    sdf_s = time.perf_counter() - t
    model = load_hand_model(args.hand_model, flat_hand_mean=True).to(args.device)
    problem = GraspProblem(
        model,
        sdf_cpu.to(args.device),
        torch.eye(3, device=args.device),
        torch.tensor([0.0, 0.0, 0.5], device=args.device),
        None,
    )
    v, f, _ = canonical_shape(args.object)
    cfg = AnnealConfig(iters=args.iters)
    x0 = initial_hands(problem, v, f, args.batch, np.random.default_rng(0), cfg)
    t = time.perf_counter()
    x, contacts, energy, terms, history = anneal(problem, x0, cfg, torch.Generator().manual_seed(0))
    if args.device == "cuda":
        torch.cuda.synchronize()
    anneal_s = time.perf_counter() - t

    rule = ValidationRule()
    verdicts = []
    t = time.perf_counter()
    with torch.no_grad():
        out = problem.hand(x)
    for b in range(args.batch):
        verts = problem.to_object(out.vertices[b]).double().cpu().numpy()
        joints = problem.to_object(out.joints[b]).double().cpu().numpy()
        verdicts.append(validate_hand(model.cpu(), verts, joints, sdf_cpu, rule))
        model.to(args.device)
    validate_s = time.perf_counter() - t
    rates = {
        "contact": float(np.mean([v.contact_ok for v in verdicts])),
        "intersection": float(np.mean([v.volume_ok for v in verdicts])),
        "self_penetration": float(np.mean([not v.self_collision for v in verdicts])),
        "all": float(np.mean([v.valid for v in verdicts])),
    }
    result = {
        "object": args.object,
        "hand_model": args.hand_model,
        "device": args.device,
        "batch": args.batch,
        "iters": args.iters,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "sdf_grid_s": round(sdf_s, 2),
        "steps_per_s": round(args.iters / anneal_s, 2),
        "energy_evals_per_s": round(args.iters * args.batch / anneal_s, 1),
        "validate_s_per_grasp": round(validate_s / args.batch, 3),
        "energy_start_end": [round(history[0], 3), round(history[-1], 3)],
        "pass_rate": rates,
        "valid_per_minute": round(60 * rates["all"] * args.batch / (anneal_s + validate_s), 2),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "grasp.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Grasp synthesis speed (`benchmarks/grasp.py`)",
        "",
        f"`{args.hand_model}` hand, world `{args.object}`, batch {args.batch}, {args.iters} annealing steps, "
        f"device {args.device}, {result['threads']} thread(s).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| SDF grid (48 points on the long side), once per object | {result['sdf_grid_s']} s |",
        f"| annealing steps / s (whole batch) | {result['steps_per_s']} |",
        f"| energy evaluations / s (steps x batch) | {result['energy_evals_per_s']} |",
        f"| validation / grasp | {result['validate_s_per_grasp']} s |",
        f"| mean energy start -> end | {result['energy_start_end'][0]} -> {result['energy_start_end'][1]} |",
        "| pass rate contact / intersection / self-pen. / all | "
        + " / ".join(f"{100 * rates[k]:.0f}%" for k in ("contact", "intersection", "self_penetration", "all"))
        + " |",
        f"| valid grasps / minute (this short run) | {result['valid_per_minute']} |",
        "",
        "A short schedule is not the released 6000 steps: the pass rates only show the pipeline runs end to end.",
        "",
    ]
    (RESULTS / "grasp.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
