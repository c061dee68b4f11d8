"""The local server's state file, stale detection, the port check and the switch of commands to the server.

Fast: no server is started. A "live" process is this test process itself (its real pid and start time).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tasks.local_server.launch import PortInUse, Ports, check_ports, commands
from tasks.local_server.state import (
    ServerProcess,
    ServerState,
    parse_state,
    read_state,
    remove_state,
    running_server,
    state_path,
    write_state,
)
from tasks.processes import start_time


def this_process() -> ServerProcess:
    return ServerProcess(os.getpid(), start_time(os.getpid()) or "", "/tmp/x.log", "http://127.0.0.1:4300")


def exited_process() -> ServerProcess:
    """A pid that existed and is gone (reaped) now."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = start_time(child.pid) or "0"
    child.wait()
    return ServerProcess(child.pid, started, "/tmp/y.log")


def state_of(**processes: ServerProcess) -> ServerState:
    return ServerState(
        home="/tmp/home",
        host=socket.gethostname(),
        started_at="2026-11-29T10:00:00+00:00",
        prefect_port=4300,
        mlflow_port=5300,
        processes=processes,
        server_id="abc",
    )


def test_urls_follow_the_ports():
    state = state_of()
    assert state.prefect_api_url == "http://127.0.0.1:4300/api"
    assert state.prefect_ui_url == "http://127.0.0.1:4300"
    assert state.mlflow_url == "http://127.0.0.1:5300"


def test_the_state_file_reads_back_as_written(tmp_path):
    state = state_of(prefect=this_process(), runner=exited_process())
    write_state(tmp_path, state)
    assert read_state(tmp_path) == state


def test_a_file_that_is_not_a_state_file_reads_as_no_server(tmp_path):
    state_path(tmp_path).parent.mkdir()
    state_path(tmp_path).write_text('{"home": "/x"}')
    assert read_state(tmp_path) is None
    with pytest.raises(ValueError, match="not a pmf server state file"):
        parse_state("[1, 2]")


def test_a_server_whose_prefect_process_lives_is_running(tmp_path):
    write_state(tmp_path, state_of(prefect=this_process(), mlflow=exited_process()))
    server = running_server(tmp_path)
    assert server is not None
    assert server.prefect_api_url == "http://127.0.0.1:4300/api"
    assert server.up() == {"prefect": True, "mlflow": False}
    assert not server.is_stale()


def test_a_server_whose_processes_are_all_gone_is_stale(tmp_path):
    write_state(tmp_path, state_of(prefect=exited_process(), mlflow=exited_process(), runner=exited_process()))
    assert running_server(tmp_path) is None
    state = read_state(tmp_path)
    assert state is not None
    assert state.is_stale()
    assert not state.runner_up()


def test_a_reused_pid_is_not_taken_for_the_server(tmp_path):
    """Same pid, another start time: the system gave the pid to another program after a reboot."""
    me = this_process()
    write_state(tmp_path, state_of(prefect=ServerProcess(me.pid, str(int(me.started) + 1), me.log)))
    assert running_server(tmp_path) is None


def test_another_hosts_state_file_is_neither_running_nor_stale(tmp_path):
    state = ServerState(**{**state_of(prefect=this_process()).__dict__, "host": "some-other-machine"})
    write_state(tmp_path, state)
    assert running_server(tmp_path) is None
    assert not state.is_stale()


def test_no_state_file_no_server(tmp_path):
    assert running_server(tmp_path) is None
    remove_state(tmp_path)  # removing what is not there is fine


def test_a_port_in_use_is_named_with_the_flag_that_changes_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=rf"port {port} \(for the MLflow server\) is in use.*--mlflow-port N"):
            check_ports(Ports(prefect=free_port(), mlflow=port))
        with pytest.raises(PortInUse, match=rf"port {port} \(for the Prefect server\) is in use.*--port N"):
            check_ports(Ports(prefect=port, mlflow=free_port()))


def test_the_same_port_twice_is_refused():
    with pytest.raises(PortInUse, match="both 4300"):
        check_ports(Ports(4300, 4300))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_mlflow_serves_the_workspace_store_with_one_worker_and_artifacts_under_the_workspace(tmp_path):
    mlflow = commands(tmp_path, Ports(4300, 5300))["mlflow"]
    assert mlflow[mlflow.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert mlflow[mlflow.index("--default-artifact-root") + 1] == (tmp_path / "artifacts").as_uri()
    assert mlflow[mlflow.index("--workers") + 1] == "1"


# ---- every pmf command uses a running server ------------------------------------------------------


@pytest.fixture
def clean_environment(tmp_path):
    """configure_environment writes os.environ directly: the whole environment is put back afterwards."""
    saved = dict(os.environ)
    for key in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "PMF_MLFLOW_UI_URL", "PREFECT_HOME"):
        os.environ.pop(key, None)
    os.environ["PMF_HOME"] = str(tmp_path)
    yield tmp_path
    os.environ.clear()
    os.environ.update(saved)


def test_commands_record_on_the_running_server_and_link_its_mlflow_ui(clean_environment):
    from tasks.workspace import configure_environment

    write_state(clean_environment, state_of(prefect=this_process()))
    configure_environment()
    assert os.environ["PREFECT_API_URL"] == "http://127.0.0.1:4300/api"
    assert os.environ["PMF_MLFLOW_UI_URL"] == "http://127.0.0.1:5300"
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{clean_environment / 'mlflow.db'}"


@pytest.mark.parametrize("variable", ["PREFECT_API_URL", "MLFLOW_TRACKING_URI"])
def test_a_server_the_user_named_wins_over_the_local_one(clean_environment, monkeypatch, variable):
    from tasks.workspace import configure_environment

    monkeypatch.setenv(variable, "http://team.example:1234")
    write_state(clean_environment, state_of(prefect=this_process()))
    configure_environment()
    assert os.environ.get("PREFECT_API_URL") in (None, "http://team.example:1234")
    assert "PMF_MLFLOW_UI_URL" not in os.environ


def test_without_a_running_server_commands_keep_the_embedded_default(clean_environment):
    from tasks.workspace import configure_environment

    write_state(clean_environment, state_of(prefect=exited_process()))
    configure_environment()
    assert "PREFECT_API_URL" not in os.environ
    assert os.environ["PREFECT_HOME"] == str(clean_environment / "prefect")


def test_a_part_that_exits_during_start_is_named_with_its_log_at_once(tmp_path):
    """A real process that exits at once: the wait ends there (not at the deadline), naming the part and its log."""
    import time

    from tasks.local_server.launch import StartFailed, spawn, wait_healthy

    failing = spawn(
        "mlflow", [sys.executable, "-c", "import sys; print('no store'); sys.exit(1)", "--port", "1"], dict(os.environ), tmp_path
    )
    state = state_of(mlflow=failing)
    started = time.monotonic()
    with pytest.raises(StartFailed, match="the MLflow server exited during start") as failure:
        wait_healthy(state, {"mlflow": lambda: False}, deadline=time.monotonic() + 60)
    assert time.monotonic() - started < 10
    assert failure.value.log == tmp_path / "logs" / "server-mlflow.log"
    assert "no store" in failure.value.log.read_text()
