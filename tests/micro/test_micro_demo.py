"""``handsynth demo`` with the embedded default model: a labelled dataset, a sheet, an evaluation, a report."""

from __future__ import annotations

import numpy as np
import pytest

from handsynth.errors import UserError


def test_demo_generates_a_labelled_dataset_with_the_default_model(tmp_path):
    from handsynth.data import read_dataset
    from handsynth.demo import run_demo
    from handsynth.micro import default_model

    try:
        default_model()
    except UserError:
        pytest.skip("no default model embedded in this checkout")
    paths = run_demo(tmp_path / "demo", n=3, steps=2, reference=3, batch_size=4)
    records = read_dataset(paths["dataset"])
    poses = {s.id: s for s in read_dataset(tmp_path / "demo" / "poses.jsonl")}
    assert len(records) == 3 and paths["contact_sheet"].exists()
    for r in records:
        src = poses[r.source["input_id"]]
        np.testing.assert_allclose(r.hands[0].joints_3d, src.hands[0].joints_3d)  # labels are the poses'
        assert (paths["dataset"] / r.file_name).exists() and r.width == 64
    text = paths["report"].read_text()
    assert "Quick evaluation" in text and "Hand Conf." in text
    assert (paths["evaluation"] / "metrics.json").exists()


def test_demo_refuses_a_missing_checkpoint_before_writing(tmp_path):
    from handsynth.demo import run_demo

    with pytest.raises(UserError, match="does not exist"):
        run_demo(tmp_path / "demo", checkpoint=str(tmp_path / "nope"))
    assert not (tmp_path / "demo").exists()


def test_demo_samples_at_the_scale_the_embedded_model_was_benchmarked_at(tmp_path, monkeypatch):
    """The micro modules follow the mesh only with scaled-up residuals (docs/micro.md, guidance probe):
    the demo reads that scale from the embedded model's info.json; an explicit one wins."""
    import json

    import handsynth.micro.assets as assets
    from handsynth.demo import run_demo

    try:
        real = assets.default_model()
    except UserError:
        pytest.skip("no default model embedded in this checkout")
    info = {**real.info, "generate": {**real.info.get("generate", {}), "conditioning_scale": 2.5}}

    class Scaled(type(real)):
        info = property(lambda self: info)

    monkeypatch.setattr(assets, "default_model", lambda: Scaled(real.root, real.base, real.checkpoint))
    paths = run_demo(tmp_path / "a", n=1, steps=1, reference=0, batch_size=1)
    run = json.loads((paths["dataset"] / "handsynth_run.json").read_text())
    assert run["conditioning_scale"] == 2.5 and "conditioning scale 2.5" in paths["report"].read_text()
    paths = run_demo(tmp_path / "b", n=1, steps=1, reference=0, batch_size=1, conditioning_scale=1.0)
    assert json.loads((paths["dataset"] / "handsynth_run.json").read_text())["conditioning_scale"] == 1.0
