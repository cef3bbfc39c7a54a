"""Training: the loss falls, a resumed run continues the same run, settings and CLI are checked."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from recon_helpers import StandInHand, make_dataset, tiny_config
from safetensors.torch import load_file

from handsynth.cli import main
from handsynth.errors import UserError
from handsynth.recon.checkpoint import list_checkpoints
from handsynth.recon.train import train


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("recon_train")
    return make_dataset(root / "a", 8, seed=0), make_dataset(root / "b", 6, seed=1, sides=("left",))


def _losses(run) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "train_log.jsonl").read_text().splitlines()]


def test_loss_decreases_over_30_steps(data, tmp_path) -> None:
    cfg = tiny_config([str(data[0])], tmp_path / "run", steps=30)
    summary = train(cfg, hand_model=StandInHand(), progress=False)
    losses = _losses(tmp_path / "run")
    assert len(losses) == 30 and summary["step"] == 30
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses
    assert summary["checkpoint"].endswith("step_0000030")


def test_resume_continues_the_same_run(data, tmp_path) -> None:
    """Killing a run after a checkpoint and resuming gives the same weights as running straight through
    (data order and augmentation draws, optimiser and schedule state all restored)."""
    spec = [f"{data[0]}:1.0", f"{data[1]}:0.5"]
    full = tiny_config(
        spec, tmp_path / "full", steps=12, save_every=6, keep_last=5, augment=True, batch_size=4
    )
    train(full, hand_model=StandInHand(), progress=False)
    assert [s for s, _ in list_checkpoints(tmp_path / "full")] == [6, 12]

    crashed = tmp_path / "crashed"
    shutil.copytree(tmp_path / "full", crashed)
    shutil.rmtree(crashed / "checkpoints" / "step_0000012")
    log = (crashed / "train_log.jsonl").read_text().splitlines()
    (crashed / "train_log.jsonl").write_text("\n".join(log[:6]) + "\n")
    cfg = tiny_config(spec, crashed, steps=12, save_every=6, keep_last=5, augment=True, batch_size=4)
    summary = train(cfg, hand_model=StandInHand(), progress=False)

    a = load_file(str(tmp_path / "full" / "checkpoints" / "step_0000012" / "model.safetensors"))
    b = load_file(str(crashed / "checkpoints" / "step_0000012" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7)
    assert _losses(crashed) == pytest.approx(_losses(tmp_path / "full"), rel=1e-6)
    draws = json.loads((crashed / "checkpoints" / "step_0000012" / "state.json").read_text())["draws"]
    assert sum(draws.values()) == 48 == sum(summary["draws"])  # counts carried across the resume
    again = train(cfg, hand_model=StandInHand(), progress=False)  # already finished: nothing to do
    assert again["step"] == 12


def test_a_checkpoint_is_also_saved_when_its_minutes_have_passed(data, tmp_path, monkeypatch) -> None:
    """--save-every-minutes: a clock that moves 4 minutes per reading (one per step, one per restart)
    passes 10 minutes at step 3; --save-every 100 alone saves only the last step, as 0 minutes does."""
    from handsynth import save_clock

    now = [0.0]

    def clock() -> float:
        now[0] += 240.0
        return now[0]

    monkeypatch.setattr(save_clock.time, "monotonic", clock)
    cfg = tiny_config([str(data[0])], tmp_path / "run", steps=6, save_every=100, keep_last=5)
    cfg.save_every_minutes = 10
    train(cfg, hand_model=StandInHand(), progress=False)
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [3, 6]
    cfg = tiny_config([str(data[0])], tmp_path / "off", steps=6, save_every=100, keep_last=5)
    cfg.save_every_minutes = 0
    train(cfg, hand_model=StandInHand(), progress=False)
    assert [s for s, _ in list_checkpoints(tmp_path / "off")] == [6]


def test_a_run_killed_before_its_first_checkpoint_logs_each_step_once(data, tmp_path) -> None:
    """Killed at step 3 with no checkpoint yet, a run leaves its settings and three log lines (the last
    one torn); the rerun starts at step 0 and its log holds each step once, as a straight run's does."""
    full = tmp_path / "full"
    train(tiny_config([str(data[0])], full, steps=6, save_every=6), hand_model=StandInHand(), progress=False)
    killed = tmp_path / "killed"
    killed.mkdir()
    shutil.copy(full / "train_config.json", killed / "train_config.json")
    log = (full / "train_log.jsonl").read_text().splitlines()
    (killed / "train_log.jsonl").write_text("\n".join(log[:2]) + "\n" + log[2][:20])
    cfg = tiny_config([str(data[0])], killed, steps=6, save_every=6)
    train(cfg, hand_model=StandInHand(), progress=False)
    assert _losses(killed) == pytest.approx(_losses(full), rel=1e-6)


