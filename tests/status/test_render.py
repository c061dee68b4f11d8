"""`pmf status` on a terminal: every section in 80 columns, whatever the names, outcomes in words."""

from __future__ import annotations

from datetime import UTC, datetime

from flows.cli.status import outcome_text, render_status

NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)
LONG = "customer-churn-forecast-emea-weekly"  # 35 characters: longer than any column plans for


def result(**overrides) -> dict:
    report = {
        "status": "ok",
        "model": None,
        "checked_at": "2026-11-29T15:00:00+00:00",
        "server": {
            "up": True,
            "runner_up": True,
            "prefect_url": "http://127.0.0.1:4200",
            "mlflow_url": "http://127.0.0.1:5000",
            "mode": "local",
        },
        "schedules": [
            {"model": "penguins", "kind": "retrain", "schedule": "every 1d", "paused": False, "next_run": "2026-11-30T03:00:00Z"},
            {"model": LONG, "kind": "monitor", "schedule": "cron 0 3 * * 1-5 (Europe/Paris)", "paused": True, "next_run": None},
        ],
        "runs": [
            run("pmf-retrain", "penguins", "schedule", "completed", "not_promoted", 74.2),
            run("pmf-monitor", LONG, "schedule", "completed", "completed", 3.1),
            run("pmf-retrain", "penguins", "drift", "failed", "data_rejected", 5.0),
            run("pmf-train", "penguins", "manual", "crashed", "failed", 1.0),
            run("pmf-retrain", "penguins", "schedule", "scheduled", "running", None),
        ],
        "models": [
            {
                "name": LONG,
                "aliases": {
                    "production": {"version": "12", "primary_metric": "recall_macro", "value": 0.912345, "age_s": 3 * 86_400.0},
                    "candidate": {"version": "13", "primary_metric": "recall_macro", "value": None, "age_s": 120.0},
                },
            }
        ],
        "drift": [
            {
                "model": LONG,
                "checked_at": "2026-11-29T14:45:00Z",
                "drifted": True,
                "top_features": ["a_very_long_feature_name_number_one", "another_long_feature_name", "third"],
                "verdict": "drift",
                "version": "12",
                "drift_share": 0.666667,
            }
        ],
        "trends": [
            {
                "flow": "pmf-retrain",
                "model": LONG,
                "runs": 10,
                "durations_s": [60.0] * 9 + [74.2],
                "median_s": 60.0,
                "last_s": 74.2,
                "change": 0.2367,
            }
        ],
        "problems": [],
    }
    return {**report, **overrides}


def run(flow, model, trigger, state, outcome, seconds) -> dict:
    return {
        "flow": flow,
        "model": model,
        "state": state,
        "trigger": trigger,
        "started": "2026-11-29T14:30:00+00:00",
        "duration_s": seconds,
        "outcome": outcome,
        "name": "",
        "id": "",
    }


def test_every_line_fits_80_columns_even_with_long_names():
    text = render_status(result(), NOW)
    too_long = [line for line in text.splitlines() if len(line) > 80]
    assert too_long == []


def test_each_section_says_what_a_user_looks_for():
    text = render_status(result(), NOW)
    assert "server    up (local) · runner up" in text
    assert "http://127.0.0.1:4200" in text
    assert "2026-11-30 03:00  in 12h" in text  # next run, UTC, and how soon
    assert "paused" in text
    assert "not promoted" in text
    assert "data rejected" in text
    assert "1m 14s" in text  # duration of the first run
    assert "@production" in text
    assert "recall_macro 0.9123" in text
    assert "registered 3d ago" in text
    assert "67% of features" in text
    assert "most drifted: a_very_long_feature_name_number_one, another_long_feature_name, third" in " ".join(text.split())
    assert "+24% vs before" in text


def test_without_the_server_the_header_says_how_to_start_it_and_schedules_need_it():
    embedded = {"up": False, "runner_up": False, "prefect_url": None, "mlflow_url": None, "mode": "embedded"}
    text = render_status(result(server=embedded, schedules=[]), NOW)
    assert text.splitlines()[0].startswith("server    not running: `pmf server start`")
    assert "schedules none: they need the server (`pmf server start`)" in text


def test_a_prefect_that_does_not_answer_is_one_line_and_the_rest_still_shows():
    team = {"up": False, "runner_up": False, "prefect_url": "http://team:4200", "mlflow_url": None, "mode": "team"}
    problem = "the Prefect server at http://team:4200/api (PREFECT_API_URL) does not answer: runs and schedules are not shown"
    text = render_status(result(server=team, schedules=[], runs=[], trends=[], problems=[problem]), NOW)
    assert "server    down (PREFECT_API_URL)" in text
    assert f"! {problem}" in " ".join(text.split())  # wrapped to 80 columns
    assert "@production" in text
    assert "Traceback" not in text


def test_an_empty_workspace_says_what_to_do_first():
    embedded = {"up": False, "runner_up": False, "prefect_url": None, "mlflow_url": None, "mode": "embedded"}
    text = render_status(result(server=embedded, schedules=[], runs=[], models=[], drift=[], trends=[]), NOW)
    assert "runs      none yet (`pmf run` makes one)" in text
    assert "models    none registered yet" in text
    assert "drift (last check)" not in text


def test_an_outcome_in_words_names_the_state_only_where_it_says_more():
    assert outcome_text(run("pmf-train", "m", "manual", "completed", "not_promoted", 1.0)) == "not promoted"
    assert outcome_text(run("pmf-train", "m", "manual", "crashed", "failed", 1.0)) == "failed (crashed)"
    assert outcome_text(run("pmf-train", "m", "manual", "scheduled", "running", None)) == "scheduled"
    assert outcome_text(run("pmf-train", "m", "manual", "running", "running", 3.0)) == "running"
