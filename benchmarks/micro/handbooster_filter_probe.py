"""Can the edge-case filter's estimator learn to read synthesized grasps, and how many does it need?

Why: in the HandBooster suite the filter keeps (g)..(i)'s novel-grasp images at ~4 %, so their claims are
not measurable. Its yardsticks say why: trained on holab's real photos (3 grasp styles per object), the
estimator reads even exact-label pictures of synthesized grasps badly. This probe trains estimators on
real train plus holab photos (`world render --domain holab --poses`) of synthesized grasps from a pool
of their own (`--pool-seed`, never the condition creator's seed 0), at several pool sizes and photo
counts, and filters the same yardstick sets with each, thresholds from the suite's reference as the
suite sets them:

    python benchmarks/micro/handbooster_filter_probe.py --work outputs/micro/handbooster_full \
        --variant g96_p960:96:960 --variant g32_p960:32:960 --existing "real only=DIR" --out probe/

Sets (the suite's filter yardsticks, first seed, in the generator's framing; labels exact): real photos
of the reference, holab photos of the `real` and `random` conditions, and the `random` photos with
shuffled labels (each image paired with another record's hands: a good filter rejects these). Prints
one table and writes `probe.json` / `probe.md` next to the variants' folders. Every stage is skipped
when its output exists.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _hs(*args) -> list[str]:
    return [sys.executable, "-m", "handsynth.cli", *[str(a) for a in args]]


def _run(cmds: list[list[str]], log: Path) -> float:
    t0 = time.time()
    with open(log, "a") as f:
        for cmd in cmds:
            f.write("$ " + shlex.join(cmd) + "\n")
            f.flush()
            subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)
    return time.time() - t0


def _done(folder: Path) -> bool:
    return (folder / "metadata.jsonl").exists() or (folder / "checkpoints").exists()


def _runner(cfg: dict, work: Path):
    """The HandBooster suite's runner on a finished work folder (its Qr, its command builders)."""
    from handbooster_suite import make_runner
    from run import Runner

    return make_runner(Runner)(cfg, work, create=False)


def variant_cmds(r, out: Path, grasps: int, photos: int, seed: int) -> list[list[str]]:
    """The suite's held-out photo chain (its ``grasp_steps`` and ``compose_cmd``) at another pool size,
    photo count and seed into ``out``, then the suite's recon tool training on real train + those photos."""
    from handbooster_suite import _argv

    steps = [
        *r.grasp_steps(lambda k: out / k, seed, grasps),
        r.compose_cmd(out / "aligned", photos, 1.0, seed, out / "conds"),
        ["world", "render", "--domain", "holab", "--poses", out / "conds", "--n", photos, "--size", r.cfg["size"],
         "--seed", 1000 + seed, "--maps", "", "--no-local", "--out", out / "photos"],
    ]  # fmt: skip
    cmds = [(Path(a[a.index("--out") + 1]), _hs(*a)) for a in steps]
    t = r.cfg["tools"]["recon"]
    train = r.recon_train_cmd(
        [r.data("holab_train"), out / "photos"], out / "estimator", t["steps"], t["batch_size"], 0
    )
    cmds.append((out / "estimator", _hs(*_argv(train))))
    return [cmd for folder, cmd in cmds if not _done(folder)]


