"""``handsynth poses grasp-status | fps | cross-sample | views | rest | align | compose`` (and
``grasp | validate``, :mod:`handsynth.poses.grasp_cli`): HandBooster's
novel condition creator (issue 12 §5). Registered on the ``poses`` command that ``handsynth.hand.cli``
makes."""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from handsynth import cli_args
from handsynth.data.folder import dataset_root
from handsynth.data.records import Sample
from handsynth.errors import UserError
from handsynth.poses.io import _check_report, _read, _with_source, _write

log = logging.getLogger(__name__)


def _grasp_status(args: argparse.Namespace) -> int:
    from handsynth.poses.grasp_status import GraspRule, pose_errors

    _check_report(args.report)
    samples = _read(args.input, "--in")
    rule = GraspRule(args.rre_deg, args.rte_mm, args.rule)
    errors = pose_errors(samples)  # every error before any output
    labelled = []
    for s, (rre, rte) in zip(samples, errors, strict=True):
        out = _with_source(
            s, {"grasp_status": {"rre_deg": args.rre_deg, "rte_mm": args.rte_mm, "rule": args.rule}}
        )
        out.extra["grasping"] = rule.grasping(rre, rte)
        labelled.append(out)
    config = {
        "command": "poses grasp-status",
        "rre_deg": args.rre_deg,
        "rte_mm": args.rte_mm,
        "rule": args.rule,
    }
    _write(args.out, config, args.overwrite, labelled, dataset_root(args.input), "grasp status")
    n_grasp = sum(s.extra["grasping"] for s in labelled)
    if args.report:
        from handsynth.poses.report import grasp_status_report

        errors = np.asarray([(rte, rre) for rre, rte in errors], dtype=np.float64)
        flags = np.asarray([s.extra["grasping"] for s in labelled], dtype=bool)
        grasp_status_report(errors, flags, (args.rte_mm, args.rre_deg), Path(args.report))
    log.info("%d of %d records grasping (%s rule)", n_grasp, len(labelled), args.rule)
    return 0


def _vectors_by_object(
    samples: list[Sample], scale: float, mano_dir: str | None = None
) -> dict[str, tuple[list[int], np.ndarray]]:
    from handsynth.hand.model import HandModels
    from handsynth.poses.features import object_name, pose_vector

    models = HandModels(mano_dir)  # loads a model only for records with absolute poses (their mean)

    def mean(s: Sample) -> np.ndarray | None:
        if not (s.flat_hand_mean and s.hands):
            return None
        h = s.hands[0]
        return models.get(h.model, h.side).hand_mean.double().numpy()

    rows: dict[str, list[int]] = defaultdict(list)
    vecs = [pose_vector(s, scale, mean(s)) for s in samples]
    for i, s in enumerate(samples):
        rows[object_name(s)].append(i)
    return {name: (idx, np.stack([vecs[i] for i in idx])) for name, idx in sorted(rows.items())}


def _fps(args: argparse.Namespace) -> int:
    from handsynth.poses.fps import farthest_pose_sampling

    _check_report(args.report)
    samples = _read(args.input, "--in")
    groups = _vectors_by_object(samples, args.translation_scale, args.mano_dir)
    picked: list[Sample] = []
    report: list[tuple[str, np.ndarray, list[int]]] = []
    step = {
        "fps": {"seed": args.seed, "per_object": args.per_object, "translation_scale": args.translation_scale}
    }
    for k, (name, (idx, vecs)) in enumerate(groups.items()):
        picks = farthest_pose_sampling(vecs, args.per_object, seed=args.seed + k)
        if len(idx) < args.per_object:
            log.warning(
                "object %s has %d poses, fewer than --per-object %d: all kept",
                name,
                len(idx),
                args.per_object,
            )
        picked += [_with_source(samples[idx[p]], step) for p in picks]
        report.append((name, vecs, picks))
    config = {"command": "poses fps", **step["fps"]}
    _write(args.out, config, args.overwrite, picked, dataset_root(args.input), "fps")
    if args.report:
        from handsynth.poses.report import fps_report

        fps_report(report, args.seed, Path(args.report))
    log.info("%d poses of %d objects kept from %d", len(picked), len(groups), len(samples))
    return 0


