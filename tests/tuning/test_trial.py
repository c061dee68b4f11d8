"""One trial, really trained with tf_keras on tiny data: scored on the validation split, pruned, failed."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.config import TrainConfig
from tasks.tuning.space import apply_params
from tasks.tuning.trial import PruneRule, TrialData, run_trial

pytestmark = pytest.mark.component


@pytest.fixture(scope="module")
def data() -> TrialData:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = ((x[:, 0] + x[:, 1]) > 0).astype(np.int64)
    return TrialData(x[:200], y[:200], x[200:], y[200:], "classification", 2)


BASE = TrainConfig(hidden_units=(16,), epochs=6, batch_size=32, early_stopping_patience=6)


def test_a_good_trial_completes_with_its_validation_score_per_epoch(data):
    params = {"layers": 1, "width": 16, "learning_rate": 0.02}
    outcome = run_trial(0, params, apply_params(BASE, params), data, "accuracy")
    assert outcome.state == "completed", outcome.reason
    assert len(outcome.curve) == outcome.epochs_run == 6
    assert outcome.value is not None
    assert outcome.value > 0.85
    assert outcome.worker


def test_a_trial_trailing_the_earlier_ones_is_stopped_after_warmup(data):
    strong = tuple([0.99] * 6)
    rule = PruneRule(curves=(strong, strong), warmup=2)
    params = {"learning_rate": 1e-6}  # learns nothing in six epochs
    outcome = run_trial(1, params, apply_params(BASE, params), data, "accuracy", rule)
    assert outcome.state == "pruned"
    assert outcome.epochs_run == 3
    assert len(outcome.curve) == 3
    assert "pruned at epoch 3" in outcome.reason


def test_a_trial_whose_loss_turns_nan_is_failed_with_the_reason(data):
    params = {"learning_rate": 1e30, "lr_schedule": "constant", "batch_size": 200}
    regression = TrialData(data.x_train, data.x_train[:, 0] * 1e3, data.x_val, data.x_val[:, 0], "regression", 1)
    outcome = run_trial(2, params, apply_params(BASE, params), regression, "mae")
    assert outcome.state == "failed"
    assert outcome.reason.startswith("diverged: the training loss is")
    assert outcome.value is None


def test_a_trial_that_raises_is_an_outcome_not_an_exception(data):
    wrong = TrialData(data.x_train, data.y_train, data.x_val[:, :2], data.y_val, "classification", 2)  # validation lacks columns
    outcome = run_trial(3, {}, BASE, wrong, "accuracy")
    assert outcome.state == "failed"
    assert outcome.reason
    assert ":" in outcome.reason


def test_a_regression_trial_is_scored_in_the_targets_units(data):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(240, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5])).astype(np.float32)
    reg = TrialData(x[:160], y[:160], x[160:], y[160:], "regression", 1, target_mean=100.0, target_std=10.0)
    outcome = run_trial(4, {}, BASE.model_copy(update={"learning_rate": 0.02}), reg, "mae")
    assert outcome.state == "completed"
    # mae in target units is the standardized error times the std: far above what an unscaled error would be
    assert outcome.value is not None
    assert outcome.value > 0.5
