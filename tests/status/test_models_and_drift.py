"""What each alias points to (primary metric from the version's recorded config, age) and the last drift
check read from the history file, as `pmf status` shows them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tasks.status.drift import last_verdicts
from tasks.status.models import model_entry, primary_metric_of

NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)


def test_the_primary_metric_is_the_configs_else_the_tasks_default():
    chosen = json.dumps({"primary_metric": "accuracy", "data": {"task": "classification"}})
    assert primary_metric_of(chosen, {}) == "accuracy"
    assert primary_metric_of(json.dumps({"primary_metric": None, "data": {"task": "regression"}}), {}) == "r2"
    assert primary_metric_of(json.dumps({"data": {"task": "classification"}}), {}) == "f1_macro"


def test_without_a_readable_config_the_primary_metric_is_a_default_the_version_has():
    assert primary_metric_of(None, {"mae": 3.0, "r2": 0.4}) == "r2"
    assert primary_metric_of("{not json", {"f1_macro": 0.9}) == "f1_macro"
    assert primary_metric_of(None, {"mae": 3.0}) is None


def test_each_alias_shows_its_version_metric_and_age_production_first():
    model = {
        "name": "penguins",
        "aliases": {"candidate": "3", "production": "2", "staging": "3"},
        "versions": [
            {"version": "2", "created": "2026-11-27T15:00:00+00:00", "metrics": {"accuracy": 0.97, "f1_macro": 0.96}},
            {"version": "3", "created": "2026-11-29T14:30:00+00:00", "metrics": {"accuracy": 0.99}},
        ],
    }
    entry = model_entry(model, {"2": "accuracy", "3": "accuracy"}, NOW)
    assert list(entry["aliases"]) == ["production", "staging", "candidate"]
    assert entry["aliases"]["production"] == {
        "version": "2",
        "primary_metric": "accuracy",
        "value": 0.97,
        "age_s": 2 * 86_400.0,
        "created": "2026-11-27T15:00:00Z",
    }
    assert entry["aliases"]["candidate"]["age_s"] == 1800.0


def check(at: str, verdict: str, top: list[str]) -> str:
    return json.dumps(
        {
            "checked_at": at,
            "model": "penguins",
            "version": "2",
            "rows": 400,
            "verdict": verdict,
            "drifted": verdict == "drift",
            "drift_share": 0.6 if verdict == "drift" else 0.0,
            "top_features": top,
            "features": [],
            "prediction_drift": None,
            "event_emitted": verdict == "drift",
        }
    )


def test_the_last_verdict_of_each_model_names_its_most_drifted_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("PMF_HOME", str(tmp_path))
    folder = tmp_path / "monitoring"
    folder.mkdir()
    (folder / "penguins.jsonl").write_text(
        check("2026-11-29T13:00:00+00:00", "no_drift", [])
        + "\n"
        + check("2026-11-29T14:00:00+00:00", "drift", ["island", "bill_length_mm", "sex", "body_mass_g"])
        + '\n{"checked_at": "2026-11-29T15:'  # a check cut short by a crash mid-write
    )
    (folder / "diabetes.jsonl").write_text(check("2026-11-29T12:00:00+00:00", "not_enough_data", []) + "\n")
    verdicts = {v["model"]: v for v in last_verdicts()}
    assert verdicts["penguins"] == {
        "model": "penguins",
        "checked_at": "2026-11-29T14:00:00+00:00",
        "drifted": True,
        "top_features": ["island", "bill_length_mm", "sex"],
        "verdict": "drift",
        "version": "2",
        "drift_share": 0.6,
    }
    assert verdicts["diabetes"]["drifted"] is False
    assert [v["model"] for v in last_verdicts("penguins")] == ["penguins"]
    assert last_verdicts("unknown") == []
