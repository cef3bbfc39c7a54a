"""`poses grasp` / `poses validate`: the object SDF, the grasp energy and its annealing, the validation
criteria, resumable output and input errors (tiny batches, few steps)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from handsynth.cli import main
from handsynth.data import read_dataset
from handsynth.hand.model import load_hand_model
from handsynth.hand.poses import anatomical_to_pose, joint_axes
from handsynth.poses.grasp import AnnealConfig, anneal, initial_hands, object_sdf
from handsynth.poses.grasp_energy import (
    GraspProblem,
    anatomical_to_axis_angle,
    contact_regions,
    pregrasp_angles,
)
from handsynth.poses.rigid import HandPoser
from handsynth.poses.sdf import mesh_sdf_grid
from handsynth.poses.validate import ValidationRule, closed_faces, validate_hand


@pytest.fixture(scope="module")
def hand():
    return load_hand_model("openhand", flat_hand_mean=True)


def _pregrasp_x(t=(0.0, 0.0, 0.0)) -> torch.Tensor:
    x = torch.zeros(1, 51)
    x[0, :3] = torch.tensor(t)
    x[0, 6:] = torch.tensor(np.radians(pregrasp_angles()), dtype=torch.float32).ravel()
    return x


def test_sdf_grid_matches_the_analytic_sphere_distance():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.04)
    grid = mesh_sdf_grid(sphere.vertices, sphere.faces, resolution=32)
    p = (torch.rand(3000, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 0.06
    d, g = grid.query(p)
    exact = p.norm(dim=1) - 0.04
    assert (d - exact).abs().max() < 1.5e-3  # mesh facets (< 0.6 mm) + trilinear interpolation
    assert ((d < 0) == (exact < 0))[exact.abs() > 2e-3].all()
    radial = p / p.norm(dim=1, keepdim=True)
    cos = (g / g.norm(dim=1, keepdim=True) * radial).sum(1)
    assert cos[p.norm(dim=1) > 0.01].min() > 0.95  # the gradient is the outward normal
    far = torch.tensor([[0.5, 0.0, 0.0]])  # outside the grid: still the distance (upper bound)
    assert abs(float(grid.query(far)[0]) - 0.46) < 0.03


def test_sdf_of_overlapping_parts_is_their_union():
    """The world's cup is a body and a handle that overlap: inside the overlap is inside, not outside."""
    from handsynth.objects.shapes import canonical_shape

    v, f, _ = canonical_shape("cup")
    grid = object_sdf("world:cup")
    assert object_sdf("world:cup#ff8800") is grid  # a colour does not change the shape
    centre = torch.tensor([[0.0, 0.0, 0.0]])  # 3.7 cm inside the body (a handle face hides 4 mm away)
    assert float(grid.query(centre)[0]) < -0.03
    pts = np.random.default_rng(1).uniform(v.min(0), v.max(0), (400, 3))
    r, h = 0.037, 0.0925  # the middle of the cup's size ranges; handle: torus of radius 0.3 h at (r, 0, 0)
    x, y, z = pts.T
    in_body = (np.hypot(x, y) < r) & (np.abs(z) < h / 2)
    in_handle = np.hypot(np.hypot(x - r, z) - 0.3 * h, y) < 0.22 * 0.3 * h
    truth = in_body | in_handle
    d = grid.query(torch.as_tensor(pts, dtype=torch.float32))[0].numpy()
    clear = np.abs(d) > 2e-3
    assert (np.sign(d[clear]) == np.where(truth, -1, 1)[clear]).mean() > 0.97


def test_anatomical_angles_give_the_numpy_pose():
    a = np.random.default_rng(0).uniform(-40, 70, (3, 15, 3))
    ours = anatomical_to_axis_angle(
        torch.tensor(np.radians(a), dtype=torch.float32), torch.tensor(joint_axes()).float()
    )
    assert np.abs(ours.numpy() - anatomical_to_pose(a)).max() < 1e-5


