"""`pmf status` with a real local server (`pmf server start`, shared by the session): the server and its
runner up, and a retrain schedule created through Prefect's client with the run the scheduler planned."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.slow

NAME = "status-schedule-check"  # a name no other test schedules: the server is shared
YEARLY = "0 3 1 1 *"  # Jan 1, 03:00 UTC: planned by the scheduler, never due during a test


def next_new_year_3am(now: datetime) -> datetime:
    this_year = datetime(now.year, 1, 1, 3, tzinfo=UTC)
    return this_year if this_year > now else this_year.replace(year=now.year + 1)


def planned_runs(api_url: str, deployment_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


def test_status_shows_the_server_and_runner_up_and_a_schedule_with_its_next_run(local_server):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.deployments import Timing, delete_schedules, deploy

    with temporary_settings({PREFECT_API_URL: local_server.prefect_api_url}):
        deployment_id = deploy("retrain", NAME, Timing(cron=YEARLY), {})
    try:
        deadline = time.monotonic() + 90  # the scheduler plans a changed deployment within seconds
        while not planned_runs(local_server.prefect_api_url, deployment_id):
            assert time.monotonic() < deadline, "the scheduler planned no run of the new deployment within 90 s"
            time.sleep(0.5)

        done = local_server.pmf("status", "--json", timeout=300)
        assert done.returncode == 0, done.stderr
        status = json.loads(done.stdout)
        assert status["server"] == {
            "up": True,
            "runner_up": True,
            "prefect_url": local_server.prefect_ui_url,
            "mlflow_url": local_server.mlflow_url,
            "mode": "local",
        }
        schedule = next(s for s in status["schedules"] if s["model"] == NAME)
        assert schedule["kind"] == "retrain"
        assert schedule["schedule"] == f"cron {YEARLY} (UTC)"
        assert schedule["paused"] is False
        assert datetime.fromisoformat(schedule["next_run"]) == next_new_year_3am(datetime.now(UTC))
        assert status["problems"] == []

        shown = local_server.pmf("status", timeout=300)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith("server    up (local) · runner up")
        assert [line for line in shown.stdout.splitlines() if len(line) > 80] == []
        row = next(line for line in shown.stdout.splitlines() if line.startswith(f"  {NAME}"))
        assert f"{next_new_year_3am(datetime.now(UTC)):%Y-%m-%d %H:%M}" in row
    finally:
        with temporary_settings({PREFECT_API_URL: local_server.prefect_api_url}):
            delete_schedules(NAME)
