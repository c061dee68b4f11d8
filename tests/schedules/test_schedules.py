"""`pmf schedule` against a real `pmf server start`: create, list, pause, resume, update, delete; a
short interval produces a run that completes; a burst of drift makes exactly one retrain."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.schedules.conftest import NAME, deployment_runs, pmf_json
from tests.support.pmf_process import wait_for

pytestmark = pytest.mark.slow

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def schedules_of(server, name=NAME) -> list[dict]:
    code, listing = pmf_json(server, "schedule", "--list")
    assert code == 0, listing
    return [s for s in listing["schedules"] if s["model"] == name]


def test_schedule_list_pause_resume_update_delete(local_server, scheduled_model, prefect):
    code, created = pmf_json(local_server, "schedule", NAME, "--interval", "6h", "--monitor-every", "30m")
    assert code == 0, created
    assert created["created"] == [f"pmf-retrain/{NAME}", f"pmf-monitor/{NAME}", f"pmf-drift-retrain-{NAME}"]

    # The scheduler plans a new deployment's runs within seconds; until then next_run is null.
    wait_for(lambda: all(s["next_run"] for s in schedules_of(local_server)), 60, "the schedules' next runs")
    rows = {s["kind"]: s for s in schedules_of(local_server)}
    assert rows["retrain"]["schedule"] == "every 6h"
    assert rows["monitor"]["schedule"] == "every 30m"
    for row in rows.values():
        assert row["paused"] is False
        assert datetime.fromisoformat(row["next_run"]) > datetime.now(UTC)
    text = local_server.pmf("schedule", "--list")
    assert NAME in text.stdout
    assert max(len(line) for line in text.stdout.splitlines()) <= 80

    assert pmf_json(local_server, "schedule", NAME, "--pause")[0] == 0
    assert [s["paused"] for s in schedules_of(local_server)] == [True, True]
    assert [s["next_run"] for s in schedules_of(local_server)] == [None, None]
    assert not prefect.read_automations_by_name(f"pmf-drift-retrain-{NAME}")[0].enabled
    assert pmf_json(local_server, "schedule", NAME, "--resume")[0] == 0
    assert [s["paused"] for s in schedules_of(local_server)] == [False, False]
    assert prefect.read_automations_by_name(f"pmf-drift-retrain-{NAME}")[0].enabled

    code, _ = pmf_json(local_server, "schedule", NAME, "--cron", "0 3 * * *", "--timezone", "Europe/Paris")
    assert code == 0
    rows = {s["kind"]: s for s in schedules_of(local_server)}
    assert rows["retrain"]["schedule"] == "cron 0 3 * * * (Europe/Paris)"  # replaced, not added
    assert rows["monitor"]["schedule"] == "every 30m"  # left as it was
    assert len(schedules_of(local_server)) == 2

    code, deleted = pmf_json(local_server, "schedule", NAME, "--delete")
    assert code == 0
    assert deleted["deleted"] == [f"pmf-retrain/{NAME}", f"pmf-monitor/{NAME}", f"pmf-drift-retrain-{NAME}"]
    assert schedules_of(local_server) == []
    assert prefect.read_automations_by_name(f"pmf-drift-retrain-{NAME}") == []


def test_schedule_refuses_an_unknown_name_and_a_bad_duration(local_server):
    done = local_server.pmf("schedule", "no-such-model", "--interval", "1h")
    assert done.returncode == 2
    assert "no registered model named 'no-such-model'" in done.stderr
    done = local_server.pmf("schedule", NAME, "--interval", "90")
    assert done.returncode == 2
    assert "--interval: '90' is not a duration" in done.stderr


def test_a_short_interval_produces_a_run_that_completes(local_server, scheduled_model, prefect, tmp_path):
    incoming = tmp_path / "incoming"  # empty: the retrain ends `no_new_data`, which is quick
    incoming.mkdir()
    code, _ = pmf_json(local_server, "schedule", NAME, "--interval", "10s", "--incoming", str(incoming))
    assert code == 0
    try:

        def a_scheduled_run_finished() -> bool:
            runs = deployment_runs(prefect, f"pmf-retrain/{NAME}")
            return any(r.state_type.value in FINAL for r in runs if r.parameters.get("trigger") == "schedule")

        wait_for(a_scheduled_run_finished, 240, "a scheduled retrain run that finished")
    finally:
        assert pmf_json(local_server, "schedule", NAME, "--delete")[0] == 0
    run = next(r for r in runs_of(prefect) if r.parameters.get("trigger") == "schedule" and r.state_type.value in FINAL)
    assert run.state_name == "NoNewData", run.state.message
    assert "trigger:schedule" in run.tags
    assert run.parameters["incoming"] == str(incoming)


def runs_of(prefect) -> list:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterTags

    return prefect.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=["pmf-retrain"])),
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"model:{NAME}"])),
    )


def test_a_burst_of_drift_makes_exactly_one_retrain_and_a_clean_check_none(local_server, scheduled_model, prefect):
    from prefect.events.worker import EventsWorker

    from flows.events import emit_drift
    from tests.conftest import DATA

    code, _ = pmf_json(local_server, "schedule", NAME, "--cron", "0 3 1 1 *")  # no scheduled run during the test
    assert code == 0
    try:
        code, clean = pmf_json(local_server, "monitor", NAME, "--data", str(DATA / "incoming" / "penguins" / "clean.csv"))
        assert code == 0, clean
        assert (clean["drifted"], clean["event_emitted"]) == (False, False)
        code, drifted = pmf_json(local_server, "monitor", NAME, "--data", str(DATA / "incoming" / "penguins" / "drifted.csv"))
        assert code == 0, drifted
        assert (drifted["drifted"], drifted["event_emitted"]) == (True, True)
        for _ in range(2):  # the rest of the burst: two more checks that found drift
            assert emit_drift(NAME, drifted["version"], {"drift_share": drifted["drift_share"], "burst": True})
        EventsWorker.drain_all()

        def drift_runs() -> list:
            return [r for r in runs_of(prefect) if r.parameters.get("trigger") == "drift"]

        wait_for(lambda: any(r.state_type.value in FINAL for r in drift_runs()), 240, "the drift-triggered retrain to finish")
    finally:
        assert pmf_json(local_server, "schedule", NAME, "--delete")[0] == 0
    (run,) = drift_runs()  # the three events were processed long before the run finished
    assert run.state_name == "NoNewData", run.state.message
    assert "trigger:drift" in run.tags
    assert run.parameters["drift"]["version"] == drifted["version"]
    assert run.parameters["drift"]["drift_share"] == drifted["drift_share"]
    assert "burst" not in run.parameters["drift"]  # the first event of the burst started it
