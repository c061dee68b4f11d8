"""A promotion (and a rollback) reaches a running server without a single failed request."""

from __future__ import annotations

import http.client
import threading
import time

import orjson
import pytest

from tasks.registry import lifecycle
from tests.registry.store import NAME
from tests.support.serving import Server

pytestmark = pytest.mark.slow

ROW = {
    "island": "Biscoe",
    "bill_length_mm": 47.0,
    "bill_depth_mm": 15.0,
    "flipper_length_mm": 215,
    "body_mass_g": 5200,
    "sex": "male",
    "year": 2008,
}


class Load:
    """Two client threads on keep-alive connections, sending one-row requests until stopped."""

    def __init__(self, port: int, threads: int = 2):
        self.port = port
        self.seen: list[tuple[float, str]] = []
        self.by_thread: dict[int, list[str]] = {}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _run(self, index: int) -> None:
        mine = self.by_thread.setdefault(index, [])
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        body = orjson.dumps({"dataframe_records": [ROW]})
        while not self._stop.is_set():
            try:
                conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                if response.status != 200 or not orjson.loads(payload)["predictions"]:
                    self.failures.append(f"{response.status} {payload[:200]!r}")
                version = response.getheader("X-Model-Version")
                mine.append(version)
                self.seen.append((time.monotonic(), version))
            except Exception as exc:  # a dropped connection is a failed request too
                self.failures.append(repr(exc))
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def wait_for(self, version: str, timeout_s: float = 30) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            hits = [t for t, v in list(self.seen) if v == version]
            if hits:
                return hits[0]
            time.sleep(0.05)
        raise AssertionError(f"version {version} never answered; seen {sorted({v for _, v in self.seen})}")


def test_promotion_and_rollback_swap_versions_under_load_without_failed_requests(store):
    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "hot swap test")
    server = Server("--watch-interval", "0.2", "--no-prediction-log").wait_ready()
    try:
        with Load(server.port) as load:
            load.wait_for("1")
            lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "3", "promote under load")
            swapped = load.wait_for("3")
            time.sleep(0.5)
            lifecycle.rollback(NAME, reason="rollback under load")
            _wait_after(load, "1", swapped)
            time.sleep(0.3)
        assert load.failures == []
        versions = [v for _, v in load.seen]
        assert len(versions) > 100
        for sequence in load.by_thread.values():  # each client saw v1, then only v3, then only v1 again
            assert [v for i, v in enumerate(sequence) if i == 0 or sequence[i - 1] != v] == ["1", "3", "1"]
        assert versions[-1] == "1"
        assert "swapped penguins v1 -> v3" in server.output()
        assert "swapped penguins v3 -> v1" in server.output()
    finally:
        server.stop()


def _wait_after(load: Load, version: str, after: float, timeout_s: float = 30) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        hits = [t for t, v in list(load.seen) if v == version and t > after]
        if hits:
            return hits[0]
        time.sleep(0.05)
    raise AssertionError(f"version {version} never answered again after the rollback")