def _mano_standin(tmp_path: Path) -> Path:
    path = Path(__file__).parents[1] / "data" / "fixtures" / "mano_standin.py"
    spec = importlib.util.spec_from_file_location("mano_standin_for_grasp", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_standin_mano(tmp_path / "mano")


@pytest.mark.parametrize("kind", ["openhand", "mano"])
def test_contact_pads_sit_on_the_palm_side_of_each_digit(kind, tmp_path):
    model = load_hand_model(kind, model_dir=_mano_standin(tmp_path) if kind == "mano" else None)
    regions = contact_regions(model)
    assert len(regions.names) == 10 and regions.names[1] == "thumb_distal"
    assert torch.bincount(regions.region).min() >= 3
    # Flexing a finger moves its pads towards the palm: they face the way the finger curls.
    owner = model.lbs_weights.argmax(1)[regions.vertices]
    assert len(set(owner.tolist())) == 10  # every pad region on its own segment
    closed = closed_faces(model.faces)
    mesh = trimesh.Trimesh(model.v_template.numpy(), closed, process=False)
    assert mesh.is_watertight and mesh.volume > 0  # the wrist opening (MANO) is capped, outward


@pytest.mark.parametrize("shape", ["box", "ball"])
def test_annealing_lowers_the_energy(hand, shape):
    from handsynth.objects.shapes import canonical_shape

    v, f, _ = canonical_shape(shape)
    problem = GraspProblem(
        hand, object_sdf(f"world:{shape}"), torch.eye(3), torch.tensor([0.0, 0.0, 0.5]), None
    )
    cfg = AnnealConfig(iters=60)
    x0 = initial_hands(problem, v, f, 6, np.random.default_rng(0), cfg)
    x, contacts, energy, terms, history = anneal(problem, x0, cfg, torch.Generator().manual_seed(0))
    assert history[-1] < 0.7 * history[0]
    start_dis = problem.energy(x0, contacts)[1]["dis"]
    assert terms["dis"].mean() < start_dis.mean()  # the contact points came closer to the surface


def _box_folder(tmp_path: Path, extents=(0.2, 0.2, 0.2)) -> Path:
    folder = tmp_path / "objects"
    folder.mkdir(exist_ok=True)
    trimesh.creation.box(extents=extents).export(folder / "crate.obj")
    return folder


class _BowlProblem:
    """A quadratic energy (plus a small term per contact index) standing in for a grasp problem."""

    def __init__(self) -> None:
        self.regions = type("R", (), {"vertices": torch.arange(12)})()
        self.w = torch.tensor([1.0, 4.0, 0.5, 2.0, 9.0])

    def energy(self, x, contacts):
        return (self.w * x**2).sum(1) + 0.01 * contacts.float().sum(1), {}


def _dexgraspnet_annealing(problem, x, cfg, seed):
    """DexGraspNet's Annealing (try_step / accept_step) written out on its own: RMSProp average
    mu * g^2 + (1 - mu) * ema, step size decayed by the steps taken BEFORE this one, temperature by
    the steps taken including it; draws in the order anneal() makes them."""
    g = torch.Generator().manual_seed(seed)
    B, C = x.shape[0], len(problem.regions.vertices)

    def energy_grad(x_, c_):
        x_ = x_.detach().requires_grad_(True)
        e = problem.energy(x_, c_)[0]
        return e.detach(), torch.autograd.grad(e.sum(), x_)[0]

    contacts = torch.randint(0, C, (B, cfg.n_contacts), generator=g)
    e, grad = energy_grad(x, contacts)
    ema = torch.zeros(x.shape[1])
    for taken in range(cfg.iters):  # DexGraspNet's self.step before try_step
        step = cfg.step_size * cfg.step_decay ** (taken // cfg.step_period)
        ema = cfg.mu * (grad**2).mean(0) + (1 - cfg.mu) * ema
        x_new = x - step * grad / (ema.sqrt() + 1e-6)
        switch = torch.rand(B, cfg.n_contacts, generator=g) < cfg.switch_p
        c_new = torch.where(switch, torch.randint(0, C, (B, cfg.n_contacts), generator=g), contacts)
        e_new, g_new = energy_grad(x_new, c_new)
        temperature = cfg.t0 * cfg.t_decay ** ((taken + 1) // cfg.t_period)
        accept = torch.rand(B, generator=g) < torch.exp((e - e_new) / temperature)
        x = torch.where(accept[:, None], x_new, x)
        contacts = torch.where(accept[:, None], c_new, contacts)
        e = torch.where(accept, e_new, e)
        grad = torch.where(accept[:, None], g_new, grad)
    return x, contacts


def test_annealing_is_dexgraspnets_rmsprop_and_schedules():
    """mu = 0.98 weighs the new squared gradient (DexGraspNet: "1 - decay rate"): the first proposal moves
    each coordinate by step / sqrt(0.98) (one hand), not the 7x longer step / sqrt(0.02) of the
    textbook reading; 120 steps (both decays) follow the released algorithm."""
    problem = _BowlProblem()
    x0 = torch.tensor([[0.3, -0.2, 0.5, 0.1, -0.4]])
    cfg = AnnealConfig(iters=1)
    x1 = anneal(problem, x0, cfg, torch.Generator().manual_seed(0))[0]
    expected = x0 - 0.005 / np.sqrt(0.98) * torch.sign(x0)  # energy falls: accepted for sure
    torch.testing.assert_close(x1, expected, atol=1e-6, rtol=0)

    x0 = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    cfg = AnnealConfig(iters=120)
    x, contacts, *_ = anneal(problem, x0, cfg, torch.Generator().manual_seed(4))
    x_ref, contacts_ref = _dexgraspnet_annealing(problem, x0, cfg, 4)
    torch.testing.assert_close(x, x_ref, atol=1e-6, rtol=0)
    assert torch.equal(contacts, contacts_ref)


def test_hand_inside_the_object_has_large_penetration_and_fails_validation(hand, tmp_path):
    crate = trimesh.creation.box(extents=(0.2, 0.2, 0.2))
    grid = mesh_sdf_grid(crate.vertices, crate.faces, resolution=24)
    problem = GraspProblem(hand, grid, torch.eye(3), torch.zeros(3), None)
    contacts = torch.zeros(1, 4, dtype=torch.long)
    inside = problem.energy(_pregrasp_x((0.0, 0.0, 0.0)), contacts)[1]["pen"]
    outside = problem.energy(_pregrasp_x((0.0, 0.0, 0.3)), contacts)[1]["pen"]
    assert float(outside) == 0 and float(inside) > 10.0  # 1.5k vertices, centimetres deep
    out = problem.hand(_pregrasp_x())
    verdict = validate_hand(
        hand, out.vertices[0].double().numpy(), out.joints[0].double().numpy(), grid, ValidationRule()
    )
    assert not verdict.volume_ok and verdict.volume_cm3 > 1.0  # counting stops past the limit
    # The same through the command: a record with the hand inside the crate is not kept.
    rec = _record(
        hand,
        _pregrasp_x(),
        {
            "name": "crate",
            "mesh": str(_box_folder(tmp_path) / "crate.obj"),
            "pose": np.c_[np.eye(3), np.zeros(3)].tolist(),
        },
    )
    (tmp_path / "in.jsonl").write_text(json.dumps(rec) + "\n")
    assert main(["poses", "validate", "--in", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "v")]) == 0
    report = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert report["pass_rate"]["intersection"] == 0 and report["pass_rate"]["all"] == 0


def _record(hand, x: torch.Tensor, obj: dict) -> dict:
    """A record of the flat-mean hand of parameters x, written with the mean-relative hand_pose."""
    from handsynth.pinhole import bbox_from_points, project

    mean = load_hand_model("openhand").hand_mean
    pose = anatomical_to_axis_angle(x[:, 6:].view(1, 15, 3), torch.tensor(joint_axes()).float())[0]
    out = hand(global_orient=x[:, 3:6], hand_pose=pose[None], transl=x[:, :3])
    K = np.array([[300.0, 0, 128], [0, 300.0, 128], [0, 0, 1]])
    j = out.joints[0].detach().double().numpy() + [0, 0, 0.5]  # labels only: the camera looks at it
    return {
        "id": "g0", "width": 256, "height": 256, "camera": {"K": K.tolist()},
        "hands": [{
            "side": "right", "model": "openhand", "global_orient": x[0, 3:6].tolist(),
            "hand_pose": (pose - mean).tolist(), "betas": [0.0] * 10, "transl": x[0, :3].tolist(),
            "joints_3d": j.tolist(), "joints_2d": project(j, K).tolist(),
            "bbox": bbox_from_points(project(j, K)),
        }],
        "objects": [obj], "source": {"generator": "test"},
    }  # fmt: skip


def test_thumb_and_index_pinching_a_card_pass_validation(hand):
    """The pinch pose (thumb and index tips 12 mm apart) holding an 8 mm card between the tips."""
    from handsynth.hand.poses import canonical_pose
    from handsynth.poses.grasp import rotation_between

    out = hand(hand_pose=torch.tensor(canonical_pose("pinch"), dtype=torch.float32)[None])
    verts, joints = out.vertices[0].double().numpy(), out.joints[0].double().numpy()
    normal = (joints[8] - joints[4]) / np.linalg.norm(joints[8] - joints[4])  # thumb tip -> index tip
    centre = (joints[4] + joints[8]) / 2
    R = rotation_between(np.array([0.0, 0.0, 1.0]), normal)  # card frame -> hand frame
    card = trimesh.creation.box(extents=(0.03, 0.03, 0.008))
    grid = mesh_sdf_grid(card.vertices, card.faces, resolution=32, padding=0.1)
    verdict = validate_hand(hand, (verts - centre) @ R, (joints - centre) @ R, grid, ValidationRule())
    assert verdict.contact_digits == ["thumb", "index"] and verdict.contact_ok
    assert verdict.valid and verdict.volume_cm3 < 0.5
    away = centre + 0.04 * np.cross(normal, [1.0, 0.0, 0.0])  # the card slid 4 cm out of the fingers
    moved = validate_hand(hand, (verts - away) @ R, (joints - away) @ R, grid, ValidationRule())
    assert not moved.contact_ok


def test_grasp_command_resumes_with_identical_records(tmp_path):
    rest = tmp_path / "rest"
    assert main(["poses", "rest", "--objects", "world", "--n", "1", "--out", str(rest)]) == 0
    out = tmp_path / "grasps"
    cmd = ["poses", "grasp", "--objects", "world", "--names", "box", "--rest", str(rest),
           "--n-per-object", "3", "--batch", "2", "--iters", "4", "--out", str(out)]  # fmt: skip
    assert main(cmd) == 0
    first = read_dataset(out)
    assert [s.id for s in first] == ["box-grasp000000", "box-grasp000001", "box-grasp000002"]
    s = first[0]
    assert s.extra["grasping"] and s.extra["objects"][0]["name"] == "box" and "support_plane" in s.extra
    assert s.source["seed"] == 0 and s.source["flat_hand_mean"] is False
    assert len(s.source["handbooster"]["grasp"]["contacts"]) == 4
    # Labels are those of the record's parameters read the usual way (hand_pose relative to the mean).
    _, joints = HandPoser().pose(s.hands[0])
    assert np.abs(joints - np.asarray(s.hands[0].joints_3d)).max() < 1e-5
    meta = out / "metadata.jsonl"
    lines = meta.read_text().splitlines(keepends=True)
    meta.write_text("".join(lines[:2]))  # interrupted before the last record
    assert main(cmd) == 0
    assert meta.read_text().splitlines(keepends=True) == lines  # the same record again
    assert main(cmd[:-2] + ["--seed", "1", "--out", str(out)]) == 2  # other settings are refused
    assert main(["poses", "validate", "--in", str(out), "--out", str(tmp_path / "valid")]) == 0
    report = json.loads((tmp_path / "valid" / "validation.json").read_text())
    assert report["n"] == 3 and set(report["pass_rate"]) == {
        "contact",
        "intersection",
        "self_penetration",
        "all",
    }
    kept = read_dataset(tmp_path / "valid") if (tmp_path / "valid" / "metadata.jsonl").exists() else []
    assert len(kept) == round(3 * report["pass_rate"]["all"])


def test_grasp_with_a_mano_shaped_model_writes_consistent_labels(tmp_path):
    """MANO's non-zero mean pose: the record's hand_pose is relative to it, and its labels match."""
    mano = _mano_standin(tmp_path)
    out = tmp_path / "grasps"
    cmd = ["poses", "grasp", "--objects", "world", "--names", "ball", "--n-per-object", "2", "--batch", "2",
           "--iters", "3", "--hand-model", "mano", "--mano-dir", str(mano), "--out", str(out)]  # fmt: skip
    assert main(cmd) == 0
    for s in read_dataset(out):
        assert s.hands[0].model == "mano" and "support_plane" not in s.extra  # no --rest: no table
        _, joints = HandPoser(mano).pose(s.hands[0])
        assert np.abs(joints - np.asarray(s.hands[0].joints_3d)).max() < 1e-5


def test_bad_inputs_are_refused_before_any_output(tmp_path, capsys):
    out = tmp_path / "o"
    base = ["poses", "grasp", "--n-per-object", "1", "--iters", "1", "--out", str(out)]
    assert main(base + ["--objects", "world", "--names", "spoon"]) == 2
    assert "unknown object 'spoon'" in capsys.readouterr().err
    assert main(base + ["--objects", "world", "--rest", str(tmp_path / "none.jsonl")]) == 2
    assert "--rest" in capsys.readouterr().err
    assert main(base + ["--objects", str(tmp_path / "nowhere")]) == 2
    (tmp_path / "rest.jsonl").write_text("")
    assert main(["poses", "validate", "--in", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert not out.exists()


needs_fcl = pytest.mark.skipif(importlib.util.find_spec("fcl") is None, reason="python-fcl not installed")


def _posed(hand, angles_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and joints of the flat-mean hand at anatomical angles (15, 3) in degrees."""
    x = torch.zeros(1, 51)
    x[0, 6:] = torch.tensor(np.radians(angles_deg), dtype=torch.float32).ravel()
    out = hand(
        global_orient=x[:, 3:6],
        hand_pose=anatomical_to_axis_angle(x[:, 6:].view(1, 15, 3), torch.tensor(joint_axes()).float()),
    )
    return out.vertices[0].double().numpy(), out.joints[0].double().numpy()


def _index_turned(degrees: float) -> np.ndarray:
    a = np.zeros((15, 3))
    a[0] = (10.0, degrees, 0.0)  # index MCP: slight flexion, abduction (negative: towards the middle)
    return a


@needs_fcl
def test_exact_test_finds_crossing_fingers_and_not_a_flat_hand(hand):
    from handsynth.poses.self_penetration import penetrating_segments

    crossed, _ = _posed(hand, _index_turned(-40.0))  # index swung through the middle finger
    hits = penetrating_segments(hand, crossed)
    assert ("index_middle", "middle_middle") in hits and all(a.startswith("index") for a, _ in hits)
    flat, _ = _posed(hand, np.zeros((15, 3)))
    assert penetrating_segments(hand, flat, tolerance=0.0) == []  # not even touching skin


@needs_fcl
@pytest.mark.parametrize(
    ("angles", "expected"),
    [
        (np.zeros((15, 3)), False),  # open flat hand
        (_index_turned(-20.0), False),  # index leaning on the middle finger, not into it
        (_index_turned(-40.0), True),  # index through the middle finger
        (_index_turned(-50.0), True),
    ],
)
def test_exact_test_agrees_with_the_capsule_test_on_clear_cases(hand, angles, expected):
    from handsynth.hand.priors import digits_collide
    from handsynth.poses.self_penetration import penetrating_segments

    verts, joints = _posed(hand, angles)
    assert bool(penetrating_segments(hand, verts)) == expected
    assert digits_collide(joints) == expected


@needs_fcl
def test_validate_exact_is_stricter_than_capsules_on_a_grazing_cross(hand, tmp_path):
    """An index turned 30° into the middle finger: capsules overlap by less than they allow, the skin
    crosses by millimetres. Only --exact rejects it."""
    a = _index_turned(-30.0)
    x = torch.zeros(1, 51)
    x[0, 6:] = torch.tensor(np.radians(a), dtype=torch.float32).ravel()
    obj = {"name": "crate", "mesh": str(_box_folder(tmp_path) / "crate.obj"),
           "pose": np.c_[np.eye(3), [0.0, 0.0, 0.5]].tolist()}  # fmt: skip
    (tmp_path / "in.jsonl").write_text(json.dumps(_record(hand, x, obj)) + "\n")
    rates = {}
    for flag in ([], ["--exact"]):
        out = tmp_path / ("exact" if flag else "capsule")
        assert main(["poses", "validate", "--in", str(tmp_path / "in.jsonl"), "--out", str(out), *flag]) == 0
        rates[bool(flag)] = json.loads((out / "validation.json").read_text())
    assert rates[False]["pass_rate"]["self_penetration"] == 1.0
    assert rates[True]["pass_rate"]["self_penetration"] == 0.0 and rates[True]["exact"] is True


def test_exact_without_fcl_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "fcl", None)  # import fcl now fails as if it were not installed
    rec = tmp_path / "in.jsonl"
    rec.write_text("")
    out = tmp_path / "o"
    assert main(["poses", "validate", "--in", str(rec), "--out", str(out), "--exact"]) == 2
    err = capsys.readouterr().err
    assert "python-fcl" in err and "pip install 'handsynth[fcl]'" in err
    assert not out.exists()


def test_validate_cli_defaults_are_the_validation_rule_defaults():
    """The CLI keeps its own defaults (it imports poses.validate lazily): they must not drift apart."""
    from dataclasses import fields

    from handsynth.cli import build_parser
    from handsynth.poses.validate import ValidationRule

    args = build_parser().parse_args(["poses", "validate", "--in", "x", "--out", "y"])
    for f in fields(ValidationRule):
        assert getattr(args, f.name) == f.default, f.name
