"""Cross-distribution sampling (Eq. 6): weights equal a plain reference computation; draws follow them."""

from __future__ import annotations

import numpy as np
import pytest
from posefixtures import pose_record, read_jsonl, write_jsonl
from scipy.spatial.transform import Rotation

from handsynth.cli import main
from handsynth.errors import UserError
from handsynth.poses.cross import cross_weights, draw


def _reference(syn: np.ndarray, real: np.ndarray, floor: float = 0.0) -> np.ndarray:
    sums = np.array([sum(1 - s @ r / (np.linalg.norm(s) * np.linalg.norm(r)) for r in real) for s in syn])
    m = (sums - sums.min()) / (sums.max() - sums.min()) + floor
    return m / m.sum()


@pytest.mark.parametrize("floor", [0.0, 0.05])
def test_weights_equal_the_reference(floor):
    rng = np.random.default_rng(0)
    syn, real = rng.normal(size=(300, 67)), rng.normal(size=(40, 67))
    w = cross_weights(syn, real, floor=floor)
    np.testing.assert_allclose(w, _reference(syn, real, floor), rtol=1e-10, atol=1e-15)
    assert (w == 0).sum() == (1 if floor == 0 else 0)  # min-max: the most real-like pose is never drawn


def test_draws_follow_the_weights_and_respect_replacement():
    w = np.array([0.0, 0.1, 0.2, 0.7])
    counts = np.bincount(draw(w, 20000, seed=1), minlength=4) / 20000
    np.testing.assert_allclose(counts, w, atol=0.02)
    assert sorted(draw(w, 3, seed=1, replace=False)) == [1, 2, 3]
    with pytest.raises(UserError, match="--n 4 exceeds the 3"):
        draw(w, 4, seed=1, replace=False)


def _poses(name: str, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        pose_record(
            f"{name}{seed}-{i}",
            Rotation.random(random_state=seed * 100 + i).as_matrix(),
            name=name,
            hand_pose=rng.normal(size=45),
        )
        for i in range(n)
    ]


def test_cli_draws_n_per_object_and_names_missing_real_objects(tmp_path, capsys):
    syn = write_jsonl(tmp_path / "s.jsonl", _poses("cup", 20, 1) + _poses("box", 10, 2))
    real = write_jsonl(tmp_path / "r.jsonl", _poses("cup", 5, 3) + _poses("box", 5, 4))
    out = tmp_path / "out"
    args = [
        "poses",
        "cross-sample",
        "--synthetic",
        str(syn),
        "--real",
        str(real),
        "--n",
        "8",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    got = read_jsonl(out / "metadata.jsonl")
    assert len(got) == 16 and len({r["id"] for r in got}) == 16
    assert got[0]["source"]["handbooster"]["cross_sample"]["replace"] is True
    assert main(args) == 0 and len(read_jsonl(out / "metadata.jsonl")) == 16  # resumed: nothing twice
    only_cup = write_jsonl(tmp_path / "r2.jsonl", _poses("cup", 5, 3))
    args2 = [
        "poses",
        "cross-sample",
        "--synthetic",
        str(syn),
        "--real",
        str(only_cup),
        "--n",
        "2",
        "--out",
        str(tmp_path / "o2"),
    ]
    assert main(args2) == 2
    assert "no pose of object 'box'" in capsys.readouterr().err


def test_reports_are_written(tmp_path):
    from PIL import Image

    syn = write_jsonl(tmp_path / "s.jsonl", _poses("cup", 30, 1))
    real = write_jsonl(tmp_path / "r.jsonl", _poses("cup", 5, 3))
    png = tmp_path / "cross.png"
    args = ["poses", "cross-sample", "--synthetic", str(syn), "--real", str(real), "--n", "50"]
    assert main([*args, "--out", str(tmp_path / "o"), "--report", str(png)]) == 0
    png2 = tmp_path / "fps.png"
    assert (
        main(
            [
                "poses",
                "fps",
                "--in",
                str(syn),
                "--per-object",
                "6",
                "--out",
                str(tmp_path / "f"),
                "--report",
                str(png2),
            ]
        )
        == 0
    )
    assert Image.open(png).size[0] > 100 and Image.open(png2).size == (350, 200)
