"""Grasp synthesis (HandBooster's novel condition creator, after DexGraspNet): many hands at once are
put near an object resting on the table and moved by simulated annealing with gradient proposals on
the energy of :mod:`handsynth.poses.grasp_energy`.

Each step k = 1, 2, ... proposes x' = x − s·∇E/(√ema + 1e-6) with ema ← μ·mean_batch(∇E²) + (1 − μ)·ema
(DexGraspNet's RMSProp, where μ = 0.98 weighs the NEW squared gradient: "μ = 1 − decay rate"; read the
other way round the first steps would be up to 7x longer), s = step·decay^((k − 1) // step_period),
re-draws each contact point with probability ``switch_p``, and accepts per hand with probability
min(1, exp((E − E')/T)), T = T0·decay^(k // period), the released step counting. Hyper-parameters are
the released ones (:class:`AnnealConfig`). A batch depends only on the seed, the object's index and
the batch index, so interrupted runs resume with the same results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache

import numpy as np
import torch

from handsynth.poses.grasp_energy import GraspProblem, palm_frame, pregrasp_angles
from handsynth.poses.sdf import SDFGrid, mesh_sdf_grid, sample_surface


@dataclass(frozen=True)
class AnnealConfig:
    """Released hyper-parameters (DexGraspNet's annealing, kept by HandBooster)."""

    iters: int = 6000
    step_size: float = 0.005
    step_period: int = 50
    step_decay: float = 0.95
    mu: float = 0.98  # weight of the new squared gradient in the RMSProp average (released meaning)
    t0: float = 18.0
    t_decay: float = 0.95
    t_period: int = 30
    switch_p: float = 0.5
    n_contacts: int = 4
    init_distance: tuple[float, float] = (0.01, 0.03)  # palm start, metres off the surface
    init_jitter_deg: float = 5.0


def object_sdf(key: str, scale: float = 1.0, resolution: int = 48) -> SDFGrid:
    """The SDF grid of a resolved mesh reference at ``scale`` (computed once per process; a world
    shape's colour, ``world:<kind>#rrggbb``, does not change its shape)."""
    from handsynth.data.records import WORLD_MESH_PREFIX
    from handsynth.objects.meshes import split_world_mesh

    if key.startswith(WORLD_MESH_PREFIX):
        key = WORLD_MESH_PREFIX + split_world_mesh(key)[0]
    return _object_sdf(key, scale, resolution)


@cache
def _object_sdf(key: str, scale: float, resolution: int) -> SDFGrid:
    from handsynth.objects.meshes import load_mesh

    mesh = load_mesh(key, f"object mesh {key}")
    return mesh_sdf_grid(np.asarray(mesh.vertices) * scale, np.asarray(mesh.faces), resolution)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A rotation taking unit vector a to unit vector b."""
    from scipy.spatial.transform import Rotation

    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(a @ b)
    if s < 1e-9:
        if c > 0:
            return np.eye(3)
        ortho = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        return Rotation.from_rotvec(np.pi * ortho / np.linalg.norm(ortho)).as_matrix()
    return Rotation.from_rotvec(axis / s * np.arctan2(s, c)).as_matrix()


def initial_hands(
    problem: GraspProblem, mesh_vertices: np.ndarray, mesh_faces: np.ndarray, batch: int,
    rng: np.random.Generator, cfg: AnnealConfig,
) -> torch.Tensor:  # fmt: skip
    """(B, 51) start parameters: the palm faces a random surface point (not facing the table) from
    ``init_distance`` away, random roll, pre-grasp fingers with a little noise."""
    from scipy.spatial.transform import Rotation

    n = 64 * batch
    pts = sample_surface(mesh_vertices[mesh_faces], n, rng)
    with torch.no_grad():
        d, g = problem.sdf.query(torch.as_tensor(pts, dtype=torch.float32))
    d, g = d.numpy(), g.numpy().astype(np.float64)
    normals = g / np.linalg.norm(g, axis=1, keepdims=True).clip(1e-9)
    lo_d, hi_d = cfg.init_distance
    dist = rng.uniform(lo_d, hi_d, size=n)
    target = pts + normals * dist[:, None]
    ok = np.abs(d) < 0.003  # on the outer surface (not a face hidden inside another part)
    if problem.plane is not None:
        pn, pp = (t.double().numpy() for t in problem.plane)
        ok &= (normals @ pn > -0.3) & ((target - pp) @ pn > 0.03)
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        idx = np.arange(n)
    idx = rng.choice(idx, size=batch, replace=len(idx) < batch)
    centre, palm = palm_frame(problem.model)
    wrist = problem.model.rest_wrist()[0].double().numpy()
    R_o = problem.R_obj.double().numpy()
    t_o = problem.t_obj.double().numpy()
    x = np.zeros((batch, 51))
    lim_lo, lim_hi = problem.low.double().numpy(), problem.high.double().numpy()
    for b, i in enumerate(idx):
        n_s = normals[i]
        roll = Rotation.from_rotvec(n_s * rng.uniform(0, 2 * np.pi)).as_matrix()
        R_cam = R_o @ roll @ rotation_between(palm, -n_s)
        target_cam = R_o @ target[i] + t_o
        x[b, :3] = target_cam - R_cam @ (centre - wrist) - wrist
        x[b, 3:6] = Rotation.from_matrix(R_cam).as_rotvec()
        angles = np.radians(pregrasp_angles() + rng.normal(0, cfg.init_jitter_deg, (15, 3)))
        x[b, 6:] = np.clip(angles, lim_lo, lim_hi).ravel()
    return torch.as_tensor(x, dtype=torch.float32, device=problem.R_obj.device)


def anneal(
    problem: GraspProblem, x: torch.Tensor, cfg: AnnealConfig, generator: torch.Generator, on_step=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor], list[float]]:
    """Run the annealing from ``x`` (B, 51): ``(x, contacts, E, terms, mean E per step)``."""
    dev = x.device
    B = x.shape[0]
    C = len(problem.regions.vertices)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(dev)

    def randint(*shape: int) -> torch.Tensor:
        return torch.randint(0, C, shape, generator=generator).to(dev)

    def evaluate(x_: torch.Tensor, c_: torch.Tensor):
        x_ = x_.detach().requires_grad_(True)
        e, _ = problem.energy(x_, c_)
        (grad,) = torch.autograd.grad(e.sum(), x_)
        return e.detach(), grad

    contacts = randint(B, cfg.n_contacts)
    energy, grad = evaluate(x, contacts)
    ema = torch.zeros(x.shape[1], device=dev)
    history = [float(energy.mean())]
    for step in range(1, cfg.iters + 1):
        s = cfg.step_size * cfg.step_decay ** ((step - 1) // cfg.step_period)
        ema = cfg.mu * (grad * grad).mean(0) + (1 - cfg.mu) * ema
        x_new = x - s * grad / (ema.sqrt() + 1e-6)
        switch = rand(B, cfg.n_contacts) < cfg.switch_p
        c_new = torch.where(switch, randint(B, cfg.n_contacts), contacts)
        e_new, g_new = evaluate(x_new, c_new)
        temperature = cfg.t0 * cfg.t_decay ** (step // cfg.t_period)
        accept = rand(B) < torch.exp(((energy - e_new) / temperature).clamp(max=0.0))
        x = torch.where(accept[:, None], x_new, x)
        contacts = torch.where(accept[:, None], c_new, contacts)
        energy = torch.where(accept, e_new, energy)
        grad = torch.where(accept[:, None], g_new, grad)
        history.append(float(energy.mean()))
        if on_step is not None:
            on_step()
    with torch.no_grad():
        energy, terms = problem.energy(x, contacts)
    return x, contacts, energy, terms, history


def config_dict(cfg: AnnealConfig) -> dict:
    """The settings as JSON values (stored in the output folder's run settings, so a resumed run matches)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()}
