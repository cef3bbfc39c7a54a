"""Pose prior and `handsynth poses sample`: reproducible, within limits, hands fully in view, valid records."""

import json

import numpy as np
import pytest
import torch

from handsynth.data.records import Sample
from handsynth.hand import load_hand_model
from handsynth.hand.poses import pose_to_anatomical
from handsynth.hand.priors import SceneConfig, digits_collide, limits_table, sample_angles, sample_records


@pytest.fixture(scope="module")
def models():
    return {s: load_hand_model("openhand", side=s).eval() for s in ("right", "left")}


def test_angles_within_limits_and_varied():
    lim = limits_table()
    a = np.stack([sample_angles(np.random.default_rng([5, i])) for i in range(300)])
    assert (a >= lim[..., 0] - 1e-9).all() and (a <= lim[..., 1] + 1e-9).all()
    # Both open and closed hands occur; DIP follows PIP (coupling).
    mcp_index = a[:, 0, 0]
    assert mcp_index.min() < 10 and mcp_index.max() > 70
    assert np.corrcoef(a[:, 1, 0], a[:, 2, 0])[0, 1] > 0.8


def test_collision_test_flags_crossed_fingers(models):
    from handsynth.hand.poses import anatomical_to_pose

    m = load_hand_model("openhand", "right", flat_hand_mean=True)
    ang = np.zeros((15, 3))
    j = (
        m(hand_pose=torch.tensor(anatomical_to_pose(ang), dtype=torch.float32)[None])
        .joints[0]
        .double()
        .numpy()
    )
    assert not digits_collide(j)
    ang[0, 1], ang[3, 1] = -20.0, 15.0  # index towards the little finger, middle towards the thumb
    ang[1, 0] = 0
    j = (
        m(hand_pose=torch.tensor(anatomical_to_pose(ang), dtype=torch.float32)[None])
        .joints[0]
        .double()
        .numpy()
    )
    assert digits_collide(j)


@pytest.mark.parametrize("two", [False, True])
def test_records_reproducible_in_view_and_exact(models, two):
    cfg = SceneConfig(size=256, two_hands=two)
    recs = sample_records(4, seed=7, models=models, cfg=cfg, progress=False)
    again = sample_records(2, seed=7, models=models, cfg=cfg, start=2, progress=False)
    assert [r.to_dict() for r in recs[2:]] == [r.to_dict() for r in again]  # index-seeded: resumable
    other = sample_records(1, seed=8, models=models, cfg=cfg, progress=False)
    assert other[0].hands[0].global_orient != recs[0].hands[0].global_orient
    for r in recs:
        Sample.from_dict(json.loads(json.dumps(r.to_dict())))  # valid record
        assert r.prompt == "" and r.conditions == {} and r.source["generator"] == "handsynth poses sample"
        assert len(r.hands) == (2 if two else 1)
        K = np.array(r.K)
        for h in r.hands:
            model = models[h.side]
            out = model(
                *(
                    torch.tensor([getattr(h, k)], dtype=torch.float32)
                    for k in ("global_orient", "hand_pose", "betas", "transl")
                )
            )
            v = out.vertices[0].double().numpy()
            j3 = np.array(h.joints_3d)
            assert np.abs(out.joints[0].double().numpy() - j3).max() < 1e-5  # labels = the model's output
            uv = v @ K.T
            uv = uv[:, :2] / uv[:, 2:]
            assert (v[:, 2] > 0).all() and uv.min() >= 0 and uv.max() <= 256  # the whole mesh is in view
            x, y, w, hh = h.bbox
            assert np.allclose([x, y, x + w, y + hh], [*uv.min(0), *uv.max(0)], atol=1e-6)
            j2 = j3 @ K.T
            assert np.allclose(np.array(h.joints_2d), j2[:, :2] / j2[:, 2:], atol=1e-6)
            # The pose stays within the anatomical limits (a few degrees of slack for float32).
            absolute = np.array(h.hand_pose) + model.hand_mean.double().numpy()
            ang = pose_to_anatomical(absolute, side=h.side)
            lim = limits_table()
            assert (ang >= lim[..., 0] - 2).all() and (ang <= lim[..., 1] + 2).all()
        if two:
            a = models["right"](
                *(
                    torch.tensor([getattr(r.hands[0], k)])
                    for k in ("global_orient", "hand_pose", "betas", "transl")
                )
            )
            b = models["left"](
                *(
                    torch.tensor([getattr(r.hands[1], k)])
                    for k in ("global_orient", "hand_pose", "betas", "transl")
                )
            )
            from scipy.spatial import cKDTree

            d = cKDTree(a.vertices[0].numpy()).query(b.vertices[0].numpy())[0].min()
            assert d > 0.003  # the two hands do not intersect


def test_cli_writes_readable_jsonl(tmp_path):
    from handsynth.cli import main
    from handsynth.data.folder import read_dataset

    out = tmp_path / "poses.jsonl"
    assert main(["poses", "sample", "--n", "2", "--seed", "3", "--size", "128", "--out", str(out)]) == 0
    samples = read_dataset(out)
    assert [s.id for s in samples] == ["3_0000000", "3_0000001"]
    assert samples[0].source["seed"] == 3 and samples[0].width == 128
    assert samples[0].source["flat_hand_mean"] is False  # how hand_pose is read (docs/format.md)
    assert main(["poses", "sample", "--n", "2", "--out", str(out)]) == 2  # exists: refused
    assert main(["poses", "sample", "--n", "0", "--out", str(tmp_path / "x.jsonl")]) == 2
    assert not (tmp_path / "x.jsonl").exists()
