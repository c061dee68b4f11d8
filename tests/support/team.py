"""A real `pmf team up` for the slow tests: PostgreSQL at 127.0.0.1:5432, a random database prefix, a
temporary PMF_HOME, free ports; `pmf team down --drop` at the end.

tests/conftest.py registers this module as a plugin, so any test can ask for `team_servers`; never
import the fixture into another conftest (each import would start a team of its own). It is
session-scoped: every test that asks for it shares one team (~20-60 s to start). Subprocesses run
with `team.env`, as a user's shell after pasting the exports. `team.stop_part(part)` and
`team.start_part(part)` stop and restart one part (`prefect`, `mlflow`, `worker`, `dask-scheduler`,
`dask-worker-1`, `dask-worker-2`) as `pmf team up` started it; `start_part` returns once it answers.
A test that stops a part should start it again (try/finally) for the tests after it.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tasks.team.state import TeamState, read_team_state
from tests.support.local_server import free_ports, pmf
from tests.support.pmf_process import pmf_env

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
START_TIMEOUT_S = 300  # the command's own deadline is 180 s; this only catches a hang
STOP_TIMEOUT_S = 180


@dataclass
class TeamServers:
    home: Path
    env: dict[str, str] = field(repr=False)  # PMF_HOME and the team's exports set, for subprocesses
    prefix: str
    postgres_url: str = POSTGRES
    started: subprocess.CompletedProcess | None = field(default=None, repr=False)  # what `pmf team up` printed

    @property
    def state(self) -> TeamState:
        """The state file as it is now (a restarted part has a new pid)."""
        state = read_team_state(self.home)
        assert state is not None, f"no team state file in {self.home}"
        return state

    def pmf(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run `pmf ARGS` (python -m flows.cli) with the team's environment, as a user's shell would."""
        return pmf(self.env, *args, timeout=timeout)

    def stop_part(self, part: str) -> TeamState:
        from tasks.team.launch import stop_part

        return stop_part(self.home, part)

    def start_part(self, part: str) -> TeamState:
        from tasks.team.launch import start_part

        return start_part(self.home, part)


def team_logs(home: Path, tail: int = 2000) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-tail:]}" for log in sorted(home.glob("logs/team-*.log")))


def team_up(home: Path, prefix: str | None = None, dask_workers: int = 2) -> TeamServers:
    """`pmf team up` on free ports with a fresh random prefix; fails the test with the output and the logs."""
    prefix = prefix or f"pmf_t{uuid.uuid4().hex[:8]}"
    prefect_port, mlflow_port, dask_port = free_ports(3)
    env = pmf_env(home)
    ports = ["--port", str(prefect_port), "--mlflow-port", str(mlflow_port), "--dask-port", str(dask_port)]
    up = ["team", "up", "--postgres", POSTGRES, "--prefix", prefix, *ports, "--dask-workers", str(dask_workers)]
    done = pmf(env, *up, timeout=START_TIMEOUT_S)
    if done.returncode != 0:
        pmf(env, "team", "down", "--drop", timeout=STOP_TIMEOUT_S)
        pytest.fail(f"pmf team up exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n{team_logs(home)}")
    state = read_team_state(home)
    assert state is not None, f"pmf team up wrote no state file in {home}"
    return TeamServers(home, {**env, **state.exports()}, prefix, started=done)


def team_down(team: TeamServers) -> None:
    """`pmf team down --drop`, then check that no process of the team is left (through /proc)."""
    from tasks.local_server.stop import server_processes
    from tasks.team.state import TEAM_ID_VARIABLE

    team_id = team.state.server_id
    done = pmf(pmf_env(team.home), "team", "down", "--drop", timeout=STOP_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    assert server_processes(team_id, TEAM_ID_VARIABLE) == []


@pytest.fixture(scope="session")
def team_servers(tmp_path_factory) -> Iterator[TeamServers]:
    """One real team (see the module's docstring) for the whole session."""
    team = team_up(tmp_path_factory.mktemp("pmf-team") / "home")
    try:
        yield team
    finally:
        team_down(team)
