"""The hand–object world (holab, howild): records name the object the photo shows, sequences carry the
true grasp flag that `poses grasp-status` recovers, holab's subject split holds out skin and shape."""

from __future__ import annotations

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np
import pytest
from PIL import Image

from handsynth.cli import main
from handsynth.data import read_dataset
from handsynth.errors import UserError
from handsynth.objects.meshes import load_mesh, resolve_mesh, split_world_mesh
from handsynth.render.renderer import Renderer
from handsynth.render.scene import SceneMesh
from handsynth.world import WorldConfig, WorldGenerator, hold
from handsynth.world.dataset import render_world

SIZE = 64
LENGTH = 4


def _render(root, domain: str, n: int, length: int) -> tuple:
    """World folder + the meshes of each photo, in sample order (captured from the compositor)."""
    photo_meshes = []
    composite = WorldGenerator._composite

    def capture(self, meshes, K, *args):
        photo_meshes.append((list(meshes), np.asarray(K)))
        return composite(self, meshes, K, *args)

    cfg = WorldConfig(domain=domain, size=SIZE, seed=5, maps=(), local=False, sequence_length=length)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(WorldGenerator, "_composite", capture)
        render_world(cfg, n, root / domain)
    return root / domain, photo_meshes


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    root = tmp_path_factory.mktemp("howorld")
    out = {"holab": _render(root, "holab", 2 * LENGTH, LENGTH), "howild": _render(root, "howild", 3, 1)}
    for domain, (folder, _) in out.items():
        code = main(["render", "--in", str(folder), "--out", str(root / f"{domain}_maps"), "--maps",
                     "normal,texture,seg", "--no-local"])  # fmt: skip
        assert code in (0, None)
    return root, out


def _photo_object_mask(meshes: list[SceneMesh], K: np.ndarray) -> np.ndarray:
    """Where the photo shows the held object: its mesh (third: hand, forearm, object[, table]) labelled
    object, everything else an occluder."""
    relabelled = [
        SceneMesh(m.vertices, m.faces, label="object" if i == 2 else "right") for i, m in enumerate(meshes)
    ]
    r = Renderer(SIZE, SIZE)
    try:
        return r.render(relabelled, K, maps=("seg",))["seg"] == 3
    finally:
        r.release()


