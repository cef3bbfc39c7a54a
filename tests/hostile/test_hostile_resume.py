"""Resume leaves no debris: orphan temporary files are swept, training logs hold each step once."""

from __future__ import annotations

import json

from hostile_helpers import posed_record, run_cli, write_folder


def test_render_resume_sweeps_orphan_temp_files(tmp_path, capsys):
    poses = write_folder(tmp_path / "poses", [posed_record(0), posed_record(1)], images=False)
    out = tmp_path / "out"
    argv = ["render", "--in", poses, "--out", out, "--maps", "mesh", "--size", "64"]
    assert run_cli(argv, capsys)[0] == 0
    orphans = [out / "conditions" / "mesh" / ".r001.png.abc123.tmp", out / ".metadata.jsonl.x.tmp"]
    for p in orphans:
        p.write_bytes(b"half a file")
    assert run_cli(argv, capsys)[0] == 0
    assert not any(p.exists() for p in orphans)
    assert (out / "conditions" / "mesh" / "r001.png").is_file()


def test_train_log_is_cut_to_the_checkpoint_step(tmp_path):
    from handsynth.data.folder import truncate_step_log

    log = tmp_path / "train_log.jsonl"
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in (10, 20, 30, 40)]
    log.write_text("\n".join(lines) + '\n{"step": 5')  # steps after the checkpoint + a torn line
    assert truncate_step_log(log, 20) == 3
    assert [json.loads(x)["step"] for x in log.read_text().splitlines()] == [10, 20]
    assert truncate_step_log(log, 20) == 0  # nothing more to cut


def test_recon_resume_logs_each_step_once(tmp_path, capsys):
    """Kill after logging, before checkpointing: the resumed run must not log those steps twice."""
    data = tmp_path / "toy"
    assert run_cli(["recon", "toy-data", "--out", data, "--n", "8", "--size", "32"], capsys)[0] == 0
    run = tmp_path / "run"
    base = ["recon", "train", "--in", data, "--out", run, "--batch-size", "4", "--num-workers", "0"]
    base += ["--log-every", "1", "--save-every", "2", "--warmup", "0"]
    assert run_cli([*base, "--steps", "2"], capsys)[0] == 0
    log = run / "train_log.jsonl"
    # What a kill between logging step 3 and checkpointing it leaves:
    log.write_text(log.read_text() + json.dumps({"step": 3, "loss": 0.5}) + "\n")
    assert run_cli([*base, "--steps", "4"], capsys)[0] == 0
    steps = [json.loads(x)["step"] for x in log.read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 4


def test_attentionhand_resume_logs_each_step_once(tmp_path, capsys):
    from pathlib import Path

    from handsynth.methods.synthetic import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "data", n=4, size=64)
    tiny = Path(__file__).resolve().parents[2] / "configs" / "attentionhand_tiny.yaml"
    run = tmp_path / "run"
    base = ["train", "--config", tiny, "--in", data, "--out", run]
    for s in ("model.resolution=64", "train.validate_every=0", "train.checkpoint_every=2"):
        base += ["--set", s]
    assert run_cli([*base, "--max-steps", "2"], capsys)[0] == 0
    log = run / "train_log.jsonl"
    log.write_text(log.read_text() + json.dumps({"step": 3, "loss": 0.5}) + "\n")  # logged, never saved
    rc, _, err = run_cli([*base, "--max-steps", "4"], capsys)
    assert rc == 0, err
    steps = [json.loads(x)["step"] for x in log.read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
