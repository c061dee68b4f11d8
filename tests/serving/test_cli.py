"""`pmf serve` from the command line: usage errors exit 2, a refused model 1, never 3 and never a
traceback; the banner only once the socket is bound; flags over the model's settings over defaults."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from tasks.registry import lifecycle, tracking
from tests.registry.store import NAME
from tests.support.serving import PENGUIN, Server, free_port

pytestmark = pytest.mark.slow


def pmf_serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def one_line(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    assert "serving on" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("pmf")]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("port", ["70000", "0", "-1", "http"])
def test_a_port_out_of_range_is_a_usage_error_before_anything(store, port):
    done = pmf_serve(NAME, "--port", port)
    assert done.returncode == 2
    assert "--port" in one_line(done)


def test_a_port_in_use_is_a_usage_error_and_no_banner(store):
    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "cli test")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = pmf_serve(NAME, "--port", port)
    line = one_line(done)
    assert done.returncode == 2
    assert f"--port {port}" in line
    assert "already in use" in line


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((NAME, "--version", "9"), "has no version '9'"),
        (("nosuchmodel",), "no registered model named 'nosuchmodel'"),
        ((NAME, "--alias", "staging"), "has no @staging version"),
        ((NAME, "--max-body-mb", "0"), "--max-body-mb"),
        ((NAME, "--watch-interval", "-1"), "--watch-interval"),
        ((NAME, "--max-rows", "many"), "--max-rows"),
    ],
)
def test_usage_errors_exit_2_with_one_line(store, args, says):
    done = pmf_serve(*args)
    assert done.returncode == 2
    assert says in one_line(done)


def test_a_registry_that_cannot_be_reached_exits_1_with_one_line(store):
    down = f"http://127.0.0.1:{free_port()}"
    done = pmf_serve(
        NAME, env={"MLFLOW_TRACKING_URI": down, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    )
    line = one_line(done)
    assert done.returncode == 1
    assert down in line


def test_a_refused_model_exits_1(store):
    tracking.client().set_model_version_tag(NAME, "2", "pmf.sha256", "0" * 64)
    done = pmf_serve(NAME, "--version", "2", "--port", str(free_port()))
    assert done.returncode == 1
    assert "refused" in one_line(done)


def test_a_non_loopback_host_needs_a_token_or_insecure(store):
    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "cli test")
    done = pmf_serve(NAME, "--host", "0.0.0.0", "--port", str(free_port()))
    line = one_line(done)
    assert done.returncode == 2
    assert "PMF_SERVE_TOKEN" in line
    assert "--insecure" in line
    for args, env in ((["--insecure"], {}), ([], {"PMF_SERVE_TOKEN": "s3cret"})):
        server = Server("--host", "0.0.0.0", "--no-prediction-log", *args, cli=True, env=env).wait_ready()
        try:
            assert f"serving on http://0.0.0.0:{server.port}" in server.output()
        finally:
            server.stop()


def _store_promotion_settings(version: str, **settings) -> None:
    client = tracking.client()
    config = json.loads(client.get_model_version(NAME, version).tags.get("pmf.config", "{}"))
    config["promotion"] = {**config.get("promotion", {}), **settings}
    client.set_model_version_tag(NAME, version, "pmf.config", json.dumps(config))


def test_flags_win_over_the_models_settings_which_win_over_defaults(store):
    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "settings test")
    expected = {
        "watch_interval_s": 5.0,
        "max_batch_rows": 10_000,
        "max_body_mb": 10.0,
        "sources": {"watch_interval_s": "default", "max_batch_rows": "default", "max_body_mb": "default"},
    }
    server = Server("--no-prediction-log", cli=True).wait_ready()
    try:
        assert server.get_json("/metadata")[1]["runtime"]["settings"] == expected
    finally:
        server.stop()

    _store_promotion_settings("1", max_batch_rows=3, watch_interval_s=0.5)
    server = Server("--no-prediction-log", cli=True).wait_ready()
    try:
        assert server.get_json("/metadata")[1]["runtime"]["settings"] == {
            "watch_interval_s": 0.5,
            "max_batch_rows": 3,
            "max_body_mb": 10.0,
            "sources": {"watch_interval_s": "model", "max_batch_rows": "model", "max_body_mb": "default"},
        }
        status, _, error = server.post({"dataframe_records": [PENGUIN] * 4})
        assert status == 413
        assert "limit of 3" in error["message"]
        assert server.post({"dataframe_records": [PENGUIN] * 3})[0] == 200
        assert "watched every 0.5 s" in server.output()
    finally:
        server.stop()

    server = Server(
        "--no-prediction-log", "--max-rows", "5", "--watch-interval", "2", "--max-body-mb", "3", cli=True
    ).wait_ready()
    try:
        assert server.get_json("/metadata")[1]["runtime"]["settings"] == {
            "watch_interval_s": 2.0,
            "max_batch_rows": 5,
            "max_body_mb": 3.0,
            "sources": {"watch_interval_s": "flag", "max_batch_rows": "flag", "max_body_mb": "flag"},
        }
        assert server.post({"dataframe_records": [PENGUIN] * 5})[0] == 200
        assert server.post({"dataframe_records": [PENGUIN] * 6})[0] == 413
    finally:
        server.stop()
