"""Runs as `pmf status` reports them: trigger and outcome from tags (or what Prefect knows before the tags
are there), model, duration, and the duration trend per flow and model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flows.status import state_outcomes
from tasks.status.runs import RunFacts, duration_s, duration_trends, model_of, outcome_of, run_entry, trigger_of

NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)


def run(**fields) -> RunFacts:
    return RunFacts(**{"flow": "pmf-train", "state_type": "completed", "state_name": "Completed", **fields})


@pytest.mark.parametrize(
    ("fields", "trigger"),
    [
        ({"tags": ("pmf", "model:penguins", "trigger:drift")}, "drift"),
        ({"tags": ("pmf", "trigger:schedule"), "auto_scheduled": False}, "schedule"),
        ({"tags": ("pmf",), "auto_scheduled": True}, "schedule"),  # the scheduler made it; not tagged yet
        ({"created_by": "AUTOMATION"}, "drift"),  # the drift automation made it; not tagged yet
        ({}, "manual"),
    ],
)
def test_the_trigger_comes_from_the_tag_else_from_who_made_the_run(fields, trigger):
    assert trigger_of(run(**fields)) == trigger


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ({"tags": ("outcome:not_promoted",), "state_name": "NotPromoted"}, "not_promoted"),
        ({"tags": ("outcome:promoted",), "state_type": "running", "state_name": "Running"}, "promoted"),  # the tag wins
        ({"state_type": "failed", "state_name": "Rejected"}, "data_rejected"),
        ({"state_type": "completed", "state_name": "NoNewData"}, "no_new_data"),
        ({"state_type": "failed", "state_name": "ConfigError"}, "usage_error"),
        ({"state_type": "crashed", "state_name": "Crashed"}, "failed"),
        ({"state_type": "failed", "state_name": "Failed"}, "failed"),
        ({"state_type": "cancelled", "state_name": "Cancelled"}, "cancelled"),
        ({"state_type": "running", "state_name": "Running"}, "running"),
        ({"state_type": "scheduled", "state_name": "Late"}, "running"),
        ({"state_type": "completed", "state_name": "Completed"}, "completed"),
    ],
)
def test_the_outcome_comes_from_the_tag_else_the_state_name_else_its_type(fields, outcome):
    assert outcome_of(run(**fields), state_outcomes()) == outcome


def test_the_model_is_the_tag_else_the_name_parameter_else_the_request_name():
    assert model_of(run(tags=("model:penguins",), parameters={"name": "other"})) == "penguins"
    assert model_of(run(parameters={"name": "penguins"})) == "penguins"
    assert model_of(run(parameters={"request": {"name": "diabetes", "data": "x.csv"}})) == "diabetes"
    assert model_of(run()) is None


def test_duration_is_start_to_end_or_to_now_while_running_and_none_before_it_starts():
    start = NOW - timedelta(seconds=90)
    assert duration_s(run(start=start, end=start + timedelta(seconds=12.5)), NOW) == 12.5
    assert duration_s(run(state_type="running", start=start), NOW) == 90.0
    assert duration_s(run(state_type="scheduled", start=None), NOW) is None


def test_an_entry_has_the_documented_fields_in_iso_utc():
    start = datetime(2026, 11, 29, 16, 0, tzinfo=UTC) + timedelta(hours=-2)  # 14:00 UTC
    entry = run_entry(
        run(tags=("model:penguins", "trigger:manual", "outcome:promoted"), start=start, end=start + timedelta(seconds=3)),
        NOW,
        state_outcomes(),
    )
    assert entry == {
        "flow": "pmf-train",
        "model": "penguins",
        "state": "completed",
        "trigger": "manual",
        "started": "2026-11-29T14:00:00Z",
        "duration_s": 3.0,
        "outcome": "promoted",
        "name": "",
        "id": "",
    }


def test_a_late_run_shows_when_it_was_due():
    due = NOW - timedelta(minutes=5)
    entry = run_entry(run(state_type="scheduled", state_name="Late", expected_start=due), NOW, state_outcomes())
    assert entry["started"] == "2026-11-29T14:55:00Z"
    assert entry["duration_s"] is None


def entry(flow: str, model: str, seconds: float | None, state: str = "completed") -> dict:
    return {"flow": flow, "model": model, "state": state, "duration_s": seconds}


def test_a_trend_compares_the_last_completed_run_with_the_median_of_those_before():
    runs = [  # newest first, as status lists them
        entry("pmf-retrain", "penguins", 30.0),
        entry("pmf-retrain", "penguins", 2.0, state="failed"),  # stopped early: says nothing about speed
        entry("pmf-retrain", "penguins", 20.0),
        entry("pmf-retrain", "penguins", 24.0),
        entry("pmf-retrain", "penguins", 10.0),
        entry("pmf-train", "penguins", 11.0),
    ]
    trends = {t["flow"]: t for t in duration_trends(runs)}
    retrain = trends["pmf-retrain"]
    assert retrain["durations_s"] == [10.0, 24.0, 20.0, 30.0]  # oldest first
    assert retrain["runs"] == 4
    assert retrain["median_s"] == 22.0
    assert retrain["last_s"] == 30.0
    assert retrain["change"] == pytest.approx(30.0 / 20.0 - 1)  # 50 % slower than the median before it
    assert trends["pmf-train"]["change"] is None  # one run: nothing to compare with


def test_a_trend_looks_at_the_last_runs_only_and_keeps_models_apart():
    runs = [entry("pmf-train", "a", float(s)) for s in range(20, 0, -1)] + [entry("pmf-train", "b", 5.0)]
    trends = duration_trends(runs, last=10)
    assert [(t["model"], t["runs"]) for t in trends] == [("a", 10), ("b", 1)]
    assert trends[0]["durations_s"] == [float(s) for s in range(11, 21)]
