"""`pmf alerts` against a real `pmf server start` and a real HTTP receiver: a rejected batch and a
promotion each arrive as one JSON object; a failure of a flow that is not pmf's does not; list and remove."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.conftest import DATA
from tests.schedules.conftest import LEAN, NAME, pmf_json
from tests.support.pmf_process import wait_for

pytestmark = pytest.mark.slow


class Receiver:
    """A webhook on 127.0.0.1: every POST body it gets, parsed as JSON, with its path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/pmf-secret-token"

    def of_kind(self, kind: str) -> list[dict]:
        return [body for _, body in self.received if body.get("kind") == kind]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()


def test_a_rejected_batch_and_a_promotion_reach_the_webhook(local_server, scheduled_model, receiver):
    code, added = pmf_json(local_server, "alerts", "add", "--webhook", receiver.url, "--on", "data_rejected,promotion")
    assert code == 0, added
    assert added["url"] == f"http://127.0.0.1:{receiver.server.server_port}/hooks/***"
    try:
        code, listing = pmf_json(local_server, "alerts", "list")
        assert {"id": added["id"], "url": added["url"], "kinds": ["data_rejected", "promotion"]} in listing["alerts"]
        assert "pmf-secret-token" not in local_server.pmf("alerts", "list").stdout

        done = local_server.pmf("run", "--data", str(DATA / "batches" / "penguins_broken.csv"), "--name", NAME)
        assert done.returncode == 3, done.stderr[-2000:]
        wait_for(lambda: receiver.of_kind("data_rejected"), 60, "the data_rejected alert")
        (rejected,) = receiver.of_kind("data_rejected")
        assert rejected["model"] == NAME
        assert rejected["state"] == "Rejected"
        assert rejected["flow"] == "pmf-train"
        assert rejected["links"]["prefect_flow_run"].startswith(local_server.prefect_ui_url + "/runs/flow-run/")

        production_moves(local_server)
        wait_for(lambda: len(receiver.of_kind("promotion")) == 2, 60, "two promotion alerts")
        forward, back = receiver.of_kind("promotion")
        assert (forward["model"], forward["version"], back["version"], back["previous"]) == (NAME, "2", "1", "2")
        assert back["message"].startswith(f"{NAME}@production: v2 -> v1 by ")
        assert "rollback" in back["message"]
    finally:
        code, removed = pmf_json(local_server, "alerts", "remove", added["id"])
    assert code == 0
    assert removed["kinds"]
    assert added["id"] not in json.dumps(pmf_json(local_server, "alerts", "list")[1])
    assert receiver.of_kind("failure") == []  # not subscribed


def production_moves(server) -> None:
    """Production moves to a second version (the pipeline's champion gate, else `pmf promote --force`),
    then `pmf rollback` puts v1 back."""
    code, second = pmf_json(server, "run", "--data", str(DATA / "batches" / "penguins_new.csv"), "--name", NAME, *LEAN)
    assert (code, second["version"]) == (0, "2"), second
    if not second["promoted"]:
        code, forced = pmf_json(server, "promote", NAME, "--version", "2", "--to", "production", "--force")
        assert code == 0, forced
    code, rolled = pmf_json(server, "rollback", NAME)
    assert code == 0, rolled
