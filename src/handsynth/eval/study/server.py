"""The study's local web server (stdlib ``http.server``): one page, a JSON API, images, SQLite answers.

Routes: ``GET /`` the page; ``GET /api/trials?participant=P`` the trials in P's candidate order (no
method names); ``GET /img/<trial>/mesh`` and ``/img/<trial>/<position>?participant=P`` images;
``POST /api/answer`` one trial's three answers. Only files of the trials are served. Prompts reach
the page as JSON and are inserted with ``textContent``; the one server-side substitution (the title)
is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import logging
import mimetypes
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from handsynth.eval.study.store import answered_trials, connect, save_answers
from handsynth.eval.study.trials import QUESTIONS, Trial, permutation

log = logging.getLogger(__name__)
MAX_BODY = 16_384
SOCKET_TIMEOUT_S = 10.0  # a client that stops sending mid-request frees its thread after this


def is_inside(path: Path, roots: list[Path]) -> bool:
    """Whether ``path`` may be served: under one of ``roots`` by the record dataset rules (a symlink
    leaving its folder only to an image, as ``handsynth prepare`` links them)."""
    from handsynth.data.folder import Confinement

    for root in roots:
        # A symlinked file is judged by where it sits (its folder resolved), not by its target.
        where = path.parent.resolve() / path.name if path.is_symlink() else path.resolve()
        try:
            rel = where.relative_to(root)
        except ValueError:
            continue
        if Confinement(root).where(rel.as_posix()) is None:
            return True
    return False


class StudyApp:
    """State shared by the request handlers."""

    def __init__(
        self,
        trials: list[Trial],
        db: str | Path,
        seed: int = 0,
        title: str = "Hand image study",
        roots: list[str | Path] | None = None,
        questions: list[tuple[str, str]] | None = None,
    ) -> None:
        self.trials = trials
        self.questions = list(questions) if questions is not None else list(QUESTIONS)
        given = roots if roots is not None else [r for t in trials for r in t.roots]
        self.roots = sorted({Path(r).resolve() for r in given})  # the only folders files come from
        self.db = Path(db)
        self.seed = seed
        self.title = title
        connect(self.db).close()  # create the schema (and WAL) up front
        page = resources.files("handsynth.eval.study").joinpath("page.html").read_text(encoding="utf-8")
        self.page = page.replace("{{TITLE}}", html.escape(title)).encode("utf-8")

    def trials_json(self, participant: str) -> dict:
        done = answered_trials(self.db, participant)
        p = quote(participant, safe="")
        items = []
        for i, t in enumerate(self.trials):
            n = len(t.candidates)
            items.append(
                {
                    "index": i,
                    "id": t.id,
                    "prompt": t.prompt,
                    "mesh": f"/img/{i}/mesh" if t.mesh else None,
                    "images": [f"/img/{i}/{pos}?participant={p}" for pos in range(n)],
                    "done": t.id in done,
                }
            )
        return {
            "title": self.title,
            "questions": [{"key": k, "text": q} for k, q in self.questions],
            "trials": items,
        }

    def image_path(self, trial: int, which: str, participant: str) -> Path | None:
        if not 0 <= trial < len(self.trials):
            return None
        t = self.trials[trial]
        if which == "mesh":
            path = t.mesh
        elif not which.isdigit() or int(which) >= len(t.candidates):
            return None
        else:
            perm = permutation(len(t.candidates), self.seed, participant, t.id)
            path = t.candidates[perm[int(which)]][1]
        if path is None or not is_inside(path, self.roots):
            return None
        return path

    def record(self, body: dict) -> str | None:
        """Validate and store an answer; returns an error message or None."""
        participant = body.get("participant")
        if not isinstance(participant, str) or not 0 < len(participant) <= 100:
            return "participant must be a non-empty string (at most 100 characters)"
        trial = body.get("trial")
        if not isinstance(trial, int) or isinstance(trial, bool) or not 0 <= trial < len(self.trials):
            return "trial must be the index of a trial"
        t = self.trials[trial]
        answers = body.get("answers")
        if not isinstance(answers, dict) or set(answers) != {k for k, _ in self.questions}:
            return f"answers must give one position for each question {[k for k, _ in self.questions]}"
        perm = permutation(len(t.candidates), self.seed, participant, t.id)
        choices = {}
        for q, pos in answers.items():
            if not isinstance(pos, int) or isinstance(pos, bool) or not 0 <= pos < len(t.candidates):
                return f"answer to {q} must be a position 0..{len(t.candidates) - 1}"
            choices[q] = (t.candidates[perm[pos]][0], pos)
        save_answers(self.db, participant, t.id, choices)
        return None


def make_handler(app: StudyApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "handsynth-study"
        timeout = SOCKET_TIMEOUT_S  # StreamRequestHandler applies it to the socket

        def log_message(self, fmt: str, *args) -> None:
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, obj: dict) -> None:
            self._send(code, json.dumps(obj).encode(), "application/json; charset=utf-8")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            participant = query.get("participant", [""])[0]
            if url.path in ("/", "/index.html"):
                return self._send(200, app.page, "text/html; charset=utf-8")
            if url.path == "/api/trials":
                if not participant:
                    return self._json(400, {"error": "participant is required"})
                return self._json(200, app.trials_json(participant))
            parts = url.path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "img" and parts[1].isdigit():
                path = app.image_path(int(parts[1]), parts[2], participant)
                if path is not None and path.is_file():
                    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                    return self._send(200, path.read_bytes(), ctype)
            return self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/api/answer":
                return self._json(404, {"error": "not found"})
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                return self._json(400, {"error": "Content-Length must be a number"})
            if not 0 < length <= MAX_BODY:
                return self._json(413, {"error": "body missing or too large"})
            try:
                raw = self.rfile.read(length)
            except TimeoutError:
                self.close_connection = True
                return self._json(408, {"error": "body not received in time"})
            if len(raw) < length:
                return self._json(400, {"error": "body shorter than its Content-Length"})
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return self._json(400, {"error": "body must be JSON"})
            except RecursionError:
                return self._json(400, {"error": "body is nested too deeply"})
            if not isinstance(body, dict):
                return self._json(400, {"error": "body must be a JSON object"})
            err = app.record(body)
            if err:
                return self._json(400, {"error": err})
            return self._json(200, {"ok": True})

    return Handler


class StudyServer(ThreadingHTTPServer):
    """The threading server, logging a failed request as one line instead of a traceback on stderr."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        err = sys.exc_info()[1]
        log.warning("request from %s failed: %s: %s", client_address[0], type(err).__name__, err)


def make_server(app: StudyApp, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    return StudyServer((host, port), make_handler(app))


def serve_in_thread(app: StudyApp, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start a server on a background thread (tests, notebooks); returns it and its base URL."""
    server = make_server(app, host, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"
