"""`pmf server start | status | stop` as a user runs them: real processes, real ports, real HTTP."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest

from tasks.local_server.stop import server_processes
from tests.support.local_server import free_ports, pmf, running_server, start_server, stop_server
from tests.support.pmf_process import pmf_env, wait_for

pytestmark = pytest.mark.slow


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def post(url: str, body: dict) -> list[dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_status_shows_every_process_up_and_the_urls_answer(local_server):
    done = local_server.pmf("server", "status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["up"] is True
    assert status["runner_up"] is True
    assert status["prefect_url"] == local_server.prefect_ui_url
    assert status["mlflow_url"] == local_server.mlflow_url
    assert {name for name, p in status["processes"].items() if p["up"]} == {"prefect", "mlflow", "runner"}
    assert get(f"{local_server.prefect_api_url}/health") == (200, b"true")
    assert get(f"{local_server.mlflow_url}/health")[0] == 200
    assert get(local_server.prefect_ui_url)[0] == 200  # the UI is served
    pools = post(f"{local_server.prefect_api_url}/work_pools/filter", {})
    assert {"name": "pmf-local", "type": "process"}.items() <= next(p for p in pools if p["name"] == "pmf-local").items()


def test_a_second_start_says_it_is_already_running(local_server):
    before = json.loads((local_server.home / "server" / "state.json").read_text())
    done = local_server.pmf("server", "start", "--port", str(local_server.prefect_port))
    assert done.returncode == 0, done.stderr
    assert "already running" in done.stdout
    assert local_server.prefect_ui_url in done.stdout
    assert local_server.mlflow_url in done.stdout
    assert json.loads((local_server.home / "server" / "state.json").read_text()) == before


def test_a_port_in_use_is_exit_2_at_once_naming_the_port_and_nothing_starts(local_server, tmp_path):
    home = tmp_path / "other-home"
    (mlflow_port,) = free_ports(1)
    started = time.monotonic()
    done = pmf(pmf_env(home), "server", "start", "--port", str(local_server.prefect_port), "--mlflow-port", str(mlflow_port))
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - started < 30  # no waiting on a health check that cannot pass
    assert f"port {local_server.prefect_port}" in done.stderr
    assert "--port N" in done.stderr
    assert not (home / "server" / "state.json").exists()
    assert list(home.glob("logs/server-*.log")) == []  # not one process was spawned


def test_a_run_while_the_server_is_up_is_recorded_there_without_an_embedded_server(local_server):
    done = local_server.pmf("run", "--set", "train.epochs=3", "--set", "compression.variants=[float32]", "--json", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    runs = post(
        f"{local_server.prefect_api_url}/flow_runs/filter", {"flow_runs": {"id": {"any_": [result["prefect_flow_run_id"]]}}}
    )
    assert [run["state_type"] for run in runs] == ["COMPLETED"]
    assert result["links"]["prefect_flow_run"].startswith(local_server.prefect_ui_url)
    assert result["links"]["mlflow_run"].startswith(local_server.mlflow_url)
    assert not (local_server.home / "logs" / "prefect-server.log").exists()  # the embedded server logs there


def test_a_crashed_server_is_detected_cleaned_and_started_again_and_stop_leaves_nothing(tmp_path):
    home = tmp_path / "home"
    server = start_server(home)
    try:
        for pid in server_processes(server.server_id):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: server_processes(server.server_id) == [], 30, "the killed server's processes to be gone")
        done = server.pmf("server", "status")
        assert done.returncode == 0, done.stderr
        assert "is gone" in done.stderr
        assert "not running" in done.stdout
        assert "pmf server start" in done.stdout
        assert not (home / "server" / "state.json").exists()
        # Started again on the same workspace: the runner's heartbeat of the dead start does not count.
        with running_server(home) as again:
            assert json.loads(again.pmf("server", "status", "--json").stdout)["runner_up"] is True
    finally:
        if (home / "server" / "state.json").exists():
            stop_server(server)
