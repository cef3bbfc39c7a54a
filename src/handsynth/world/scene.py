"""One world photograph: pose, arm, object, skin, lights, camera, background, degradations, caption.

:class:`WorldGenerator` turns ``(config, index)`` into one dataset record with exact labels and its
files. Everything random is drawn from a generator seeded by ``(seed, domain, index)``, so sample ``i``
is the same whatever else was generated before it (resuming and sharding give identical files).

Labels are the hand's alone: joints, bbox and the condition maps (rendered by
:class:`handsynth.render.conditions.ConditionRenderer`, the same code every stage uses) come from the
posed hand mesh. The forearm and the held object appear in the photograph (they may occlude the hand,
as in real photos) but never in the hand's seg or mesh maps — except in the hand–object domains
(``holab``, ``howild``, :mod:`handsynth.world.hold`), whose records name the object (``objects``), so
the condition maps draw it too.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass

import numpy as np
import torch

from handsynth.data.records import Hand, Sample
from handsynth.errors import UserError
from handsynth.hand.model import HandModels
from handsynth.pinhole import bbox_from_points, project
from handsynth.render.conditions import ConditionRenderer
from handsynth.render.crop import crop_image
from handsynth.render.renderer import Lighting, Renderer
from handsynth.render.scene import SceneMesh, vertex_normals
from handsynth.world import backgrounds, captions, degrade, forearm, hold, lighting, objects, skin
from handsynth.world.camera import (
    PALM_TURN_LIMIT_DEG,
    axis_rotation,
    medial_direction,
    place_hand,
    roll_towards,
    rotation_between,
    sample_arm_direction,
    sample_framing,
)
from handsynth.world.config import (
    ARM_DOMAIN,
    DOMAIN_SEED_CODE,
    HO_HAND_FRACTION,
    LOOK,
    SLEEVE_COLORS,
    TABLE_COLORS,
    WorldConfig,
    sample_id,
)
from handsynth.world.grasp import grasp_pose


class _PosedConditionRenderer(ConditionRenderer):
    """The shared condition renderer, handed the meshes the world already posed (saves a forward pass).

    Only used for the record whose id matches; the meshes come from the same hand model and the same
    parameters that the record stores, so they are exactly what the parent class would compute.
    """

    posed: tuple[str, list] | None = None

    def hand_meshes(self, sample: Sample) -> list:
        if self.posed is not None and self.posed[0] == sample.id:
            return self.posed[1]
        return super().hand_meshes(sample)


def _rotvec(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R).as_rotvec()


def _rotmat(rotvec: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(rotvec).as_matrix()


def _box_down(a: np.ndarray, k: int) -> np.ndarray:
    """Average k x k pixel blocks (the supersampling filter)."""
    if k == 1:
        return a
    h, w = a.shape[0] // k, a.shape[1] // k
    return a.reshape(h, k, w, k, *a.shape[2:]).mean(axis=(1, 3))


@dataclass
class _HandAssets:
    v_template: np.ndarray
    shapedirs: np.ndarray
    J_regressor: np.ndarray
    hand_mean: np.ndarray
    faces: np.ndarray
    layout: skin.SkinLayout


class WorldGenerator:
    """Generates world samples of one configuration; holds the hand models and GL contexts."""

    def __init__(self, config: WorldConfig):
        self.cfg = config
        self._models = HandModels(config.model_dir)
        self._assets: dict[str, _HandAssets] = {}
        k = config.supersample
        # The world shades vertices itself, so the photo renderer's own light is neutral.
        self.photo = Renderer(config.size * k, config.size * k, lighting=Lighting(ambient=1.0, diffuse=0.0))
        self.conditions = _PosedConditionRenderer(
            hand_model=config.hand_model,
            model_dir=config.model_dir,
            expand=config.expand,
            crop_inside=config.local_crop == "inside",
        )

    # -- helpers ------------------------------------------------------------------------------------

    def model(self, side: str) -> torch.nn.Module:
        return self._models.get(self.cfg.hand_model, side)

    def assets(self, side: str) -> _HandAssets:
        """Numpy copies of the model's rest arrays and its skin layout (computed once per side)."""
        if side not in self._assets:
            m = self.model(side)
            with torch.no_grad():
                rest = m(hand_pose=-m.hand_mean[None].clone())  # full pose 0: the flat rest hand
            faces = np.asarray(m.faces, dtype=np.int64)
            self._assets[side] = _HandAssets(
                v_template=m.v_template.double().numpy(),
                shapedirs=m.shapedirs.double().numpy(),
                J_regressor=m.J_regressor.double().numpy(),
                hand_mean=m.hand_mean.double().numpy(),
                faces=faces,
                layout=skin.skin_layout(rest.vertices[0].numpy(), faces, rest.joints[0].numpy(), side),
            )
        return self._assets[side]

    def sample_id(self, index: int) -> str:
        return sample_id(self.cfg.domain, index)

    def given_record(self, index: int) -> Sample | None:
        """With ``poses``: record ``index`` among those with a hand (else None)."""
        if not self.cfg.poses:
            return None
        if not hasattr(self, "_poses"):
            from handsynth.data import read_dataset

            self._poses = [s for s in read_dataset(self.cfg.poses) if s.hands]
        if index >= len(self._poses):
            raise UserError(
                f"--poses {self.cfg.poses} has {len(self._poses)} records with a hand; sample {index} asked"
            )
        return self._poses[index]

    def given_hand(self, index: int) -> tuple[Hand, np.ndarray] | None:
        """With ``poses``: the first hand of record ``index`` and its intrinsics (else None). Its
        ``hand_pose`` is made relative to the mean pose (the world's convention) when the record's is
        absolute, so the photo shows the record's articulation."""
        rec = self.given_record(index)
        if rec is None:
            return None
        hand = rec.hands[0]
        if rec.flat_hand_mean:
            mean = self.model(hand.side).hand_mean.double().numpy()
            hand = dataclasses.replace(hand, hand_pose=(np.asarray(hand.hand_pose) - mean).tolist())
        return hand, np.asarray(rec.K, np.float64)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.cfg.seed, DOMAIN_SEED_CODE[self.cfg.domain], index])

    def _articulation(self, side: str, rng: np.random.Generator, grip_radius: float | None) -> tuple:
        """(hand_pose (45,), betas (10,)): a grasp around an object of ``grip_radius`` metres, else a
        pose from the hand prior."""
        mean = self.assets(side).hand_mean
        if grip_radius is not None:
            pose = grasp_pose(side, grip_radius, rng, mean=mean)
        else:
            from handsynth.hand.priors import sample_hand_pose  # `world render --help` skips the prior

            pose = sample_hand_pose(rng, self.model(side), side) - mean
        betas = np.clip(rng.normal(0, 0.8, 10), -2.5, 2.5)
        return pose, betas

    def _orientation(
        self, side: str, betas: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """global_orient (3,) putting the forearm along a domain-typical direction, rolled about it.

        The wrist -> middle-knuckle vector only depends on global_orient (the knuckle's parent is the
        wrist), so the rest skeleton tells which rotation points the arm where we want; the palm normal
        (wrist, index and little-finger knuckles) likewise. Anatomical arms in wild (``arm_model``): the
        palm ends within ``PALM_TURN_LIMIT_DEG`` of facing the body's midline; otherwise any roll.
        """
        a = self.assets(side)
        # Only the wrist (0), index (1), middle (4) and little-finger (7) knuckle rows (MANO order).
        J = a.J_regressor[[0, 1, 4, 7]] @ (a.v_template + a.shapedirs @ betas)
        d_rest = (J[0] - J[2]) / np.linalg.norm(J[0] - J[2])
        # hand-object domains turn each draw again to meet the table (_held_orientation): left as they were
        anatomical = self.cfg.arm_model == "anatomical" and self.cfg.domain == "wild"
        d = sample_arm_direction(ARM_DOMAIN[self.cfg.domain], rng, side if anatomical else None)
        R0 = rotation_between(d_rest, d)
        if anatomical:
            n = np.cross(J[1] - J[0], J[3] - J[0]) * (1.0 if side == "right" else -1.0)  # out of the palm
            limit = np.radians(PALM_TURN_LIMIT_DEG)
            roll = roll_towards(R0 @ n, d, medial_direction(side), rng.uniform(-limit, limit))
        else:
            roll = rng.uniform(0, 2 * np.pi)
        return _rotvec(axis_rotation(d, roll) @ R0), d

    def sample_articulated_hand(
        self, rng: np.random.Generator
    ) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
        """(side, global_orient, hand_pose, betas) drawn as this domain's photos draw them (a grip
        around an object with the config's object probability), without rendering: cheap labelled
        poses for tools that read hands from keypoints (``handsynth.micro.reader``)."""
        if self.cfg.domain in hold.HO_DOMAINS:
            raise UserError(f"domain {self.cfg.domain} poses its hands around held objects; use lab or wild")
        side = ("right", "left")[int(rng.integers(2))]
        obj = objects.sample_object(rng) if rng.random() < self.cfg.object_probability else None
        hand_pose, betas = self._articulation(side, rng, obj.grip_radius if obj else None)
        global_orient, _ = self._orientation(side, betas, rng)
        return side, global_orient, hand_pose, betas

    def _held_orientation(
        self,
        side: str,
        hand_pose: np.ndarray,
        betas: np.ndarray,
        held: hold.HeldObject,
        style: hold.GraspStyle,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray]:
        """global_orient (3,) and arm direction of a hand holding ``held`` over a table.

        The object turns with the hand, so the table normal (the object's up axis) is the global
        rotation times its up axis in the unrotated hand. Each of up to 64 draws of :meth:`_orientation`
        is turned so that normal meets a random :func:`hold.table_normal`; the first draw whose arm
        then comes from where a seated person's would (:func:`hold.arm_misfit`) is kept (else the best).
        """
        with torch.no_grad():
            j0 = self.model(side)(
                hand_pose=torch.tensor(hand_pose[None], dtype=torch.float32),
                betas=torch.tensor(betas[None], dtype=torch.float32),
                joints_only=True,
            ).joints[0]
        R0, _ = hold.object_pose(held, j0.double().numpy(), side, style)
        up0 = hold.up_in_camera(held, R0)
        target = hold.table_normal(rng)
        best = None
        for _ in range(64):
            global_orient, arm_dir = self._orientation(side, betas, rng)
            R = _rotmat(global_orient)
            R = rotation_between(R @ up0, target) @ R
            arm_dir = R @ (_rotmat(global_orient).T @ arm_dir)
            misfit = hold.arm_misfit(arm_dir)
            if best is None or misfit < best[0]:
                best = (misfit, _rotvec(R), arm_dir)
            if misfit == 0:
                break
        return best[1], best[2]

    def _held_meshes(
        self,
        held: hold.HeldObject,
        R: np.ndarray,
        t: np.ndarray,
        rest_vertices: np.ndarray,
        up: np.ndarray,
        light: lighting.Lighting,
        look: str,
        rng: np.random.Generator,
    ) -> list[SceneMesh]:
        """The held object as the record names it (+ the table under its resting place in sequences and
        in photos of given records)."""
        ov = held.vertices @ R.T + t
        on = vertex_normals(ov, held.faces)
        colors = lighting.shade(skin.srgb_to_linear(held.colors), ov, on, light)
        meshes = [SceneMesh(ov, held.faces, label="object", vertex_colors=colors)]
        if self.cfg.sequence_length > 1 or self.cfg.poses:
            names = TABLE_COLORS[look]
            name = names[int(rng.integers(len(names)))]
            albedo = skin.srgb_to_linear(
                backgrounds._jitter_color(backgrounds.COLORS[name], rng, 0.05) / 255.0
            )
            tv, tf = hold.table_mesh(rest_vertices, up, rest_vertices.mean(axis=0))
            tn = np.broadcast_to(up, tv.shape)  # flat: every corner lit like the top face
            shaded = lighting.shade(np.broadcast_to(albedo, tv.shape), tv, tn, light)
            meshes.append(SceneMesh(tv, tf, label="object", vertex_colors=shaded))
        return meshes

    # -- one sample ---------------------------------------------------------------------------------

    def generate(self, index: int) -> tuple[Sample, dict]:
        """The record and files (relative path -> content) of sample ``index``.

        Torch runs single-threaded meanwhile: one small hand (batch 1) is many times faster on one
        thread than on two contended ones, and parallel workers use the other cores.
        """
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._generate(index)
        finally:
            torch.set_num_threads(threads)

    def _generate(self, index: int) -> tuple[Sample, dict]:
        cfg, size = self.cfg, self.cfg.size
        look = LOOK[cfg.domain]
        ho = cfg.domain in hold.HO_DOMAINS
        # A sequence's frames share every random draw: only the frame's offsets differ.
        seq_index, frame_index = divmod(index, cfg.sequence_length)
        rng = self.rng(seq_index)
        sid = self.sample_id(index)
        side = ("right", "left")[int(rng.integers(2))]
        tone = int(rng.integers(1, 11))
        held = style = subject_index = None
        if ho:
            held = hold.sample_held(cfg.domain, rng)
            style = hold.sample_style(cfg.domain, held.kind, rng)
            obj = None
        else:
            obj = objects.sample_object(rng) if rng.random() < cfg.object_probability else None
        given = self.given_hand(index)
        if given is not None:  # the same hand, camera and placement; the domain's own appearance
            side, obj = given[0].side, None
            if held is not None:  # and the same held object, where the record puts it
                given_object = hold.held_from_record(self.given_record(index), cfg.domain, rng)

        # Pose and place the hand (one forward pass, transl added afterwards exactly as the model does).
        grip = held.grip_radius * style.curl_scale if held is not None else obj.grip_radius if obj else None
        hand_pose, betas = self._articulation(side, rng, grip)
        if cfg.domain == "holab":  # a subject: fixed skin tone and hand shape
            pool = hold.subject_pool(cfg.subjects)
            subject_index = pool[int(rng.integers(len(pool)))]
            if given is not None:  # a given hand of a holab subject keeps that subject's skin with its shape
                subject_index = hold.subject_with_betas(given[0].betas, subject_index)
            tone, betas = hold.subject(subject_index)
        if held is not None:
            global_orient, arm_dir = self._held_orientation(side, hand_pose, betas, held, style, rng)
        else:
            global_orient, arm_dir = self._orientation(side, betas, rng)
        if given is not None:
            hand_pose, betas = np.asarray(given[0].hand_pose), np.asarray(given[0].betas)
            global_orient = np.asarray(given[0].global_orient)
        model = self.model(side)
        with torch.no_grad():
            out = model(
                torch.tensor(global_orient[None], dtype=torch.float32),
                torch.tensor(hand_pose[None], dtype=torch.float32),
                torch.tensor(betas[None], dtype=torch.float32),
            )
        hand_fraction = cfg.hand_fraction or HO_HAND_FRACTION.get(cfg.domain)
        framing = sample_framing(look, rng, size, hand_fraction)
        frame = None
        if held is not None:  # place hand + object over the whole sequence, then take this frame
            joints0 = out.joints[0].double().numpy()
            R_obj, t_obj0 = hold.object_pose(held, joints0, side, style)
            up = hold.up_in_camera(held, R_obj)
            frames = hold.sequence_frames(cfg.sequence_length, up, hold.away_direction(joints0, side, up))
            frame = frames[frame_index]
            hand0 = out.vertices[0].double().numpy()[::3]
            obj0 = held.vertices @ R_obj.T + t_obj0
            union = np.concatenate(
                [np.concatenate([hand0 + f.hand_offset, obj0 + f.object_offset]) for f in frames]
            )
            transl = place_hand(union, framing, size)
            t_obj = t_obj0 + transl + frame.object_offset
            rest_vertices = obj0 + transl  # the object on the table (frame 0)
            transl = transl + frame.hand_offset
        else:
            transl = place_hand(out.vertices[0].double().numpy(), framing, size)
        if given is not None:
            if given[1].shape != (3, 3) or abs(given[1][0, 2] * 2 - size) > 1:
                raise UserError(f"--poses records must be {size}x{size} images like --size; re-render them")
            framing.K, transl = given[1], np.asarray(given[0].transl, np.float64)
            if held is not None:
                held, R_obj, t_obj, frame = given_object
        t32 = torch.tensor(transl[None, None], dtype=torch.float32)
        verts = (out.vertices + t32)[0].numpy()
        if given is not None and held is not None:
            # A table as the domain's (facing up in the image, towards the camera) under hand and object,
            # lower by a lift when the record's hand grasps: a given object's pose says nothing of a table.
            up = hold.table_normal(rng)
            lift = float(rng.uniform(*hold.LIFT_M)) if frame.grasping else 0.0
            rest_vertices = np.concatenate([held.vertices @ R_obj.T + t_obj, verts]) - up * lift
        joints = (out.joints + t32)[0].numpy()
        faces = self.assets(side).faces
        K = framing.K

        # Everything in the photo: background, lights, shaded hand, forearm (+ sleeve), object.
        if cfg.backgrounds:  # a small fixed set: a world a small model can learn (micro benchmark v2)
            bg = backgrounds.fixed_background(look, int(rng.integers(cfg.backgrounds)), size)
        else:
            bg = backgrounds.sample_background(look, rng, size)
        env = skin.srgb_to_linear(bg.image.reshape(-1, 3).mean(axis=0) / 255.0)
        light = lighting.sample_lighting(look, rng, env)
        normals = vertex_normals(verts, faces)
        albedo = skin.skin_albedo(self.assets(side).layout, tone, rng, cfg.palm_contrast)
        meshes = [
            SceneMesh(
                verts,
                faces,
                label=side,
                vertex_colors=lighting.shade(albedo, verts, normals, light, lighting.SKIN_WRAP),
            )
        ]

        sleeve_color = None
        if rng.random() < 0.7:
            names = SLEEVE_COLORS[look]
            sleeve_color = names[int(rng.integers(len(names)))]
        sleeve_start = float(rng.uniform(0.08, 0.22)) if sleeve_color else None
        arm = forearm.make_forearm(verts, joints, sleeve_start=sleeve_start)
        arm_rgb = skin.arm_albedo(arm.vertices, tone, rng)
        if sleeve_color:
            cloth = backgrounds._jitter_color(backgrounds.COLORS[sleeve_color], rng, 0.08) / 255.0
            arm_rgb[arm.sleeve] = skin.srgb_to_linear(cloth) * (
                1 + rng.normal(0, 0.03, (int(arm.sleeve.sum()), 1))
            )
        arm_n = vertex_normals(arm.vertices, arm.faces)
        meshes.append(
            SceneMesh(
                arm.vertices,
                arm.faces,
                label="object",
                vertex_colors=lighting.shade(arm_rgb, arm.vertices, arm_n, light, lighting.SKIN_WRAP),
            )
        )
        if obj is not None:
            ov = objects.place_in_hand(obj, joints, side, rng)
            on = vertex_normals(ov, obj.faces)
            meshes.append(
                SceneMesh(
                    ov,
                    obj.faces,
                    label="object",
                    vertex_colors=lighting.shade(skin.srgb_to_linear(obj.colors), ov, on, light),
                )
            )
        if held is not None:
            meshes += self._held_meshes(held, R_obj, t_obj, rest_vertices, up, light, look, rng)

        deg = degrade.sample_degradation(look, rng, size)
        photo = self._composite(meshes, K, bg.image, deg, light, rng)
        photo = degrade.apply_degradation(photo, deg, rng)
        jpeg = degrade.encode_jpeg(photo, deg.jpeg_quality)

        # Labels.
        joints_2d = project(joints.astype(np.float64), K)
        bbox = bbox_from_points(project(verts.astype(np.float64), K), joints_2d)
        hand = Hand(
            side=side,
            model=cfg.hand_model,
            global_orient=[float(x) for x in global_orient],
            hand_pose=[float(x) for x in hand_pose],
            betas=[float(x) for x in betas],
            transl=[float(x) for x in transl],
            joints_3d=joints.astype(np.float64).tolist(),
            joints_2d=joints_2d.tolist(),
            bbox=bbox,
        )
        gesture_phrase, gesture_name = captions.gesture(joints)
        facts = captions.CaptionFacts(
            side=side,
            gesture=gesture_phrase,
            background=bg.phrase,
            object_name=held.kind if held else obj.name if obj else None,
            object_color=held.color_name if held else obj.color_name if obj else None,
            light=light.words,
            sleeve_color=sleeve_color,
            tone_word=skin.TONE_WORDS[tone - 1],
            domain=look,
        )
        attributes = {
            "skin_tone_mst": tone,
            "gesture": "grasp" if obj or held else gesture_name,
            "background": {"name": bg.name, "kind": bg.kind, "phrase": bg.phrase},
            "sleeve": sleeve_color,
            "fov_deg": round(framing.fov_deg, 3),
            "hand_fraction": round(framing.hand_fraction, 4),
            "arm_direction": [round(float(x), 4) for x in arm_dir],
            "lighting": light.to_dict(),
            "degradation": deg.to_dict(),
        }
        sample = Sample(
            id=sid,
            width=size,
            height=size,
            K=K.tolist(),
            hands=[hand],
            prompt=captions.caption(facts, rng),
            file_name=f"images/{sid}.jpg",
            source={
                "generator": "handsynth world",
                "domain": cfg.domain,
                "seed": cfg.seed,
                "index": index,
                "flat_hand_mean": False,
                "attributes": attributes,
            },
        )
        if obj is not None:
            sample.extra["object"] = {"name": obj.name, "color": obj.color_name}
        if held is not None:
            attributes["grasp_style"] = style.index
            if subject_index is not None:
                attributes["subject"] = subject_index
            sample.extra["object"] = {"name": held.kind, "color": held.color_name}
            sample.extra["objects"] = [
                {
                    "name": held.kind,
                    "mesh": held.mesh_ref,
                    "R": R_obj.tolist(),
                    "t": [float(x) for x in t_obj],
                    "scale": held.scale,
                }
            ]
            sample.extra["grasping"] = frame.grasping
            if cfg.sequence_length > 1:
                sample.extra["sequence"] = {"id": f"{cfg.domain}_seq{seq_index:06d}", "frame": frame_index}
        if cfg.caption_style == "verbose":
            # Its own random stream: the photo, labels and `prompt` are those of the short style.
            detail = captions.SceneDetail(
                background_kind=bg.kind,
                background_name=bg.name,
                light_color=tuple(float(x) for x in light.lights[0].color)
                if light.lights
                else (1.0, 1.0, 1.0),
                light_count=len(light.lights),
                brightness=float(
                    (light.lights[0].intensity if light.lights else 0.0) + np.mean(light.ambient)
                ),
                sheen=float(light.specular),
                hand_fraction=float(framing.hand_fraction),
                blurred=bool(getattr(deg, "background_blur", 0.0) > 0.5),
            )
            verbose_rng = np.random.default_rng([cfg.seed, DOMAIN_SEED_CODE[cfg.domain], index, 1])
            sample.extra["caption"] = captions.verbose_caption(facts, detail, verbose_rng)
        # The arm in the photo, so `handsynth render --maps body` can draw its silhouette.
        sample.extra["body"] = {"forearms": [{"side": side, "sleeve_start": sleeve_start, "length": 1.0}]}

        files: dict = {sample.file_name: jpeg}
        if cfg.maps:
            self.conditions.posed = (sid, [SceneMesh(verts, faces, label=side)])
            try:
                sample, cond_files = self.conditions.render_into(
                    sample, cfg.maps, local=cfg.local, local_size=cfg.local_size or size
                )
            finally:
                self.conditions.posed = None
            files.update(cond_files)
        if cfg.local and sample.local is not None:
            decoded = np.asarray(_decode(jpeg))
            rel = f"local/image/{sid}.png"
            files[rel] = crop_image(decoded, sample.local.box, sample.local.size)
            sample.local.file_name = rel
        return sample, files

    def _composite(
        self,
        meshes: list,
        K: np.ndarray,
        background: np.ndarray,
        deg: degrade.Degradation,
        light: lighting.Lighting,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Render the meshes (supersampled) and lay them over the (defocused, shadowed) background."""
        k = self.cfg.supersample
        Kk = np.diag([k, k, 1.0]) @ K  # pixel (c, r) of the big image covers [c, c+1)/k of the small one
        out = self.photo.render(meshes, Kk, maps=("texture", "seg"))
        mask = (out["seg"] > 0).astype(np.float32)
        alpha = _box_down(mask, k)[..., None]
        color = _box_down(out["texture"].astype(np.float32) * mask[..., None], k)  # premultiplied
        bg = degrade.gaussian_blur(background, deg.background_blur).astype(np.float32)
        if LOOK[self.cfg.domain] == "wild" and rng.random() < 0.5:
            bg = bg * (1.0 - _shadow(alpha[..., 0], light, rng))[..., None]
        return np.clip(bg * (1.0 - alpha) + color, 0, 255).astype(np.uint8)

    def release(self) -> None:
        self.photo.release()


def _shadow(alpha: np.ndarray, light: lighting.Lighting, rng: np.random.Generator) -> np.ndarray:
    """A soft drop shadow of the foreground on the background, offset away from the key light."""
    from PIL import Image, ImageFilter

    size = alpha.shape[0]
    d = light.lights[0].direction
    shift = np.round(np.asarray(d[:2]) / max(float(d[2]), 0.3) * size * rng.uniform(0.03, 0.08)).astype(int)
    moved = np.roll(alpha, (int(shift[1]), int(shift[0])), axis=(0, 1))
    img = Image.fromarray((moved * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(size * 0.025))
    return np.asarray(img, np.float32) / 255.0 * rng.uniform(0.25, 0.5)


def _decode(data: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")
