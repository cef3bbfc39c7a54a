"""Records -> condition maps: the glue between the hand model, the renderer and dataset folders.

Every stage that needs conditions (``handsynth render``, generation, the micro world) goes through
:class:`ConditionRenderer`, so hands are posed and rendered one way everywhere.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from handsynth.data.carry import absolute_mesh_paths
from handsynth.data.records import Hand, LocalCrop, Sample, object_pose
from handsynth.errors import UserError
from handsynth.hand.model import HandModels
from handsynth.objects.meshes import load_mesh, resolve_mesh
from handsynth.render.body import compose_body_map, openpose18
from handsynth.render.crop import crop_box, to_local
from handsynth.render.forearm import make_forearm
from handsynth.render.maps import BODY_MAP
from handsynth.render.renderer import Renderer
from handsynth.render.scene import LABELS, SceneMesh


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
    kp = (out.extra.get("body") or {}).get("keypoints_2d")
    if kp is not None:  # the body skeleton's pixels follow the image
        out.extra["body"]["keypoints_2d"] = [[u * sx, v * sy, vis] for u, v, vis in kp]
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


def check_forearms(sample: Sample) -> None:
    """Refuse a ``body.forearms`` entry attached to a hand the record does not have."""
    for i, arm in enumerate((sample.extra.get("body") or {}).get("forearms") or []):
        if sample.hand(arm["side"]) is None:
            raise UserError(
                f"record {sample.id}: body.forearms[{i}] is attached to the {arm['side']} hand, which the "
                "record does not have; fix the record's body field"
            )


@dataclass
class BodyScene:
    """What the `body` map of one record shows: arm tubes (with the hands that may hide them) and the
    OpenPose body keypoints; ``empty`` when the record carries neither (counted for the run summary)."""

    meshes: list
    keypoints: np.ndarray | None  # OpenPose-18 (u, v), NaN = missing

    @property
    def empty(self) -> bool:
        return self.keypoints is None and not self.meshes

    @classmethod
    def of(cls, renderer: ConditionRenderer, sample: Sample, hand_meshes: list) -> BodyScene:
        """The body scene of ``sample``; ``hand_meshes`` are its posed hands (other meshes are ignored)."""
        check_forearms(sample)
        body = sample.extra.get("body") or {}
        arms = []
        for arm in body.get("forearms") or []:
            side = arm["side"]
            mesh = next(m for m in hand_meshes if m.label == side)
            tube = make_forearm(
                mesh.vertices,
                renderer.posed_joints(sample, side),
                length=float(arm.get("length") or 1.0),
                sleeve_start=arm.get("sleeve_start"),
            )
            arms.append(SceneMesh(tube.vertices, tube.faces, label="object"))
        kp = body.get("keypoints_2d")
        keypoints = openpose18(np.asarray(kp, np.float64)) if kp is not None else None
        hands = [m for m in hand_meshes if m.label != "object"]  # objects would read as arm in `seg`
        return cls(meshes=[*hands, *arms] if arms else [], keypoints=keypoints)

    def draw(self, renderer, K: np.ndarray, box: list[float] | None = None, size: int | None = None):
        """The body map at the record's size, or of the local crop ``box`` at ``size`` x ``size``."""
        silhouette = None
        if self.meshes:  # the hands are drawn too, so they hide the arm where they are in front
            seg = (
                renderer.render(self.meshes, K, maps=("seg",))
                if box is None
                else renderer.render_local(self.meshes, K, box, size, maps=("seg",))
            )["seg"]
            silhouette = seg == LABELS["object"]
        width, height = (renderer.width, renderer.height) if box is None else (size, size)
        keypoints = [] if self.keypoints is None else [self.keypoints]
        if box is not None and keypoints:
            keypoints = [to_local(self.keypoints, box, size)]
        return compose_body_map(width, height, silhouette, keypoints)


