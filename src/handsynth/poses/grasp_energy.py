"""The grasp energy of HandBooster's grasp synthesis (after DexGraspNet), on the differentiable hand model.

E = E_fc + w_dis·E_dis + w_pen·E_pen + w_prior·E_prior + w_spen·E_spen (+ w_plane·E_plane):

- E_fc: force closure of unit normal forces at the 4 contact points, ‖Σ_i [n_i; (x_i − c) × n_i]‖²;
- E_dis: Σ_i |d(x_i)|, the contact points' distance to the surface (object SDF grid);
- E_pen: Σ_v max(0, −d(v)) over hand vertices inside the object;
- E_prior: joint-limit violation (radians, :func:`handsynth.hand.priors.limits_table`) plus a weak pull
  (``PRIOR_PULL``) towards the pre-grasp pose;
- E_spen: bone capsules of different digits overlapping (the rule of :func:`priors.digits_collide`,
  as a penalty: how far they are inside each other, metres);
- E_plane: Σ_v max(0, −(v − p)·n) over hand vertices below the support plane.

The fingers are parameterised by anatomical angles (flexion, abduction, twist per joint, the axes of
:func:`handsynth.hand.poses.joint_axes`), so joint limits are box constraints and the pre-grasp pose
is easy to state. Contact candidates are palmar pad vertices of each digit's middle and distal
segments, found from the model's skinning weights and joint regressor (no vertex ids), so the same code
serves OpenHand and MANO.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from handsynth.hand.openhand import CHAINS, RADII
from handsynth.hand.priors import limits_table
from handsynth.poses.sdf import SDFGrid

DIGITS = ("thumb", "index", "middle", "ring", "little")
PAD_VERTICES = 6  # contact candidates per region
PRIOR_PULL = 0.01  # weight of the squared distance (rad²) to the pre-grasp pose inside E_prior
SPEN_SCALE = 0.7  # capsules of two digits may overlap up to (1 - this) x their radii (digits_collide)
WEIGHTS = {"dis": 100.0, "pen": 100.0, "prior": 0.5, "spen": 10.0, "plane": 100.0}  # released, + plane

# Pre-grasp anatomical pose (degrees): fingers slightly curled, thumb opposed (per level 1..3).
PREGRASP = {
    "thumb": ((30.0, 20.0, 40.0), (15.0, 0.0, 0.0), (15.0, 0.0, 0.0)),
    "index": ((25.0, 5.0, 0.0), (25.0, 0.0, 0.0), (15.0, 0.0, 0.0)),
    "middle": ((25.0, 0.0, 0.0), (25.0, 0.0, 0.0), (15.0, 0.0, 0.0)),
    "ring": ((25.0, -3.0, 0.0), (25.0, 0.0, 0.0), (15.0, 0.0, 0.0)),
    "little": ((25.0, -8.0, 0.0), (25.0, 0.0, 0.0), (15.0, 0.0, 0.0)),
}


def pregrasp_angles() -> np.ndarray:
    """(15, 3) degrees of :data:`PREGRASP` in hand_pose joint order."""
    out = np.zeros((15, 3))
    for digit, (chain, _tip) in CHAINS.items():
        for level, j in enumerate(chain):
            out[j - 1] = PREGRASP[digit][level]
    return out


def _axis_quaternion(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    half = 0.5 * angle[..., None]
    return torch.cat([torch.cos(half), torch.sin(half) * axis], dim=-1)


def _qmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    aw, av = a[..., :1], a[..., 1:]
    bw, bv = b[..., :1], b[..., 1:]
    return torch.cat(
        [aw * bw - (av * bv).sum(-1, keepdim=True), aw * bv + bw * av + torch.linalg.cross(av, bv)], -1
    )


def anatomical_to_axis_angle(angles: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """Differentiable :func:`handsynth.hand.poses.anatomical_to_pose` (right hand): ``angles`` (B, 15, 3)
    radians, ``axes`` (15, 3, 3) from ``joint_axes()`` -> (B, 45) absolute axis-angle."""
    q = _axis_quaternion(axes[:, 0], angles[..., 0])
    q = _qmul(q, _axis_quaternion(axes[:, 1], angles[..., 1]))
    q = _qmul(q, _axis_quaternion(axes[:, 2], angles[..., 2]))
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    s2 = (v * v).sum(-1)
    s = torch.sqrt(s2 + 1e-24)
    factor = torch.where(s2 < 1e-12, 2.0 / w.clamp_min(1e-6), 2 * torch.atan2(s, w) / s)
    return (v * factor[..., None]).reshape(angles.shape[0], 45)


@dataclass
class ContactRegions:
    """Palmar pad vertices of each digit's middle and distal segments (contact candidates)."""

    vertices: torch.Tensor  # (C,) vertex ids
    region: torch.Tensor  # (C,) region id per candidate
    names: list[str]  # region names, "<digit>_<segment>"
    digit: torch.Tensor  # (R,) digit index (DIGITS) per region


