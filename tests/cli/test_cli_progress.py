"""Long loops report progress with rate and ETA also when output is not a terminal."""

from __future__ import annotations

import io
import re

from handsynth.progress import LogProgress, progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_non_tty_stream_gets_periodic_lines_with_rate_and_eta():
    stream = io.StringIO()
    bar = progress(total=4, desc="render", unit="pose", stream=stream, interval=0)
    assert isinstance(bar, LogProgress)
    for _ in range(4):
        bar.update(1)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5  # one per update (interval 0) and a final one
    assert re.fullmatch(
        r"render: 2/4 \(50%\) [\d.e+-]+ pose/s, elapsed \d:\d\d:\d\d, ETA \d:\d\d:\d\d", lines[1]
    )
    assert lines[-1].startswith("render: 4/4 (100%)")


def test_interval_limits_the_lines_and_close_always_reports():
    stream = io.StringIO()
    with progress(range(50), desc="generate", unit="img", stream=stream, interval=3600) as bar:
        assert sum(1 for _ in bar) == 50
    assert stream.getvalue().splitlines() == [stream.getvalue().splitlines()[0]]
    assert stream.getvalue().startswith("generate: 50/50 (100%)")


def test_terminal_gets_a_tqdm_bar_and_disable_silences():
    from tqdm import tqdm

    assert isinstance(progress(total=3, stream=_Tty()), tqdm)
    stream = io.StringIO()
    bar = progress(total=3, stream=stream, disable=True, interval=0)
    bar.update(3)
    bar.close()
    assert stream.getvalue() == ""


def test_render_command_logs_progress_when_piped(tmp_path, monkeypatch, capsys):
    """`handsynth render` under a batch scheduler (stderr not a TTY) still prints its progress."""
    from handsynth.cli import main
    from handsynth.data import write_metadata
    from handsynth.hand import load_hand_model
    from handsynth.hand.priors import SceneConfig, sample_records

    monkeypatch.setenv("HANDSYNTH_PROGRESS_INTERVAL", "0")
    models = {s: load_hand_model("openhand", side=s).eval() for s in ("right", "left")}
    write_metadata(tmp_path / "poses.jsonl", sample_records(2, 0, models, SceneConfig(size=64)))
    argv = ["render", "--in", str(tmp_path / "poses.jsonl"), "--out", str(tmp_path / "ds"), "--maps", "mesh"]
    assert main([*argv, "--no-local"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"render: 2/2 \(100%\) .* pose/s", err) and "ETA" in err


def test_a_resumed_world_render_counts_on_from_what_is_there(tmp_path, capsys, monkeypatch):
    from handsynth.cli import main

    monkeypatch.setenv("HANDSYNTH_PROGRESS_INTERVAL", "3600")  # only the final line
    args = ["world", "render", "--domain", "lab", "--size", "48", "--out", str(tmp_path / "w")]
    assert main([*args, "--n", "2"]) == 0
    capsys.readouterr()
    assert main([*args, "--n", "5"]) == 0
    assert re.search(r"world lab: 5/5 \(100%\)", capsys.readouterr().err)  # not 3/3
