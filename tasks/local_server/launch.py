"""Starting the local server: the Prefect server, the MLflow server and the runner, each in its own session.

Each process gets a new session (it survives the shell that started it, and stopping its session stops
what it spawned), stdin from /dev/null and its output appended to one log under PMF_HOME/logs (a pipe
nobody reads would stall it once full). Every process carries `PMF_LOCAL_SERVER_ID` in its environment,
which its children inherit: `stop` kills only processes that hold this server's id.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tasks.local_server import health
from tasks.local_server.state import (
    DEFAULT_MLFLOW_PORT,
    DEFAULT_PREFECT_PORT,
    SERVER_ID_VARIABLE,
    WORK_POOL,
    ServerProcess,
    ServerState,
    write_state,
)
from tasks.processes import start_time
from tasks.workspace import OFFLINE_VARIABLES

HOST = "127.0.0.1"  # loopback only: neither UI has authentication
RUNNER_NAME = health.RUNNER_NAME
# The runner asks for due runs every 2 s (Prefect's default is 10 s): a drift event's retrain starts
# within seconds of the automation scheduling it. Its heartbeat every 10 s tells `status` it is alive.
RUNNER_QUERY_SECONDS = "2"
RUNNER_HEARTBEAT_SECONDS = "10"
# A first start migrates both SQLite databases; on a busy two-core machine that took up to ~40 s.
START_TIMEOUT_S = 180.0


class PortInUse(Exception):
    """A port the server needs is taken: the message names it and the flag that changes it."""


class StartFailed(Exception):
    """One part did not come up: `part` names it, `log` is where its output went."""

    def __init__(self, part: str, reason: str, log: Path):
        super().__init__(f"{part} {reason}")
        self.part, self.reason, self.log = part, reason, log


@dataclass(frozen=True)
class Ports:
    prefect: int = DEFAULT_PREFECT_PORT
    mlflow: int = DEFAULT_MLFLOW_PORT


def check_ports(ports: Ports) -> None:
    """Raise PortInUse if either port cannot be listened on, before anything is started."""
    if ports.prefect == ports.mlflow:
        raise PortInUse(f"--port and --mlflow-port are both {ports.prefect}: give them different ports")
    for port, flag, what in ((ports.prefect, "--port", "Prefect"), (ports.mlflow, "--mlflow-port", "MLflow")):
        if not port_is_free(port):
            raise PortInUse(f"port {port} (for the {what} server) is in use on {HOST}: choose another with {flag} N")


def port_is_free(port: int) -> bool:
    # SO_REUSEADDR as the servers set it: a port a stopped server left in TIME_WAIT counts as free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def commands(home: Path, ports: Ports) -> dict[str, list[str]]:
    """The command line of each process, in the order they start."""
    python = sys.executable
    # Artifacts as files under PMF_HOME/artifacts, the location runs logged straight to the SQLite store
    # use too, so a run logged either way can be read either way.
    artifacts = (home / "artifacts").as_uri()
    store = ["--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}", "--default-artifact-root", artifacts]
    listen = ["--artifacts-destination", artifacts, "--host", HOST, "--port", str(ports.mlflow), "--workers", "1"]
    return {
        # `prefect server start` in the foreground (its --background pipes output nobody reads): uvicorn
        # serving the API, the UI and the services (scheduler, late runs, triggers and actions).
        "prefect": [python, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(ports.prefect)],
        "mlflow": [python, "-m", "mlflow", "server", *store, *listen],
        "runner": [python, "-m", "prefect", "worker", "start", "--pool", WORK_POOL, "--type", "process", "--name", RUNNER_NAME],
    }


def environment(home: Path, ports: Ports, server_id: str) -> dict[str, str]:
    """The environment of all three processes and of the flow runs the runner starts (they inherit it)."""
    state = ServerState(home=str(home), host="", started_at="", prefect_port=ports.prefect, mlflow_port=ports.mlflow)
    env = {
        **os.environ,
        **OFFLINE_VARIABLES,  # flow runs the runner starts never call home (no telemetry, no analytics)
        SERVER_ID_VARIABLE: server_id,
        "PMF_HOME": str(home),
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_API_URL": state.prefect_api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "true",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "true",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "true",
        "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "true",  # automations: triggers and their actions
        "PREFECT_WORKER_QUERY_SECONDS": RUNNER_QUERY_SECONDS,
        "PREFECT_WORKER_HEARTBEAT_SECONDS": RUNNER_HEARTBEAT_SECONDS,
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO",  # the console is the log file here
        # Flow runs write the same store directly (faster than through the server), and link to its UI.
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "PMF_MLFLOW_UI_URL": state.mlflow_url,
        # MLflow's job runner (GenAI scorers, prompt optimisation; pmf uses none) is eight more processes
        # and a folder in /dev/shm that outlives the server.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "PYTHONUNBUFFERED": "1",  # log lines reach the file as they are written
    }
    env.pop("PREFECT_UI_URL", None)  # derived from PREFECT_API_URL
    return env


def log_file(home: Path, name: str) -> Path:
    return home / "logs" / f"server-{name}.log"


def spawn(name: str, command: list[str], env: dict[str, str], home: Path) -> ServerProcess:
    """Start one process detached (new session, no terminal), its output appended to its log."""
    url = None if name == "runner" else command[command.index("--port") + 1]
    return spawn_logged(command, env, home, log_file(home, name), f"pmf server start: {name}", url and f"http://{HOST}:{url}")


def spawn_logged(
    command: list[str], env: dict[str, str], cwd: Path, log: Path, header: str, url: str | None = None
) -> ServerProcess:
    """Start `command` detached (a new session, stdin from /dev/null), its output appended to `log` after
    a line with `header` and the time."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n---- {header} at {datetime.now(UTC).isoformat(timespec='seconds')}\n".encode())
        out.flush()
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return ServerProcess(process.pid, start_time(process.pid) or "", str(log), url)


