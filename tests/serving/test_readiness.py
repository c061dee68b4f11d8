"""/health is liveness, /ready is readiness; a version refused for its contents is remembered, and no
download folder outlives a load (served or refused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.registry import lifecycle, tracking
from tasks.serving.package import MODEL_FILE
from tests.registry.store import NAME, model_folder
from tests.support.serving import PENGUIN, Server

pytestmark = pytest.mark.slow


def tamper(home: Path, version: str) -> None:
    """Flip one byte of the version's model file in the (private) artifact store."""
    path = next(model_folder(home, version).rglob(MODEL_FILE))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def serve_folders(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.glob("pmf-serve-*"))


def test_a_tampered_alias_target_is_refused_once_ready_says_so_and_the_old_version_keeps_serving(own_store, private_tmp):
    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "readiness test")
    tamper(own_store, "3")
    server = Server("--watch-interval", "0.1", "--no-prediction-log", env={"TMPDIR": str(private_tmp)}).wait_ready()
    try:
        assert server.get_json("/ready") == (
            200,
            {"status": "ready", "serving": "1", "alias": "production", "alias_points_to": "1"},
        )
        assert serve_folders(private_tmp) == []  # the loaded version's download folder is gone once it is in memory

        tracking.client().set_registered_model_alias(NAME, lifecycle.PRODUCTION, "3")  # behind pmf's back: no verification
        status, ready = server.wait_for("/ready", lambda status, body: "not loaded" in (body.get("error") or ""))
        assert status == 503
        assert set(ready) == {"status", "serving", "alias", "alias_points_to", "error"}
        assert (ready["status"], ready["serving"], ready["alias_points_to"]) == ("not_ready", "1", "3")
        assert "v3" in ready["error"]
        assert "still serving v1" in ready["error"]
        assert "SHA-256" in ready["error"]

        assert server.get_json("/health") == (200, {"status": "alive", "model": NAME, "version": "1"})
        status, headers, payload = server.post({"dataframe_records": [PENGUIN]})
        assert status == 200
        assert headers["x-model-version"] == "1"
        assert len(payload["predictions"]) == 1

        _, meta = server.get_json("/metadata")
        polls = meta["runtime"]["polls"]
        _, meta = server.wait_for("/metadata", lambda status, body: body["runtime"]["polls"] >= polls + 10)
        runtime = meta["runtime"]
        assert (meta["version"], runtime["alias_points_to"], runtime["last_error"]) == ("1", "3", ready["error"])
        assert list(runtime["refused_versions"]) == ["3"]
        assert runtime["load_attempts"] == 1  # refused once, never downloaded again while the alias stays there
        assert serve_folders(private_tmp) == []  # nor does a refused load leave its folder behind
        assert server.output().count("v3 (@production) not loaded") == 1

        lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "2", "a good version again")
        server.wait_for("/ready", lambda status, body: status == 200 and body["serving"] == "2")
        assert server.post({"dataframe_records": [PENGUIN]})[1]["x-model-version"] == "2"
        assert server.get_json("/metadata")[1]["runtime"]["last_error"] is None
        assert serve_folders(private_tmp) == []
    finally:
        server.stop()
    assert serve_folders(private_tmp) == []


def test_a_pinned_version_is_ready(store, private_tmp):
    server = Server("--version", "2", "--no-prediction-log", env={"TMPDIR": str(private_tmp)}).wait_ready()
    try:
        assert server.get_json("/ready") == (200, {"status": "ready", "serving": "2", "alias": None, "alias_points_to": None})
    finally:
        server.stop()
    assert serve_folders(private_tmp) == []
