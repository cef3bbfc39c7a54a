"""``handsynth evaluate images|recon`` and ``handsynth study serve|report``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import shlex
import sys
from pathlib import Path

from handsynth import cli_args
from handsynth.data.folder import refuse_dataset_as_output
from handsynth.errors import UserError
from handsynth.runtime import add_threads_argument

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    ev = subparsers.add_parser(
        "evaluate", help="image metrics (Table 1) and reconstruction metrics (Table 2)"
    )
    evs = ev.add_subparsers(dest="evaluate_command", metavar="WHAT", required=True)

    im = evs.add_parser("images", help="FID/KID (+hand crops), Hand Conf., MSE-2D, MSE-3D, CLIP score")
    im.add_argument("--real", required=True, help="real dataset folder (metadata.jsonl + images)")
    im.add_argument(
        "--fake", required=True, nargs="+", help="generated dataset folder(s), one Table 1 row each"
    )
    im.add_argument("--names", nargs="+", help="row names for --fake (default: folder names)")
    im.add_argument("--out", required=True, help="report folder (metrics.json, report.md, PNGs)")
    im.add_argument(
        "--inception-weights", help="pytorch-fid/torch-fidelity pt_inception .pth or clean-fid .pt"
    )
    im.add_argument(
        "--extractor",
        help="'inception' (default; FID/KID are skipped without --inception-weights), 'world' (the micro "
        "world's extractor shipped with the default model: offline numbers) or import:package.module:factory",
    )
    im.add_argument("--no-fid", action="store_true", help="skip FID/KID/FID-H/KID-H")
    im.add_argument(
        "--detector",
        default="auto",
        help="2D hand detector: auto (MediaPipe if installed), mediapipe, world (the micro world's, shipped), "
        "none, import:mod:fn",
    )
    im.add_argument("--estimator", help="3D estimator: a handsynth recon checkpoint or import:mod:fn")
    im.add_argument("--clip", help="local transformers CLIP folder for the CLIP score")
    im.add_argument(
        "--crop-scale", type=cli_args.positive, default=1.5, help="hand crop side = scale x max(bbox w, h)"
    )
    im.add_argument("--batch-size", type=cli_args.positive_int, default=16)
    im.add_argument("--kid-subsets", type=cli_args.positive_int, default=100)
    im.add_argument("--kid-subset-size", type=cli_args.positive_int, default=1000)
    im.add_argument("--limit", type=cli_args.positive_int, help="use the first N records of each folder")
    im.add_argument(
        "--score-real", action="store_true", help="also run detector/estimator/CLIP on the real set"
    )
    im.add_argument("--device", default="cpu")
    add_threads_argument(im)
    im.set_defaults(func=cmd_images)

    rc = evs.add_parser("recon", help="MPJPE, PA-MPJPE, MPVPE, PA-MPVPE, AUC, F@5/15, MRRPE, RRVE")
    rc.add_argument(
        "--pred", required=True, help="FreiHAND pred.json ([xyz, verts]) or a dataset folder / .jsonl"
    )
    rc.add_argument("--gt", required=True, help="same layouts as --pred")
    rc.add_argument("--out", required=True, help="report folder")
    rc.add_argument("--name", default="pred", help="row name in the report")
    rc.add_argument(
        "--layout",
        choices=["table2", "handbooster"],
        default="table2",
        help="report columns: table2 (AttentionHand) or handbooster (12 columns: PA, then root-relative "
        "J-PE, J-AUC, V-PE, V-AUC, F@5, F@15)",
    )
    rc.add_argument("--mano-dir", help="folder with MANO_RIGHT/LEFT.pkl, for vertices of MANO records")
    rc.add_argument(
        "--no-record-vertices", action="store_true", help="do not compute vertices of record hands"
    )
    rc.set_defaults(func=cmd_recon)

    st = subparsers.add_parser("study", help="user-preference study: local web page + SQLite answers")
    sts = st.add_subparsers(dest="study_command", metavar="WHAT", required=True)
    sv = sts.add_parser("serve", help="serve the study page")
    sv.add_argument("--dirs", required=True, nargs="+", help="method folders holding the same record ids")
    sv.add_argument("--names", nargs="+", help="method names (default: folder names)")
    sv.add_argument("--db", default="study.sqlite", help="SQLite file for answers")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=cli_args.port, default=8000)
    sv.add_argument(
        "--seed", type=cli_args.seed, default=0, help="seed of the per-participant candidate order"
    )
    sv.add_argument("--limit", type=cli_args.positive_int, help="at most N trials (the paper used 24)")
    sv.add_argument(
        "--title", default=None, help="page title (default: the config's, else 'Hand image study')"
    )
    sv.add_argument(
        "--config",
        default=None,
        help="study config YAML: title + questions (default: AttentionHand's three; configs/study_sesahand.yaml)",
    )
    sv.set_defaults(func=cmd_study_serve)
    sr = sts.add_parser("report", help="preference percentages per method and question")
    sr.add_argument("--db", default="study.sqlite")
    sr.add_argument("--out", help="folder for study_report.json / study_report.md")
    sr.set_defaults(func=cmd_study_report)


def _command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["handsynth", *sys.argv[1:]])


def _factory(spec: str, flag: str):
    mod_name, _, attr = spec[len("import:") :].partition(":")
    if not mod_name or not attr:
        raise UserError(f"{flag} {spec}: write it as import:package.module:factory")
    try:
        return getattr(importlib.import_module(mod_name), attr)()
    except (ImportError, AttributeError) as err:
        raise UserError(f"{flag} {spec}: cannot import it ({err})") from err


def _detector(spec: str, device: str = "cpu"):
    if spec == "none":
        return None
    if spec == "world":
        from handsynth.diffusion.embedded import world_tool
        from handsynth.micro.detector import WorldHandDetector

        return WorldHandDetector.load(world_tool("detector"), device)
    if spec.startswith("import:"):
        det = _factory(spec, "--detector")
        if not hasattr(det, "detect"):
            raise UserError(f"--detector {spec}: the object has no detect(image) method")
        return det
    if spec == "auto" and importlib.util.find_spec("mediapipe") is None:
        return None
    if spec in ("auto", "mediapipe"):
        from handsynth.eval.mediapipe_detector import MediaPipeHandDetector

        return MediaPipeHandDetector()
    raise UserError(f"--detector {spec}: use auto, mediapipe, world, none or import:package.module:factory")


def cmd_images(args: argparse.Namespace) -> int:
    from handsynth.eval.features import load_extractor
    from handsynth.eval.image_eval import ImageTools, evaluate_images
    from handsynth.eval.report import write_image_report
    from handsynth.runtime import configure_threads, torch_device

    args.device = torch_device(args.device)
    refuse_dataset_as_output(args.out, "report")
    configure_threads(args.threads, args.device, small_model=args.extractor == "world")
    if args.crop_scale < 1.0:
        raise UserError(
            f"--crop-scale {args.crop_scale}: must be at least 1.0 so the crop holds the whole bbox"
        )
    tools = ImageTools(
        crop_scale=args.crop_scale,
        batch_size=args.batch_size,
        kid_subsets=args.kid_subsets,
        kid_subset_size=args.kid_subset_size,
    )
    if args.no_fid:
        pass
    elif args.extractor is None and not args.inception_weights:
        # docs/eval.md: a metric whose tool is absent is skipped (the report's Notes say so).
        print(
            "handsynth: note: FID/KID skipped: no --inception-weights; --extractor world gives offline "
            "numbers with the micro world's feature extractor",
            file=sys.stderr,
        )
    elif args.extractor == "world":
        from handsynth.diffusion.embedded import world_tool
        from handsynth.micro.features import WorldFeatureExtractor

        tools.extractor = WorldFeatureExtractor.load(world_tool("features"), args.device)
    else:
        tools.extractor = load_extractor(args.extractor, args.inception_weights, args.device)
    tools.detector = _detector(args.detector, args.device)
    if args.estimator:
        from handsynth.eval.estimator3d import load_estimator

        tools.estimator = load_estimator(args.estimator, args.device)
    if args.clip:
        from handsynth.eval.clip_score import ClipScorer

        tools.clip = ClipScorer(args.clip, args.device)
    if all(t is None for t in (tools.extractor, tools.detector, tools.estimator, tools.clip)):
        raise UserError(
            "nothing to compute: no feature extractor (--inception-weights FILE, or --extractor world), no "
            "2D detector (--detector world, or the [mediapipe] extra), no --estimator and no --clip"
        )
    result = evaluate_images(args.real, args.fake, tools, args.names, args.limit, args.score_real)
    out = Path(args.out)
    write_image_report(result, out, _command_line())
    for name, row in result.rows.items():
        shown = ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float))
        print(f"{name}: {shown}")
    print(f"report: {out / 'report.md'}")
    return 0


def cmd_recon(args: argparse.Namespace) -> int:
    from handsynth.eval.recon_eval import evaluate_recon, flat_metrics, layout_row
    from handsynth.eval.recon_io import pair_hands, read_hands
    from handsynth.eval.report import fmt, write_recon_report

    notes: list[str] = []
    verts = not args.no_record_vertices
    pairs = pair_hands(
        read_hands(args.pred, verts, args.mano_dir, notes), read_hands(args.gt, verts, args.mano_dir, notes)
    )
    result = evaluate_recon(pairs)
    result.extra["notes"] = list(dict.fromkeys(notes + result.extra["notes"]))
    out = Path(args.out)
    write_recon_report(result, pairs, out, _command_line(), args.name, layout=args.layout)
    row = layout_row(flat_metrics(result.summary, result.extra), args.layout)
    print("  ".join(f"{c}={fmt(c, v)}" for c, v in row.items()))
    print(f"report: {out / 'report.md'}")
    return 0


def cmd_study_serve(args: argparse.Namespace) -> int:
    from handsynth.eval.study.server import StudyApp, make_server
    from handsynth.eval.study.trials import StudyConfig, build_trials, load_study_config

    study = load_study_config(args.config) if args.config else StudyConfig()
    trials = build_trials(args.dirs, args.names, args.limit)
    app = StudyApp(
        trials, args.db, seed=args.seed, title=args.title or study.title, questions=study.questions
    )
    try:
        server = make_server(app, args.host, args.port)
    except OSError as err:
        raise UserError(
            f"--port {args.port}: cannot listen on {args.host}:{args.port} ({err}); pick another port"
        ) from err
    print(
        f"{len(trials)} trials, answers in {args.db}; open http://{args.host}:{server.server_address[1]}/ (Ctrl-C stops)"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_study_report(args: argparse.Namespace) -> int:
    from handsynth.eval.report import atomic_write, md_table, write_json
    from handsynth.eval.study.store import preference

    if not Path(args.db).is_file():
        raise UserError(f"--db {args.db}: no such file; pass the SQLite file that 'study serve' wrote")
    rep = preference(args.db)
    questions = list(rep["percent"])
    methods = list(rep["average"])
    header = ["Method", *questions, "average"]
    rows = [
        [m, *(f"{rep['percent'][q][m]:.1f}" for q in questions), f"{rep['average'][m]:.1f}"] for m in methods
    ]
    table = md_table(header, rows)
    text = f"# User preference (%)\n\nParticipants: {rep['participants']}\n\n{table}\n"
    print(text)
    if args.out:
        out = Path(args.out)
        write_json(out / "study_report.json", rep)
        atomic_write(out / "study_report.md", text.encode())
    return 0
