"""Runs that must not pile up, on a real server: scheduled runs missed while the server was down (all but
the latest cancelled) and retrains queued behind a running one (one waits at most)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from flows import deployments

pytestmark = pytest.mark.slow


def late_runs(prefect, deployment_name: str, ages_min: list[int]) -> list:
    """A pmf-retrain deployment on a pool no worker polls, with Scheduled runs due `ages_min` minutes ago."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.states import Scheduled

    with contextlib.suppress(ObjectAlreadyExists):  # the other test made it
        prefect.create_work_pool(WorkPoolCreate(name="pmf-test-no-worker", type="process"))
    flow_id = prefect.create_flow_from_name("pmf-retrain")
    deployment_id = prefect.create_deployment(
        flow_id=flow_id, name=deployment_name, entrypoint=deployments.ENTRYPOINTS["retrain"], work_pool_name="pmf-test-no-worker"
    )
    now = datetime.now(UTC)
    return [
        prefect.create_flow_run_from_deployment(deployment_id, state=Scheduled(scheduled_time=now - timedelta(minutes=age)))
        for age in ages_min
    ]


def states(prefect, runs: list) -> list[tuple[str, str | None]]:
    return [(r.state_name, r.state.message) for r in (prefect.read_flow_run(run.id) for run in runs)]


def test_runs_missed_while_the_server_was_down_are_skipped_but_the_latest(prefect):
    runs = late_runs(prefect, "missed-runs", [90, 60, 30])
    assert deployments.skip_missed_runs(models=["missed-runs"]) == 2  # other tests' runs on the server are theirs
    (first, _), (second, message), (latest, _) = states(prefect, runs)
    assert (first, second, latest) == ("Cancelled", "Cancelled", "Scheduled")
    assert "missed while the server was down" in message


def test_at_most_one_retrain_waits(prefect):
    runs = late_runs(prefect, "queued-retrains", [3, 2, 1])
    assert deployments.trim_waiting_retrains("queued-retrains") == 2
    (oldest, _), (newer, message), (newest, _) = states(prefect, runs)
    assert (oldest, newer, newest) == ("Scheduled", "Cancelled", "Cancelled")
    assert "is already queued (one waits at most" in message
