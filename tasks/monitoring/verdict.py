"""The verdict of a drift check: each feature and the predictions against the reference profile.

The statistic follows the reference's size (Evidently's defaults, DECISIONS.md): a reference of at
most `small_reference_rows` rows -> `ks` (numbers) / `chi2` (categories), whose value is a p-value
that drifts at <= its threshold; a larger one -> `wasserstein` (normalised) / `jensenshannon`, a
distance that drifts at >= its threshold. PSI is reported beside each. The dataset drifts when the
share of drifted features reaches `drift_share`, or when the predictions drift; a window of fewer
than `min_rows` rows has the verdict `not_enough_data` and drifts never.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tasks.monitoring import statistics as st
from tasks.monitoring.profile import as_numbers, as_text
from tasks.monitoring.settings import MonitoringSettings

DRIFT, NO_DRIFT, NOT_ENOUGH_DATA = "drift", "no_drift", "not_enough_data"
P_VALUE_STATISTICS = frozenset({"ks", "chi2"})
TOP_FEATURES = 5  # the drifted features a summary names


def statistic_for(kind: str, reference_rows: int, settings: MonitoringSettings) -> tuple[str, float]:
    """(statistic, threshold) for a number or a category column against a reference of that many rows."""
    small = reference_rows <= settings.small_reference_rows
    if kind == "number":
        return ("ks", settings.ks_p_value) if small else ("wasserstein", settings.wasserstein)
    return ("chi2", settings.chi2_p_value) if small else ("jensenshannon", settings.jensenshannon)


def is_drifted(statistic: str, value: float | None, threshold: float) -> bool:
    if value is None:
        return False
    return value <= threshold if statistic in P_VALUE_STATISTICS else value >= threshold


def severity(statistic: str, value: float | None, threshold: float) -> float:
    """How far past (> 1) or short of (< 1) its threshold a value is, comparable across statistics."""
    if value is None:
        return 0.0
    if statistic in P_VALUE_STATISTICS:  # smaller p is stronger evidence: compare on a log scale
        return math.log(max(value, 1e-300)) / math.log(threshold)
    return value / threshold


def number_drift(reference: dict[str, Any], values: np.ndarray, statistic: str) -> tuple[float | None, float | None]:
    """(the statistic's value, PSI) of current numbers; (None, None) when the window has none."""
    present = values[~np.isnan(values)]
    sample = np.asarray(reference["sample"], dtype=np.float64)
    if len(present) == 0 or len(sample) == 0:
        return None, None
    if statistic == "ks":
        value = st.ks_p_value(sample, present)
    else:
        value = st.wasserstein_normalised(sample, present, reference["std"] or 0.0)
    psi = st.binned_psi(np.asarray(reference["bin_edges"]), np.asarray(reference["bin_counts"]), present)
    return value, psi


def category_drift(reference: dict[str, Any], text: pd.Series, statistic: str) -> tuple[float | None, float | None, float]:
    """(the statistic's value, PSI, share of values the reference never saw) of current categories."""
    categories = list(reference["frequencies"])
    reference_counts = np.array([*reference["frequencies"].values(), 0], dtype=np.float64)
    current_counts = st.category_counts(text, categories)
    if current_counts.sum() == 0:
        return None, None, 0.0
    unknown = float(current_counts[-1] / current_counts.sum())
    if statistic == "chi2":
        value = st.chi2_p_value(reference_counts, current_counts)
    else:
        value = st.jensenshannon_distance(reference_counts, current_counts)
    return value, st.psi(reference_counts, current_counts), unknown


def column_drift(
    column: str, reference: dict[str, Any], values: pd.Series, reference_rows: int, settings: MonitoringSettings
) -> dict[str, Any]:
    """One feature's entry: `{column, statistic, value, threshold, drifted, psi, missing_rate, ...}`."""
    statistic, threshold = statistic_for(reference["kind"], reference_rows, settings)
    unknown: float | None = None
    if reference["kind"] == "number":
        value, psi = number_drift(reference, as_numbers(values, bool(reference.get("datetime"))), statistic)
    else:
        value, psi, unknown = category_drift(reference, as_text(values), statistic)
    missing = float(values.isna().mean()) if len(values) else 0.0
    return {
        "column": column,
        "kind": reference["kind"],
        "statistic": statistic,
        "value": value,
        "threshold": threshold,
        "drifted": is_drifted(statistic, value, threshold),
        "psi": psi,
        "psi_threshold": settings.psi,
        "missing_rate": missing,
        "reference_missing_rate": reference["missing_rate"],
        "unknown_rate": unknown,
    }


def most_drifted_first(features: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(features, key=lambda f: (not f["drifted"], -severity(f["statistic"], f["value"], f["threshold"])))


def check_drift(
    profile: dict[str, Any], frame: pd.DataFrame, predictions: np.ndarray, settings: MonitoringSettings
) -> dict[str, Any]:
    """The verdict of `frame` (raw rows; a feature column it lacks counts as all missing) and the model's
    `predictions` on them against `profile`: `{rows, verdict, drifted, drift_share, features, prediction_drift,
    top_features, ...}` (DESIGN.md's `pmf monitor --json`, less model, version and event_emitted)."""
    rows = len(frame)
    base = {
        "rows": rows,
        "min_rows": settings.min_rows,
        "reference_rows": profile["rows"],
        "drift_share_threshold": settings.drift_share,
    }
    if rows < settings.min_rows:
        return {**base, **_not_enough_data()}
    reference_rows = int(profile["rows"])
    empty = pd.Series([None] * rows, dtype="object")
    features = most_drifted_first(
        [
            column_drift(column, reference, frame.get(column, empty), reference_rows, settings)
            for column, reference in profile["features"].items()
        ]
    )
    prediction = column_drift("prediction", profile["prediction"], pd.Series(predictions), reference_rows, settings)
    share = sum(f["drifted"] for f in features) / len(features) if features else 0.0
    drifted = share >= settings.drift_share or prediction["drifted"]
    return {
        **base,
        "verdict": DRIFT if drifted else NO_DRIFT,
        "drifted": drifted,
        "drift_share": share,
        "drifted_features": sum(f["drifted"] for f in features),
        "features": features,
        "prediction_drift": {k: prediction[k] for k in ("statistic", "value", "threshold", "drifted", "psi")},
        "top_features": [f["column"] for f in features if f["drifted"]][:TOP_FEATURES],
    }


def _not_enough_data() -> dict[str, Any]:
    return {
        "verdict": NOT_ENOUGH_DATA,
        "drifted": False,
        "drift_share": 0.0,
        "drifted_features": 0,
        "features": [],
        "prediction_drift": {"statistic": None, "value": None, "threshold": None, "drifted": False, "psi": None},
        "top_features": [],
    }


def verdict_sentence(report: dict[str, Any]) -> str:
    """One line: `drift: 5 of 7 features drifted (0.71 >= 0.5), predictions drifted; most: island, ...`."""
    if report["verdict"] == NOT_ENOUGH_DATA:
        return f"not enough data: {report['rows']:,} rows, a check needs at least {report['min_rows']:,}"
    count, total = report["drifted_features"], len(report["features"])
    relation = ">=" if report["drift_share"] >= report["drift_share_threshold"] else "<"
    head = f"{count} of {total} features drifted ({report['drift_share']:.2f} {relation} {report['drift_share_threshold']:g})"
    predictions = "predictions drifted" if report["prediction_drift"]["drifted"] else "predictions stable"
    most = f"; most: {', '.join(report['top_features'])}" if report["top_features"] else ""
    return f"{report['verdict'].replace('_', ' ')}: {head}, {predictions}{most}"
