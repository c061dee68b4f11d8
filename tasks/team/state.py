"""Team mode's state file, `$PMF_HOME/team/state.json`: what `pmf team up` started, where, on which database.

A TeamState is the local server's state (tasks.local_server.state: per process its pid, start time,
log and URL; the start's random id) plus the PostgreSQL server and prefix of its databases and the
Dask cluster's port and size. Everything a part needs to be started again is in it (see launch).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tasks.local_server.state import ServerProcess, ServerState
from tasks.team.databases import database_names, parse_postgres_url

# Documented in `pmf team up --help`: clear of `pmf server start`'s 4200/5000, so both can run at once.
DEFAULT_PREFECT_PORT = 4400
DEFAULT_MLFLOW_PORT = 5400
DEFAULT_DASK_PORT = 8786  # Dask's own default
DEFAULT_DASK_WORKERS = 2
DEFAULT_PREFIX = "pmf"
WORK_POOL = "pmf"  # the team's process work pool (flows.deployments picks it when the server has it)
# In the environment of every process `team up` spawned (and their children): how `down` knows its own.
TEAM_ID_VARIABLE = "PMF_TEAM_ID"


def part_names(dask_workers: int) -> list[str]:
    """The parts, in the order they start (the reverse they stop in)."""
    return ["prefect", "mlflow", "dask-scheduler", *(f"dask-worker-{i}" for i in range(1, dask_workers + 1)), "worker"]


@dataclass(frozen=True)
class TeamState(ServerState):
    """What one `pmf team up` started. `server_id` is the start's id (TEAM_ID_VARIABLE)."""

    work_pool: str = WORK_POOL
    postgres_url: str = ""  # the admin URL `--postgres` gave, as postgresql://
    prefix: str = DEFAULT_PREFIX
    dask_port: int = DEFAULT_DASK_PORT
    dask_workers: int = DEFAULT_DASK_WORKERS

    @property
    def dask_address(self) -> str:
        return f"tcp://127.0.0.1:{self.dask_port}"

    @property
    def databases(self) -> list[str]:
        """`{prefix}_prefect`, `{prefix}_mlflow`, `{prefix}_pmf`."""
        return database_names(self.prefix)

    def database_url(self, service: str = "pmf", driver: str = "psycopg") -> str:
        """The SQLAlchemy URL of one service's database (default: pmf's own, as PMF_DATABASE_URL)."""
        return parse_postgres_url(self.postgres_url).url(f"{self.prefix}_{service}", driver)

    @property
    def parts(self) -> list[str]:
        return part_names(self.dask_workers)

    def exports(self) -> dict[str, str]:
        """The variables that point pmf at this team (what `team up` prints as `export` lines)."""
        return {
            "PREFECT_API_URL": self.prefect_api_url,
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "PMF_DASK_ADDRESS": self.dask_address,
            "PMF_DATABASE_URL": self.database_url(),
        }

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "databases": self.databases, "exports": self.exports()}


def state_path(home: Path) -> Path:
    return home / "team" / "state.json"


def parse_team_state(text: str) -> TeamState:
    """A team state file's contents as a TeamState. Raises ValueError for anything else."""
    try:
        data = json.loads(text)
        processes = {name: ServerProcess(**entry) for name, entry in data.pop("processes").items()}
        for derived in ("databases", "exports"):
            data.pop(derived, None)
        return TeamState(**data, processes=processes)
    except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a pmf team state file: {exc}") from None


def read_team_state(home: Path) -> TeamState | None:
    """The team state of workspace `home`, or None when there is none (an unreadable one counts as none)."""
    try:
        return parse_team_state(state_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_team_state(home: Path, state: TeamState) -> None:
    """Write the state file whole (a reader never sees half of it); readable by its owner only (the
    PostgreSQL URL may hold a password)."""
    path = state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(state.to_json(), indent=2), encoding="utf-8")
    partial.chmod(0o600)
    os.replace(partial, path)


def remove_team_state(home: Path) -> None:
    state_path(home).unlink(missing_ok=True)
