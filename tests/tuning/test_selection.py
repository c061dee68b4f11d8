"""Which trial trains the final model: the leader, unless its lead over the configured values is within the
leader's standard error on the validation split (the one-standard-error rule), then the configured values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flows.summary import tuning_lines
from tasks.tuning.search import SearchResult
from tasks.tuning.trial import TrialData, TrialOutcome, adopted, bootstrap_spread


def trial(number, value, spread=0.01, state="completed"):
    return TrialOutcome(number, {"width": 32 * (number + 1)}, state, value, [value], spread=spread)


def test_a_lead_larger_than_the_leaders_standard_error_is_adopted():
    configured, leader = trial(0, 0.80), trial(3, 0.83, spread=0.01)
    assert adopted(leader, configured, higher_is_better=True) is leader


def test_a_lead_within_the_standard_error_keeps_the_configured_values():
    configured, leader = trial(0, 0.80), trial(3, 0.805, spread=0.01)
    assert adopted(leader, configured, higher_is_better=True) is configured


def test_for_an_error_metric_a_lower_value_leads():
    configured = trial(0, 50.0, spread=2.0)
    assert adopted(trial(2, 49.0, spread=2.0), configured, higher_is_better=False) is configured
    assert adopted(trial(2, 45.0, spread=2.0), configured, higher_is_better=False).number == 2


def test_without_a_completed_configured_trial_or_a_spread_the_leader_stands():
    leader = trial(3, 0.805)
    assert adopted(leader, trial(0, None, state="failed"), True) is leader
    assert adopted(leader, None, True) is leader
    assert adopted(trial(3, 0.805, spread=None), trial(0, 0.80), True).number == 3


def test_the_search_result_says_what_trains_the_model_and_why():
    outcomes = [trial(0, 0.80), trial(1, 0.79), trial(2, 0.806, spread=0.012)]
    result = SearchResult("accuracy", True, outcomes, 3.0, 3, configured=0)
    assert result.leader.number == 2
    assert result.best.number == 0
    assert result.kept_configured
    summary = result.to_json()
    assert summary["best"]["trial"] == 0
    assert summary["leader"] == {"trial": 2, "value": 0.806, "spread": 0.012}
    assert summary["kept_configured"] is True
    lines = " ".join("\n".join(tuning_lines(summary)).split())
    assert "trial 2 led trial 0 (the configured values) by 0.0060, within its standard error 0.0120" in lines
    assert "the configured values are kept" in lines
    clear = SearchResult("accuracy", True, [trial(0, 0.80), trial(2, 0.85)], 3.0, 2, configured=0)
    assert clear.best.number == 2
    assert not clear.kept_configured
    assert "kept" not in "\n".join(tuning_lines(clear.to_json()))


def split(n, accuracy, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    right = rng.random(n) < accuracy
    predicted = np.where(right, y, (y + 1) % 3)
    return TrialData(np.zeros((1, 1)), np.zeros(1), np.zeros((n, 1)), y, "classification", 3), np.eye(3)[predicted]


@pytest.mark.parametrize("n", [300, 50_000])
def test_the_spread_is_the_standard_error_of_the_validation_metric(n):
    """Accuracy p on n rows has standard error sqrt(p (1 - p) / n); a large split is drawn from 20,000 rows."""
    data, outputs = split(n, 0.9)
    expected = math.sqrt(0.9 * 0.1 / n)
    assert bootstrap_spread(data, "accuracy", outputs) == pytest.approx(expected, rel=0.3)


@pytest.mark.parametrize("metric", ["accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc"])
def test_each_classification_metrics_spread_matches_a_plain_bootstrap_of_the_evaluations_own_metric(metric):
    """The counts-at-once bootstrap gives what recomputing the evaluation's metric on each draw gives."""
    from tasks.tuning.trial import validation_score

    data, outputs = split(400, 0.8, seed=2)
    outputs = 0.6 * outputs + 0.4 * np.random.default_rng(5).dirichlet(np.ones(3), size=400)  # ranked, for the AUC
    rng = np.random.default_rng(11)
    plain = np.std([validation_score(data, metric, outputs, rng.integers(0, 400, size=400)) for _ in range(150)], ddof=1)
    assert bootstrap_spread(data, metric, outputs) == pytest.approx(plain, rel=0.3)


@pytest.mark.parametrize("metric", ["r2", "mae", "mse"])
def test_each_regression_metrics_spread_matches_a_plain_bootstrap_in_the_targets_units(metric):
    from tasks.tuning.trial import validation_score

    rng = np.random.default_rng(4)
    y = rng.normal(size=300)
    predicted = 0.7 * y + rng.normal(scale=0.5, size=300)
    data = TrialData(np.zeros((1, 1)), np.zeros(1), np.zeros((300, 1)), y, "regression", 1, 150.0, 70.0)
    draws = np.random.default_rng(12)
    plain = np.std([validation_score(data, metric, predicted, draws.integers(0, 300, size=300)) for _ in range(150)], ddof=1)
    assert bootstrap_spread(data, metric, predicted) == pytest.approx(plain, rel=0.3)
