"""Evaluate: task metrics on the test split, overall and per slice, with the plots a reviewer looks at.

Metrics are computed from model outputs (class probabilities, or predictions on the standardized
scale already decoded to target units), so the same functions score Keras and LiteRT outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from tasks.data.preprocess import Preprocessor
    from tasks.data.schema import Schema
    from tasks.model.gates import GateDecision

HIGHER_IS_BETTER = {
    "accuracy": True,
    "precision_macro": True,
    "recall_macro": True,
    "f1_macro": True,
    "roc_auc": True,
    "r2": True,
    "mse": False,
    "mae": False,
}


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """y_true: class indices; probabilities: (rows, classes). ROC AUC is one-vs-rest, macro."""
    from sklearn import metrics

    y_pred = probabilities.argmax(axis=1)
    labels = np.arange(probabilities.shape[1])
    scores = {
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "precision_macro": metrics.precision_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "recall_macro": metrics.recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "f1_macro": metrics.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "roc_auc": _roc_auc(y_true, probabilities),
    }
    return {k: float(v) for k, v in scores.items()}


def _roc_auc(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    present = np.unique(y_true)
    if len(present) < 2:
        return float("nan")  # undefined on a slice with one class
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(y_true, probabilities[:, 1]))
    if len(present) == 2:  # a slice where only two of the classes occur: a binary AUC between them
        return float(roc_auc_score(y_true == present[1], probabilities[:, present[1]]))
    sub = probabilities[:, present]
    sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
    return float(roc_auc_score(y_true, sub, multi_class="ovr", average="macro", labels=present))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    residual = np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64).reshape(-1)
    variance = float(np.var(y_true)) * len(y_true)
    return {
        "mse": float(np.mean(residual**2)),
        "mae": float(np.mean(np.abs(residual))),
        "r2": float(1 - np.sum(residual**2) / variance) if variance > 0 else float("nan"),
    }


def task_metrics(task: str, y_true: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    if task == "classification":
        return classification_metrics(y_true, outputs)
    return regression_metrics(y_true, outputs)


def slice_metrics(
    task: str, frame: pd.DataFrame, columns: tuple[str, ...], y_true: np.ndarray, outputs: np.ndarray
) -> list[dict]:
    """Metrics per value of each slice column (missing values form their own slice)."""
    rows = []
    for column in columns:
        keys = frame[column].astype("str").fillna("<missing>").to_numpy()
        for value in np.unique(keys):
            mask = keys == value
            rows.append(
                {
                    "column": column,
                    "value": str(value),
                    "rows": int(mask.sum()),
                    **task_metrics(task, y_true[mask], outputs[mask]),
                }
            )
    return rows


def confusion_matrix_png(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...], path: Path) -> Path:
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4 + 0.4 * len(classes), 4 + 0.4 * len(classes)))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=np.arange(len(classes)), display_labels=list(classes), ax=ax, colorbar=False
    )
    ax.set_title("Confusion matrix (test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def residual_plot_png(y_true: np.ndarray, y_pred: np.ndarray, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(y_pred, np.asarray(y_true) - np.asarray(y_pred), s=8, alpha=0.6)
    ax.axhline(0, color="grey", linewidth=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (true - predicted)")
    ax.set_title("Residuals (test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scorer_on_test_split(preprocessor: Preprocessor, y_test: np.ndarray) -> Callable[[np.ndarray], dict[str, float]]:
    """`outputs -> task metrics` on the test split, in the target's own units for regression.

    Scores Keras and LiteRT outputs alike, so every compression variant is judged on the same footing."""
    task = preprocessor.schema.task
    y_true = in_target_units(preprocessor, y_test)

    def score(outputs: np.ndarray) -> dict[str, float]:
        return task_metrics(task, y_true, in_target_units(preprocessor, outputs))

    return score


def in_target_units(preprocessor: Preprocessor, encoded: np.ndarray) -> np.ndarray:
    """Encoded targets or model outputs as the metrics take them: for regression, decoded from the
    standardized scale to the target's own units (a flat float array); for classification unchanged
    (class indices, or probabilities per class)."""
    if preprocessor.schema.task == "classification":
        return encoded
    return preprocessor.decode_output(encoded.reshape(-1, 1))


def evaluation_plot(schema: Schema, y_true: np.ndarray, outputs: np.ndarray, folder: Path) -> Path:
    """The plot a reviewer looks at, written to `folder`: the confusion matrix (classification) or the
    residuals (regression). `y_true` and `outputs` as `in_target_units` gives them."""
    if schema.task == "classification":
        return confusion_matrix_png(y_true, outputs.argmax(axis=1), schema.classes, folder / "confusion_matrix.png")
    return residual_plot_png(y_true, outputs, folder / "residuals.png")


def evaluation_sentence(metrics: dict[str, float], gate: GateDecision) -> str:
    """`test split: accuracy 0.985, f1_macro 0.982; gates passed (accuracy 0.985 >= 0.9 ✓, ...)`."""
    shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
    # ! marks a warn-only rule that failed: reported, but it does not stop the run.
    verdicts = ", ".join(f"{r.reason()} {'✓' if r.passed else '!' if r.severity == 'warn' else '✗'}" for r in gate.results)
    return f"test split: {shown}; gates {'passed' if gate.passed else 'failed'} ({verdicts or 'none configured'})"
