"""The team's Prefect server restarts while the team's worker polls it: the same worker process picks
up the next scheduled run once the server is back, and that run completes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import DATA
from tests.support.pmf_process import wait_for

pytestmark = pytest.mark.slow

LEAN = ["--set", "train.epochs=2", "--set", "compression.variants=[float32]"]


def pmf_json(team_servers, *args: str) -> tuple[int, dict[str, Any]]:
    done = team_servers.pmf(*args, "--json")
    lines = done.stdout.strip().splitlines()
    return done.returncode, json.loads(lines[-1]) if lines else {"stderr": done.stderr}


def retrain_runs(api_url: str, name: str) -> list[Any]:
    """The flow runs of deployment `pmf-retrain/NAME`, read through a new client (the server may have restarted)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"pmf-retrain/{name}")
        return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))


def completed_since(api_url: str, name: str, since: datetime) -> list[Any]:
    """Scheduled retrain runs that started at or after `since` and completed."""
    return [
        r
        for r in retrain_runs(api_url, name)
        if r.parameters.get("trigger") == "schedule"
        and r.state_type.value == "COMPLETED"
        and r.start_time
        and r.start_time >= since
    ]


@pytest.fixture
def scheduled(team_servers, tmp_path) -> Iterator[str]:
    """A lean model on the team, retrained every 15 s from an empty folder (each run ends `no new data`, quickly)."""
    name = f"restart-{uuid.uuid4().hex[:6]}"
    code, result = pmf_json(team_servers, "run", "--config", str(DATA / "penguins.yaml"), "--name", name, *LEAN)
    assert code == 0, result
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    code, created = pmf_json(team_servers, "schedule", name, "--interval", "15s", "--incoming", str(incoming))
    assert code == 0, created
    try:
        yield name
    finally:
        assert pmf_json(team_servers, "schedule", name, "--delete")[0] == 0


def test_the_worker_and_the_next_scheduled_run_recover_from_a_prefect_restart(team_servers, scheduled):
    api_url = team_servers.state.prefect_api_url
    worker_pid = team_servers.state.processes["worker"].pid
    started = datetime.now(UTC)
    wait_for(lambda: completed_since(api_url, scheduled, started), 240, "a scheduled retrain on the team's worker")

    team_servers.stop_part("prefect")
    try:
        assert not team_servers.state.is_up("prefect")
    finally:
        team_servers.start_part("prefect")
    restarted = datetime.now(UTC)

    wait_for(lambda: completed_since(api_url, scheduled, restarted), 240, "a scheduled retrain after the restart")
    run = completed_since(api_url, scheduled, restarted)[0]
    assert run.state_name == "NoNewData", run.state.message
    # The worker that polled through the restart ran it: nobody had to start it again.
    assert team_servers.state.processes["worker"].pid == worker_pid
    assert team_servers.state.is_up("worker")
