import numpy as np
import pandas as pd
import pytest

from tasks.config import GateRule
from tasks.data.preprocess import Preprocessor, fit_preprocessor
from tasks.data.schema import infer_schema
from tasks.model.evaluate import classification_metrics, evaluation_sentence, in_target_units, regression_metrics, slice_metrics
from tasks.model.gates import evaluation_gate


def test_classification_metrics_match_hand_computed_values():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.8 + 0.2 / 3
    m = classification_metrics(y, probs)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # class 0: p=1/2 r=1/2; class 1: p=2/3 r=1; class 2: p=1 r=1/2
    assert m["precision_macro"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert m["recall_macro"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert 0 <= m["roc_auc"] <= 1


def test_perfect_and_binary_auc():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    assert classification_metrics(y, probs)["roc_auc"] == 1.0


def test_regression_metrics():
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert m["mse"] == pytest.approx(4 / 3)
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["r2"] == pytest.approx(1 - 4 / 2)


def test_slices_cover_every_value_including_missing():
    frame = pd.DataFrame({"island": ["a", "a", "b", None]})
    y = np.array([0, 1, 0, 1])
    probs = np.eye(2)[[0, 1, 1, 1]]
    rows = slice_metrics("classification", frame, ("island",), y, probs)
    by_value = {r["value"]: r for r in rows}
    assert by_value["a"]["accuracy"] == 1.0
    assert by_value["b"]["accuracy"] == 0.0
    assert by_value["a"]["rows"] == 2
    assert len(rows) == 3


def test_gate_reports_every_rule_and_only_fail_rules_block():
    rules = (
        GateRule(metric="accuracy", min=0.9),
        GateRule(metric="f1_macro", min=0.85),
        GateRule(metric="mae", max=1.0),
        GateRule(metric="roc_auc", min=0.99, severity="warn"),
    )
    decision = evaluation_gate(rules, {"accuracy": 0.8, "f1_macro": 0.81, "mae": 0.5, "roc_auc": 0.9})
    assert not decision.passed
    assert [r.passed for r in decision.results] == [False, False, True, False]
    assert decision.reasons == ["accuracy 0.8 < 0.9", "f1_macro 0.81 < 0.85"]
    assert decision.warnings == ["roc_auc 0.9 < 0.99"]


def test_warn_rules_never_block_and_missing_metrics_fail():
    assert evaluation_gate((GateRule(metric="r2", min=0.5, severity="warn"),), {"r2": 0.1}).passed
    decision = evaluation_gate((GateRule(metric="r2", min=0.5),), {"r2": float("nan")})
    assert not decision.passed
    assert decision.reasons == ["r2 missing < 0.5"]


def regression_preprocessor() -> Preprocessor:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [10.0, 20.0, 30.0, 40.0]})
    return fit_preprocessor(frame, infer_schema(frame, "y", "regression"))


def test_regression_targets_and_outputs_come_back_in_the_targets_units():
    preprocessor = regression_preprocessor()
    encoded = preprocessor.encode_target(pd.Series([10.0, 40.0]))
    assert in_target_units(preprocessor, encoded) == pytest.approx([10.0, 40.0])
    assert in_target_units(preprocessor, encoded.reshape(-1, 1)) == pytest.approx([10.0, 40.0])  # model outputs: (rows, 1)


def test_classification_outputs_stay_as_the_model_gave_them():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": ["a", "b", "a", "b"]})
    preprocessor = fit_preprocessor(frame, infer_schema(frame, "y", "classification"))
    probabilities = np.array([[0.2, 0.8], [0.9, 0.1]])
    assert in_target_units(preprocessor, probabilities) is probabilities


def test_the_evaluation_sentence_marks_passed_warned_and_failed_rules():
    metrics = {"accuracy": 0.91234, "f1_macro": 0.8}
    gate = evaluation_gate(
        (GateRule(metric="accuracy", min=0.9), GateRule(metric="f1_macro", min=0.85, severity="warn")), metrics
    )
    assert evaluation_sentence(metrics, gate) == (
        "test split: accuracy 0.9123, f1_macro 0.8; gates passed (accuracy 0.9123 >= 0.9 ✓, f1_macro 0.8 < 0.85 !)"
    )
    failed = evaluation_gate((GateRule(metric="accuracy", min=0.95),), metrics)
    assert evaluation_sentence(metrics, failed).endswith("; gates failed (accuracy 0.9123 < 0.95 ✗)")
    assert evaluation_sentence({}, evaluation_gate((), {})) == "test split: ; gates passed (none configured)"
