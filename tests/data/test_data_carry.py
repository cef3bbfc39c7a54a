"""carry_files: the photos a record names stay readable from the output folder (linked)."""

from __future__ import annotations

from handsynth.data.carry import carry_files
from handsynth.data.records import Sample


def _sample() -> Sample:
    return Sample(
        id="a", width=8, height=8, K=[[8.0, 0, 4], [0, 8.0, 4], [0, 0, 1]], hands=[], file_name="images/a.png"
    )


def test_a_link_to_the_file_already_at_the_output_path_leaves_that_file_alone(tmp_path):
    """The input links its photo into the output folder (e.g. `filter --in rendered --out photos
    --overwrite`, where `rendered` linked `photos`' files): replacing the file by a link to itself made
    a link loop and lost the photo."""
    out, inp = tmp_path / "photos", tmp_path / "rendered"
    (out / "images").mkdir(parents=True)
    (out / "images" / "a.png").write_bytes(b"photo")
    (inp / "images").mkdir(parents=True)
    (inp / "images" / "a.png").symlink_to(out / "images" / "a.png")
    assert carry_files(_sample(), inp, out) == {}
    assert (out / "images" / "a.png").read_bytes() == b"photo"


def test_a_file_of_another_input_is_replaced_by_a_link_to_this_one(tmp_path):
    out, inp = tmp_path / "out", tmp_path / "in"
    for folder, data in ((out, b"old"), (inp, b"new")):
        (folder / "images").mkdir(parents=True)
        (folder / "images" / "a.png").write_bytes(data)
    carry_files(_sample(), inp, out)
    assert (out / "images" / "a.png").is_symlink() and (out / "images" / "a.png").read_bytes() == b"new"
