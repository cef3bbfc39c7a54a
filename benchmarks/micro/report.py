"""The micro benchmark's report (v2): gates first, then Table 1/4 and Table 2 with trivial and oracle
rows, and one label per paper claim from paired per-seed tests (rules: ``micro_stats.py``)."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import numpy as np
from micro_stats import ALPHA, ClaimResult, by_seed, correct, paired_test
from sheet import write_sheet

NAMES = {
    "sd": "SD (text only)",
    "controlnet": "ControlNet (global only, no TAS)",
    "uni_controlnet": "Uni-ControlNet (local adapter, no TAS)",
    "ah_local": "AttentionHand local only (generates from the crop)",
    "ah_notas": "AttentionHand w/o TAS",
    "attentionhand": "AttentionHand",
    "ah_separate": "AttentionHand separate weights",
    "ah_infer_local": "AttentionHand, global+local inference",
    "ah_infer_tas": "AttentionHand, TAS at inference",
    "real_lab": "real lab only",
    "shuffled": "AttentionHand images, shuffled labels (control)",
    "oracle": "real wild photos of the same poses (oracle)",
    "sesahand": "SesaHand (fusion + HSA, CoT prompts)",
    "sesahand_nocot": "SesaHand, verbose captions (w/o CoT)",
    "sesahand_nofusion": "SesaHand w/o fusion (fine maps only)",
    "sesahand_nohsa": "SesaHand w/o HSA",
    "sesahand_fusion_sum": "SesaHand, sum fusion",
    "sesahand_fusion_trunk": "SesaHand, mid/coarse through the shared trunk",
    "sesahand_hsa_tas": "SesaHand, HSA replaced by TAS",
}
T1 = ["FID", "KID", "FID-H", "KID-H", "Hand Conf.", "MSE-2D", "MSE-3D"]
HIGHER = {"Text align.", "Hand Conf.", "AUC_J", "AUC_V", "F@5", "F@15", "PCK@0.1"}
T2 = ["PA-MPJPE", "PA-MPVPE", "MPJPE", "MPVPE", "AUC_J", "AUC_V", "F@5", "F@15"]
T2_PRIMARY = ["PA-MPJPE", "PA-MPVPE"]
TRIVIAL_SET = "Trivial: blank images"
ORACLE_SET = "Oracle: real wild, same poses"
GUIDED_OFF = {"sd"}  # methods that get no mesh (gate c does not apply)
# Suites' extra Table 1 columns (benchmarks/micro/suite_metrics.py), shown when ``extra_metrics`` is set.
SUITE_T1 = ["Text align.", "FID-H small", "FID-H mid", "FID-H large"]
HAND_METRICS = ["FID-H", "KID-H", "Hand Conf.", "MSE-2D", "MSE-3D"]

# (id, text, better, worse, metrics, table, extra gates: "tas" = the TAS precondition)
CLAIMS = [
    (
        "T1-cn",
        "AttentionHand beats ControlNet on every Table 1 metric",
        "attentionhand",
        "controlnet",
        T1,
        "Table 1",
        (),
    ),
    (
        "T1-uni",
        "AttentionHand beats Uni-ControlNet on every Table 1 metric",
        "attentionhand",
        "uni_controlnet",
        T1,
        "Table 1",
        (),
    ),
    (
        "T1-tas",
        "TAS helps: AttentionHand beats AttentionHand w/o TAS",
        "attentionhand",
        "ah_notas",
        T1,
        "Table 1",
        ("tas",),
    ),
    ("T1-sd", "AttentionHand beats text-only SD on every metric", "attentionhand", "sd", T1, "Table 1", ()),
    (
        "T4-local",
        "global + local beats local only on every metric",
        "attentionhand",
        "ah_local",
        T1,
        "Table 4",
        (),
    ),
    (
        "T4-hand",
        "local only has better hand metrics than global only (FID-H, KID-H, Hand Conf.)",
        "ah_local",
        "controlnet",
        ["FID-H", "KID-H", "Hand Conf."],
        "Table 4",
        (),
    ),
    (
        "T4-fid",
        "local only has worse whole-image FID/KID than global only",
        "controlnet",
        "ah_local",
        ["FID", "KID"],
        "Table 4",
        (),
    ),
    (
        "T4-shared",
        "shared weights beat separate weights (FID, KID-H, Hand Conf., MSE-2D, MSE-3D)",
        "attentionhand",
        "ah_separate",
        ["FID", "KID-H", "Hand Conf.", "MSE-2D", "MSE-3D"],
        "Table 4",
        (),
    ),
    (
        "T2-real",
        "adding AttentionHand images to real lab data improves reconstruction on real wild",
        "attentionhand",
        "real_lab",
        T2,
        "Table 2",
        (),
    ),
    (
        "T2-shuffled",
        "the gain comes from the labels: AttentionHand images beat the same images with shuffled labels",
        "attentionhand",
        "shuffled",
        T2,
        "Table 2",
        (),
    ),
    (
        "I-local",
        "global+local inference beats global inference (same modules)",
        "ah_infer_local",
        "attentionhand",
        T1,
        "Inference",
        (),
    ),
    (
        "I-tas",
        "TAS at inference beats no TAS at inference (same modules)",
        "ah_infer_tas",
        "attentionhand",
        T1,
        "Inference",
        (),
    ),
]
# TAS sweep (iterations x target), each against w/o TAS; run only when the TAS precondition holds.
for _it in (1, 5, 50):
    for _target in ("epsilon", "residual"):
        if (_it, _target) == (1, "epsilon"):
            continue  # the default `attentionhand` row: claim T1-tas
        _m = f"ah_tas{_it}_{_target[:3]}"
        NAMES.setdefault(_m, f"AttentionHand, TAS {_it} iteration{'s' if _it > 1 else ''}, {_target} target")
        CLAIMS.append(
            (
                f"TAS-{_it}-{_target}",
                f"TAS ({_it} iteration{'s' if _it > 1 else ''}, {_target} target) beats w/o TAS",
                _m,
                "ah_notas",
                T1,
                "TAS sweep",
                ("tas",),
            )
        )


# Claims of the suites (config ``claims``), in the same tuple layout.
SUITE_CLAIMS = {
    "sesahand": [
        (
            "S-ah",
            "SesaHand beats AttentionHand on the hand metrics",
            "sesahand",
            "attentionhand",
            HAND_METRICS,
            "Comparison",
            (),
        ),
        (
            "S-cn",
            "SesaHand beats ControlNet on the hand metrics",
            "sesahand",
            "controlnet",
            HAND_METRICS,
            "Comparison",
            (),
        ),
        (
            "S-down-ah",
            "SesaHand images help downstream reconstruction more than AttentionHand's (PA-MPJPE)",
            "sesahand",
            "attentionhand",
            ["PA-MPJPE"],
            "Table 2",
            (),
        ),
        (
            "S-down-cn",
            "SesaHand images help downstream reconstruction more than ControlNet's (PA-MPJPE)",
            "sesahand",
            "controlnet",
            ["PA-MPJPE"],
            "Table 2",
            (),
        ),
        (
            "S-cot",
            "CoT prompts beat verbose captions on text alignment and FID-H",
            "sesahand",
            "sesahand_nocot",
            ["Text align.", "FID-H"],
            "Ablation",
            (),
        ),
        (
            "S-fusion",
            "hierarchical structural fusion helps MSE-2D / MSE-3D",
            "sesahand",
            "sesahand_nofusion",
            ["MSE-2D", "MSE-3D"],
            "Ablation",
            (),
        ),
        (
            "S-fusion-mode",
            "attention fusion beats sum fusion on MSE-2D / MSE-3D (our reading's alternative)",
            "sesahand",
            "sesahand_fusion_sum",
            ["MSE-2D", "MSE-3D"],
            "Ablation",
            (),
        ),
        (
            "S-hsa",
            "hand structure attention helps Hand Conf. / MSE-2D",
            "sesahand",
            "sesahand_nohsa",
            ["Hand Conf.", "MSE-2D"],
            "Ablation",
            (),
        ),
        (
            "S-hsa-tas",
            "HSA is at least as good as TAS in its place on Hand Conf. / MSE-2D (its cost: §6)",
            "sesahand",
            "sesahand_hsa_tas",
            ["Hand Conf.", "MSE-2D"],
            "Ablation",
            ("tas",),
        ),
    ],
}
TITLES = {None: "AttentionHand's claims", "sesahand": "SesaHand's claims"}


def claims_of(cfg: dict) -> list[tuple]:
    """The claim list a run judges: the default suite's, or its suite's ``claims``."""
    return SUITE_CLAIMS[cfg["claims"]] if cfg.get("claims") else CLAIMS


def t1_metrics(cfg: dict) -> list[str]:
    """Table 1's metrics for a run: the paper's seven, plus a suite's extra columns."""
    return [*T1, *SUITE_T1] if cfg.get("extra_metrics") else T1


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None
    a = np.asarray(vals, np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else None


def _mean(values: list | None) -> float | None:
    return _stats(values or [])[0]


def _fmt(v: float | None, key: str) -> str:
    if v is None:
        return "–"
    if key == "loss":
        return f"{v:.4f}"
    if key.startswith("KID"):
        return f"{v:.4f}"
    if key in ("Text align.", "Hand Conf.", "AUC_J", "AUC_V", "F@5", "F@15", "PCK@0.1"):
        return f"{v:.3f}"
    return f"{v:.2f}"


def _cell(values: list[float], key: str) -> str:
    m, s = _stats(values)
    if m is None:
        return "–"
    return _fmt(m, key) + (f" ± {_fmt(s, key)}" if s is not None else "")


def _read_json(p: Path) -> dict:
    return json.loads(p.read_text()) if p.exists() else {}


def _downstream_budget(d: dict) -> str:
    if d.get("protocol") == "finetune":
        lr = f", lr {d['finetune_lr']}" if d.get("finetune_lr") else ""
        return (
            f"{d['steps']} steps on real lab, then {d['finetune_steps']} steps on the set alone{lr} "
            f"(`recon train --init`), batch {d['batch_size']}"
        )
    return f"{d['steps']} steps × batch {d['batch_size']}, real:generated draws 1:{d['synth_ratio']}"


def _short_path(path: str) -> str:
    """A path as a reader of the report can follow it (``run.shown_path``: relative to the repository,
    or from ``outputs/`` on for a folder of another checkout)."""
    from run import shown_path

    return shown_path(path)


def _work_folder(path: Path) -> Path:
    """The work folder an artifact path lies in (the nearest ancestor holding ``timings.json``)."""
    for parent in path.parents:
        if (parent / "timings.json").exists():
            return parent
    return path.parent


def _reused_line(r, reused: dict[str, str]) -> str:
    """What ``--reuse-from`` took, grouped by source folder (shown from ``outputs/`` on: the machine's own
    prefix means nothing to a reader), and where the reused base and tools were themselves trained."""
    groups: dict[str, dict[str, list[str]]] = {}
    for name, path in reused.items():
        shown = _short_path(str(_work_folder(Path(path))))
        group = groups.setdefault(shown, {})
        m = re.fullmatch(r"train_(.+)_seed(\d+)", name)
        if m:
            group.setdefault(f"{m.group(1)} seeds", []).append(m.group(2))
        else:
            group.setdefault("", []).append(name)
    parts = []
    for shown, group in groups.items():
        items = [", ".join(group.pop(""))] if "" in group else []
        items += [f"{k} {', '.join(v)}" for k, v in group.items()]
        parts.append(f"from another work folder of the same machine (`{shown}`): {'; '.join(items)}")
    origins = sorted({r.provenance(n) for n in reused if not n.startswith("train_")})
    origin = f" The reused base and tools were {'; '.join(origins)}." if origins else ""
    return (
        f"Reused (`--reuse-from`, same recipe: budget and data fingerprints; their training time is not "
        f"above): {'. '.join(parts)}.{origin}"
    )


def _pretrained_cost(r) -> str:
    """What training the pretrained base and tools once took (their own records), for a from-scratch total."""
    parts = []
    base = _read_json(r.base / "handsynth_micro.json")
    if base.get("vae") and base.get("unet"):
        parts.append(f"base {base['vae']['seconds']:.0f} s (VAE) + {base['unet']['seconds']:.0f} s (UNet)")
    for name in ("features", "detector", "reader", "recon"):
        seconds = _read_json(r.tool(name) / "config.json").get("training", {}).get("seconds")
        if seconds is None:
            seconds = _read_json(r.tool(name) / "training_seconds.json").get("seconds")
        if seconds is not None:
            parts.append(f"{name} {seconds:.0f} s")
    if not parts:
        return ""
    return (
        "Training them once took " + ", ".join(parts) + " (one thread each, two side by side); "
        "`--no-pretrained` trains them in the run."
    )


def collect(r) -> dict:
    """Per-seed numbers of every finished stage: {table: {row: {metric: [value per seed]}}}, position i
    the same seed in every row of a table (None where a row lacks that seed), as the paired tests need."""
    seeds = r.cfg["seeds"]
    t1: dict[str, dict[str, dict[int, float | None]]] = {}
    real_rows: dict[str, dict[str, dict[int, float | None]]] = {}
    for seed in seeds:
        p = r.work / "eval" / f"seed{seed}" / "metrics.json"
        if not p.exists():
            continue
        rows = json.loads(p.read_text())["rows"]
        for name, row in rows.items():
            target = real_rows if name.startswith(("Real", "Oracle", "Trivial")) else t1
            for k in [*t1_metrics(r.cfg), "PCK@0.1", "detection_rate", "MPJPE-3D_mm"]:
                target.setdefault(name, {}).setdefault(k, {})[seed] = row.get(k)
    t2: dict[str, dict[str, dict[int, float | None]]] = {}
    for name in r.downstream_sets():
        for seed in seeds:
            p = r.down_dir(name, seed) / "eval" / "metrics.json"
            if p.exists():
                summ = json.loads(p.read_text())["summary"]
                for k in T2:
                    t2.setdefault(name, {}).setdefault(k, {})[seed] = summ.get(k)
    return {"t1": by_seed(t1, seeds), "real": by_seed(real_rows, seeds), "t2": by_seed(t2, seeds)}


def trivial_values(
    data: dict, yard: dict, metrics: list[str] = T1
) -> tuple[dict[str, float], dict[str, float]]:
    """The trivial row per metric: the best of the trivial predictors (blank images, constants)."""
    t1: dict[str, float] = {}
    blank = data["real"].get(TRIVIAL_SET, {})
    const = yard.get("trivial_t1", {})
    for k in metrics:
        cands = [v for v in (_mean(blank.get(k)), const.get(k)) if v is not None]
        if cands:
            t1[k] = max(cands) if k in HIGHER else min(cands)
    t2: dict[str, float] = {}
    for k in T2:
        cands = [row.get(k) for row in yard.get("trivial_t2", {}).values() if row.get(k) is not None]
        if cands:
            t2[k] = max(cands) if k in HIGHER else min(cands)
    return t1, t2


def gate_c(r, data: dict) -> dict[str, dict]:
    """Gate (c) per guided method: detector PCK@0.1 vs its condition's joints over PCK on the oracle photos."""
    need = float(r.cfg.get("gates", {}).get("mesh_pck_ratio", 0.5))
    oracle = _mean(data["real"].get(ORACLE_SET, {}).get("PCK@0.1"))
    out = {}
    for m, row in data["t1"].items():
        if m in GUIDED_OFF:
            continue
        pck = _mean(row.get("PCK@0.1"))
        ratio = None if pck is None or not oracle else pck / oracle
        out[m] = {
            "name": f"(c) {NAMES.get(m, m)} follows the mesh (PCK ratio to the oracle)",
            "value": ratio,
            "threshold": need,
            "passed": None if ratio is None else ratio >= need,
            "detail": f"PCK@0.1 {_fmt(pck, 'PCK@0.1')} vs oracle {_fmt(oracle, 'PCK@0.1')}",
        }
    return out


def _short(gate: dict) -> str:
    """A gate's id and value for the headline, e.g. 'Y1 0.30 < 3' or '(c) AttentionHand –'."""
    name = gate["name"]
    gid = name.split(" ")[0]
    if gid == "(c)":
        gid += " " + name[4:].split(" follows")[0]
    elif gid == "(b3)":
        gid += " " + name.split(": ")[1].split(" ")[0]
    v = gate.get("value")
    return f"{gid} {'not measured' if v is None else f'{v:.3g}'} (needs {'≤' if gid.startswith(('Y2', '(b2)')) else '≥'} {gate['threshold']:g})"


def _gate_line(gate: dict) -> str:
    v = gate.get("value")
    status = {True: "pass", False: "**FAIL**", None: "not measured"}[gate.get("passed")]
    value = "–" if v is None else f"{v:.3g}"
    return f"| {gate['name']} | {value} | {gate['threshold']:g} | {status} | {gate.get('detail', '')} |"


def judge(r, data: dict, yard: dict, gates_c: dict, tas: dict) -> tuple[list[ClaimResult], int]:
    """Every claim's metric tests and failed gates, Holm-corrected together."""
    t1_trivial, t2_trivial = trivial_values(data, yard, t1_metrics(r.cfg))
    common = [g for g in yard.get("gates", []) if g["name"].startswith(("(a)", "(b"))]
    y = {g["name"][:2]: g for g in yard.get("gates", [])}
    min_t2 = int(r.cfg.get("gates", {}).get("table2_min_images", 1000))
    n_gen = r.table2_images()
    results = []
    for cid, text, better, worse, metrics, table, extra in claims_of(r.cfg):
        c = ClaimResult(cid, text)
        t2 = table == "Table 2"
        src, trivial = (data["t2"], t2_trivial) if t2 else (data["t1"], t1_trivial)
        skipped = [m for m in (better, worse) if m in r.cfg["methods"] and r.skipped(m)]
        if skipped:
            c.failed_gates.append(r.skipped(skipped[0]))
        missing = [m for m in (better, worse) if m not in src]
        if missing and not skipped:
            c.note = f"not run in this profile: {', '.join(missing)}"
            c.failed_gates.append(c.note)
        if not yard:
            c.failed_gates.append("yardsticks not measured")
        needed = [y.get("Y3")] if t2 else [y.get("Y1"), y.get("Y2"), y.get("Y4"), *common]
        for g in needed:
            if g is not None and g.get("passed") is not True:
                c.failed_gates.append(_short(g))
        for m in (better, worse):
            g = gates_c.get(m if not t2 else ("attentionhand" if m in ("shuffled", "real_lab") else m))
            if g is not None and g.get("passed") is not True and m not in ("real_lab",):
                c.failed_gates.append(_short(g))
        if "tas" in extra and tas.get("passed") is not True:
            ratio = tas.get("ratio")
            c.failed_gates.append(
                "TAS precondition "
                + (
                    "not measured"
                    if ratio is None
                    else f"{ratio:.2f}x (hand-token attention in the hand box / its area share)"
                )
                + f" (needs ≥ {tas.get('threshold', 2):g}x; TAS not tested)"
            )
        if t2 and n_gen < min_t2:
            c.failed_gates.append(f"{n_gen} generated images per set (Table 2 needs >= {min_t2})")
        c.failed_gates = list(dict.fromkeys(c.failed_gates))
        for k in metrics:
            c.tests.append(
                paired_test(
                    src.get(better, {}).get(k, []),
                    src.get(worse, {}).get(k, []),
                    k in HIGHER,
                    k,
                    trivial.get(k),
                )
            )
        results.append(c)
    n_tests = correct(results)
    return results, n_tests


def _training_summary(r) -> dict[str, dict[str, float]]:
    """Per trained method: the mean of each logged training scalar over the last 10 % of steps and seeds."""
    out: dict[str, dict[str, float]] = {}
    for m, spec in r.cfg["methods"].items():
        if spec.get("train") is None:
            continue
        vals: dict[str, list[float]] = {}
        for seed in r.cfg["seeds"]:
            p = r.run_dir(m, seed) / "train_log.jsonl"
            if not p.exists():
                continue
            rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
            for row in rows[-max(1, len(rows) // 10) :]:
                for k in ("loss", "loss_global", "loss_local", "tas_loss"):
                    if k in row:
                        vals.setdefault(k, []).append(float(row[k]))
        if vals:
            out[m] = {k: float(np.mean(v)) for k, v in vals.items()}
    return out


def write_report(r) -> Path:
    cfg = r.cfg
    profile = cfg["profile"]
    data = collect(r)
    yard = _read_json(r.work / "eval" / "yardsticks.json")
    tas = r.tas_precondition()
    gates_c = gate_c(r, data)
    claims, n_tests = judge(r, data, yard, gates_c, tas)
    lines = []
    quick = profile != "full"
    suite_arg = f" --suite {cfg['suite']}" if cfg.get("suite") else ""
    T1X = t1_metrics(cfg)
    lines.append(
        f"# Micro benchmark: {TITLES[cfg.get('suite')]} in the micro world"
        + (f" — `{profile}` profile" if quick else "")
    )
    lines.append("")
    if quick:
        lines += [
            f"**This is the `{profile}` profile: a smoke run (seeds {cfg['seeds']}, small budgets). Its numbers "
            "show the pipeline runs end to end; they are NOT evidence for or against the paper's claims.**",
            "",
        ]
    lines += [
        f"Produced by `python benchmarks/micro/run.py{suite_arg} --profile {profile}` on {time.strftime('%Y-%m-%d')} "
        f"(outputs in `outputs/micro/{(cfg['suite'] + '_') if cfg.get('suite') else ''}{profile}/`, budgets in `benchmarks/micro/config.yaml`). Mean ± sample std "
        "over seeds; the world data, the micro base and the evaluation tools are shared by all seeds. "
        "How the world, the gates and the labels work: `docs/micro.md`.",
        "",
    ]
    # Look first: what the generators drew for the same held-out poses.
    base_stem = cfg.get("results_stem") or "micro"
    stem = base_stem if profile == "full" else f"{base_stem}_{profile}"
    sheet = write_sheet(r, r.results / f"{stem}_sheet.png", r.generated_sets())
    if sheet is not None:
        legend = "; ".join(f"`{m}` = {NAMES.get(m, m)}" for m in r.generated_sets())
        lines += [
            "## What the generators drew (seed 0, first 8 held-out poses)",
            "",
            f"![contact sheet]({sheet.name})",
            "",
            f"Columns: the mesh each guided method was given, a real wild photo of the same pose (the oracle), "
            f"then one image per method for the prompt under the row: {legend}.",
            "",
        ]
    # Headline
    lines += ["## Headline: each claim once", ""]
    lines.append(
        f"Labels from paired per-seed differences ({len(cfg['seeds'])} seed{'s' if len(cfg['seeds']) > 1 else ''}), 95 % t-intervals, Holm-corrected over "
        f"all **{n_tests} tests** of this report (family-wise α = {ALPHA}). *reproduced*: some metric significantly "
        "as claimed and none against; *contradicted*: the reverse; *mixed*: both; *inconclusive*: nothing "
        "significant after correction; *not measurable*: a gate failed or no metric beats its trivial row."
    )
    lines += ["", "| Claim | Source | Label | Rests on |", "|---|---|---|---|"]
    for c in claims:
        table = next(x[5] for x in claims_of(cfg) if x[0] == c.claim_id)
        lines.append(f"| {c.text} | {table} | **{c.label}** | {c.reason} |")
    lines.append("")
    # Gates
    lines += ["## Gates and yardsticks (checked before any claim is judged)", ""]
    lines += ["| Gate | Measured | Threshold | Status | Detail |", "|---|---|---|---|---|"]
    for g in yard.get("gates", []):
        lines.append(_gate_line(g))
    for g in gates_c.values():
        lines.append(_gate_line(g))
    ratio = tas.get("ratio")
    lines.append(
        _gate_line(
            {
                "name": "TAS precondition: hand-token attention inside the hand box / its area share (base)",
                "value": ratio,
                "threshold": tas.get("threshold", 2.0),
                "passed": tas.get("passed"),
                "detail": "`tas_probe.py`; when it fails the TAS claims and sweep are *not tested*",
            }
        )
    )
    if not yard:
        lines += ["", "*The yardsticks stage has not run: every claim is not measurable.*"]
    lines.append("")
    # Table 1 / 4
    t1_trivial, t2_trivial = trivial_values(data, yard, T1X)
    lines += ["## Table 1 / Table 4: generation (held-out poses, wild prompts)", ""]
    lines.append(
        "Reference set: real `wild` photos of the same held-out poses (another rendering) when the profile has "
        "them, else real wild test photos. Hand Conf., MSE-2D (px²) and PCK@0.1 with the world detector against "
        "each set's own condition joints; MSE-3D (cm², root-relative) with the recon model trained on the real photos (wild + lab)."
    )
    lines.append("")
    header = ["Method", *T1X, "PCK@0.1"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in r.generated_sets():
        row = data["t1"].get(m, {})
        lines.append(
            "| "
            + " | ".join([NAMES.get(m, m)] + [_cell(row.get(k, []), k) for k in [*T1X, "PCK@0.1"]])
            + " |"
        )
    for name, row in data["real"].items():
        lines.append(
            "| " + " | ".join([f"*{name}*"] + [_cell(row.get(k, []), k) for k in [*T1X, "PCK@0.1"]]) + " |"
        )
    const = yard.get("trivial_t1", {})
    lines.append(
        "| *Trivial: constant keypoints (centre) / every joint at the wrist* | – | – | – | – | – | "
        f"{_fmt(const.get('MSE-2D'), 'MSE-2D')} | {_fmt(const.get('MSE-3D'), 'MSE-3D')} | "
        + "– | " * (len(T1X) - len(T1))
        + "– |"
    )
    lines.append(
        "| **trivial row used for the labels** | "
        + " | ".join(_fmt(t1_trivial.get(k), k) for k in T1X)
        + " | – |"
    )
    lines += [
        "",
        "A metric counts for a claim only when both compared methods beat the trivial row. FID/KID are in the "
        "world extractor's units (only comparisons within this table mean anything). The local-only model "
        "generates the hand crop, so its whole-image FID/KID compare a crop with whole photos.",
        "",
    ]
    if cfg.get("extra_metrics"):
        lines += [
            "*Text align.*: share of the world feature extractor's side / gesture / object heads that read "
            "the prompt's facts (the held-out record's) back from the image, the micro world's CLIP-score "
            "stand-in. *FID-H small / mid / large*: FID-H per hand-size tercile (box side; cut points from the "
            "reference set).",
            "",
        ]
    if cfg.get("prompts_from"):
        styles = {m: (cfg["methods"][m]["generate"].get("prompts") or "default") for m in cfg["methods"]}
        lines += [
            "Prompts: `cot` rows generate from the CoT prompts (`handsynth caption --cot --backend record "
            f"--semantics rule`) of `{cfg['prompts_from']}`'s verbose captions, `verbose` rows from those "
            "captions, the others from the default suite's prompt file; SesaHand rows train on the CoT copy of "
            "`wild_train` (`prompt` or, w/o CoT, `caption`). Per row: "
            + ", ".join(f"{NAMES.get(m, m)}: {v}" for m, v in styles.items())
            + ".",
            "",
        ]
    left_out = {m: r.skipped(m) for m in cfg["methods"] if cfg.get("suite") and r.skipped(m)}
    if left_out:
        lines += [
            "Rows not run: " + "; ".join(f"{NAMES.get(m, m)} ({why})" for m, why in left_out.items()),
            "",
        ]
    # Table 2
    finetune = cfg["downstream"].get("protocol") == "finetune"
    how = "pretrained on real lab, fine-tuned on the set" if finetune else "train: real lab [+ set]"
    lines += [f"## Table 2: downstream 3D reconstruction ({how}, test: real wild)", ""]
    lines += ["| Training data | " + " | ".join(T2) + " |", "|---|" + "---|" * len(T2)]
    for name in r.downstream_sets():
        row = data["t2"].get(name, {})
        label = f"real lab {'→' if finetune else '+'} {NAMES.get(name, name)}"
        if name == "real_lab":
            label = NAMES.get(name, name) + (" (pretrained, not fine-tuned)" if finetune else "")
        lines.append("| " + " | ".join([label] + [_cell(row.get(k, []), k) for k in T2]) + " |")
    for name, row in yard.get("trivial_t2", {}).items():
        lines.append(
            "| " + " | ".join([f"*Trivial: {name} (real lab)*"] + [_fmt(row.get(k), k) for k in T2]) + " |"
        )
    lines += [
        "",
        f"Primary metrics: {', '.join(T2_PRIMARY)} (mm, after Procrustes). Generated images per set: "
        f"{r.table2_images()}"
        + (
            " (Table 2's own held-out poses, `table2`; the oracle set is their real wild photos)."
            if r.table2_own_poses
            else "."
        ),
        "",
    ]
    if r.table2_own_poses:  # look at the sets Table 2 trains on, too (1,000 images each)
        from run import T2_ORACLE, T2_POSES

        t2_sets = r.table2_generated()
        t2_sheet = write_sheet(
            r,
            r.results / f"{stem}_table2_sheet.png",
            t2_sets,
            poses=T2_POSES,
            refs=T2_ORACLE,
            gen_dir=r.t2_gen_dir,
            prompt_file=r.prompt_file_of(T2_POSES),
        )
        if t2_sheet is not None:
            lines += [
                f"![Table 2's sets]({t2_sheet.name})",
                "",
                "*Table 2's own poses (seed 0, the first 8 of "
                f"{r.table2_images():,}): the mesh, the oracle's real wild photo, then "
                f"{', '.join(NAMES.get(m, m) for m in t2_sets)}; the shuffled control draws the same images "
                "with shuffled labels.*",
                "",
            ]
    # Per-metric detail
    lines += ["## Per-metric tests", ""]
    lines.append(
        "Mean paired difference in the claim's direction (positive = as the paper says), its 95 % t-interval, "
        "p and Holm-adjusted p; *not measurable* when a compared method does not beat the trivial row."
    )
    lines += [
        "",
        "| Claim | Metric | Mean diff. | 95 % interval | p | p (Holm) | Status |",
        "|---|---|---|---|---|---|---|",
    ]
    claims_json = []
    for c in claims:
        if all(t.interval.n == 0 for t in c.tests):
            lines.append(f"| {c.claim_id} | all | – | – | – | – | no paired values ({c.note or 'not run'}) |")
        for t in c.tests:
            iv = t.interval
            if all(x.interval.n == 0 for x in c.tests):
                break
            ci = "–" if iv.low is None else f"[{iv.low:.3g}, {iv.high:.3g}]"
            p = "–" if iv.p is None else f"{iv.p:.3g}"
            ph = "–" if t.p_holm is None else f"{t.p_holm:.3g}"
            mean = "–" if iv.n == 0 else f"{iv.mean:+.3g}"
            status = t.status + (f" ({t.reason})" if t.reason else "")
            if c.failed_gates:
                status = "gate failed"
            lines.append(f"| {c.claim_id} | {t.metric} | {mean} | {ci} | {p} | {ph} | {status} |")
        claims_json.append(
            {
                "id": c.claim_id,
                "claim": c.text,
                "label": c.label,
                "reason": c.reason,
                "failed_gates": c.failed_gates,
                "metrics": [
                    {
                        "metric": t.metric,
                        "n": t.interval.n,
                        "mean": t.interval.mean,
                        "low": t.interval.low,
                        "high": t.interval.high,
                        "p": t.interval.p,
                        "p_holm": t.p_holm,
                        "measurable": t.measurable,
                        "reason": t.reason,
                        "status": t.status,
                    }
                    for t in c.tests
                ],
            }
        )
    lines.append("")
    # Tools and budget
    lines.append("## Evaluation tools (trained in this world)")
    lines.append("")
    feats = _read_json(r.tool("features") / "config.json").get("training", {})
    det = _read_json(r.tool("detector") / "config.json").get("training", {})
    base = _read_json(r.base / "handsynth_micro.json")
    if feats:
        acc = ", ".join(f"{k} {v:.2f}" for k, v in feats.get("heldout_accuracy", {}).items())
        lines.append(f"- Feature extractor (FID/KID): {feats['steps']} steps; held-out accuracy: {acc}.")
    if det:
        lines.append(
            f"- 2D keypoint detector: {det['steps']} steps; held-out real wild MSE-2D "
            f"{det.get('heldout_mse_2d_px2', float('nan')):.1f} px², confidence {det.get('heldout_confidence', float('nan')):.3f}."
        )
    real = data["real"].get("Real (reference)", {})
    if real.get("MPJPE-3D_mm"):
        lines.append(
            f"- 3D estimator (MSE-3D): `handsynth recon` on real wild, {cfg['tools']['recon']['steps']} steps; "
            f"on the real wild test photos root-relative MPJPE {_cell(real['MPJPE-3D_mm'], 'MPJPE')} mm."
        )
    if base:
        lines.append(
            f"- Micro base: VAE {base['config']['vae_channels']} ({base['vae'].get('l1', float('nan')):.3f} final L1, "
            f"{base['config']['vae_steps']} steps), UNet {base['config']['unet_channels']} "
            f"({base['parameters']['unet'] / 1e6:.2f} M parameters, {base['config']['unet_steps']} steps, final loss "
            f"{base['unet'].get('loss_ema', float('nan')):.3f}), CLIP text encoder "
            + (
                "trained with the UNet"
                if base["config"].get("train_text_encoder")
                else "frozen at random init"
            )
            + f"; trained on {base['num_images']} wild images + captions"
            + (" (incl. no-hand photos)." if base.get("extra_data") else ".")
        )
    lines.append("")
    train_rows = _training_summary(r)
    if train_rows:
        lines.append("## Guidance training (last 10 % of steps, mean over seeds)")
        lines.append("")
        lines.append("| Method | loss | loss global | loss local | L_TAS before update |")
        lines.append("|---|---|---|---|---|")
        for m, row in train_rows.items():
            lines.append(
                f"| {NAMES.get(m, m)} | "
                + " | ".join(
                    _fmt(row.get(k), "loss") for k in ("loss", "loss_global", "loss_local", "tas_loss")
                )
                + " |"
            )
        lines.append("")
    probe = _read_json(r.work / "eval" / "tas_probe.json")
    if "relative_change_of_noise_target" in probe:
        lines.append(
            f"**How much TAS moves the latents** (`benchmarks/micro/tas_probe.py`, {probe['images']} wild training "
            f"images, random t, one update with the paper's α): L_TAS {probe['tas_loss_before']:.6f} → "
            f"{probe['tas_loss_after']:.6f}; the noise target ε̂ changes by "
            f"{100 * probe['relative_change_of_noise_target']:.3f} % of ‖ε‖. "
            + (
                "A change this small leaves AttentionHand's training target, and so the trained module, "
                "practically equal to the one trained without TAS: at this scale the hand-token attention "
                "is too flat for the TAS gradient to matter."
                if probe["relative_change_of_noise_target"] < 0.01
                else "TAS changes the training target noticeably at this scale."
            )
        )
        lines.append("")
    lines.append("## Budget and time")
    lines.append("")
    g, d = cfg["guidance"], cfg["downstream"]
    world = ", ".join(
        f"{k} {v.get('n') or cfg['world'][v['poses']]['n']}"
        + (f" (poses of {v['poses']})" if v.get("poses") else "")
        for k, v in cfg["world"].items()
    )
    world += "".join(f", no-hand {k} {v['n']}" for k, v in (cfg.get("empty") or {}).items())
    lines.append(
        f"- Profile `{profile}`: images {cfg['size']}²; world {world}; "
        f"guidance {g['steps']} steps × batch {g['batch_size']} (identical for every method, TAS "
        f"{g['tas_iterations']} iteration at {g['tas_resolution']}²); generation DDIM {cfg['generate']['steps']} "
        f"steps, CFG {cfg['generate']['guidance']}; downstream {_downstream_budget(d)}; "
        f"seeds {cfg['seeds']}; {cfg['jobs']} parallel jobs × 1 thread."
    )
    timings = _read_json(r.timings_path)
    if timings.get("stages"):
        lines.append("")
        lines.append("| Stage | Wall time (s) |")
        lines.append("|---|---|")
        for k, v in timings["stages"].items():
            lines.append(f"| {k} | {v:.0f} |")
        if timings.get("total_wall_s"):
            lines.append(f"| **whole run (all invocations that did work)** | {timings['total_wall_s']:.0f} |")
        elif timings.get("last_run_wall_s"):
            lines.append(f"| **whole run (last invocation)** | {timings['last_run_wall_s']:.0f} |")
        if timings.get("note"):
            lines += ["", timings["note"] + "."]
        if timings.get("pretrained"):
            names = ", ".join(timings["pretrained"])
            where = sorted(
                {
                    str(Path(v).parent.parent if k != "base" else Path(v).parent)
                    for k, v in timings["pretrained"].items()
                }
            )
            lines += [
                "",
                f"Pretrained (config `pretrained`, same recipe: budget and data fingerprints; not trained by "
                f"this run, as the paper does not train SD-1.5 or its evaluation models): {names}, from "
                f"{', '.join(f'`{_short_path(w)}`' for w in where)}. {_pretrained_cost(r)}",
            ]
        if timings.get("reused"):
            lines += ["", _reused_line(r, timings["reused"])]
    lines.append("")
    machine = timings.get("machine", "shared 2-core CPU (other jobs were running during the run)")
    lines.append(f"Machine: {machine}, torch CPU, one thread per job.")
    lines.append("")
    text = "\n".join(lines)
    r.results.mkdir(parents=True, exist_ok=True)
    md = r.results / f"{stem}.md"
    md.write_text(text)
    (r.results / f"{stem}.json").write_text(
        json.dumps(
            {
                "profile": profile,
                "config": cfg,
                "table1": data["t1"],
                "reference": data["real"],
                "table2": data["t2"],
                "gates": [*yard.get("gates", []), *gates_c.values()],
                "tas_precondition": tas,
                "trivial": {
                    "table1": t1_trivial,
                    "table2": t2_trivial,
                    "table2_rows": yard.get("trivial_t2", {}),
                },
                "tests": n_tests,
                "claims": claims_json,
                "timings": _read_json(r.timings_path),
            },
            indent=2,
            default=float,
        )
    )
    main_md = r.results / "micro.md"
    if (
        base_stem == "micro"
        and profile != "full"
        and (not main_md.exists() or "— `" in main_md.read_text().splitlines()[0])
    ):
        # Until the full profile has run, micro.md shows the labelled smoke run.
        main_md.write_text(text)
        (r.results / "micro.json").write_text((r.results / f"{stem}.json").read_text())
    return md