def _cross_sample(args: argparse.Namespace) -> int:
    from handsynth.poses.cross import cross_weights, draw
    from handsynth.poses.report import mean_similarity

    _check_report(args.report)
    synthetic = _read(args.synthetic, "--synthetic")
    real = _read(args.real, "--real")
    syn_groups = _vectors_by_object(synthetic, args.translation_scale, args.mano_dir)
    real_groups = _vectors_by_object(real, args.translation_scale, args.mano_dir)
    missing = sorted(set(syn_groups) - set(real_groups))
    if missing:
        raise UserError(
            f"--real {args.real} has no pose of object {missing[0]!r} (in --synthetic): cross-sampling "
            "compares each object's synthetic poses with its real ones"
        )
    replace = not args.without_replacement
    step = {
        "cross_sample": {
            "seed": args.seed,
            "n": args.n,
            "floor": args.floor,
            "replace": replace,
            "translation_scale": args.translation_scale,
        }
    }
    picked: list[Sample] = []
    before, after = [], []
    for k, (name, (idx, vecs)) in enumerate(syn_groups.items()):
        weights = cross_weights(vecs, real_groups[name][1], floor=args.floor)
        drawn = draw(weights, args.n, seed=args.seed + k, replace=replace)
        similarity = mean_similarity(vecs, real_groups[name][1])
        before.append(similarity)
        after.append(similarity[drawn])
        for d, p in enumerate(drawn):
            src = synthetic[idx[p]]
            picked.append(_with_source(src, step, new_id=f"{src.id}-draw{d:06d}"))
    config = {"command": "poses cross-sample", **step["cross_sample"]}
    _write(args.out, config, args.overwrite, picked, dataset_root(args.synthetic), "cross-sample")
    if args.report:
        from handsynth.poses.report import cross_report

        cross_report(np.concatenate(before), np.concatenate(after), Path(args.report))
    log.info("%d draws over %d objects from %d synthetic poses", len(picked), len(syn_groups), len(synthetic))
    return 0


def _sheet_report(args: argparse.Namespace, samples: list[Sample], poser, title: str, captions=None) -> None:
    """``--report``: a sheet of the first output records drawn (when asked for)."""
    if args.report:
        from handsynth.poses.report import records_report
        from handsynth.poses.rigid import HandPoser

        records_report(samples, poser or HandPoser(), Path(args.report), title, captions)


def _views(args: argparse.Namespace) -> int:
    from handsynth.poses.rigid import HandPoser
    from handsynth.poses.views import ViewCounts, novel_views

    _check_report(args.report)
    samples = _read(args.input, "--in")
    step = {"seed": args.seed, "n_per_pose": args.n_per_pose, "max_deg": args.max_deg, "mode": args.mode}
    counts = ViewCounts()
    poser = HandPoser(args.mano_dir)
    views = novel_views(samples, args.n_per_pose, args.max_deg, args.mode, args.seed, poser, counts, step)
    _write(
        args.out, {"command": "poses views", **step}, args.overwrite, views, dataset_root(args.input), "views"
    )
    _sheet_report(args, views, poser, "poses views")
    log.info(
        "%d views kept, %d dropped (a hand left the image), %d non-grasping records passed through",
        counts.kept,
        counts.dropped,
        counts.passed,
    )
    return 0


def _rest(args: argparse.Namespace) -> int:
    from handsynth.poses.rest import object_catalogue, rest_records

    _check_report(args.report)
    objects = object_catalogue(args.objects)
    step = {"seed": args.seed, "n_per_object": args.n}
    records = rest_records(objects, args.n, args.seed, step)
    config = {"command": "poses rest", "objects": [ref for _, ref in objects], **step}
    _write(args.out, config, args.overwrite, records, Path("."), "rest")
    per_object = {}  # one rest pose of each object first: the sheet shows every object
    for s in records:
        per_object.setdefault(s.extra["objects"][0]["name"], s)
    shown = list(per_object.values()) + [s for s in records if s not in per_object.values()]
    _sheet_report(args, shown, None, "poses rest")
    log.info("%d rest poses of %d objects", len(records), len(objects))
    return 0


def _align(args: argparse.Namespace) -> int:
    from handsynth.poses.align import align_records
    from handsynth.poses.rigid import HandPoser

    _check_report(args.report)
    samples = _read(args.input, "--in")
    reference = _read(args.reference, "--reference")
    step = {"seed": args.seed}
    poser = HandPoser(args.mano_dir)
    aligned = align_records(samples, reference, args.seed, poser, step)
    config = {"command": "poses align", "reference": str(Path(args.reference).resolve()), **step}
    _write(args.out, config, args.overwrite, aligned, dataset_root(args.input), "align")
    _sheet_report(args, aligned, poser, "poses align")
    return 0


