"""A real `pmf server start` for the slow tests: a temporary PMF_HOME, free ports, `pmf server stop` at the end.

tests/conftest.py registers this module as a plugin, so any test can ask for `local_server`; never
import the fixture into another conftest (each import would start a server of its own). It is
session-scoped: every test that asks for it shares
one server (its start migrates two databases: ~20-40 s). Subprocesses run with `server.env`, as a
user's shell with PMF_HOME set: pmf finds the server through its state file. In-process Prefect clients
need `server.prefect_api_url` (e.g. `prefect.settings.temporary_settings({PREFECT_API_URL: ...})`).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tasks.local_server.state import ServerState, read_state
from tests.conftest import REPO
from tests.support.pmf_process import pmf_env

START_TIMEOUT_S = 300  # the command's own deadline is 180 s; this only catches a hang
STOP_TIMEOUT_S = 120


@dataclass(frozen=True)
class LocalServer:
    home: Path
    env: dict[str, str] = field(repr=False)
    state: ServerState  # as the state file says it: ports, URLs, the start's id

    @property
    def prefect_port(self) -> int:
        return self.state.prefect_port

    @property
    def mlflow_port(self) -> int:
        return self.state.mlflow_port

    @property
    def server_id(self) -> str:
        return self.state.server_id

    @property
    def prefect_api_url(self) -> str:
        return self.state.prefect_api_url

    @property
    def prefect_ui_url(self) -> str:
        return self.state.prefect_ui_url

    @property
    def mlflow_url(self) -> str:
        return self.state.mlflow_url

    def pmf(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run `pmf ARGS` against this server's workspace, as a user's shell would."""
        return pmf(self.env, *args, timeout=timeout)


def pmf(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nothing listens on now (bound to port 0 together, so the kernel gives distinct ones)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def server_logs(home: Path, tail: int = 2000) -> str:
    return "\n".join(
        f"--- {log.name}\n{log.read_text(errors='replace')[-tail:]}" for log in sorted(home.glob("logs/server-*.log"))
    )


def start_server(home: Path) -> LocalServer:
    """`pmf server start` on free ports in `home`; fails the test with the command's output and the logs."""
    prefect_port, mlflow_port = free_ports(2)
    env = pmf_env(home)
    done = pmf(env, "server", "start", "--port", str(prefect_port), "--mlflow-port", str(mlflow_port), timeout=START_TIMEOUT_S)
    if done.returncode != 0:
        pytest.fail(f"pmf server start exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n{server_logs(home)}")
    state = read_state(home)
    assert state is not None, f"pmf server start wrote no state file in {home}"
    assert (state.prefect_port, state.mlflow_port) == (prefect_port, mlflow_port), state
    return LocalServer(home, env, state)


def stop_server(server: LocalServer) -> None:
    """`pmf server stop`, then check that no process of the server is left (pid by pid, through /proc)."""
    from tasks.local_server.stop import server_processes

    done = server.pmf("server", "stop", timeout=STOP_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    assert server_processes(server.server_id) == []
    assert not (server.home / "server" / "state.json").exists()


@contextmanager
def running_server(home: Path) -> Iterator[LocalServer]:
    server = start_server(home)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def local_server(tmp_path_factory) -> Iterator[LocalServer]:
    """One real local server for the whole session (see the module's docstring)."""
    with running_server(tmp_path_factory.mktemp("pmf-server") / "home") as server:
        yield server


def prefect_deploy_all(folder: Path, env: dict[str, str]) -> None:
    """`prefect deploy --all` on the prefect.yaml in `folder`, as a user runs it; fails the test with its output."""
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
