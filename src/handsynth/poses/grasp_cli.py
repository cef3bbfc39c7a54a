"""``handsynth poses grasp`` and ``handsynth poses validate`` (issue 12 §5): grasp synthesis on the
world's or a folder's objects resting on a table, and the physical-plausibility filter."""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from handsynth import cli_args
from handsynth.data.records import Hand, Sample
from handsynth.errors import UserError
from handsynth.poses.io import _check_report
from handsynth.runtime import add_threads_argument, configure_threads, torch_device

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
GENERATOR = "handsynth poses grasp"


def _rest_poses(path: str | None, objects: list[tuple[str, str]]) -> dict[str, list[Sample]]:
    """Rest records per object name (``poses rest`` output); without ``--rest`` one free-floating pose
    per object in front of the table camera (no support plane)."""
    from handsynth.poses.rest import table_camera

    if path is None:
        K, R_ct, t_ct = table_camera()
        return {
            name: [
                Sample(
                    id=f"{name}-free", width=256, height=256, K=K.tolist(), hands=[], source={},
                    extra={"objects": [{"name": name, "mesh": ref, "pose": np.c_[R_ct, t_ct].tolist()}]},
                )
            ]
            for name, ref in objects
        }  # fmt: skip
    from handsynth.data.folder import metadata_path
    from handsynth.poses.io import _read

    if not metadata_path(path).exists():
        raise UserError(
            f"--rest {path} does not exist; make it with `handsynth poses rest --objects ... --out`"
        )
    by_name: dict[str, list[Sample]] = {}
    for s in _read(path, "--rest"):
        for o in s.extra.get("objects") or []:
            by_name.setdefault(o["name"], []).append(s)
    missing = [name for name, _ in objects if name not in by_name]
    if missing:
        raise UserError(
            f"--rest {path} has no rest pose of object {missing[0]!r}; run `handsynth poses rest` with the "
            "same --objects"
        )
    return by_name


def _pick_objects(spec: str, names: str | None) -> list[tuple[str, str]]:
    from handsynth.poses.rest import object_catalogue

    objects = object_catalogue(spec)
    if names:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        known = {name for name, _ in objects}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise UserError(
                f"--names: unknown object {unknown[0]!r} in --objects {spec}; known: {sorted(known)}"
            )
        objects = [o for o in objects if o[0] in wanted]
    return objects


def _hand_record(model, mean: torch.Tensor, x: torch.Tensor, problem, K: np.ndarray) -> Hand:
    import torch

    from handsynth.pinhole import bbox_from_points, project
    from handsynth.poses.grasp_energy import anatomical_to_axis_angle

    with torch.no_grad():
        out = problem.hand(x[None])
        pose = anatomical_to_axis_angle(x[None, 6:].view(1, 15, 3), problem.axes)[0]
    verts, joints = out.vertices[0].double().cpu().numpy(), out.joints[0].double().cpu().numpy()
    return Hand(
        side="right",
        model=model.kind,
        global_orient=x[3:6].tolist(),
        hand_pose=(pose - mean).tolist(),  # relative to the model's mean pose, as records are read
        betas=[0.0] * model.num_betas,
        transl=x[:3].tolist(),
        joints_3d=joints.tolist(),
        joints_2d=project(joints, K).tolist(),
        bbox=bbox_from_points(project(verts, K)),
    )


