"""Answers of the user study in SQLite (WAL), and the preference percentages computed from them."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from handsynth.errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    participant TEXT NOT NULL,
    trial TEXT NOT NULL,
    question TEXT NOT NULL,
    method TEXT NOT NULL,
    position INTEGER NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (participant, trial, question)
);
"""


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection with WAL journaling (many readers, one writer, crash-safe)."""
    con = sqlite3.connect(str(path), timeout=30)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA busy_timeout=30000")
        con.executescript(SCHEMA)
    except sqlite3.DatabaseError as err:
        con.close()
        raise UserError(
            f"--db {path} is not a study database written by `handsynth study serve` ({err})"
        ) from None
    return con


def save_answers(path: str | Path, participant: str, trial: str, choices: dict[str, tuple[str, int]]) -> None:
    """Store one trial's answers ({question: (method, position)}); a resubmission replaces them."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    con = connect(path)
    try:
        with con:
            con.executemany(
                "INSERT OR REPLACE INTO answers (participant, trial, question, method, position, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(participant, trial, q, m, pos, now) for q, (m, pos) in choices.items()],
            )
    finally:
        con.close()


def answered_trials(path: str | Path, participant: str) -> set[str]:
    con = connect(path)
    try:
        return {
            r[0]
            for r in con.execute("SELECT DISTINCT trial FROM answers WHERE participant = ?", (participant,))
        }
    finally:
        con.close()


def preference(path: str | Path) -> dict:
    """Per question and on average: the percentage of answers choosing each method."""
    con = connect(path)
    try:
        rows = con.execute(
            "SELECT question, method, COUNT(*) FROM answers GROUP BY question, method"
        ).fetchall()
        n_part = con.execute("SELECT COUNT(DISTINCT participant) FROM answers").fetchone()[0]
    finally:
        con.close()
    counts: dict[str, dict[str, int]] = {}
    methods: set[str] = set()
    for q, m, c in rows:
        counts.setdefault(q, {})[m] = c
        methods.add(m)
    pct = {q: {m: 100.0 * c.get(m, 0) / sum(c.values()) for m in sorted(methods)} for q, c in counts.items()}
    average = {m: sum(p[m] for p in pct.values()) / len(pct) for m in sorted(methods)} if pct else {}
    return {"participants": n_part, "counts": counts, "percent": pct, "average": average}