def test_records_carry_the_held_object_and_the_sequence(worlds):
    _, out = worlds
    lab = read_dataset(out["holab"][0])
    assert len(lab) == 2 * LENGTH
    for i, s in enumerate(lab):
        (obj,) = s.extra["objects"]
        kind, color = split_world_mesh(obj["mesh"])
        assert kind in hold.KINDS["holab"] and color is not None and obj["scale"] == 1.0
        R = np.asarray(obj["R"])
        assert np.allclose(R.T @ R, np.eye(3), atol=1e-6) and np.linalg.det(R) > 0
        assert s.extra["sequence"] == {"id": f"holab_seq{i // LENGTH:06d}", "frame": i % LENGTH}
        assert s.extra["grasping"] == (i % LENGTH >= LENGTH // 2)
    wild = read_dataset(out["howild"][0])
    assert all(s.extra["grasping"] and "sequence" not in s.extra for s in wild)
    assert len({s.extra["objects"][0]["scale"] for s in wild}) == len(wild)  # random sizes, in the record


def test_resting_object_stays_then_rises_with_the_hand(worlds):
    _, out = worlds
    lab = read_dataset(out["holab"][0])
    for seq in range(2):
        frames = lab[seq * LENGTH : (seq + 1) * LENGTH]
        t = np.array([f.extra["objects"][0]["t"] for f in frames])
        hand = np.array([f.hands[0].transl for f in frames])
        rest, lifted = slice(0, LENGTH // 2), slice(LENGTH // 2, LENGTH)
        assert np.allclose(t[rest], t[0], atol=1e-9)  # resting while the hand comes
        assert not np.allclose(hand[0], hand[LENGTH // 2 - 1], atol=1e-3)
        rise = np.linalg.norm(t[lifted] - t[0], axis=1)
        assert np.all(rise >= hold.LIFT_M[0] - 1e-9) and np.all(np.diff(rise) > 0)
        assert np.allclose(hand[lifted] - t[lifted], hand[LENGTH // 2 - 1] - t[0], atol=1e-9)  # held rigidly


def test_render_draws_the_object_where_the_photo_has_it(worlds):
    root, out = worlds
    ious = []
    for domain, (folder, photo_meshes) in out.items():
        rendered = {s.id: s for s in read_dataset(root / f"{domain}_maps")}
        for s, (meshes, K) in zip(read_dataset(folder), photo_meshes, strict=True):
            r = rendered[s.id]
            seg = np.asarray(Image.open(root / f"{domain}_maps" / r.conditions["seg"]))
            photo = _photo_object_mask(meshes, K)
            if photo.sum() < 20:
                continue  # hidden behind the hand
            ious.append((photo & (seg == 3)).sum() / (photo | (seg == 3)).sum())
            # The texture map colours the object like the photo: the record's sRGB base colour.
            tex = np.asarray(Image.open(root / f"{domain}_maps" / r.conditions["texture"]).convert("RGB"))
            base = np.asarray(split_world_mesh(s.extra["objects"][0]["mesh"])[1])
            seen = tex[photo & (seg == 3)].astype(float).mean(axis=0) / 255
            assert np.argmax(seen) == np.argmax(base) or np.ptp(base) < 0.1, (s.id, seen, base)
    assert len(ious) >= 6
    assert min(ious) > 0.95, ious  # the photo and the record draw the same surface


def test_grasp_status_recovers_the_worlds_flags(worlds):
    root, out = worlds
    folder = out["holab"][0]
    assert main(["poses", "grasp-status", "--in", str(folder), "--out", str(root / "labelled")]) in (0, None)
    truth = {s.id: s.extra["grasping"] for s in read_dataset(folder)}
    found = {s.id: s.extra["grasping"] for s in read_dataset(root / "labelled")}
    assert found == truth and set(truth.values()) == {True, False}


def test_holab_subjects_split_holds_out_skin_and_shape():
    def draw(split: str) -> list[dict]:
        gen = WorldGenerator(
            WorldConfig(domain="holab", size=32, seed=1, maps=(), local=False, subjects=split)
        )
        try:
            return [gen.generate(i)[0] for i in range(4)]
        finally:
            gen.release()

    test, train = draw("test"), draw("train")
    assert {s.source["attributes"]["subject"] for s in test} <= set(hold.TEST_SUBJECTS)
    assert not {s.source["attributes"]["subject"] for s in train} & set(hold.TEST_SUBJECTS)
    for s in test + train:
        tone, betas = hold.subject(s.source["attributes"]["subject"])
        assert s.source["attributes"]["skin_tone_mst"] == tone
        assert np.allclose(s.hands[0].betas, betas)


def test_holab_photos_of_given_records_keep_hand_object_and_grasp_flag(worlds, tmp_path):
    """`world render --domain holab --poses`: a holab photo of each record's hand (any articulation: a
    flat hand here) holding the record's object where the record puts it, on a table."""
    import torch

    from handsynth.data import write_metadata
    from handsynth.hand import load_hand_model

    _, out = worlds
    given = read_dataset(out["holab"][0])[LENGTH - 2 : LENGTH + 1]  # resting, lifted, next sequence
    given[1].hands[0].hand_pose = [0.0] * 45  # a pose no holab grasp style makes ...
    given[1].hands[0].betas = [0.0] * 10  # ... and a shape no holab subject has
    kind = split_world_mesh(given[2].extra["objects"][0]["mesh"])[0]
    given[2].extra["objects"][0]["mesh"] = f"world:{kind}#2060a0"  # a colour no holab instance has: kept
    write_metadata(tmp_path / "poses.jsonl", given)
    cfg = WorldConfig(
        domain="holab", size=SIZE, seed=9, maps=(), local=False, poses=str(tmp_path / "poses.jsonl")
    )
    meshes = []
    composite = WorldGenerator._composite

    def capture(self, m, K, *args):
        meshes.append(list(m))
        return composite(self, m, K, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(WorldGenerator, "_composite", capture)
        render_world(cfg, len(given), tmp_path / "photos")
    photos = read_dataset(tmp_path / "photos")
    for s, g, m in zip(photos, given, meshes, strict=True):
        h, gh = s.hands[0], g.hands[0]
        model = load_hand_model("openhand", side=gh.side).eval()
        with torch.no_grad():
            o = model(
                *(torch.tensor([x], dtype=torch.float32) for x in (gh.global_orient, gh.hand_pose, gh.betas))
            )
        assert np.allclose(h.joints_3d, o.joints[0].numpy() + np.asarray(gh.transl), atol=1e-5)
        assert np.allclose(s.K, g.K)
        (obj,), (want,) = s.extra["objects"], g.extra["objects"]
        assert obj["mesh"] == want["mesh"] and obj["scale"] == want["scale"]
        assert np.allclose(obj["R"], want["R"]) and np.allclose(obj["t"], want["t"])
        assert s.extra["grasping"] == g.extra["grasping"] and "sequence" not in s.extra
        # a holab subject's hand keeps that subject's skin tone (shape and skin go together in holab)
        subject, want_subject = s.source["attributes"]["subject"], g.source["attributes"]["subject"]
        assert subject == want_subject if gh.betas != [0.0] * 10 else subject in hold.subject_pool("all")
        assert s.source["attributes"]["skin_tone_mst"] == hold.subject(subject)[0]
        held = hold.make_held(split_world_mesh(want["mesh"])[0], want["scale"], "red")
        placed = held.vertices @ np.asarray(want["R"]).T + np.asarray(want["t"])
        assert np.allclose(m[2].vertices, placed, atol=1e-6)  # the photo's object is the record's
        assert len(m) == 4  # hand, forearm, object, table
        table = m[3].vertices - m[3].vertices.mean(axis=0)
        n = np.linalg.svd(table)[2][-1]  # the slab's thin axis: its normal
        n = n if (placed.mean(axis=0) - m[3].vertices.mean(axis=0)) @ n > 0 else -n
        assert n @ hold.VIEW_UP > np.cos(hold.VIEW_UP_SPREAD_RAD) - 1e-6  # facing up, as the domain's
        gap = float((np.concatenate([placed, m[0].vertices]) @ n).min() - (m[3].vertices @ n).max())
        assert (gap > hold.LIFT_M[0] - 1e-6) if g.extra["grasping"] else abs(gap) < 1e-6


def test_holab_poses_need_a_world_object(worlds, tmp_path):
    from handsynth.data import write_metadata

    _, out = worlds
    rec = read_dataset(out["holab"][0])[0]
    rec.extra.pop("objects")
    write_metadata(tmp_path / "poses.jsonl", [rec])
    gen = WorldGenerator(
        WorldConfig(domain="holab", size=SIZE, maps=(), local=False, poses=str(tmp_path / "poses.jsonl"))
    )
    try:
        with pytest.raises(UserError, match=f"record {rec.id} has no objects"):
            gen.generate(0)
    finally:
        gen.release()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"domain": "lab", "sequence_length": 3}, "sequence-length"),
        ({"domain": "howild", "subjects": "test"}, "subjects"),
        ({"domain": "holab", "object_probability": 0.5}, "object-prob"),
        ({"domain": "holab", "subjects": "some"}, "subjects"),
        ({"domain": "holab", "poses": "p.jsonl", "sequence_length": 4}, "one photo per record"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(UserError, match=match):
        WorldConfig(**kwargs)


def test_world_mesh_colour_spec():
    assert split_world_mesh("world:cup#c83232") == ("cup", (200 / 255, 50 / 255, 50 / 255))
    assert resolve_mesh("world:cup#c83232", None, "r") == "world:cup#c83232"
    with pytest.raises(UserError, match="6 hex digits"):
        resolve_mesh("world:cup#red", None, "record 1, object 'cup'")
    colors = np.asarray(load_mesh("world:can#0000ff", "r").visual.vertex_colors)[:, :3]
    assert colors[:, 2].max() > 200 and colors[:, 0].max() > 150  # blue body, grey lid


def test_cli_passes_sequence_length_and_subjects():
    import argparse

    from handsynth.world.cli import config_from_args, register

    p = argparse.ArgumentParser(prog="handsynth")
    register(p.add_subparsers(dest="command"))
    args = p.parse_args(
        ["world", "render", "--domain", "holab", "--n", "4", "--out", "x", "--sequence-length", "4",
         "--subjects", "test"]
    )  # fmt: skip
    cfg = config_from_args(args)
    assert (cfg.domain, cfg.sequence_length, cfg.subjects, cfg.object_probability) == (
        "holab",
        4,
        "test",
        1.0,
    )
    assert cfg.to_dict()["sequence_length"] == 4
    lab = config_from_args(p.parse_args(["world", "render", "--domain", "lab", "--n", "1", "--out", "x"]))
    assert "sequence_length" not in lab.to_dict()  # folders from before these settings still resume
