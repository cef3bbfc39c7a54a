"""`handsynth poses sample` -> `handsynth render`: a dataset folder whose maps agree with its labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from handsynth.cli import main
from handsynth.data import read_dataset
from handsynth.render import load_map


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("render_cmd")
    assert (
        main(
            [
                "poses",
                "sample",
                "--n",
                "3",
                "--seed",
                "3",
                "--two-hands",
                "--size",
                "128",
                "--out",
                str(tmp / "poses.jsonl"),
            ]
        )
        == 0
    )
    assert main(["render", "--in", str(tmp / "poses.jsonl"), "--out", str(tmp / "ds"), "--size", "96"]) == 0
    return tmp


def test_render_writes_every_map_and_consistent_labels(rendered):
    root = rendered / "ds"
    samples = read_dataset(root)
    assert len(samples) == 3 and (root / "contact_sheet.png").exists()
    for s in samples:
        assert s.width == 96 and set(s.conditions) == {
            "mesh",
            "normal",
            "texture",
            "seg",
            "depth",
            "skeleton",
        }
        seg = load_map("seg", root / s.conditions["seg"])
        depth = load_map("depth", root / s.conditions["depth"])
        assert seg.shape == (96, 96) and np.array_equal(seg > 0, depth > 0)
        for h in s.hands:
            label = 1 if h.side == "right" else 2
            ys, xs = np.nonzero(seg == label)
            assert len(xs) > 0
            x, y, w, hgt = h.bbox
            # the tight mesh bbox (scaled to 96 px) encloses the hand's silhouette to within a pixel
            assert (
                xs.min() >= x - 1.5
                and xs.max() <= x + w + 1.5
                and ys.min() >= y - 1.5
                and ys.max() <= y + hgt + 1.5
            )
        # local crop: joints mapped into the crop land on that hand's local silhouette
        local_seg = load_map("seg", root / s.local.conditions["seg"])
        for h in s.hands:
            uv = np.round(s.local.to_local(np.asarray(h.joints_2d)[[0]])).astype(int)[0]
            if 0 <= uv[0] < s.local.size and 0 <= uv[1] < s.local.size:
                patch = local_seg[max(uv[1] - 4, 0) : uv[1] + 5, max(uv[0] - 4, 0) : uv[0] + 5]
                assert (patch == (1 if h.side == "right" else 2)).any()


def test_render_resumes_and_refuses_other_settings(rendered, capsys):
    before = (rendered / "ds" / "metadata.jsonl").read_text()
    assert (
        main(["render", "--in", str(rendered / "poses.jsonl"), "--out", str(rendered / "ds"), "--size", "96"])
        == 0
    )
    assert (rendered / "ds" / "metadata.jsonl").read_text() == before
    assert (
        main(["render", "--in", str(rendered / "poses.jsonl"), "--out", str(rendered / "ds"), "--size", "64"])
        == 2
    )
    assert "size" in capsys.readouterr().err


def test_render_overwrite_restarts_and_never_writes_into_its_input(rendered, tmp_path, capsys):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(rendered / "ds", ds)
    args = ["render", "--in", str(rendered / "poses.jsonl"), "--out", str(ds), "--size", "64"]
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err  # the hint names a real flag
    assert main([*args, "--overwrite"]) == 0
    recs = [json.loads(line) for line in (ds / "metadata.jsonl").read_text().splitlines()]
    assert len(recs) == 3 and {r["width"] for r in recs} == {64}
    before = (ds / "metadata.jsonl").read_bytes()
    assert main(["render", "--in", str(ds), "--out", str(ds), "--overwrite"]) == 2
    assert "is the input folder" in capsys.readouterr().err and (ds / "metadata.jsonl").read_bytes() == before


def test_render_rejects_unknown_map(tmp_path, capsys):
    assert (
        main(
            ["render", "--in", str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "o"), "--maps", "mesh,foo"]
        )
        == 2
    )
    assert "foo" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_size_on_a_non_square_record_says_it_stretches(rendered, tmp_path, capsys):
    rec = json.loads((rendered / "poses.jsonl").read_text().splitlines()[0])
    rec["width"] = 192  # 192x128: --size 64 scales x by 1/3 and y by 1/2
    (tmp_path / "wide.jsonl").write_text(json.dumps(rec) + "\n")
    capsys.readouterr()
    argv = ["render", "--in", str(tmp_path / "wide.jsonl"), "--out", str(tmp_path / "ds"), "--maps", "seg"]
    assert main([*argv, "--size", "64"]) == 0
    err = capsys.readouterr().err
    assert f"1 of 1 records are not square (e.g. {rec['id']}, 192x128): --size 64 stretches" in err
    (s,) = read_dataset(tmp_path / "ds")
    assert (s.width, s.height) == (64, 64) and s.K[0][0] == pytest.approx(rec["camera"]["K"][0][0] / 3)
    assert s.K[1][1] == pytest.approx(rec["camera"]["K"][1][1] / 2)  # the labels follow the stretch


def test_size_with_a_missing_photo_is_refused_before_any_output(rendered, tmp_path, capsys):
    rec = json.loads((rendered / "poses.jsonl").read_text().splitlines()[0])
    rec["file_name"] = "images/gone.png"  # carried links skip a missing photo; a resize cannot
    (tmp_path / "p.jsonl").write_text(json.dumps(rec) + "\n")
    argv = ["render", "--in", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "ds"), "--maps", "seg"]
    assert main([*argv, "--size", "64"]) == 2
    err = capsys.readouterr().err
    assert f"record {rec['id']}: its photo" in err and "gone.png does not exist" in err
    assert not (tmp_path / "ds").exists()


def test_local_crop_is_padded_by_the_record_size_not_the_crop_size():
    """A 64 px record with local maps at 128 px: pixels of the crop outside the 64 px image are zero."""
    from handsynth.data import Sample
    from handsynth.hand import load_hand_model
    from handsynth.hand.priors import SceneConfig, sample_records
    from handsynth.render.conditions import ConditionRenderer

    models = {s: load_hand_model("openhand", side=s).eval() for s in ("right", "left")}
    sample: Sample = sample_records(1, 5, models, SceneConfig(size=64), progress=False)[0]
    # shift the principal point so the hand straddles the right border of the 64 px image
    sample.K[0][2] += 40.0
    for h in sample.hands:
        h.bbox[0] += 40.0
        h.joints_2d = [[u + 40.0, v] for u, v in h.joints_2d]
    rendered = ConditionRenderer(expand=1.25).render(sample, ("seg",), local=True, local_size=128)
    x, y, side = rendered.box
    outside = (np.arange(128) + 0.5) * side / 128 + x >= 64
    assert rendered.local_maps["seg"].shape == (128, 128)
    outside_rows = (np.arange(128) + 0.5) * side / 128 + y >= 64
    outside_cols_left = (np.arange(128) + 0.5) * side / 128 + x < 0
    outside |= outside_cols_left
    assert outside.any() or outside_rows.any()
    seg = rendered.local_maps["seg"]
    assert seg[:, outside].max(initial=0) == 0 and seg[outside_rows].max(initial=0) == 0
    assert seg.max() > 0


def test_scale_sample_to_another_aspect_keeps_labels_on_the_projection(rendered):
    import numpy as np

    from handsynth.data import read_dataset
    from handsynth.render.conditions import scale_sample

    s = read_dataset(rendered / "poses.jsonl")[0]
    assert (s.width, s.height) == (128, 128)
    out = scale_sample(s, 64, 128)  # x halves, y stays
    K = np.asarray(out.K)
    for h0, h in zip(s.hands, out.hands):
        uvw = np.asarray(h.joints_3d) @ K.T
        np.testing.assert_allclose(h.joints_2d, uvw[:, :2] / uvw[:, 2:], atol=1e-6)
        np.testing.assert_allclose(np.asarray(h.joints_2d)[:, 1], np.asarray(h0.joints_2d)[:, 1])
        assert h.bbox[1] == h0.bbox[1] and h.bbox[3] == h0.bbox[3] and h.bbox[2] == h0.bbox[2] / 2


def test_rendering_a_photo_dataset_keeps_its_photo_and_maps_readable(tmp_path):
    from PIL import Image

    from handsynth.data import read_dataset

    photos = tmp_path / "photos"
    argv = ["world", "render", "--domain", "holab", "--n", "2", "--size", "96", "--maps", "mesh,seg"]
    assert main([*argv, "--out", str(photos)]) == 0
    out = tmp_path / "maps"
    assert main(["render", "--in", str(photos), "--out", str(out), "--maps", "normal,texture,seg"]) == 0
    for r in read_dataset(out):
        assert set(r.conditions) == {"mesh", "normal", "texture", "seg"}  # the input's mesh map kept
        for rel in r.paths().values():
            assert (out / rel).is_file(), rel
        assert Image.open(out / r.file_name).size == (96, 96)
    # another size: the photo is resized with the labels; maps not rendered again are dropped
    small = tmp_path / "small"
    assert main(["render", "--in", str(photos), "--out", str(small), "--maps", "seg", "--size", "64"]) == 0
    for r in read_dataset(small):
        assert set(r.conditions) == {"seg"} and Image.open(small / r.file_name).size == (64, 64)
        assert all((small / rel).is_file() for rel in r.paths().values())


def test_rendering_keeps_a_local_photo_and_draws_its_local_maps_in_the_photo_crop(tmp_path):
    """World photos carry a local photo whose crop is slid inside the image; render's own crop is centred
    on the hand. The new local maps must be drawn in the photo's crop (else they do not line up with it),
    also when --size scales the image (the crop scales with it)."""
    photos = tmp_path / "photos"
    argv = ["world", "render", "--domain", "wild", "--n", "4", "--size", "64", "--maps", "seg"]
    assert main([*argv, "--out", str(photos)]) == 0
    world = {r.id: r for r in read_dataset(photos)}
    assert all(r.local.file_name for r in world.values())
    for size, out in ((None, tmp_path / "same"), (128, tmp_path / "bigger")):
        extra = [] if size is None else ["--size", str(size)]
        assert main(["render", "--in", str(photos), "--out", str(out), "--maps", "seg", *extra]) == 0
        f = 1 if size is None else size / 64
        for r in read_dataset(out):
            w = world[r.id]
            assert r.local.file_name == w.local.file_name and (out / r.local.file_name).is_file()
            np.testing.assert_allclose(r.local.box, np.asarray(w.local.box) * f)
            assert r.local.size == w.local.size
            # the world drew its own local seg map in that crop: the new one shows the same hand pixels
            new = load_map("seg", out / r.local.conditions["seg"]) > 0
            ref = load_map("seg", photos / w.local.conditions["seg"]) > 0
            assert (new & ref).sum() / (new | ref).sum() > 0.9, r.id
    # the check above can fail: render's own (centred) crop differs from the slid photo crop here
    from handsynth.render import crop_box

    centred = [crop_box(w.union_bbox(), expand=1.25) for w in world.values()]
    assert any(np.abs(np.asarray(c) - w.local.box).max() > 0.3 for c, w in zip(centred, world.values()))


def test_render_overwrite_from_another_input_links_the_new_photos(tmp_path):
    """Two worlds share ids (wild_000000...); after `render --overwrite` from the second, the output's
    photos must be the second world's, not links left by the first run."""
    from PIL import Image

    worlds = []
    for seed in (0, 1):
        w = tmp_path / f"world{seed}"
        argv = ["world", "render", "--domain", "wild", "--n", "2", "--size", "64", "--seed", str(seed)]
        assert main([*argv, "--out", str(w)]) == 0
        worlds.append(w)
    out = tmp_path / "maps"
    assert main(["render", "--in", str(worlds[0]), "--out", str(out), "--maps", "seg"]) == 0
    assert main(["render", "--in", str(worlds[1]), "--out", str(out), "--maps", "seg", "--overwrite"]) == 0
    for r in read_dataset(out):
        for rel in (r.file_name, r.local.file_name):
            got, want = (np.asarray(Image.open(root / rel)) for root in (out, worlds[1]))
            assert np.array_equal(got, want), rel
            assert not np.array_equal(got, np.asarray(Image.open(worlds[0] / rel))), rel