def test_resume_refuses_changed_settings(data, tmp_path) -> None:
    train(tiny_config([str(data[0])], tmp_path / "r", steps=2), hand_model=StandInHand(), progress=False)
    with pytest.raises(UserError, match="lr"):
        train(tiny_config([str(data[0])], tmp_path / "r", steps=4, lr=1e-2), hand_model=StandInHand())
    s = train(
        tiny_config([str(data[0])], tmp_path / "r", steps=3, lr=1e-2),
        hand_model=StandInHand(),
        overwrite=True,
        progress=False,
    )
    assert s["step"] == 3 and len(_losses(tmp_path / "r")) == 3


def test_cli_train_mixes_datasets_and_reads_yaml(data, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("handsynth.recon.train.load_hand_model_for", lambda cfg: StandInHand())
    (tmp_path / "cfg.yaml").write_text(
        "steps: 5\nbatch_size: 8\nnum_workers: 0\naugment: false\nmodel: {width: 0.125, img_size: 48, hidden: 32}\n"
    )
    out = tmp_path / "cli"
    argv = ["recon", "train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(out), "--log-every", "5"]
    argv += ["--in", f"{data[0]}:3", "--in", f"{data[1]}:1", "--lr", "1e-3", "--loss-params", "0"]
    assert main(argv) == 0
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["steps"] == 5 and saved["lr"] == 1e-3 and saved["loss"]["params"] == 0
    assert saved["model"]["img_size"] == 48
    draws = json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])["draws"]
    assert sum(draws.values()) == 40 and draws[str(data[0])] > draws[str(data[1])]
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 5
    assert main(["recon", "train", "--out", str(tmp_path / "x"), "--steps", "1"]) == 2  # no --in
    assert "--in" in capsys.readouterr().err


def test_init_starts_from_exactly_the_source_runs_weights(data, tmp_path, monkeypatch, capsys) -> None:
    """``--init RUN`` (fine-tuning): the network's step-0 predictions are the source run's, the CLI
    run then trains from there (lr 0: every parameter stays the source's); a fresh seed would not."""
    from handsynth.recon.predict import ReconEstimator
    from handsynth.recon.train import build_model, init_weights

    src = tmp_path / "src"
    train(tiny_config([str(data[0])], src, steps=3), hand_model=StandInHand(), progress=False)
    cfg = tiny_config([str(data[1])], tmp_path / "ft", steps=2, seed=5, init=str(src))
    model = build_model(cfg, StandInHand(), init_weights(cfg)).eval()
    source = ReconEstimator.from_checkpoint(src, hand_model=StandInHand()).model
    fresh = build_model(tiny_config([str(data[1])], tmp_path / "x", seed=5), StandInHand(), None).eval()
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b, c = model(images), source(images), fresh(images)
    for k in ("joints", "verts", "cam"):
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(a["joints"], c["joints"])

    monkeypatch.setattr("handsynth.recon.train.load_hand_model_for", lambda cfg: StandInHand())
    (tmp_path / "cfg.yaml").write_text(
        "batch_size: 4\nnum_workers: 0\naugment: false\nwarmup: 0\nmodel: {width: 0.125, img_size: 64, hidden: 64}\n"
    )
    argv = ["recon", "train", "--config", str(tmp_path / "cfg.yaml"), "--in", str(data[1]), "--steps", "1"]
    assert main([*argv, "--out", str(tmp_path / "ft"), "--init", str(src), "--lr", "0"]) == 0
    assert json.loads((tmp_path / "ft" / "train_config.json").read_text())["init"] == str(src)
    tuned = ReconEstimator.from_checkpoint(tmp_path / "ft", hand_model=StandInHand()).model
    for (name, p), q in zip(tuned.net.named_parameters(), source.net.parameters()):
        assert torch.equal(p, q), name

    # Not a recon run, or a different network: one sentence, exit 2, nothing written.
    (tmp_path / "notrun").mkdir()
    for init, extra, match in (
        (tmp_path / "notrun", [], "is not a reconstruction run"),
        (src, ["--hidden", "32"], "other model settings (hidden=64 there, 32 here)"),
    ):
        capsys.readouterr()
        assert main([*argv, "--out", str(tmp_path / "bad"), "--init", str(init), *extra]) == 2
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "bad").exists()
