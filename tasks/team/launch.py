"""Starting and stopping team mode's processes: the Prefect server and the MLflow server on PostgreSQL,
a Dask scheduler and its workers, and a Prefect process worker on pool `pmf`.

Each runs detached in a session of its own with its output in `$PMF_HOME/logs/team-PART.log`, as the
local server's do (tasks.local_server.launch), and carries `PMF_TEAM_ID` (random per `team up`) in its
environment, which everything it spawns inherits: stopping kills only processes that hold the id.
A part's command line and environment follow from the state file alone, so `start_part` restarts one
part exactly as `team up` started it.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tasks.local_server.launch import (
    HOST,
    RUNNER_HEARTBEAT_SECONDS,
    RUNNER_QUERY_SECONDS,
    START_TIMEOUT_S,
    PortInUse,
    StartFailed,
    port_is_free,
    spawn_logged,
    wait_for_parts,
)
from tasks.local_server.stop import TERM_TIMEOUT_S, process_tree, server_processes, terminate
from tasks.team import health
from tasks.team.databases import PostgresServer
from tasks.team.state import (
    DEFAULT_DASK_PORT,
    DEFAULT_DASK_WORKERS,
    DEFAULT_MLFLOW_PORT,
    DEFAULT_PREFECT_PORT,
    TEAM_ID_VARIABLE,
    TeamState,
    read_team_state,
    write_team_state,
)
from tasks.workspace import OFFLINE_VARIABLES

__all__ = ["PortInUse", "StartFailed", "TeamPorts", "check_ports", "start_part", "start_team", "stop_part", "stop_team"]

# Parts that listen on a port of their own, and the flag of `pmf team up` that sets it.
PORT_FLAGS = {"prefect": "--port", "mlflow": "--mlflow-port", "dask-scheduler": "--dask-port"}


@dataclass(frozen=True)
class TeamPorts:
    prefect: int = DEFAULT_PREFECT_PORT
    mlflow: int = DEFAULT_MLFLOW_PORT
    dask: int = DEFAULT_DASK_PORT


def check_ports(ports: TeamPorts) -> None:
    """Raise PortInUse naming the port and its flag if one cannot be listened on, before anything starts."""
    wanted = {"--port": ports.prefect, "--mlflow-port": ports.mlflow, "--dask-port": ports.dask}
    if len(set(wanted.values())) < len(wanted):
        raise PortInUse(f"{', '.join(f'{flag} {port}' for flag, port in wanted.items())}: give each a different port")
    labels = {"--port": "the Prefect server", "--mlflow-port": "the MLflow server", "--dask-port": "the Dask scheduler"}
    for flag, port in wanted.items():
        if not port_is_free(port):
            raise PortInUse(f"port {port} (for {labels[flag]}) is in use on {HOST}: choose another with {flag} N")


def part_label(part: str) -> str:
    """A part as messages name it."""
    labels = {
        "prefect": "the Prefect server",
        "mlflow": "the MLflow server",
        "worker": "the Prefect worker",
        "dask-scheduler": "the Dask scheduler",
    }
    return labels.get(part, f"Dask worker {part.rsplit('-', 1)[-1]}")


def command(state: TeamState, part: str) -> list[str]:
    """The command line of one part."""
    python, home = sys.executable, Path(state.home)
    if part == "prefect":
        # In the foreground (its --background pipes output nobody reads): the API, UI and services.
        return [python, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(state.prefect_port)]
    if part == "mlflow":
        store = ["--backend-store-uri", state.database_url("mlflow")]
        # Proxied artifacts: clients upload through the server (mlflow-artifacts:/), which keeps them here.
        artifacts = ["--serve-artifacts", "--artifacts-destination", (home / "team" / "artifacts").as_uri()]
        return [
            python,
            "-m",
            "mlflow",
            "server",
            *store,
            *artifacts,
            "--host",
            HOST,
            "--port",
            str(state.mlflow_port),
            "--workers",
            "1",
        ]
    if part == "worker":
        return [
            python,
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            state.work_pool,
            "--type",
            "process",
            "--name",
            health.WORKER_NAME,
        ]
    if part == "dask-scheduler":
        return [python, "-m", "dask", "scheduler", "--host", HOST, "--port", str(state.dask_port), "--no-dashboard"]
    if part.startswith("dask-worker-") and part in state.parts:
        local = str(home / "team" / "dask")
        worker = ["--nthreads", "1", "--nworkers", "1", "--name", part, "--local-directory", local, "--no-dashboard"]
        return [python, "-m", "dask", "worker", state.dask_address, *worker]
    raise ValueError(f"no part {part!r} in team mode: expected one of {', '.join(state.parts)}")


def environment(state: TeamState, part: str) -> dict[str, str]:
    """One part's environment: the team's exports (flow runs the worker starts and tasks Dask workers run
    inherit them), its id, and the Prefect server's database URL for the Prefect server alone."""
    home = Path(state.home)
    env = {
        **os.environ,
        **OFFLINE_VARIABLES,  # nothing the team runs calls home (no telemetry, no analytics)
        **state.exports(),
        TEAM_ID_VARIABLE: state.server_id,
        "PMF_HOME": str(home),
        "PREFECT_HOME": str(home / "team" / "prefect"),
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO",  # the console is the log file here
        "PREFECT_WORKER_QUERY_SECONDS": RUNNER_QUERY_SECONDS,
        "PREFECT_WORKER_HEARTBEAT_SECONDS": RUNNER_HEARTBEAT_SECONDS,
        "DASK_TEMPORARY_DIRECTORY": str(home / "team" / "dask"),  # not ./dask-scratch-space
        "TF_USE_LEGACY_KERAS": "1",
        # MLflow's job runner (GenAI scorers; pmf uses none) is eight more processes and a /dev/shm folder.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "PYTHONUNBUFFERED": "1",  # log lines reach the file as they are written
    }
    for inherited in ("PREFECT_UI_URL", "PMF_MLFLOW_UI_URL", "PREFECT_API_DATABASE_CONNECTION_URL", "PMF_ARTIFACT_ROOT"):
        env.pop(inherited, None)  # derived from the exports, or the local workspace's
    if part == "prefect":
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = state.database_url("prefect", "asyncpg")
        env["PREFECT_SERVER_UI_ENABLED"] = "true"
        for service in ("SCHEDULER", "LATE_RUNS", "TRIGGERS"):
            env[f"PREFECT_SERVER_SERVICES_{service}_ENABLED"] = "true"
    return env