class ConditionRenderer:
    """Poses each hand of a record with its hand model, places its objects (``objects[]``), and renders
    global + local condition maps.

    Hand models, object meshes (by path) and GL contexts are created once and cached, so rendering
    thousands of records costs one forward pass per hand and one draw. ``data_root`` is the folder
    relative object mesh paths are read from; ``objects=False`` draws hands only.
    """

    def __init__(
        self,
        hand_model: str | None = None,
        model_dir: str | Path | None = None,
        expand: float = 1.25,
        data_root: str | Path | None = None,
        objects: bool = True,
        crop_inside: bool = False,
    ):
        self.hand_model = hand_model  # None: use each record's own `model` field
        self.expand = expand
        self.crop_inside = crop_inside  # local crop slid inside the image (crop_box's ``within``)
        self.data_root = data_root
        self.objects = objects
        self._models = HandModels(model_dir)
        self._renderers: dict[tuple[int, int], object] = {}
        self._object_keys: dict[str, str] = {}  # mesh reference -> resolved key
        self._object_templates: dict[str, SceneMesh] = {}  # resolved key -> mesh in its own frame
        self.body_empty: list[str] = []  # records whose body map came out empty (no body data)

    @property
    def model_dir(self) -> str | Path | None:
        """The MANO folder the shared hand models load from (one place holds it: ``HandModels``)."""
        return self._models.model_dir

    def _model(self, kind: str, side: str, flat_hand_mean: bool = False) -> torch.nn.Module:
        """The hand model posing a record's hands; ``flat_hand_mean`` is the record's (its hand_pose
        convention), else an absolute pose would be drawn with the mean pose added twice."""
        return self._models.get(kind, side, flat_hand_mean)

    def _renderer(self, width: int, height: int):
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
        check_forearms(sample)
        for h in sample.hands:
            if (self.hand_model or h.model) != h.model:
                continue  # another hand model was asked for: its joints legitimately differ
            model = self._model(h.model, h.side, sample.flat_hand_mean)
            params = [
                torch.tensor([x], dtype=torch.float32)
                for x in (h.global_orient, h.hand_pose, h.betas, h.transl)
            ]
            check_joints_match(sample.id, h, model(*params, joints_only=True).joints[0].numpy())
        self.object_meshes(sample)  # every mesh found and readable

    @torch.no_grad()
    def posed_joints(self, sample: Sample, side: str) -> np.ndarray:
        """(21, 3) camera-frame joints of the record's ``side`` hand, posed like :meth:`hand_meshes`."""
        h = sample.hand(side)
        model = self._model(self.hand_model or h.model, h.side, sample.flat_hand_mean)
        params = [
            torch.tensor([x], dtype=torch.float32) for x in (h.global_orient, h.hand_pose, h.betas, h.transl)
        ]
        return model(*params, joints_only=True).joints[0].numpy()

    @torch.no_grad()
    def hand_meshes(self, sample: Sample) -> list:
        """One SceneMesh per hand of the record, in the camera frame."""
        meshes = []
        for h in sample.hands:
            model = self._model(self.hand_model or h.model, h.side, sample.flat_hand_mean)

            def t(x: list[float]) -> torch.Tensor:
                return torch.tensor([x], dtype=torch.float32)

            out = model(t(h.global_orient), t(h.hand_pose), t(h.betas), t(h.transl))
            faces = np.asarray(model.faces, dtype=np.int32)
            meshes.append(SceneMesh(out.vertices[0].numpy(), faces, label=h.side))
        return meshes

    def object_meshes(self, sample: Sample) -> list[SceneMesh]:
        """One SceneMesh per entry of the record's ``objects`` (label ``object``), in the camera frame."""
        if not self.objects:
            return []
        meshes = []
        for obj in sample.extra.get("objects") or []:
            ref = obj.get("mesh")
            if ref not in self._object_keys:
                what = f"record {sample.id}, object {obj['name']!r}"
                key = resolve_mesh(ref, self.data_root, what)
                if key not in self._object_templates:
                    self._object_templates[key] = SceneMesh.from_trimesh(load_mesh(key, what), label="object")
                self._object_keys[ref] = key
            template = self._object_templates[self._object_keys[ref]]
            R, t, scale = object_pose(obj)
            vertices = (template.vertices.astype(np.float64) * scale) @ R.T + t
            meshes.append(dataclasses.replace(template, vertices=vertices))
        return meshes

    def scene_meshes(self, sample: Sample) -> list[SceneMesh]:
        """Everything the maps show: the record's hands and its objects."""
        return self.hand_meshes(sample) + self.object_meshes(sample)

    def render(
        self,
        sample: Sample,
        maps: tuple[str, ...],
        local: bool = True,
        local_size: int | None = None,
        local_box: list[float] | None = None,
    ) -> RenderedConditions:
        """Render ``maps`` for one record; ``local`` adds the hand crop (AttentionHand's local branch),
        around the hand box expanded, or ``local_box`` (e.g. the crop of a local photo the record has)."""
        self.check_record(sample)
        meshes = self.scene_meshes(sample)
        K = np.asarray(sample.K, dtype=np.float64)
        joints_2d = [np.asarray(h.joints_2d) for h in sample.hands]
        renderer = self._renderer(sample.width, sample.height)
        gl_maps = tuple(m for m in maps if m != BODY_MAP)
        drawn = renderer.render(meshes, K, maps=gl_maps, joints_2d=joints_2d) if gl_maps else {}
        body = BodyScene.of(self, sample, meshes) if BODY_MAP in maps else None
        if body is not None:
            drawn[BODY_MAP] = body.draw(renderer, K)
            if body.empty:
                self.body_empty.append(sample.id)
        result = RenderedConditions(global_maps={m: drawn[m] for m in maps})
        if local:
            size = local_size or max(sample.width, sample.height)
            within = (sample.width, sample.height) if self.crop_inside else None
            if local_box is None:
                local_box = crop_box(sample.union_bbox(), expand=self.expand, within=within)
            box = [float(v) for v in local_box]
            # The global renderer draws the crop at any size; padding follows the record's image size.
            drawn = (
                renderer.render_local(meshes, K, box, size, maps=gl_maps, joints_2d=joints_2d)
                if gl_maps
                else {}
            )
            if body is not None:
                drawn[BODY_MAP] = body.draw(renderer, K, box, size)
            result.local_maps = {m: drawn[m] for m in maps}
            result.box = box
        return result

    def render_box(
        self, sample: Sample, maps: tuple[str, ...], box: list[float] | None = None, size: int | None = None
    ) -> dict[str, np.ndarray]:
        """The GL ``maps`` of one record, the whole image (``box`` None) or the crop ``box`` = [x, y, side]
        rendered straight at ``size``² (sharp: no resampling of a full-image map; padding past the
        image is zero, as in a cropped photo). For methods that crop their own boxes (HandBooster)."""
        if BODY_MAP in maps:
            raise UserError("render_box draws the GL maps only; the body map comes from render()")
        self.check_record(sample)
        meshes = self.scene_meshes(sample)
        K = np.asarray(sample.K, dtype=np.float64)
        joints_2d = [np.asarray(h.joints_2d) for h in sample.hands]
        renderer = self._renderer(sample.width, sample.height)
        if box is None:
            return renderer.render(meshes, K, maps=maps, joints_2d=joints_2d)
        return renderer.render_local(meshes, K, box, int(size or box[2]), maps=maps, joints_2d=joints_2d)

    def render_into(
        self,
        sample: Sample,
        maps: tuple[str, ...],
        local: bool = True,
        local_size: int | None = None,
        keep_local_photo: bool = False,
    ) -> tuple[Sample, dict[str, np.ndarray]]:
        """Render and return the record with its `conditions`/`local` filled, plus the files to write.

        Relative object mesh paths become absolute: the record is written to another folder.
        ``keep_local_photo``: a record with a local photo (``local.file_name``) keeps it, and its local
        maps are drawn in that photo's box and size so the two stay aligned.
        """
        photo = sample.local if keep_local_photo and sample.local and sample.local.file_name else None
        if photo is not None:
            local_size, box = photo.size, photo.box
        else:
            box = None
        rendered = self.render(sample, maps, local=local, local_size=local_size, local_box=box)
        out = copy.deepcopy(sample)
        if out.extra.get("objects"):
            out.extra["objects"] = absolute_mesh_paths(out.extra["objects"], self.data_root or ".")
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
            out.local = LocalCrop(
                box=rendered.box,
                size=size,
                conditions=local_conds,
                file_name=photo.file_name if photo is not None else None,
            )
        return out, files