def shuffled(src: Path, dst: Path, seed: int = 0) -> Path:
    """``src`` with every record's hands taken from another record (a derangement): wrong labels."""
    if (dst / "metadata.jsonl").exists():
        return dst
    recs = [json.loads(x) for x in (src / "metadata.jsonl").read_text().splitlines() if x.strip()]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(recs))
    perm = np.roll(perm, 1)[np.argsort(perm)]  # i -> the record after i in a random cycle: never itself
    out = []
    for i, rec in enumerate(recs):
        other = recs[int(perm[i])]
        out.append({**rec, "hands": other["hands"]})
    dst.mkdir(parents=True, exist_ok=True)
    if not (dst / "images").exists():
        (dst / "images").symlink_to((src / "images").resolve())  # the same image files
    (dst / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out))
    return dst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="a finished HandBooster full-suite work folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--variant", action="append", default=[], help="NAME:GRASPS_PER_OBJECT:PHOTOS (trained here)"
    )
    p.add_argument(
        "--existing", action="append", default=[], help="NAME=RECON_RUN (an estimator trained before)"
    )
    p.add_argument("--pool-seed", type=int, default=2, help="grasp / align / compose seed of the new pools")
    p.add_argument("--profile", default="full")
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()

    sys.path.insert(0, str(HERE))
    from run import load_profile

    cfg = load_profile(a.profile, suite="handbooster")
    r = _runner(cfg, a.work)
    a.out.mkdir(parents=True, exist_ok=True)
    estimators = {n: Path(d) for n, d in (e.split("=", 1) for e in a.existing)}
    jobs, seconds = {}, {}
    for spec in a.variant:
        name, grasps, photos = spec.split(":")
        folder = a.out / name
        folder.mkdir(parents=True, exist_ok=True)
        jobs[name] = variant_cmds(r, folder, int(grasps), int(photos), a.pool_seed)
        estimators[name] = folder / "estimator"
    with ThreadPoolExecutor(max(1, a.jobs)) as pool:
        futures = {n: pool.submit(_run, cmds, a.out / f"{n}.log") for n, cmds in jobs.items() if cmds}
        for n, f in futures.items():
            seconds[n] = round(f.result(), 1)

    yard = a.work / "eval" / "filter_yardstick"
    sets = {
        "real photos (holab_oracle)": yard / "real_crops",
        "holab photos of the real conditions": yard / "photos_real",
        "holab photos of the random conditions": yard / "photos_random",
        "... with shuffled labels": shuffled(yard / "photos_random", a.out / "shuffled_random"),
    }
    ref = a.work / "data" / cfg["hb"].get("filter_reference", "holab_oracle")
    results = {}
    for name, est in estimators.items():
        results[name] = {"estimator": str(est), "sets": {}}
        for set_name, data in sets.items():
            kept = a.out / "filtered" / name / data.name
            if not (kept / "filter_report.json").exists():
                _run([_hs("filter", "--in", data, "--estimator", est, "--out", kept, "--preset", cfg["hb"]["filter"],
                          "--reference", ref, "--overwrite")], a.out / f"filter_{name}.log")  # fmt: skip
            rep = json.loads((kept / "filter_report.json").read_text())
            results[name]["thresholds_mm"] = rep["summary"]["thresholds_mm"]
            results[name]["sets"][set_name] = {
                "kept": rep["summary"]["kept"],
                "records": rep["summary"]["records"],
                "median_mm": {k: v["p50"] for k, v in rep["error_stats_mm"].items()},
            }
        grasps = a.out / name / "valid" / "metadata.jsonl"
        results[name]["valid_grasps"] = len(grasps.read_text().splitlines()) if grasps.exists() else None
    lines = [
        "# HandBooster suite: can the filter's estimator learn to read synthesized grasps?",
        "",
        f"Command: `python benchmarks/micro/handbooster_filter_probe.py --work {a.work} "
        + " ".join(f"--variant {v}" for v in a.variant)
        + "".join(f' --existing "{e}"' for e in a.existing)
        + f" --pool-seed {a.pool_seed}`. Filter `--preset {cfg['hb']['filter']}` with thresholds from "
        f"`{ref.name}` per estimator. Cell: kept % (median MPJPE / PA-MPJPE, mm) of the set, labels exact "
        "except the shuffled row. Variants' pools come from seed "
        f"{a.pool_seed}; the condition sets' grasps from seed 0. New variants' wall time (set-up + training, "
        f"{a.jobs} side by side): {seconds or 'none'}.",
        "",
        "| Estimator | valid grasps | thresholds MPJPE / PA (mm) | " + " | ".join(sets) + " |",
        "|---" * (3 + len(sets)) + "|",
    ]
    for name, res in results.items():
        th = res["thresholds_mm"]
        cells = []
        for s in res["sets"].values():
            m = s["median_mm"]
            cells.append(
                f"{100 * s['kept'] / max(s['records'], 1):.0f} % ({m['mpjpe']:.1f} / {m['pa_mpjpe']:.1f})"
            )
        lines.append(f"| {name} | {res['valid_grasps'] or '–'} | {th['mpjpe']:.1f} / {th['pa_mpjpe']:.1f} | "
                     + " | ".join(cells) + " |")  # fmt: skip
    (a.out / "probe.json").write_text(json.dumps({"results": results, "seconds": seconds}, indent=1))
    (a.out / "probe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