def _compose(args: argparse.Namespace) -> int:
    from handsynth.poses.compose import ComposeCounts, compose
    from handsynth.poses.rigid import HandPoser

    _check_report(args.report)
    real = _read(args.real, "--real")
    synthetic = _read(args.synthetic, "--synthetic")
    step = {
        "seed": args.seed,
        "synthetic_fraction": args.synthetic_fraction,
        "max_deg": args.max_deg,
        "mode": args.mode,
    }
    counts = ComposeCounts()
    poser = HandPoser(args.mano_dir)
    out = compose(
        real, synthetic, args.n, args.synthetic_fraction, args.seed, args.max_deg, args.mode,
        poser, step, counts,
    )  # fmt: skip
    config = {"command": "poses compose", "n": args.n, **step}
    _write(args.out, config, args.overwrite, out, dataset_root(args.real), "compose")
    pools = [s.source.get("handbooster", {}).get("compose", {}).get("pool", "?") for s in out]
    _sheet_report(
        args, out, poser, "poses compose", [f"{s.id} ({p})" for s, p in zip(out, pools, strict=True)]
    )
    log.info(
        "%d samples: %d synthetic, %d real; %d kept their pose unrotated (every view left the image)",
        len(out),
        counts.synthetic,
        counts.real,
        counts.unrotated,
    )
    return 0


