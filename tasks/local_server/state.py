"""The local server's state file, `$PMF_HOME/server/state.json`: what `pmf server start` started, where.

One JSON object: the URLs, the host, and per process (`prefect`, `mlflow`, `runner`) its pid, the
kernel's start time of that pid (so a pid the system has since given to another program is never
taken for ours), its log file and URL. Reading it costs a file read and a /proc read per process:
cheap enough for every pmf command to ask whether the server is up.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Self

from tasks.processes import is_alive

# The three processes `pmf server start` runs, in the order they start (and the reverse they stop in).
PROCESS_NAMES = ("prefect", "mlflow", "runner")
# Documented in `pmf server start --help`: Prefect's and MLflow's own default ports.
DEFAULT_PREFECT_PORT = 4200
DEFAULT_MLFLOW_PORT = 5000
# The work pool the runner (a Prefect process worker) polls; deployments go to it without a team pool.
WORK_POOL = "pmf-local"
# In the environment of every process a start spawned (and their children): how `stop` knows its own.
SERVER_ID_VARIABLE = "PMF_LOCAL_SERVER_ID"


@dataclass(frozen=True)
class ServerProcess:
    """One process of the local server: `started` is its start time as /proc says it (see tasks.processes)."""

    pid: int
    started: str
    log: str
    url: str | None = None

    def is_up(self) -> bool:
        return is_alive(self.pid, self.started) and not _is_zombie(self.pid)


@dataclass(frozen=True)
class ServerState:
    """What one `pmf server start` started. `running_server()` returns it while the Prefect server is up."""

    home: str
    host: str
    started_at: str
    prefect_port: int
    mlflow_port: int
    processes: dict[str, ServerProcess] = field(default_factory=dict)
    work_pool: str = WORK_POOL
    server_id: str = ""  # every process it started carries it in its environment (see launch)

    @property
    def prefect_ui_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}"

    @property
    def prefect_api_url(self) -> str:
        return f"{self.prefect_ui_url}/api"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def is_up(self, name: str) -> bool:
        """Whether process `name` (`prefect`, `mlflow`, `runner`) is still the one started (pid and start time)."""
        process = self.processes.get(name)
        return process is not None and self.on_this_host() and process.is_up()

    def runner_up(self) -> bool:
        """Whether the runner (the worker that executes deployments) is alive; it may still be starting."""
        return self.is_up("runner")

    def on_this_host(self) -> bool:
        """A workspace on a shared disk may hold another machine's state file: its pids mean nothing here."""
        return self.host == socket.gethostname()

    def up(self) -> dict[str, bool]:
        return {name: self.is_up(name) for name in self.processes}

    def is_stale(self) -> bool:
        """Nothing it started is left (a crash, kill -9, a reboot): the file only misleads."""
        return self.on_this_host() and not any(self.up().values())

    def with_process(self, name: str, process: ServerProcess) -> Self:
        return replace(self, processes={**self.processes, name: process})

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "prefect_api_url": self.prefect_api_url, "mlflow_url": self.mlflow_url}


def _is_zombie(pid: int) -> bool:
    """An exited process its parent has not reaped yet (/proc still lists it, with its start time)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def state_path(home: Path) -> Path:
    return home / "server" / "state.json"


def parse_state(text: str) -> ServerState:
    """A state file's contents as a ServerState. Raises ValueError for anything else."""
    try:
        data = json.loads(text)
        processes = {name: ServerProcess(**entry) for name, entry in data.pop("processes").items()}
        data.pop("prefect_api_url", None)
        data.pop("mlflow_url", None)
        return ServerState(**data, processes=processes)
    except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a pmf server state file: {exc}") from None


def read_state(home: Path) -> ServerState | None:
    """The state file of `home`, or None when there is none (or it is unreadable: treated as none)."""
    try:
        return parse_state(state_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_state(home: Path, state: ServerState) -> None:
    """Write the state file whole (a reader never sees half of it)."""
    path = state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(state.to_json(), indent=2), encoding="utf-8")
    os.replace(partial, path)


def remove_state(home: Path) -> None:
    state_path(home).unlink(missing_ok=True)


def running_server(home: Path | None = None) -> ServerState | None:
    """The local server of the workspace (`$PMF_HOME` unless `home` is given) if its Prefect server is up.

    None when it was never started, was stopped, or its Prefect server is gone (a stale file is left for
    `pmf server start/status/stop` to clean, with a note). No network round trip: a file and /proc.
    """
    if home is None:
        from tasks.workspace import pmf_home

        home = pmf_home()
    state = read_state(home)
    return state if state is not None and state.is_up("prefect") else None