def _grasp(args: argparse.Namespace) -> int:
    import torch  # here, not at the top: ``handsynth --help`` must not pay for torch

    from handsynth.data.folder import DatasetWriter
    from handsynth.data.records import object_pose
    from handsynth.hand.model import load_hand_model
    from handsynth.objects.meshes import load_mesh, resolve_mesh
    from handsynth.poses.grasp import AnnealConfig, anneal, config_dict, initial_hands, object_sdf
    from handsynth.poses.grasp_energy import WEIGHTS, GraspProblem
    from handsynth.progress import progress

    torch_device(args.device)  # a GPU this machine lacks: one sentence
    configure_threads(args.threads, args.device)
    _check_report(args.report)
    objects = _pick_objects(args.objects, args.names)
    rests = _rest_poses(args.rest, objects)
    keys = {name: resolve_mesh(ref, None, f"object {name!r}") for name, ref in objects}
    model = load_hand_model(args.hand_model, model_dir=args.mano_dir, flat_hand_mean=True).to(args.device)
    mean = load_hand_model(args.hand_model, model_dir=args.mano_dir).hand_mean.to(args.device)
    cfg = AnnealConfig(iters=args.iters)
    weights = {**WEIGHTS, "dis": args.w_dis, "pen": args.w_pen, "prior": args.w_prior, "spen": args.w_spen}
    config = {
        "command": "poses grasp", "objects": [ref for _, ref in objects], "rest": args.rest,
        "n_per_object": args.n_per_object, "batch": args.batch, "seed": args.seed,
        "hand_model": args.hand_model, "weights": weights, "anneal": config_dict(cfg),
    }  # fmt: skip
    writer = DatasetWriter(Path(args.out), config=config, overwrite=args.overwrite, lock=True)
    n_batches = math.ceil(args.n_per_object / args.batch)
    total = len(objects) * n_batches * cfg.iters
    histories: list[tuple[str, list[float]]] = []  # mean energy per step of each batch run (--report)

    def batch_ids(name: str, b: int) -> list[str]:
        return [
            f"{name}-grasp{i:06d}"
            for i in range(b * args.batch, min(args.n_per_object, (b + 1) * args.batch))
        ]

    done = sum(
        all(writer.has(i) for i in batch_ids(name, b)) for name, _ in objects for b in range(n_batches)
    )
    # a resumed run counts on from the finished batches; its rate counts new work only
    with progress(total=total, initial=done * cfg.iters, desc="grasp", unit="iter") as bar:
        for k, (name, _ref) in enumerate(objects):
            mesh = load_mesh(keys[name], f"object {name!r}")
            for b in range(n_batches):
                ids = batch_ids(name, b)
                if all(writer.has(i) for i in ids):
                    continue
                rest = rests[name][b % len(rests[name])]
                obj = next(o for o in rest.extra["objects"] if o["name"] == name)
                R, t, scale = object_pose(obj)
                sdf = object_sdf(keys[name], scale).to(args.device)
                plane = rest.extra.get("support_plane")
                plane_obj = None
                if plane is not None:  # into the object frame: x_obj = Rᵀ (x − t)
                    n_o = R.T @ np.asarray(plane["normal"])
                    p_o = R.T @ (np.asarray(plane["point"]) - t)
                    plane_obj = (torch.tensor(n_o, dtype=torch.float32, device=args.device),
                                 torch.tensor(p_o, dtype=torch.float32, device=args.device))  # fmt: skip
                problem = GraspProblem(
                    model, sdf, torch.tensor(R, dtype=torch.float32, device=args.device),
                    torch.tensor(t, dtype=torch.float32, device=args.device), plane_obj, weights,
                )  # fmt: skip
                rng = np.random.default_rng([args.seed, k, b])
                gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
                x0 = initial_hands(
                    problem, np.asarray(mesh.vertices) * scale, np.asarray(mesh.faces), len(ids), rng, cfg
                )
                x, contacts, energy, terms, history = anneal(problem, x0, cfg, gen, on_step=bar.update)
                histories.append((name, history))
                K = np.asarray(rest.K, dtype=np.float64)
                for i, sid in enumerate(ids):
                    if writer.has(sid):
                        continue
                    info = {
                        "seed": args.seed, "object_index": k, "batch": b, "rest_id": rest.id,
                        "energy": float(energy[i]), "terms": {key: float(v[i]) for key, v in terms.items()},
                        "contacts": [problem.regions.names[int(problem.regions.region[c])] for c in contacts[i].cpu()],
                    }  # fmt: skip
                    writer.write(
                        Sample(
                            id=sid, width=rest.width, height=rest.height, K=K.tolist(),
                            hands=[_hand_record(model, mean, x[i], problem, K)],
                            source={"generator": GENERATOR, "seed": args.seed, "flat_hand_mean": False,
                                    "handbooster": {"grasp": info}},
                            extra={"objects": rest.extra["objects"], "grasping": True,
                                   **({"support_plane": plane} if plane is not None else {})},
                        )
                    )  # fmt: skip
                bar.set_postfix(E=f"{float(energy.mean()):.3g}")
    print(writer.meta)
    if args.report:
        from handsynth.data import read_dataset
        from handsynth.poses.report import grasp_report
        from handsynth.poses.rigid import HandPoser

        grasp_report(histories, read_dataset(args.out), HandPoser(args.mano_dir), Path(args.report))
    log.info("%d grasps of %d objects in %s", len(writer), len(objects), args.out)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from handsynth.data.folder import dataset_root
    from handsynth.data.records import object_pose
    from handsynth.objects.meshes import resolve_mesh
    from handsynth.poses.grasp import object_sdf
    from handsynth.poses.io import _read, _with_source, _write
    from handsynth.poses.rigid import HandPoser
    from handsynth.poses.self_penetration import require_fcl
    from handsynth.poses.validate import ValidationRule, validate_hand
    from handsynth.progress import progress

    if args.exact:
        require_fcl()
    _check_report(args.report)
    rule = ValidationRule(
        args.contact_mm, args.min_contacts, args.max_intersection_cm3, args.voxel_mm, args.exact,
        args.exact_tolerance_mm,
    )  # fmt: skip
    samples = _read(args.input, "--in")
    root = dataset_root(args.input)
    for s in samples:  # every error before any output
        if not s.hands or not s.extra.get("objects"):
            raise UserError(
                f"--in {args.input}: record {s.id} has no hand or no object; validate takes grasps"
            )
        o = s.extra["objects"][0]
        resolve_mesh(o.get("mesh"), root, f"record {s.id}, object {o['name']!r}")
    poser = HandPoser(args.mano_dir)
    kept, counts = [], {"contact": 0, "intersection": 0, "self_penetration": 0, "all": 0}
    shown: list[tuple[Sample, bool, str]] = []  # a few kept and rejected grasps for --report
    for s in progress(samples, desc="validate", unit="grasp"):
        hand = s.hands[0]
        model = poser.model(hand.model, hand.side)
        if s.source.get("flat_hand_mean"):  # absolute hand_pose: make it relative to the mean
            hand = Hand(
                **{
                    **hand.__dict__,
                    "hand_pose": (np.asarray(hand.hand_pose) - model.hand_mean.numpy()).tolist(),
                }
            )
        verts, joints = poser.pose(hand)
        obj = s.extra["objects"][0]
        R, t, scale = object_pose(obj)
        sdf = object_sdf(resolve_mesh(obj["mesh"], root, s.id), scale)
        verdict = validate_hand(model, (verts - t) @ R, (joints - t) @ R, sdf, rule)
        counts["contact"] += verdict.contact_ok
        counts["intersection"] += verdict.volume_ok
        counts["self_penetration"] += not verdict.self_collision
        counts["all"] += verdict.valid
        if verdict.valid:
            kept.append(_with_source(s, {"validate": verdict.to_dict()}))
        failed = [name for name, ok in (("contact", verdict.contact_ok), ("intersection", verdict.volume_ok),
                                        ("self-penetration", not verdict.self_collision)) if not ok]  # fmt: skip
        if sum(v[1] == verdict.valid for v in shown) < 4:
            shown.append((s, verdict.valid, "kept" if verdict.valid else "fails " + ", ".join(failed)))
    config = {"command": "poses validate", **rule.__dict__}
    _write(args.out, config, args.overwrite, kept, root, "validate")
    n = len(samples)
    rates = {k: v / n for k, v in counts.items()}
    (Path(args.out) / "validation.json").write_text(
        json.dumps({"n": n, "pass_rate": rates, **config}, indent=2)
    )
    print("pass rate: " + ", ".join(f"{k} {100 * r:.1f}%" for k, r in rates.items()) + f" (of {n})")
    if args.report:
        from handsynth.poses.report import validate_report

        validate_report(rates, shown, n, poser, Path(args.report))
    return 0


