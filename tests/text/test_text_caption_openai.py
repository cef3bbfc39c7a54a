"""The OpenAI-compatible captioner against a real HTTP server on 127.0.0.1 (ok, erroring, hanging, malformed)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from handsynth.data.folder import read_dataset
from handsynth.errors import UserError
from handsynth.text.caption_openai import OpenAICaptioner, endpoint
from handsynth.text.caption_run import caption_dataset
from handsynth.text.captioner import ChatRequest


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls: dict[str, int] = {}
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.inflight = 0
        self.max_inflight = 0


def make_handler(state: State):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):  # keep test output clean
            pass

        def _send(self, code: int, body: bytes, ctype="application/json"):
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (hang case)
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def do_GET(self):
            if self.path.endswith("/v1/models"):
                self._send(200, json.dumps({"data": [{"id": "served-vlm"}]}).encode())
            else:
                self._send(404, b"{}")

        def do_POST(self):
            mode = self.path.split("/")[1]
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                n = state.calls[mode] = state.calls.get(mode, 0) + 1
                state.bodies.append(body)
                state.headers.append(dict(self.headers))
                state.inflight += 1
                state.max_inflight = max(state.max_inflight, state.inflight)
            try:
                code, payload = self._answer(mode, n, body)
            finally:
                # Leave the in-flight count before answering: a client may send its next request as soon
                # as it has read this answer, before this handler would otherwise finish.
                with state.lock:
                    state.inflight -= 1
            self._send(code, payload)

        def _answer(self, mode: str, n: int, body: dict) -> tuple[int, bytes]:
            if mode == "slow":
                time.sleep(0.05)
            if mode == "hang":
                time.sleep(1.5)
            if mode == "error" or (mode == "flaky" and n <= 2):
                return 500, b'{"error": "boom"}'
            if mode == "bad":
                return 400, b'{"error": "bad request"}'
            if mode == "malformed":
                return 200, b'{"choices": [{"message": '
            if mode == "nochoices":
                return 200, b'{"object": "chat.completion"}'
            text = body["messages"][0]["content"][0]["text"]
            answer = f"A hand holding a cup. ({len(text)})"
            if mode == "parts":
                content = [{"type": "text", "text": "A hand "}, {"type": "text", "text": "waving."}]
            else:
                content = answer
            return 200, json.dumps(
                {"choices": [{"message": {"role": "assistant", "content": content}}]}
            ).encode()

    return H


@pytest.fixture
def server():
    state = State()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", state
    srv.shutdown()
    srv.server_close()


def _img():
    return Image.fromarray(np.full((8, 10, 3), 200, np.uint8))


def client(base, mode, **kw):
    kw.setdefault("timeout", 10.0)  # generous: only the hang test (own timeout) should ever time out
    kw.setdefault("retries", 2)
    kw.setdefault("backoff", 0.01)
    return OpenAICaptioner(f"{base}/{mode}/v1", model="m", **kw)


def test_endpoint_forms():
    assert endpoint("http://h:1") == "http://h:1/v1/chat/completions"
    assert endpoint("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert endpoint("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"
    assert endpoint("http://h:1/v1", "models") == "http://h:1/v1/models"


def test_ok_with_inline_image_and_key(server, monkeypatch):
    base, st = server
    monkeypatch.setenv("MY_KEY", "sk-test")
    c = OpenAICaptioner.from_options(base_url=f"{base}/ok/v1", model=None, api_key_env="MY_KEY", timeout=10.0)
    assert c.model == "served-vlm"  # discovered with GET /v1/models
    (ans,) = c.chat([ChatRequest("Describe the hands.", _img())])
    assert ans.startswith("A hand holding a cup.")
    body = st.bodies[-1]
    assert body["model"] == "served-vlm" and body["temperature"] == 0.0
    parts = body["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "Describe the hands."}
    url = parts[1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.size == (10, 8)
    assert st.headers[-1]["Authorization"] == "Bearer sk-test"


def test_content_parts_joined(server):
    base, _ = server
    assert client(base, "parts").chat([ChatRequest("q")]) == ["A hand waving."]


def test_retries_then_success(server):
    base, st = server
    assert client(base, "flaky", retries=2).chat([ChatRequest("q")])[0].startswith("A hand")
    assert st.calls["flaky"] == 3


@pytest.mark.parametrize("mode", ["error", "malformed", "nochoices"])
def test_persistent_failures_give_none(server, mode):
    base, st = server
    assert client(base, mode, retries=2).chat([ChatRequest("q")]) == [None]
    assert st.calls[mode] == 3  # 1 + 2 retries


def test_client_error_not_retried(server):
    base, st = server
    assert client(base, "bad", retries=3).chat([ChatRequest("q")]) == [None]
    assert st.calls["bad"] == 1


def test_hang_times_out(server):
    base, st = server
    t0 = time.monotonic()
    assert client(base, "hang", timeout=0.3, retries=1).chat([ChatRequest("q")]) == [None]
    assert st.calls["hang"] == 2
    assert time.monotonic() - t0 < 1.4  # gave up before the server would have answered once


def test_concurrency_limit(server):
    base, st = server
    out = client(base, "slow", concurrency=3).chat([ChatRequest(f"q{i}") for i in range(9)])
    assert [o.endswith(f"({len(f'q{i}')})") for i, o in enumerate(out)] == [True] * 9  # answers in order
    assert 1 <= st.max_inflight <= 3


def test_unreachable_model_listing_is_user_error():
    with pytest.raises(UserError, match="pass --model"):
        OpenAICaptioner("http://127.0.0.1:9/v1", timeout=0.2)
    with pytest.raises(UserError, match="http"):
        OpenAICaptioner("127.0.0.1:8000", model="m")


def test_dataset_resumable(server, dataset):
    base, st = server
    rep = caption_dataset(dataset, client(base, "error", retries=0), save_interval=0)
    assert rep.captioned == 0 and len(rep.failed) == 4
    assert all("caption" not in s.source for s in read_dataset(dataset))  # nothing half-written
    rep = caption_dataset(dataset, client(base, "ok"), batch_size=3, save_interval=0)
    assert rep.captioned == 4 and not rep.failed
    recs = read_dataset(dataset)
    assert all(r.prompt.startswith("A hand holding a cup.") for r in recs)
    assert recs[0].source["caption"]["backend"] == "openai" and recs[0].source["caption"]["model"] == "m"
    before = st.calls.get("ok", 0)
    rep = caption_dataset(dataset, client(base, "ok"), save_interval=0)
    assert rep.skipped == 4 and rep.captioned == 0 and st.calls.get("ok", 0) == before  # resumed: no requests


def test_a_dead_backend_stops_the_run_and_keeps_what_was_captioned(dataset, monkeypatch):
    import handsynth.text.caption_run as cr

    class FailsAfterOne:
        name, model = "template", "stub"

        def __init__(self):
            self.calls = 0

        def caption(self, batch, images, question):
            out = []
            for _ in batch:
                self.calls += 1
                out.append("A hand holding a cup." if self.calls == 1 else None)
            return out

    monkeypatch.setattr(cr, "GIVE_UP_AFTER", 2)
    backend = FailsAfterOne()
    with pytest.raises(UserError, match="failed on 2 records in a row"):
        caption_dataset(dataset, backend, batch_size=1, save_interval=3600)
    assert backend.calls == 3  # gave up instead of trying the fourth record
    recs = read_dataset(dataset)
    assert recs[0].prompt == "A hand holding a cup." and "caption" in recs[0].source  # saved before stopping


def test_an_interrupted_run_keeps_what_it_captioned_before_the_next_save(dataset):
    """Ctrl-C long before the periodic save: the records captioned so far are written, the rest are
    left for the rerun, and the rerun captions only those."""

    class StopsOnSecondBatch:
        name, model = "template", "stub"

        def __init__(self):
            self.batches = 0

        def caption(self, batch, images, question):
            self.batches += 1
            if self.batches == 2:
                raise KeyboardInterrupt
            return ["A hand holding a cup."] * len(batch)

    with pytest.raises(KeyboardInterrupt):
        caption_dataset(dataset, StopsOnSecondBatch(), batch_size=2, save_interval=3600)
    done = ["caption" in r.source for r in read_dataset(dataset)]
    assert done == [True, True, False, False]
    rep = caption_dataset(dataset, StopsOnSecondBatch(), batch_size=2, save_interval=3600)
    assert (rep.skipped, rep.captioned) == (2, 2)
