"""User-study kit: trials, answer mapping, SQLite report, and a real headless Chromium answering the page."""

from __future__ import annotations

import json
import shutil
import sqlite3
import urllib.request
from pathlib import Path

import pytest
from evalfixtures import make_dataset

from handsynth.cli import main
from handsynth.errors import UserError
from handsynth.eval.study.server import StudyApp, serve_in_thread
from handsynth.eval.study.store import preference
from handsynth.eval.study.trials import QUESTIONS, build_trials, permutation

EVIL = 'Hand <script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> & "waving"'


@pytest.fixture
def method_dirs(tmp_path: Path) -> list[Path]:
    return [
        make_dataset(tmp_path / name, 3, seed=i, shift=20.0 * i, prompt=EVIL, mesh=True)
        for i, name in enumerate(["attentionhand", "controlnet", "sd"])
    ]


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_trials_permutation_and_api(method_dirs, tmp_path):
    trials = build_trials(method_dirs)
    assert [t.id for t in trials] == ["s0000", "s0001", "s0002"]
    assert [m for m, _ in trials[0].candidates] == ["attentionhand", "controlnet", "sd"]
    assert trials[0].mesh is not None and trials[0].prompt == EVIL
    perms = {tuple(permutation(5, 0, f"p{i}", "t")) for i in range(30)}
    assert len(perms) > 5 and all(sorted(p) == list(range(5)) for p in perms)
    with pytest.raises(UserError, match="at least two"):
        build_trials(method_dirs[:1])

    db = tmp_path / "study.sqlite"
    app = StudyApp(trials, db, seed=3, title="<b>t</b>")
    server, url = serve_in_thread(app)
    try:
        page = urllib.request.urlopen(url + "/").read().decode()
        assert "&lt;b&gt;t&lt;/b&gt;" in page and "<b>t</b>" not in page
        data = json.loads(urllib.request.urlopen(url + "/api/trials?participant=alice").read())
        assert data["trials"][0]["prompt"] == EVIL and len(data["questions"]) == 3
        assert "attentionhand" not in json.dumps(data)  # methods are never sent to the page
        # Each displayed position serves the image of the method the permutation puts there.
        perm = permutation(3, 3, "alice", "s0000")
        for pos in range(3):
            got = urllib.request.urlopen(url + data["trials"][0]["images"][pos]).read()
            assert got == trials[0].candidates[perm[pos]][1].read_bytes()
        # Alice picks, for every question, the position showing "sd"; the store maps it back.
        pos_sd = perm.index(2)
        code, _ = _post(
            url + "/api/answer",
            {
                "participant": "alice",
                "trial": 0,
                "answers": dict.fromkeys(("alignment", "text", "quality"), pos_sd),
            },
        )
        assert code == 200
        code, err = _post(
            url + "/api/answer", {"participant": "alice", "trial": 0, "answers": {"alignment": 9}}
        )
        assert code == 400 and "answers" in err["error"]
        code, _ = _post(url + "/api/answer", {"participant": "bob", "trial": 7, "answers": {}})
        assert code == 400
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url + "/img/0/../../etc")
    finally:
        server.shutdown()
        server.server_close()
    rep = preference(db)
    assert rep["percent"]["alignment"] == {"sd": 100.0}
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_study_report_cli(method_dirs, tmp_path, capsys):
    trials = build_trials(method_dirs)
    db = tmp_path / "s.sqlite"
    app = StudyApp(trials, db)
    # Two participants: alice prefers controlnet on everything; bob picks attentionhand for quality only.
    for participant, choice in (("alice", {"alignment": 1, "text": 1, "quality": 1}),
                                ("bob", {"alignment": 1, "text": 1, "quality": 0})):  # fmt: skip
        for i, t in enumerate(trials):
            perm = permutation(3, 0, participant, t.id)
            assert app.record({"participant": participant, "trial": i,
                               "answers": {q: perm.index(c) for q, c in choice.items()}}) is None  # fmt: skip
    assert main(["study", "report", "--db", str(db), "--out", str(tmp_path / "rep")]) == 0
    rep = json.loads((tmp_path / "rep/study_report.json").read_text())
    assert rep["participants"] == 2
    assert rep["percent"]["alignment"]["controlnet"] == pytest.approx(100.0)
    assert rep["percent"]["quality"] == pytest.approx({"attentionhand": 50.0, "controlnet": 50.0})
    assert rep["average"]["controlnet"] == pytest.approx(100 * (1 + 1 + 0.5) / 3)
    assert "controlnet" in capsys.readouterr().out


