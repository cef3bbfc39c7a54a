"""Silent wrong values and tracebacks from inputs: unseeable hands, stale labels, long captions, bad PNGs."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hostile_helpers import generate_argv, record, refused, write_folder
from PIL import Image

from handsynth.data import read_dataset
from handsynth.text.caption_run import caption_dataset


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG claiming ``width`` x ``height`` pixels: a decompression bomb as far as a reader knows."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


BAD_PNGS = {
    "empty": b"",
    "corrupt": b"\x89PNG\r\n\x1a\n" + b"garbage" * 10,
    "bomb": _png_header_only(100_000, 100_000),
}


def test_hand_behind_the_camera_is_refused(tmp_path, capsys):
    bad = record(1)
    bad["hands"][0]["joints_3d"] = [[0.0, 0.0, -0.5]] * 21
    folder = write_folder(tmp_path / "d", [record(0), bad])
    refused(
        ["prompts", "--in", folder],
        capsys,
        "r001",
        "hands[0].joints_3d",
        "behind the camera",
        unchanged=(folder,),
    )


def test_hand_outside_the_image_is_refused(tmp_path, capsys):
    bad = record(1)
    bad["hands"][0]["bbox"] = [500.0, 10.0, 20.0, 20.0]
    folder = write_folder(tmp_path / "d", [bad])
    refused(["prompts", "--in", folder], capsys, "r001", "hands[0].bbox", "outside", unchanged=(folder,))


def test_parameters_disagreeing_with_joints_are_refused_by_render(tmp_path, capsys):
    # The helper's joints_3d are a straight line, not what the OpenHand parameters pose.
    poses = write_folder(tmp_path / "poses", [record(0)], images=False)
    out = tmp_path / "out"
    refused(
        ["render", "--in", poses, "--out", out, "--maps", "mesh"],
        capsys,
        "record r000",
        "joints_3d",
        unchanged=(poses,),
    )
    assert not (out / "metadata.jsonl").exists() or not read_dataset(out)


class LongCaptioner:
    """A captioning back-end that answers like a chatty VLM (hundreds of tokens)."""

    name, model = "fake", "chatty"

    def caption(self, batch, images, question):
        assert all(im is not None for im in images)
        return ["a person holding a red cup with the right hand, " + "fingers curled around it, " * 40] * len(
            batch
        )


def test_captions_are_cut_to_the_text_encoder_context(tmp_path):
    folder = write_folder(tmp_path / "d", [record(0), record(1)])
    rep = caption_dataset(folder, LongCaptioner(), batch_size=2)
    assert rep.captioned == 2
    from handsynth.text.caption_run import PromptFitter

    fitter = PromptFitter()
    for s in read_dataset(folder):
        assert fitter.count(s.prompt) <= 77
        assert s.prompt.startswith("a person holding a red cup")
        assert not s.prompt.endswith(",")
        cut = s.source["caption"]["prompt_truncated"]
        assert cut["tokens"] > 200 and cut["kept"] == s.prompt


@pytest.mark.parametrize("kind", sorted(BAD_PNGS))
def test_caption_batch_with_one_bad_image_saves_the_others(tmp_path, kind):
    folder = write_folder(tmp_path / "d", [record(0), record(1), record(2)])
    (folder / "images" / "r001.png").write_bytes(BAD_PNGS[kind])
    rep = caption_dataset(folder, LongCaptioner(), batch_size=3)
    assert rep.captioned == 2 and rep.failed == ["r001"]
    prompts = {s.id: s.prompt for s in read_dataset(folder)}
    assert prompts["r000"] and prompts["r002"] and not prompts["r001"]


def _with_mesh(folder: Path, ids: list[int]) -> list[dict]:
    recs = [record(i, conditions={"mesh": f"conditions/mesh/r{i:03d}.png"}) for i in ids]
    write_folder(folder, recs)
    (folder / "conditions" / "mesh").mkdir(parents=True)
    for i in ids:
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(
            folder / "conditions" / "mesh" / f"r{i:03d}.png"
        )
    return recs


@pytest.mark.parametrize("kind", sorted(BAD_PNGS))
def test_generate_names_a_bad_condition_png_before_loading_a_model(tmp_path, capsys, kind):
    folder = tmp_path / "maps"
    _with_mesh(folder, [0, 1])
    (folder / "conditions" / "mesh" / "r001.png").write_bytes(BAD_PNGS[kind])
    out = tmp_path / "out"
    refused(
        generate_argv(folder, out),
        capsys,
        "record r001",
        "r001.png",
        unchanged=(folder,),
    )
    assert not out.exists()


def test_a_fitting_caption_is_kept_as_is():
    from handsynth.text.caption_run import PromptFitter

    assert PromptFitter().fit("a hand") == ("a hand", None)


def test_generate_on_bare_poses_refuses_stale_labels_before_writing(tmp_path, capsys):
    poses = write_folder(tmp_path / "poses", [record(0)], images=False)
    out = tmp_path / "out"
    model = Path(__file__).resolve().parents[2] / "src" / "handsynth" / "assets" / "default"
    argv = ["generate", "--method", "attentionhand", "--checkpoint", model / "attentionhand"]
    argv += ["--base-model", model / "base", "--in", poses, "--out", out]  # the embedded default model
    refused(argv, capsys, "record r000", "joints_3d", unchanged=(poses,))
    assert not out.exists()