def _poses_parser(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The ACTION sub-parsers of the ``poses`` command made by ``handsynth.hand.cli``."""
    poses = sub.choices.get("poses")
    if poses is None:
        poses = sub.add_parser("poses", help="hand poses")
        poses.set_defaults(func=lambda a: (poses.print_help(), 2)[1])
        return poses.add_subparsers(dest="poses_command", metavar="ACTION")
    return next(a for a in poses._actions if isinstance(a, argparse._SubParsersAction))


_OVERWRITE = "restart an output folder written with other settings"


def _sampling_flags(p: argparse.ArgumentParser, report_help: str) -> None:
    p.add_argument(
        "--translation-scale",
        type=cli_args.non_negative,
        default=1.0,
        help="multiplier of the object translation (metres) in the pose vector",
    )
    p.add_argument(
        "--mano-dir",
        default=None,
        help="MANO folder: the mean pose of mano records with absolute poses (source.flat_hand_mean)",
    )
    p.add_argument("--report", default=None, help=report_help)
    p.add_argument("--overwrite", action="store_true", help=_OVERWRITE)


def register(sub: argparse._SubParsersAction) -> None:
    actions = _poses_parser(sub)
    g = actions.add_parser(
        "grasp-status",
        help="label each frame of a video dataset grasping or not (object moved since frame 0)",
    )
    g.add_argument(
        "--in", dest="input", required=True, help="dataset folder or .jsonl with 'sequence' and 'objects'"
    )
    g.add_argument("--out", required=True, help="output dataset folder (records gain 'grasping')")
    g.add_argument(
        "--rre-deg", type=cli_args.non_negative, default=5.0, help="rotation error threshold (degrees)"
    )
    g.add_argument(
        "--rte-mm", type=cli_args.non_negative, default=10.0, help="translation error threshold (mm)"
    )
    g.add_argument(
        "--rule",
        choices=("or", "and"),
        default="or",
        help="grasping when either error (or) or both (and) exceed",
    )
    g.add_argument("--report", default=None, help="PNG: rotation vs translation errors and thresholds")
    g.add_argument("--overwrite", action="store_true", help=_OVERWRITE)
    g.set_defaults(func=_grasp_status)

    f = actions.add_parser("fps", help="farthest pose sampling per object (HandBooster Alg. 1)")
    f.add_argument("--in", dest="input", required=True, help="dataset folder or .jsonl of hand-object poses")
    f.add_argument(
        "--per-object", type=cli_args.positive_int, required=True, help="poses kept per object name"
    )
    f.add_argument("--out", required=True, help="output dataset folder")
    f.add_argument(
        "--seed", type=cli_args.seed, default=0, help="random seed (the first pick of each object)"
    )
    _sampling_flags(f, "PNG: pose similarity matrices of FPS vs random picks")
    f.set_defaults(func=_fps)

    c = actions.add_parser(
        "cross-sample", help="draw synthetic poses unlike the real ones more often (HandBooster Eq. 6)"
    )
    c.add_argument("--synthetic", required=True, help="dataset folder or .jsonl of synthetic poses")
    c.add_argument("--real", required=True, help="dataset folder or .jsonl of real poses")
    c.add_argument("--n", type=cli_args.positive_int, required=True, help="draws per object name")
    c.add_argument("--out", required=True, help="output dataset folder (one record per draw)")
    c.add_argument(
        "--floor",
        type=cli_args.non_negative,
        default=0.0,
        help="added to every min-max weight (0: the most real-like pose is never drawn, as in the paper)",
    )
    c.add_argument("--without-replacement", action="store_true", help="never draw a pose twice")
    c.add_argument("--seed", type=cli_args.seed, default=0, help="random seed of the draws")
    _sampling_flags(c, "PNG: real–synthetic similarity histogram before/after")
    c.set_defaults(func=_cross_sample)

    v = actions.add_parser(
        "views", help="novel views of grasping records: hand and object rotated together about the wrist"
    )
    v.add_argument("--in", dest="input", required=True, help="dataset folder or .jsonl with 'grasping'")
    v.add_argument("--out", required=True, help="output dataset folder (views + non-grasping records)")
    v.add_argument("--n-per-pose", type=cli_args.positive_int, default=1, help="views per grasping record")
    _view_flags(v)
    _run_flags(v, "random seed of the view angles")
    v.set_defaults(func=_views)

    r = actions.add_parser("rest", help="object resting poses on a table (stable poses, no physics engine)")
    r.add_argument(
        "--objects", required=True, help="folder of meshes (NAME/textured_simple.obj or NAME.obj) or 'world'"
    )
    r.add_argument("--n", type=cli_args.positive_int, required=True, help="rest poses per object")
    r.add_argument("--out", required=True, help="output dataset folder (object-only records)")
    _run_flags(r, "random seed of the draws", mano=False)
    r.set_defaults(func=_rest)

    a = actions.add_parser(
        "align", help="give grasps the orientation, shape and wrist position of random real grasping hands"
    )
    a.add_argument("--in", dest="input", required=True, help="dataset folder or .jsonl of grasps")
    a.add_argument("--reference", required=True, help="real records labelled by grasp-status")
    a.add_argument("--out", required=True, help="output dataset folder")
    _run_flags(a, "random seed of the real picks")
    a.set_defaults(func=_align)

    m = actions.add_parser(
        "compose", help="mix real and synthetic poses per object class, each seen from a random view"
    )
    m.add_argument("--real", required=True, help="dataset folder or .jsonl of real hand-object poses")
    m.add_argument("--synthetic", required=True, help="dataset folder or .jsonl of synthetic poses")
    m.add_argument("--n", type=cli_args.positive_int, required=True, help="samples in total")
    m.add_argument(
        "--synthetic-fraction",
        type=cli_args.probability,
        default=0.8,
        help="probability that a sample's pose is synthetic (0.8: released code)",
    )
    m.add_argument("--out", required=True, help="output dataset folder")
    _view_flags(m)
    _run_flags(m, "random seed of the draws and views")
    m.set_defaults(func=_compose)

    from handsynth.poses.grasp_cli import register_grasp

    register_grasp(actions)


def _run_flags(p: argparse.ArgumentParser, seed_help: str, mano: bool = True) -> None:
    """--seed, --mano-dir (commands that re-pose hands), --report and --overwrite."""
    p.add_argument("--seed", type=cli_args.seed, default=0, help=seed_help)
    p.add_argument("--report", default=None, help="PNG: a sheet of the first output records drawn")
    if mano:
        p.add_argument("--mano-dir", default=None, help="MANO folder for records of hand model mano")
    p.add_argument("--overwrite", action="store_true", help=_OVERWRITE)


def _view_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-deg",
        type=cli_args.float_in(0.0, 180.0, what="an angle in degrees"),
        default=30.0,
        help="largest rotation per axis (degrees)",
    )
    p.add_argument(
        "--mode",
        choices=("symmetric", "released"),
        default="symmetric",
        help="symmetric: U(-max, max) per axis; released: U[0, max) as the released code (shifts the mean view)",
    )
