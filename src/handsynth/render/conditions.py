"""Records -> condition maps: the glue between the hand model, the renderer and dataset folders.

Every stage that needs conditions (``handsynth render``, generation, the micro world) goes through
:class:`ConditionRenderer`, so hands are posed and rendered one way everywhere.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from handsynth.data.records import Hand, LocalCrop, Sample
from handsynth.errors import UserError


@dataclass
class RenderedConditions:
    """Global maps at the record's size, local maps of the hand crop, and the crop box."""

    global_maps: dict[str, np.ndarray]
    local_maps: dict[str, np.ndarray] = field(default_factory=dict)
    box: list[float] | None = None


def scale_sample(sample: Sample, width: int, height: int) -> Sample:
    """The same scene seen by a camera with the image resized to ``width`` x ``height``."""
    if (width, height) == (sample.width, sample.height):
        return sample
    sx, sy = width / sample.width, height / sample.height
    out = copy.deepcopy(sample)
    out.width, out.height = width, height
    out.K[0] = [out.K[0][0] * sx, out.K[0][1] * sx, out.K[0][2] * sx]
    out.K[1] = [out.K[1][0] * sy, out.K[1][1] * sy, out.K[1][2] * sy]
    for h in out.hands:
        h.joints_2d = [[u * sx, v * sy] for u, v in h.joints_2d]
        h.bbox = [h.bbox[0] * sx, h.bbox[1] * sy, h.bbox[2] * sx, h.bbox[3] * sy]
    out.local = None
    return out


# Largest distance (metres) between a joint posed from a record's parameters and its stored joints_3d:
# far above float and mesh-detail noise (< 1 mm), far below a wrong pose or a stale label.
JOINT_TOLERANCE_M = 0.01


def check_joints_match(sample_id: str, hand: Hand, posed: np.ndarray) -> None:
    """Refuse a record whose hand parameters disagree with its stored ``joints_3d``.

    The maps are rendered from the parameters but the labels are copied from ``joints_3d``; when they
    disagree, the output would pair an image with labels of another hand.
    """
    err = np.linalg.norm(posed - np.asarray(hand.joints_3d), axis=-1)
    if float(err.max()) > JOINT_TOLERANCE_M:
        raise UserError(
            f"record {sample_id}: the {hand.side} hand's parameters put joint {int(err.argmax())} "
            f"{1000 * float(err.max()):.0f} mm from its stored joints_3d (tolerance "
            f"{1000 * JOINT_TOLERANCE_M:.0f} mm); recompute the labels from the parameters or fix the record"
        )


def check_render_size(sample_id: str, width: int, height: int) -> None:
    """Refuse an image size beyond the renderer's framebuffers, naming the record."""
    from handsynth.cli_args import MAX_IMAGE_SIDE

    if max(width, height) > MAX_IMAGE_SIDE:
        raise UserError(
            f"record {sample_id}: {width}x{height} pixels is larger than the renderer supports "
            f"({MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}); pass --size or scale the record down"
        )


class ConditionRenderer:
    """Poses each hand of a record with its hand model and renders global + local condition maps.

    Hand models and GL contexts are created once and cached, so rendering thousands of records costs
    one forward pass and one draw per hand.
    """

    def __init__(
        self, hand_model: str | None = None, model_dir: str | Path | None = None, expand: float = 1.25
    ):
        self.hand_model = hand_model  # None: use each record's own `model` field
        self.model_dir = model_dir
        self.expand = expand
        self._models: dict[tuple[str, str], torch.nn.Module] = {}
        self._renderers: dict[tuple[int, int], object] = {}

    def _model(self, kind: str, side: str) -> torch.nn.Module:
        from handsynth.hand import load_hand_model

        key = (kind, side)
        if key not in self._models:
            self._models[key] = load_hand_model(kind, side=side, model_dir=self.model_dir).eval()
        return self._models[key]

    def _renderer(self, width: int, height: int):
        from handsynth.render import Renderer

        if (width, height) not in self._renderers:
            self._renderers[(width, height)] = Renderer(width, height)
        return self._renderers[(width, height)]

    @torch.no_grad()
    def check_record(self, sample: Sample) -> None:
        """Refuse a record this renderer would turn into wrong output: no hands, too large, or hand
        parameters that disagree with the stored joints (the maps would not match the labels)."""
        if not sample.hands:
            raise UserError(f"record {sample.id} has no hands to render")
        check_render_size(sample.id, sample.width, sample.height)
        for h in sample.hands:
            if (self.hand_model or h.model) != h.model:
                continue  # another hand model was asked for: its joints legitimately differ
            model = self._model(h.model, h.side)
            params = [
                torch.tensor([x], dtype=torch.float32)
                for x in (h.global_orient, h.hand_pose, h.betas, h.transl)
            ]
            check_joints_match(sample.id, h, model(*params, joints_only=True).joints[0].numpy())

    @torch.no_grad()
    def hand_meshes(self, sample: Sample) -> list:
        """One SceneMesh per hand of the record, in the camera frame."""
        from handsynth.render import SceneMesh

        meshes = []
        for h in sample.hands:
            model = self._model(self.hand_model or h.model, h.side)

            def t(x: list[float]) -> torch.Tensor:
                return torch.tensor([x], dtype=torch.float32)

            out = model(t(h.global_orient), t(h.hand_pose), t(h.betas), t(h.transl))
            faces = np.asarray(model.faces, dtype=np.int32)
            meshes.append(SceneMesh(out.vertices[0].numpy(), faces, label=h.side))
        return meshes

    def render(
        self, sample: Sample, maps: tuple[str, ...], local: bool = True, local_size: int | None = None
    ) -> RenderedConditions:
        """Render ``maps`` for one record; ``local`` adds the hand crop (AttentionHand's local branch)."""
        self.check_record(sample)
        meshes = self.hand_meshes(sample)
        K = np.asarray(sample.K, dtype=np.float64)
        joints_2d = [np.asarray(h.joints_2d) for h in sample.hands]
        renderer = self._renderer(sample.width, sample.height)
        result = RenderedConditions(global_maps=renderer.render(meshes, K, maps=maps, joints_2d=joints_2d))
        if local:
            from handsynth.render import crop_box

            size = local_size or max(sample.width, sample.height)
            box = [float(v) for v in crop_box(sample.union_bbox(), expand=self.expand)]
            # The global renderer draws the crop at any size; padding follows the record's image size.
            result.local_maps = renderer.render_local(meshes, K, box, size, maps=maps, joints_2d=joints_2d)
            result.box = box
        return result

    def render_into(
        self, sample: Sample, maps: tuple[str, ...], local: bool = True, local_size: int | None = None
    ) -> tuple[Sample, dict[str, np.ndarray]]:
        """Render and return the record with its `conditions`/`local` filled, plus the files to write."""
        rendered = self.render(sample, maps, local=local, local_size=local_size)
        out = copy.deepcopy(sample)
        files: dict[str, np.ndarray] = {}
        out.conditions = dict(out.conditions)
        for name, array in rendered.global_maps.items():
            rel = f"conditions/{name}/{sample.id}.png"
            out.conditions[name] = rel
            files[rel] = array
        if local:
            local_conds = {}
            for name, array in rendered.local_maps.items():
                rel = f"local/{name}/{sample.id}.png"
                local_conds[name] = rel
                files[rel] = array
            size = next(iter(rendered.local_maps.values())).shape[0]
            out.local = LocalCrop(box=rendered.box, size=size, conditions=local_conds)
        return out, files
