"""Registry commands against a tracking server that is down: one clear line, exit 1, within seconds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.component


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.mark.parametrize(
    "args",
    [
        ("models",),
        ("models", "penguins"),
        ("models", "penguins", "--unlock"),
        ("promote", "penguins", "--version", "1", "--to", "staging"),
        ("rollback", "penguins"),
        ("rollback", "penguins", "--to", "2"),
    ],
)
def test_a_tracking_server_that_is_down_is_reported_as_such(tmp_path, args):
    uri = f"http://127.0.0.1:{closed_port()}"
    env = {**os.environ, "PMF_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": uri}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=120, env=env)
    elapsed = time.monotonic() - started
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert lines == [
        f"pmf: failed: the MLflow tracking server at {uri} is not reachable ([Errno 111] Connection refused): "
        "start it (`pmf server start`) or point MLFLOW_TRACKING_URI at a running one"
    ], done.stderr
    assert "no registered model" not in done.stdout + done.stderr
    assert elapsed < 30  # MLflow's default retries would take minutes


def test_a_connection_lost_during_a_command_is_recognised(monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from tasks.registry.lifecycle import store_unreachable

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(MlflowException) as raised:
        MlflowClient(tracking_uri=f"http://127.0.0.1:{closed_port()}").get_registered_model("penguins")
    assert store_unreachable(raised.value)
    assert not store_unreachable(
        MlflowException("Registered Model with name=penguins not found", error_code="RESOURCE_DOES_NOT_EXIST")
    )