def start_server(home: Path, ports: Ports, before_runner: Callable[[str], object] | None = None) -> ServerState:
    """Start the Prefect and MLflow servers, wait for both to answer, call `before_runner(prefect_api_url)`,
    start the runner and wait for its first heartbeat. The state file is written as each process starts
    (so `stop` finds a half-started server). Raises StartFailed naming the part and its log."""
    server_id = uuid.uuid4().hex
    env = environment(home, ports, server_id)
    lines = commands(home, ports)
    state = ServerState(
        home=str(home),
        host=socket.gethostname(),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        prefect_port=ports.prefect,
        mlflow_port=ports.mlflow,
        server_id=server_id,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    with first_start_locks(home):
        for name in ("prefect", "mlflow"):
            state = state.with_process(name, spawn(name, lines[name], env, home))
            write_state(home, state)
        checks = {
            "prefect": lambda: health.prefect_answers(state.prefect_api_url),
            "mlflow": lambda: health.mlflow_answers(state.mlflow_url),
        }
        wait_healthy(state, checks, deadline)
    if before_runner is not None:
        before_runner(state.prefect_api_url)
    runner_started = datetime.now(UTC)
    state = state.with_process("runner", spawn("runner", lines["runner"], env, home))
    write_state(home, state)
    wait_healthy(state, {"runner": lambda: runner_registered(state.prefect_api_url, runner_started)}, deadline)
    return state


def runner_registered(api_url: str, since: datetime) -> bool:
    """The runner has sent a heartbeat since it started (an older one is a previous runner's)."""
    beat = health.runner_heartbeat(api_url)
    return beat is not None and beat >= since - timedelta(seconds=1)


@contextmanager
def first_start_locks(home: Path) -> Iterator[None]:
    """On a fresh workspace, hold the locks pmf commands take to create the Prefect and MLflow databases
    (flows.embedded_server, tasks.registry.tracking) until the servers have migrated them: a command
    started meanwhile waits instead of migrating the same file at the same time."""
    from importlib.metadata import version

    from tasks.workspace import workspace_lock

    prefect_ready = home / "prefect" / f".pmf-database-ready-{version('prefect')}"  # embedded_server's marker
    with ExitStack() as locks:
        if not prefect_ready.exists():
            locks.enter_context(workspace_lock("prefect-database"))
        if not (home / "mlflow.db").exists():
            locks.enter_context(workspace_lock("mlflow-store"))
        yield
        prefect_ready.parent.mkdir(parents=True, exist_ok=True)
        prefect_ready.touch()


PART_NAMES = {"prefect": "the Prefect server", "mlflow": "the MLflow server", "runner": "the runner"}


def wait_healthy(state: ServerState, checks: dict[str, Callable[[], bool]], deadline: float) -> None:
    """Poll each part's check until all hold; StartFailed as soon as one's process exits, or at the deadline."""
    wait_for_parts(state.processes, checks, deadline, PART_NAMES)


def wait_for_parts(
    processes: Mapping[str, ServerProcess], checks: dict[str, Callable[[], bool]], deadline: float, names: Mapping[str, str]
) -> None:
    """Poll each check until all hold; StartFailed naming the part (`names`) and its log as soon as its
    process exits, or at the deadline."""
    pending = dict(checks)
    while pending:
        for name, answers in list(pending.items()):
            process = processes[name]
            if answers():
                del pending[name]
            elif not process.is_up():
                raise StartFailed(names[name], "exited during start", Path(process.log))
            elif time.monotonic() > deadline:
                raise StartFailed(names[name], f"did not answer within {START_TIMEOUT_S:.0f}s", Path(process.log))
        if pending:
            time.sleep(0.25)  # other processes coming up: nothing to be notified by