def _farthest(points: np.ndarray, k: int) -> list[int]:
    picks = [0]
    d = np.linalg.norm(points - points[0], axis=1)
    while len(picks) < min(k, len(points)):
        picks.append(int(d.argmax()))
        d = np.minimum(d, np.linalg.norm(points - points[picks[-1]], axis=1))
    return picks


def palm_frame(model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """``(centre, normal)`` of the palm of the rest mesh: the normal points out of the palm (the way the
    fingers flex), the centre lies on the palm's skin."""
    from handsynth.hand.poses import joint_axes

    J = (model.J_regressor @ model.v_template).double().numpy()
    axes = joint_axes()
    normals = []
    for digit in DIGITS[1:]:
        base, mid = CHAINS[digit][0][:2]
        d = J[mid] - J[base]
        normals.append(np.cross(axes[base - 1, 0], d / np.linalg.norm(d)))
    normal = np.mean(normals, axis=0)
    normal /= np.linalg.norm(normal)
    centre = np.mean([J[0]] + [J[CHAINS[f][0][0]] for f in DIGITS[1:]], axis=0)
    v = model.v_template.double().numpy()
    skin = ((v - centre) @ normal)[np.linalg.norm(v - centre, axis=1) < 0.03].max()
    return centre + skin * normal, normal


def contact_regions(model: torch.nn.Module, per_region: int = PAD_VERTICES) -> ContactRegions:
    """:class:`ContactRegions` of a hand model, from its skinning weights and regressed joints."""
    from handsynth.hand.poses import joint_axes

    v = model.v_template.double().numpy()
    J = (model.J_regressor @ model.v_template).double().numpy()
    owner = model.lbs_weights.argmax(dim=1).numpy()
    tips = model.tip_vertices.numpy()
    axes = joint_axes()
    ids, region, names, digit_of = [], [], [], []
    for d_i, digit in enumerate(DIGITS):
        chain, tip = CHAINS[digit]
        ends = {chain[1]: J[chain[2]], chain[2]: v[tips[tip]]}
        for seg_name, j in (("middle", chain[1]), ("distal", chain[2])):
            start, end = J[j], ends[j]
            bone = (end - start) / np.linalg.norm(end - start)
            palm = np.cross(axes[j - 1, 0], bone)
            palm /= np.linalg.norm(palm)
            mine = np.flatnonzero(owner == j)
            rel = v[mine] - start
            radial = rel - np.outer(rel @ bone, bone)
            score = (radial @ palm) / np.linalg.norm(radial, axis=1).clip(1e-9)
            pads = (
                mine[score > 0.7]
                if (score > 0.7).sum() >= per_region
                else mine[np.argsort(-score)[:per_region]]
            )
            pads = pads[_farthest(v[pads], per_region)]
            ids += pads.tolist()
            region += [len(names)] * len(pads)
            names.append(f"{digit}_{seg_name}")
            digit_of.append(d_i)
    return ContactRegions(torch.tensor(ids), torch.tensor(region), names, torch.tensor(digit_of))


def _bone_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """OpenPose joint ids (P, 4) of bone pairs of different digits and their allowed distance (P,)."""
    bones = {f: [(1 + 4 * i + k, 2 + 4 * i + k) for k in range(3)] for i, f in enumerate(DIGITS)}
    pairs, limits = [], []
    for i, fa in enumerate(DIGITS):
        for fb in DIGITS[i + 1 :]:
            for ka, (a0, a1) in enumerate(bones[fa]):
                for kb, (b0, b1) in enumerate(bones[fb]):
                    if ka == 0 and kb == 0 and fa != "thumb":
                        continue  # neighbouring proximal phalanges touch at the web (digits_collide)
                    pairs.append((a0, a1, b0, b1))
                    limits.append(SPEN_SCALE * (RADII[fa][ka + 1] + RADII[fb][kb + 1]))
    return torch.tensor(pairs), torch.tensor(limits)


def segment_distance(p1: torch.Tensor, q1: torch.Tensor, p2: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """Closest distance between segments p1-q1 and p2-q2 (batched over leading dims; differentiable)."""
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a, e = (d1 * d1).sum(-1), (d2 * d2).sum(-1)
    b, c, f = (d1 * d2).sum(-1), (d1 * r).sum(-1), (d2 * r).sum(-1)
    den = a * e - b * b
    s = torch.where(den > 1e-12, ((b * f - c * e) / den.clamp_min(1e-12)).clamp(0, 1), torch.zeros_like(a))
    t = ((b * s + f) / e.clamp_min(1e-12)).clamp(0, 1)
    s = ((b * t - c) / a.clamp_min(1e-12)).clamp(0, 1)
    return ((p1 + d1 * s[..., None]) - (p2 + d2 * t[..., None])).norm(dim=-1)


def self_penetration(joints: torch.Tensor) -> torch.Tensor:
    """(B,) E_spen: total overlap (metres) of bone capsules of different digits, joints (B, 21, 3)."""
    pairs, limits = _bone_pairs()
    j = joints[:, pairs.to(joints.device)]  # (B, P, 4, 3)
    d = segment_distance(j[:, :, 0], j[:, :, 1], j[:, :, 2], j[:, :, 3])
    return (limits.to(joints) - d).clamp_min(0).sum(-1)


@dataclass
class GraspProblem:
    """Everything the energy needs for one object: hand model (``flat_hand_mean=True``), the object's
    SDF grid and pose (camera frame), the support plane (object frame) and the term weights."""

    model: torch.nn.Module
    sdf: SDFGrid
    R_obj: torch.Tensor  # (3, 3) object -> camera rotation
    t_obj: torch.Tensor  # (3,)
    plane: tuple[torch.Tensor, torch.Tensor] | None  # (normal, point) in the object frame
    weights: dict[str, float] = field(default_factory=lambda: dict(WEIGHTS))

    def __post_init__(self) -> None:
        from handsynth.hand.poses import joint_axes

        dev = self.model.v_template.device
        self.regions = contact_regions(self.model)
        self.axes = torch.as_tensor(joint_axes(), dtype=torch.float32, device=dev)
        lim = np.radians(limits_table())
        self.low = torch.as_tensor(lim[..., 0], dtype=torch.float32, device=dev)
        self.high = torch.as_tensor(lim[..., 1], dtype=torch.float32, device=dev)
        self.pregrasp = torch.as_tensor(np.radians(pregrasp_angles()), dtype=torch.float32, device=dev)
        self.centre = 0.5 * (self.sdf.lo + self.sdf.hi)

    def hand(self, x: torch.Tensor):
        """The posed hand of parameters ``x`` (B, 51) = [transl, global orient, 45 anatomical angles]."""
        pose = anatomical_to_axis_angle(x[:, 6:].view(-1, 15, 3), self.axes)
        return self.model(global_orient=x[:, 3:6], hand_pose=pose, transl=x[:, :3])

    def to_object(self, points: torch.Tensor) -> torch.Tensor:
        return (points - self.t_obj) @ self.R_obj

    def energy(self, x: torch.Tensor, contacts: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(E (B,), terms)`` for parameters ``x`` (B, 51) and contact candidate indices (B, 4)."""
        out = self.hand(x)
        verts = self.to_object(out.vertices)
        d_all, _ = self.sdf.query(verts)
        cand = self.regions.vertices.to(contacts.device)[contacts]  # (B, 4) vertex ids
        pts = torch.gather(verts, 1, cand[..., None].expand(-1, -1, 3))
        d_c, g_c = self.sdf.query(pts)
        n = g_c / g_c.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        wrench = torch.cat([n, torch.linalg.cross(pts - self.centre, n)], dim=-1).sum(1)
        angles = x[:, 6:].view(-1, 15, 3)
        terms = {
            "fc": (wrench * wrench).sum(-1),
            "dis": d_c.abs().sum(-1),
            "pen": (-d_all).clamp_min(0).sum(-1),
            "prior": ((self.low - angles).clamp_min(0) + (angles - self.high).clamp_min(0)).sum((1, 2))
            + PRIOR_PULL * ((angles - self.pregrasp) ** 2).sum((1, 2)),
            "spen": self_penetration(self.to_object(out.joints)),
        }
        if self.plane is not None:
            normal, point = self.plane
            terms["plane"] = (-((verts - point) @ normal)).clamp_min(0).sum(-1)
        total = terms["fc"] + sum(self.weights[k] * v for k, v in terms.items() if k != "fc")
        return total, terms