def register_grasp(actions: argparse._SubParsersAction) -> None:
    """Add ``grasp`` and ``validate`` to the ``poses`` ACTION sub-parsers."""
    g = actions.add_parser(
        "grasp", help="synthesise grasps of objects resting on a table (energy + annealing)"
    )
    g.add_argument(
        "--objects", required=True, help="folder of meshes (NAME/textured_simple.obj or NAME.obj) or 'world'"
    )
    g.add_argument("--names", default=None, help="comma-separated object names to grasp (default: all)")
    g.add_argument(
        "--rest", default=None, help="rest poses from `handsynth poses rest` (default: free-floating objects)"
    )
    g.add_argument("--n-per-object", type=cli_args.positive_int, default=10000, help="grasps per object")
    g.add_argument("--hand-model", choices=("openhand", "mano"), default="openhand", help="hand model")
    g.add_argument("--mano-dir", default=None, help="MANO folder (with --hand-model mano)")
    g.add_argument("--out", required=True, help="output dataset folder")
    g.add_argument("--batch", type=cli_args.positive_int, default=64, help="hands optimised together")
    g.add_argument(
        "--iters", type=cli_args.positive_int, default=6000, help="annealing steps (released: 6000)"
    )
    g.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to optimise")
    add_threads_argument(g)
    g.add_argument(
        "--w-dis", type=cli_args.non_negative, default=100.0, help="weight of E_dis (released 100)"
    )
    g.add_argument(
        "--w-pen", type=cli_args.non_negative, default=100.0, help="weight of E_pen (released 100)"
    )
    g.add_argument(
        "--w-prior", type=cli_args.non_negative, default=0.5, help="weight of E_prior (released 0.5)"
    )
    g.add_argument(
        "--w-spen", type=cli_args.non_negative, default=10.0, help="weight of E_spen (released 10)"
    )
    g.add_argument(
        "--seed", type=cli_args.seed, default=0, help="random seed (starts, contact draws, acceptance)"
    )
    g.add_argument("--report", default=None, help="PNG: energy curves and a sheet of the first grasps")
    g.add_argument(
        "--overwrite", action="store_true", help="restart an output folder written with other settings"
    )
    g.set_defaults(func=_grasp)

    v = actions.add_parser(
        "validate", help="keep grasps with contact, little hand-object overlap, no self-penetration"
    )
    v.add_argument("--in", dest="input", required=True, help="dataset folder or .jsonl of grasps")
    v.add_argument("--out", required=True, help="output dataset folder (valid grasps + validation.json)")
    v.add_argument(
        "--contact-mm",
        type=cli_args.non_negative,
        default=5.0,
        help="a pad this close to the surface touches it",
    )
    v.add_argument(
        "--min-contacts",
        type=cli_args.positive_int,
        default=2,
        help="digits in contact, the thumb among them",
    )
    v.add_argument(
        "--max-intersection-cm3",
        type=cli_args.non_negative,
        default=1.0,
        help="largest hand-object overlap (cm³)",
    )
    v.add_argument(
        "--voxel-mm", type=cli_args.positive, default=2.0, help="voxel size of the overlap volume (mm)"
    )
    v.add_argument(
        "--exact",
        action="store_true",
        help="self-penetration by the mesh triangle test (needs python-fcl), not bone capsules",
    )
    v.add_argument(
        "--exact-tolerance-mm",
        type=cli_args.non_negative,
        default=1.5,
        help="with --exact: each surface is moved in by this much first (digits may press in twice it)",
    )
    v.add_argument("--mano-dir", default=None, help="MANO folder for records of hand model mano")
    v.add_argument("--report", default=None, help="PNG: pass rate per criterion, kept and rejected grasps")
    v.add_argument(
        "--overwrite", action="store_true", help="restart an output folder written with other settings"
    )
    v.set_defaults(func=_validate)