def log_file(home: Path, part: str) -> Path:
    return home / "logs" / f"team-{part}.log"


def spawn_part(state: TeamState, part: str) -> TeamState:
    """Start one part detached; the state (written to the file at once) with its process."""
    home = Path(state.home)
    (home / "team" / "dask").mkdir(parents=True, exist_ok=True)
    urls = {"prefect": state.prefect_ui_url, "mlflow": state.mlflow_url, "dask-scheduler": state.dask_address}
    process = spawn_logged(
        command(state, part), environment(state, part), home / "team", log_file(home, part), f"pmf team: {part}", urls.get(part)
    )
    state = state.with_process(part, process)
    write_team_state(home, state)
    return state


def wait_answering(state: TeamState, parts: list[str], since: datetime, deadline: float) -> None:
    checks: dict[str, Callable[[], bool]] = {part: _check(state, part, since) for part in parts}
    wait_for_parts(state.processes, checks, deadline, {part: part_label(part) for part in parts})


def _check(state: TeamState, part: str, since: datetime) -> Callable[[], bool]:
    return lambda: health.part_answers(state, part, since)


def start_team(
    home: Path, postgres: PostgresServer, prefix: str, ports: TeamPorts, dask_workers: int = DEFAULT_DASK_WORKERS
) -> TeamState:
    """Start every part on databases that exist (see databases.create_databases) and wait until each
    answers: the servers and the scheduler first, then the workers that connect to them. The state file
    is written as each process starts (so `stop_team` finds a half-started team). Raises StartFailed
    naming the part and its log."""
    state = TeamState(
        home=str(home),
        host=socket.gethostname(),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        prefect_port=ports.prefect,
        mlflow_port=ports.mlflow,
        server_id=uuid.uuid4().hex,
        postgres_url=postgres.url(),
        prefix=prefix,
        dask_port=ports.dask,
        dask_workers=dask_workers,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    since = datetime.now(UTC)
    servers = ["prefect", "mlflow", "dask-scheduler"]
    for part in servers:
        state = spawn_part(state, part)
    wait_answering(state, servers, since, deadline)
    clients = [part for part in state.parts if part not in servers]
    since = datetime.now(UTC)
    for part in clients:
        state = spawn_part(state, part)
    wait_answering(state, clients, since, deadline)
    return state


def part_pids(state: TeamState, part: str) -> list[int]:
    """The running processes of one part: its own and those it spawned, all carrying the team's id."""
    process = state.processes.get(part)
    if process is None:
        return []
    return process_tree(process.pid, server_processes(state.server_id, TEAM_ID_VARIABLE))


def stop_team(state: TeamState, timeout_s: float = TERM_TIMEOUT_S) -> list[int]:
    """Stop every process of `state`, in the reverse order of their start (the worker and its flow runs
    first, the Prefect server last), then any other process carrying its id (a child whose parent died).
    Returns the pids still running after SIGKILL (none, unless something refused to die)."""
    for part in reversed(list(state.processes)):
        terminate(part_pids(state, part), state.server_id, timeout_s, TEAM_ID_VARIABLE)
    terminate(server_processes(state.server_id, TEAM_ID_VARIABLE), state.server_id, timeout_s, TEAM_ID_VARIABLE)
    return server_processes(state.server_id, TEAM_ID_VARIABLE)


def _running_state(home: Path, part: str) -> TeamState:
    state = read_team_state(home)
    if state is None:
        raise ValueError(f"team mode is not running on {home} (no {home / 'team' / 'state.json'})")
    if part not in state.parts:
        raise ValueError(f"no part {part!r} in team mode: expected one of {', '.join(state.parts)}")
    return state


def stop_part(home: Path, part: str, timeout_s: float = TERM_TIMEOUT_S) -> TeamState:
    """Stop one part of the team running on `home` (SIGTERM, SIGKILL after `timeout_s`); the state file
    keeps it, so `status` shows it down and `start_part` starts it again. Raises ValueError for a part
    that is not there or a team that is not running."""
    state = _running_state(home, part)
    terminate(part_pids(state, part), state.server_id, timeout_s, TEAM_ID_VARIABLE)
    return state


def start_part(home: Path, part: str, timeout_s: float = START_TIMEOUT_S) -> TeamState:
    """(Re)start one part with the ports, environment and id `team up` gave it (stopping it first if it
    still runs), update the state file and wait until it answers. Raises StartFailed naming the part and
    its log, PortInUse when its port is taken by something else, ValueError as `stop_part` does."""
    state = _running_state(home, part)
    if state.is_up(part):
        stop_part(home, part)
    port = {"prefect": state.prefect_port, "mlflow": state.mlflow_port, "dask-scheduler": state.dask_port}.get(part)
    if port is not None and not _wait_port_free(port, 15.0):
        raise PortInUse(f"port {port} (for {part_label(part)}) is in use on {HOST}")
    since = datetime.now(UTC)
    state = spawn_part(state, part)
    wait_answering(state, [part], since, time.monotonic() + timeout_s)
    return state


def _wait_port_free(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not port_is_free(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)  # a stopping process releasing its socket: nothing to be notified by
    return True
