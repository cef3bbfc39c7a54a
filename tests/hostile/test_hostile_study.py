"""The study server against slow, malformed and path-escaping clients (bounded: every socket has a timeout)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hostile_helpers import record, refused, write_folder

from handsynth.eval.study import server as study_server
from handsynth.eval.study.server import StudyApp, serve_in_thread
from handsynth.eval.study.trials import Trial, build_trials

CLIENT_TIMEOUT_S = 5.0


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A study over two method folders, served on loopback with a short socket timeout."""
    monkeypatch.setattr(study_server, "SOCKET_TIMEOUT_S", 0.5, raising=False)
    dirs = [write_folder(tmp_path / name, [record(0), record(1)]) for name in ("a", "b")]
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"secret bytes")
    trials = build_trials(dirs)
    # A trial whose mesh points outside the folders (as a record once could): never served.
    trials.append(Trial("evil", "", outside, [("a", outside), ("b", outside)]))
    server, url = serve_in_thread(StudyApp(trials, tmp_path / "study.sqlite"))
    host, port = server.server_address[:2]
    yield host, port, len(trials) - 1
    server.shutdown()
    server.server_close()


def _exchange(host: str, port: int, raw: bytes, wait_close: bool = True) -> bytes:
    """Send ``raw`` and read until the server closes (bounded by CLIENT_TIMEOUT_S)."""
    with socket.create_connection((host, port), timeout=CLIENT_TIMEOUT_S) as sock:
        sock.sendall(raw)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def _status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0


def _post(body: bytes, length: str) -> bytes:
    return (
        b"POST /api/answer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
        + body
    )


def test_files_outside_the_folders_are_not_served(served):
    host, port, evil = served
    for path in (f"/img/{evil}/mesh", f"/img/{evil}/0?participant=p"):
        reply = _exchange(host, port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert _status(reply) == 404 and b"secret bytes" not in reply
    ok = _exchange(host, port, b"GET /img/0/0?participant=p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert _status(ok) == 200 and b"PNG" in ok


@pytest.mark.parametrize(
    ("body", "length", "code"),
    [
        (b"{}", "abc", 400),
        (b"[" * 10_000 + b"]" * 10_000, "20000", 413),
        (b"[" * 5000 + b"]" * 5000, "10000", 400),
        (b"{" * 3, "-5", 413),
        (b"\xff\xfe", "2", 400),
    ],
    ids=["length-not-a-number", "too-large", "nested", "negative-length", "not-utf8"],
)
def test_malformed_posts_get_an_answer(served, body, length, code):
    host, port, _ = served
    assert _status(_exchange(host, port, _post(body, length))) == code


def test_slow_client_is_dropped_and_others_are_served(served):
    host, port, _ = served
    slow = socket.create_connection((host, port), timeout=CLIENT_TIMEOUT_S)
    try:
        slow.sendall(_post(b'{"partic', "200"))  # half a body, then silence
        reply = _exchange(
            host, port, b"GET /api/trials?participant=p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert _status(reply) == 200  # another client is served meanwhile
        answer = b""
        while chunk := slow.recv(65536):  # the server gives up on the slow one and closes
            answer += chunk
        assert _status(answer) in (400, 408)
    finally:
        slow.close()


def test_half_sent_headers_do_not_hold_a_thread_forever(served):
    host, port, _ = served
    with socket.create_connection((host, port), timeout=CLIENT_TIMEOUT_S) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # no blank line: headers never end
        assert sock.recv(65536) == b""  # closed by the server's timeout, well before ours


def test_study_refuses_a_record_pointing_outside(tmp_path, capsys):
    dirs = [write_folder(tmp_path / n, [record(0, conditions={"mesh": "/etc/hostname"})]) for n in ("a", "b")]
    refused(
        ["study", "serve", "--dirs", *dirs, "--db", tmp_path / "s.sqlite", "--port", "0"],
        capsys,
        "conditions.mesh",
        unchanged=tuple(dirs),
    )
    assert not Path(tmp_path / "s.sqlite").exists()


def test_server_serves_linked_images_but_not_other_links(tmp_path):
    from handsynth.eval.study.server import is_inside

    root = tmp_path / "d"
    root.mkdir()
    (tmp_path / "photo.png").write_bytes(b"png")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (root / "a.png").symlink_to(tmp_path / "photo.png")
    (root / "b.png").symlink_to(tmp_path / "secret.txt")
    roots = [root.resolve()]
    assert is_inside(root / "a.png", roots)
    assert not is_inside(root / "b.png", roots)
    assert not is_inside(tmp_path / "photo.png", roots)
