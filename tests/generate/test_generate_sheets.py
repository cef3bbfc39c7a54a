"""The generation contact sheet shows what the method saw: a seg map's labels (0-3) painted, not black."""

from pathlib import Path

import numpy as np
from PIL import Image

from handsynth.data import Sample
from handsynth.generate.sheets import generation_sheet
from handsynth.viz import SEG_PALETTE


def test_seg_condition_is_painted_and_generated_image_is_not(tmp_path: Path) -> None:
    seg = np.zeros((32, 32, 3), np.uint8)
    seg[:, 16:] = 1  # right hand on the right half
    Image.fromarray(seg).save(tmp_path / "seg.png")
    dark = np.full((32, 32, 3), 1, np.uint8)  # a near-black generated image stays near-black
    Image.fromarray(dark).save(tmp_path / "gen.png")
    s = Sample.from_dict(
        {
            "id": "a",
            "width": 32,
            "height": 32,
            "camera": {"K": [[40, 0, 16], [0, 40, 16], [0, 0, 1]]},
            "hands": [],
            "file_name": "gen.png",
            "conditions": {"seg": "seg.png"},
        }
    )
    sheet = np.asarray(generation_sheet(tmp_path, [s], ("seg",)))
    cell = sheet.shape[1] // 2
    row = sheet[16 : 16 + cell]  # below the column titles
    assert (row[cell // 2, cell - 10] == SEG_PALETTE[1]).all()  # hand half of the seg cell
    assert (row[cell // 2, 10] == 0).all()  # background half
    assert row[cell // 2, cell + cell // 2].max() <= 1  # the generated cell is not painted


def test_a_long_column_title_continues_on_a_second_line_and_the_images_move_down() -> None:
    from handsynth.viz import _title_lines, contact_sheet

    assert _title_lines("sesahand_nofusion", 16) == ["sesahand_", "nofusion"]
    assert _title_lines("abcdefghijklmnopqrs", 16) == ["abcdefghijklmnop", "qrs"]  # no break: cut at 16
    assert _title_lines("mesh", 16) == ["mesh"]

    img = np.full((8, 8, 3), 255, np.uint8)
    one = np.asarray(contact_sheet([[img]], ["sesahand_fusion_trunk"], cell=96))
    two = np.asarray(contact_sheet([[img]], ["sesahand_fusion_trunk"], cell=96, title_lines=2))
    assert (one[16:, :] == 255).all(axis=-1).mean() > 0.99 and two.shape[0] == one.shape[0] + 12
    assert two[16:28].max() > 100 and (two[28:] == 255).all()  # "trunk" on line two, then the image
    assert one[2:14].max() > 100 and (one[16:] == 255).all()
