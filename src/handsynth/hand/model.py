"""The hand-model module both OpenHand and MANO become: arrays in, smplx-MANO-layer semantics out.

``forward(global_orient, hand_pose, betas, transl)`` takes axis-angle ``(B, 3)``, ``(B, 45)`` (MANO's
15-joint order, added to ``hand_mean`` unless the model was built with ``flat_hand_mean=True``),
``(B, 10)`` and ``(B, 3)``, exactly like ``smplx.MANO(use_pca=False)``, and returns vertices and the 21
joints in OpenPose order (16 kinematic joints + 5 fingertip vertices), metres.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from handsynth.errors import UserError
from handsynth.hand.arrays import HandArrays
from handsynth.hand.joints import OPENPOSE_FROM_MANO
from handsynth.hand.kinds import HAND_MODEL_KINDS
from handsynth.hand.kinematics import lbs


@dataclass
class HandOutput:
    """What a hand model returns: camera/world-frame vertices and OpenPose-21 joints, metres."""

    vertices: torch.Tensor  # (B, V, 3)
    joints: torch.Tensor  # (B, 21, 3), OpenPose order
    mano_joints: torch.Tensor  # (B, 16, 3), MANO's kinematic joints (no tips), MANO order
    full_pose: torch.Tensor  # (B, 48) axis-angle actually applied (mean included)


class HandModel(nn.Module):
    """A differentiable MANO-layer-compatible hand (``use_pca=False``); ``faces`` is ``(F, 3)`` int64."""

    def __init__(self, arrays: HandArrays, kind: str, flat_hand_mean: bool = False) -> None:
        super().__init__()
        self.kind = kind
        self.side = arrays.side
        self.flat_hand_mean = flat_hand_mean
        self.parents = tuple(int(p) for p in arrays.parents)
        f32 = torch.float32
        self.register_buffer("v_template", torch.as_tensor(arrays.v_template, dtype=f32))
        self.register_buffer("shapedirs", torch.as_tensor(arrays.shapedirs, dtype=f32))
        if arrays.posedirs is not None:
            P = arrays.posedirs.shape[-1]
            self.register_buffer("posedirs", torch.as_tensor(arrays.posedirs.reshape(-1, P).T, dtype=f32))
        else:
            self.posedirs = None
        self.register_buffer("J_regressor", torch.as_tensor(arrays.J_regressor, dtype=f32))
        self.register_buffer("lbs_weights", torch.as_tensor(arrays.weights, dtype=f32))
        mean = np.zeros(45) if flat_hand_mean else np.asarray(arrays.hands_mean, dtype=np.float64)
        self.register_buffer("hand_mean", torch.as_tensor(mean, dtype=f32))
        self.register_buffer("tip_vertices", torch.as_tensor(arrays.tip_vertices, dtype=torch.long))
        self.faces = np.asarray(arrays.faces, dtype=np.int64)
        self.register_buffer("faces_tensor", torch.as_tensor(self.faces))
        self.num_betas = arrays.shapedirs.shape[-1]

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    def forward(
        self,
        global_orient: torch.Tensor | None = None,
        hand_pose: torch.Tensor | None = None,
        betas: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
        joints_only: bool = False,
    ) -> HandOutput:
        """Pose the hand; missing arguments default to zeros (batch size from the first one given).

        ``joints_only`` skins just the five fingertip vertices (``vertices`` is then ``(B, 5, 3)``):
        much faster when only the 21 joints are needed.
        """
        given = [t for t in (global_orient, hand_pose, betas, transl) if t is not None]
        B = given[0].shape[0] if given else 1
        ref = self.v_template

        def z(n: int) -> torch.Tensor:
            return ref.new_zeros(B, n)

        global_orient = z(3) if global_orient is None else global_orient.to(ref)
        hand_pose = z(45) if hand_pose is None else hand_pose.to(ref)
        betas = z(self.num_betas) if betas is None else betas.to(ref)
        transl = z(3) if transl is None else transl.to(ref)
        if betas.shape[1] < self.num_betas:  # fewer betas than the model has: the rest are zero
            betas = torch.cat([betas, z(self.num_betas - betas.shape[1])], dim=1)
        full_pose = torch.cat([global_orient, hand_pose + self.hand_mean], dim=1)
        verts, joints16 = lbs(
            betas[:, : self.num_betas],
            full_pose,
            self.v_template,
            self.shapedirs,
            self.posedirs,
            self.J_regressor,
            self.parents,
            self.lbs_weights,
            vertex_ids=self.tip_vertices if joints_only else None,
        )
        tips = verts if joints_only else verts[:, self.tip_vertices]
        joints21 = torch.cat([joints16, tips], dim=1)[:, OPENPOSE_FROM_MANO]
        t = transl[:, None]
        return HandOutput(
            vertices=verts + t, joints=joints21 + t, mano_joints=joints16 + t, full_pose=full_pose
        )

    def rest_wrist(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """The wrist joint ``(B, 3)`` of the shaped rest mesh: the point ``global_orient`` rotates about."""
        betas = self.v_template.new_zeros(1, self.num_betas) if betas is None else betas.to(self.v_template)
        v = self.v_template + torch.einsum("bs,vks->bvk", betas[:, : self.num_betas], self.shapedirs)
        return torch.einsum("v,bvk->bk", self.J_regressor[0], v)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, side={self.side}, vertices={self.num_vertices}, flat_hand_mean={self.flat_hand_mean}"


def load_hand_model(
    kind: str,
    side: str = "right",
    model_dir: str | os.PathLike | None = None,
    flat_hand_mean: bool = False,
    model_path: str | os.PathLike | None = None,
    fix_left_shapedirs: bool = True,
    detail: str | None = None,
) -> HandModel:
    """A hand model: ``"openhand"`` (license-free, built in) or ``"mano"`` (the user's MANO files).

    ``model_dir`` is the folder holding ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (or the ``.npz`` written
    by ``handsynth mano convert``); ``model_path`` is accepted as an alias (a folder or one file).
    ``fix_left_shapedirs`` applies InterHand2.6M's fix for the left MANO model (smplx issue #48); turn
    it off only to reproduce annotations fitted without it (e.g. DexYCB). ``detail`` picks OpenHand's
    mesh: ``"light"`` (default, ~1.5k vertices) or ``"high"`` (~15k); see docs/hand.md.
    """
    if side not in ("right", "left"):
        raise UserError(f"hand side must be 'right' or 'left', got {side!r}")
    if kind == "openhand":
        from handsynth.hand.openhand import openhand_arrays  # the mesh data: loaded on first use

        return HandModel(openhand_arrays(side, detail), kind, flat_hand_mean)
    if kind == "mano":
        from handsynth.hand.mano import load_mano_arrays

        where = model_dir if model_dir is not None else model_path
        arrays = load_mano_arrays(side, Path(where) if where is not None else None, fix_left_shapedirs)
        return HandModel(arrays, kind, flat_hand_mean)
    raise UserError(f"unknown hand model {kind!r}: choose one of {HAND_MODEL_KINDS}")


class HandModels:
    """Hand models loaded once each, by (kind, side, flat_hand_mean), in eval mode, MANO from one folder.

    Why: whoever poses records' hands (render, the poses commands) needs the model each record names, built
    with the record's pose convention (``Sample.flat_hand_mean``), without loading it per record.
    """

    def __init__(self, model_dir: str | os.PathLike | None = None, fix_left_shapedirs: bool = True) -> None:
        self.model_dir = model_dir
        self.fix_left_shapedirs = fix_left_shapedirs  # load_hand_model's MANO left-shapedirs fix
        self._models: dict[tuple[str, str, bool], HandModel] = {}

    def get(self, kind: str, side: str, flat_hand_mean: bool = False) -> HandModel:
        key = (kind, side, flat_hand_mean)
        if key not in self._models:
            self._models[key] = load_hand_model(
                kind,
                side=side,
                model_dir=self.model_dir,
                flat_hand_mean=flat_hand_mean,
                fix_left_shapedirs=self.fix_left_shapedirs,
            ).eval()
        return self._models[key]
