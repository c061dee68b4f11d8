"""A real `pmf serve` process on a socket, for the server tests."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import orjson

from tests.registry.store import NAME

PENGUIN = {
    "island": "Dream",
    "bill_length_mm": 50.0,
    "bill_depth_mm": 19.0,
    "flipper_length_mm": 196,
    "body_mass_g": 3800,
    "sex": "female",
    "year": 2009,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m tasks.serving.server NAME` (or, with cli=True, `python -m flows.cli serve NAME`) in a fresh
    process; stopped (and its stderr kept) at the end."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, cli: bool = False, name: str | None = NAME, port: int | None = None
    ):
        self.port = port or free_port()
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115  (outlives the server: tests read it after stop())
        module = ["flows.cli", "serve"] if cli else ["tasks.serving.server"]
        command = [sys.executable, "-m", *module, *([name] if name else []), "--port", str(self.port), *args]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.stderr, env={**os.environ, **(env or {})})

    def wait_ready(self, timeout_s: float = 60) -> Server:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited: {self.output()}"
            try:
                if self.get("/health")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"server not ready: {self.output()}")

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        conn = self.connection()
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()

    def get_json(self, path: str, headers: dict | None = None) -> tuple[int, Any]:
        status, _, body = self.get(path, headers)
        return status, orjson.loads(body)

    def post(
        self, body: bytes | dict, headers: dict | None = None, conn: http.client.HTTPConnection | None = None
    ) -> tuple[int, dict, dict]:
        conn = conn or self.connection()
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        conn.request("POST", "/invocations", body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, orjson.loads(response.read())

    def wait_for(self, path: str, check, timeout_s: float = 30, headers: dict | None = None) -> Any:
        """Poll GET `path` until `check(status, json)` holds; returns the last (status, json)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status, body = self.get_json(path, headers)
            if check(status, body):
                return status, body
            assert time.monotonic() < deadline, f"{path} never satisfied the check; last {status} {body}\n{self.output()}"
            time.sleep(0.1)

    def output(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def exit_code(self, timeout_s: float = 90) -> int:
        return self.process.wait(timeout_s)

    def signal(self, which: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        self.process.send_signal(which)
        return self.process.wait(timeout_s)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
