"""Study configs (`handsynth study serve --config`): SesaHand's three questions reach the page, the
answers and the report; a bad config is one clear error."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from evalfixtures import make_dataset

from handsynth.cli import main
from handsynth.errors import UserError
from handsynth.eval.study.server import StudyApp, serve_in_thread
from handsynth.eval.study.store import preference
from handsynth.eval.study.trials import build_trials, load_study_config, permutation

SESAHAND = Path(__file__).resolve().parents[2] / "configs" / "study_sesahand.yaml"


@pytest.fixture
def method_dirs(tmp_path: Path) -> list[Path]:
    return [
        make_dataset(tmp_path / name, 2, seed=i, shift=20.0 * i, prompt="a waving hand", mesh=True)
        for i, name in enumerate(["sesahand", "attentionhand"])
    ]


def test_sesahand_config_asks_text_hand_and_quality(method_dirs, tmp_path):
    study = load_study_config(SESAHAND)
    assert [k for k, _ in study.questions] == ["text", "hand", "quality"]
    assert "text" in study.questions[0][1] and "hand" in study.questions[1][1]
    trials = build_trials(method_dirs)
    db = tmp_path / "s.sqlite"
    app = StudyApp(trials, db, title=study.title, questions=study.questions)
    server, url = serve_in_thread(app)
    try:
        data = json.loads(urllib.request.urlopen(url + "/api/trials?participant=ann").read())
    finally:
        server.shutdown()
        server.server_close()
    assert [q["key"] for q in data["questions"]] == ["text", "hand", "quality"]
    assert data["title"] == "SesaHand user study"
    perm = permutation(2, 0, "ann", trials[0].id)
    picks = {"text": perm.index(0), "hand": perm.index(0), "quality": perm.index(1)}
    assert app.record({"participant": "ann", "trial": 0, "answers": picks}) is None
    # AttentionHand's question keys are not this study's.
    bad = {"participant": "ann", "trial": 1, "answers": {"alignment": 0, "text": 0, "quality": 0}}
    assert "hand" in app.record(bad)
    rep = preference(db)
    assert rep["percent"]["hand"]["sesahand"] == 100.0 and rep["percent"]["quality"]["attentionhand"] == 100.0


def test_serve_reads_the_config_before_listening(method_dirs, tmp_path, monkeypatch, capsys):
    import handsynth.eval.study.server as server_mod

    seen = {}

    class Stop:
        server_address = ("127.0.0.1", 1)

        def serve_forever(self):
            raise KeyboardInterrupt

        def server_close(self):
            pass

    def fake_make_server(app, host, port):
        seen["app"] = app
        return Stop()

    monkeypatch.setattr(server_mod, "make_server", fake_make_server)
    dirs = [str(d) for d in method_dirs]
    argv = ["study", "serve", "--dirs", *dirs, "--db", str(tmp_path / "a.sqlite"), "--config", str(SESAHAND)]
    assert main(argv) == 0
    assert [k for k, _ in seen["app"].questions] == ["text", "hand", "quality"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("questions:\n  - key: text\n")
    assert main([*argv[:-1], str(bad)]) == 2
    assert "questions[0]" in capsys.readouterr().err


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_study_config(tmp_path / "missing.yaml")
    dup = tmp_path / "dup.yaml"
    dup.write_text("questions:\n  - {key: a, text: x}\n  - {key: a, text: y}\n")
    with pytest.raises(UserError, match="distinct"):
        load_study_config(dup)