CHROMIUM, CHROMEDRIVER = (
    shutil.which("chromium") or "/usr/bin/chromium",
    shutil.which("chromedriver") or "/usr/bin/chromedriver",
)


@pytest.mark.browser
@pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                    reason="Debian chromium + chromedriver not installed (apt-get install chromium chromium-driver)")  # fmt: skip
def test_browser_answers_the_page(method_dirs, tmp_path):
    selenium = pytest.importorskip("selenium")
    from selenium.webdriver import Chrome, ChromeOptions
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert selenium
    trials = build_trials(method_dirs)
    db = tmp_path / "b.sqlite"
    server, url = serve_in_thread(StudyApp(trials, db, seed=1))
    opts = ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={tmp_path / 'profile'}"):  # fmt: skip
        opts.add_argument(flag)
    driver = Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(url + "/?participant=carol")
        wait = WebDriverWait(driver, 20)
        wait.until(lambda d: d.find_element(By.ID, "prompt").text != "")
        # The prompt is shown as text, its markup never runs.
        assert driver.find_element(By.ID, "prompt").text == f'"{EVIL}"'
        assert driver.execute_script("return window.__pwned === undefined")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#images img")) == 4  # mesh + 3 candidates
        # The browser really decoded the served images.
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('#images img')].every(i => i.complete && i.naturalWidth === 48)"))  # fmt: skip
        # Submitting with a question unanswered is refused on the page.
        driver.find_element(By.ID, "submit").click()
        assert "all three" in driver.find_element(By.ID, "status").text
        expected = {}
        for i, t in enumerate(trials):
            wait.until(lambda d, i=i: d.find_element(By.ID, "progress").text.startswith(f"Trial {i + 1} "))
            perm = permutation(3, 1, "carol", t.id)
            # Choose position 0 for alignment, 1 for text, 2 for quality.
            for q, pos in zip(("alignment", "text", "quality"), (0, 1, 2)):
                driver.find_element(By.CSS_SELECTOR, f'input[name="{q}"][value="{pos}"]').click()
                expected[(t.id, q)] = t.candidates[perm[pos]][0]
            driver.find_element(By.ID, "submit").click()
        wait.until(lambda d: d.find_element(By.ID, "finished").is_displayed())
        assert driver.execute_script("return window.__pwned === undefined")
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
    rows = sqlite3.connect(db).execute("SELECT trial, question, method, participant FROM answers").fetchall()
    assert len(rows) == 3 * len(QUESTIONS)
    assert {(t, q): m for t, q, m, _ in rows} == expected
    assert {p for *_, p in rows} == {"carol"}


def test_report_on_a_file_that_is_not_a_study_database_is_one_sentence(tmp_path, capsys):
    notdb = tmp_path / "poses.jsonl"
    notdb.write_text('{"id": "a"}\n' * 50)
    assert main(["study", "report", "--db", str(notdb), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert f"--db {notdb} is not a study database" in err and "Traceback" not in err


def test_a_folder_without_images_is_named_instead_of_no_common_ids(tmp_path):
    from handsynth.eval.study.trials import build_trials

    gen = make_dataset(tmp_path / "gen", 2, seed=0)
    poses = tmp_path / "poses.jsonl"
    assert main(["poses", "sample", "--n", "2", "--out", str(poses)]) == 0
    with pytest.raises(UserError, match=f"--dirs {poses}: its records have no image"):
        build_trials([gen, poses])
