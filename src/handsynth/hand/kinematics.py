"""The one linear-blend-skinning core shared by every hand model (OpenHand and MANO).

Semantics are those of SMPL/MANO (and smplx's ``lbs``): shape blend shapes, joints regressed from the
shaped mesh, optional pose-corrective blend shapes driven by ``R - I`` of every non-root joint, forward
kinematics along the tree with each joint rotating about its own rest position, then skinning. Both
models call :func:`lbs`, so a fix or a speed-up lands in both at once.
"""

from __future__ import annotations

import numpy as np
import torch


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: axis-angle ``(..., 3)`` -> rotation matrices ``(..., 3, 3)``; smooth at 0."""
    angle2 = (aa * aa).sum(-1, keepdim=True)
    angle = torch.sqrt(angle2 + 1e-24)
    small = angle2 < 1e-12
    # sin(t)/t and (1-cos t)/t^2 with their Taylor series near 0, so gradients stay finite.
    a = torch.where(small, 1 - angle2 / 6, torch.sin(angle) / angle)
    b = torch.where(small, 0.5 - angle2 / 24, (1 - torch.cos(angle)) / torch.where(small, 1.0, angle2))
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(K)
    return eye + a[..., None] * K + b[..., None] * (K @ K)


def matrix_to_axis_angle(R: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` -> axis-angle ``(..., 3)`` (numpy, via scipy)."""
    from scipy.spatial.transform import Rotation

    R = np.asarray(R, dtype=np.float64)
    return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_rotvec().reshape(*R.shape[:-2], 3)


def forward_kinematics(
    rot_mats: torch.Tensor, joints: torch.Tensor, parents: list[int] | tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posed joints ``(B, J, 3)`` and skinning transforms ``(B, J, 4, 4)``.

    ``rot_mats`` (B, J, 3, 3) are local rotations (the root's is global), ``joints`` (B, J, 3) the rest
    joints. The returned transforms map a rest-pose point to its posed position for a vertex bound
    rigidly to that joint. ``parents`` must list every parent before its children (root first).
    """
    B, J = joints.shape[:2]
    rel = joints.clone()
    rel[:, 1:] = joints[:, 1:] - joints[:, list(parents[1:])]
    local = torch.zeros(B, J, 4, 4, dtype=joints.dtype, device=joints.device)
    local[..., :3, :3] = rot_mats
    local[..., :3, 3] = rel
    local[..., 3, 3] = 1
    chain = [local[:, 0]]
    for j in range(1, J):
        chain.append(chain[parents[j]] @ local[:, j])
    world = torch.stack(chain, dim=1)
    posed = world[..., :3, 3]
    # Remove the rest position: T = world * translate(-rest_joint).
    skin = world.clone()
    skin[..., :3, 3] = posed - (world[..., :3, :3] @ joints[..., None])[..., 0]
    return posed, skin


def lbs(
    betas: torch.Tensor,
    full_pose: torch.Tensor,
    v_template: torch.Tensor,
    shapedirs: torch.Tensor,
    posedirs: torch.Tensor | None,
    J_regressor: torch.Tensor,
    parents: list[int] | tuple[int, ...],
    weights: torch.Tensor,
    vertex_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Skinned vertices ``(B, V, 3)`` and posed kinematic joints ``(B, J, 3)``.

    ``full_pose`` is axis-angle ``(B, J*3)`` (root first), ``shapedirs`` ``(V, 3, S)``, ``posedirs``
    ``(P, V*3)`` with ``P = (J-1)*9`` or ``None`` for a model without pose correctives, ``J_regressor``
    ``(J, V)``, ``weights`` ``(V, J)``. ``vertex_ids`` skins only those vertices (joints still come
    from the whole shaped mesh): a cheap path when only joints and fingertips are needed.
    """
    B = full_pose.shape[0]
    J = J_regressor.shape[0]
    v_shaped = v_template + torch.einsum("bs,vks->bvk", betas, shapedirs)
    rest_joints = torch.einsum("jv,bvk->bjk", J_regressor, v_shaped)
    rot = axis_angle_to_matrix(full_pose.reshape(B, J, 3))
    if vertex_ids is not None:
        v_shaped = v_shaped[:, vertex_ids]
        weights = weights[vertex_ids]
        if posedirs is not None:
            cols = (vertex_ids[:, None] * 3 + torch.arange(3, device=vertex_ids.device)).reshape(-1)
            posedirs = posedirs[:, cols]
    if posedirs is not None:
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        feat = (rot[:, 1:] - eye).reshape(B, -1)
        v_shaped = v_shaped + (feat @ posedirs).reshape(B, -1, 3)
    posed_joints, T = forward_kinematics(rot, rest_joints, parents)
    Tv = torch.einsum("vj,bjmn->bvmn", weights, T)
    verts = (Tv[..., :3, :3] @ v_shaped[..., None])[..., 0] + Tv[..., :3, 3]
    return verts, posed_joints


def mirror_pose(aa: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Right <-> left axis-angle under MANO's mirroring (x -> -x): ``(x, y, z) -> (x, -y, -z)`` per joint."""
    flip = np.array([1.0, -1.0, -1.0])
    if isinstance(aa, torch.Tensor):
        return (aa.reshape(*aa.shape[:-1], -1, 3) * aa.new_tensor(flip)).reshape(aa.shape)
    a = np.asarray(aa, dtype=np.float64)
    return (a.reshape(*a.shape[:-1], -1, 3) * flip).reshape(a.shape)
