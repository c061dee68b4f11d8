"""Request bodies over --max-body-mb get 413 naming the limit, before they are read."""

from __future__ import annotations

import socket

import orjson
import pytest

from tasks.registry import lifecycle
from tests.registry.store import NAME
from tests.support.serving import PENGUIN, Server

pytestmark = pytest.mark.slow

MB = 1024 * 1024


@pytest.fixture
def served(store):
    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "limits test")
    server = Server("--max-body-mb", "1", "--no-prediction-log").wait_ready()
    yield server
    server.stop()


def exchange(port: int, head: bytes, body_parts: list[bytes] = ()) -> tuple[int, dict]:
    """Send a request head and the given body parts (and nothing more), then read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        for part in body_parts:
            sock.sendall(part)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before a full answer: {answer!r}"
            answer += chunk
    head_bytes, body = answer.split(b"\r\n\r\n", 1)
    return int(head_bytes[9:12]), orjson.loads(body[: _length(answer)])


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 1 << 30


def head(length: int | None = None) -> bytes:
    size = b"Content-Length: %d" % length if length is not None else b"Transfer-Encoding: chunked"
    return b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + size + b"\r\n\r\n"


def chunked(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size]) for i in range(0, len(data), size)]


def test_a_declared_length_over_the_limit_is_answered_before_any_body_is_sent(served):
    status, error = exchange(served.port, head(50 * MB))  # the 50 MB never leave the client
    assert status == 413
    assert error["field"] == "body"
    assert "52,428,800 bytes" in error["message"]
    assert "limit of 1 MB" in error["message"]
    assert "--max-body-mb" in error["message"]


def test_a_chunked_body_is_cut_off_as_it_grows_past_the_limit(served):
    status, error = exchange(served.port, head(), chunked(b" " * (MB + 1)))
    assert status == 413
    assert "limit of 1 MB" in error["message"]
    body = orjson.dumps({"dataframe_records": [PENGUIN]})
    status, answer = exchange(served.port, head(), [*chunked(body, 16), b"0\r\n\r\n"])  # a small chunked body is served
    assert status == 200
    assert len(answer["predictions"]) == 1


def test_a_body_at_the_limit_is_read(served):
    body = orjson.dumps({"dataframe_records": [PENGUIN]})
    body += b" " * (MB - len(body))  # JSON allows trailing whitespace: exactly 1 MB
    status, answer = exchange(served.port, head(len(body)), [body])
    assert status == 200
    assert len(answer["predictions"]) == 1


def test_the_default_limit_is_10_mb(store):
    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "limits test")
    server = Server("--no-prediction-log").wait_ready()
    try:
        status, error = exchange(server.port, head(10 * MB + 1))
        assert status == 413
        assert "limit of 10 MB" in error["message"]
        assert server.get_json("/metadata")[1]["runtime"]["settings"]["max_body_mb"] == 10
    finally:
        server.stop()
