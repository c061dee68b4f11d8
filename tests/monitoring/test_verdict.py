"""The verdict of a check from a reference profile (fast: frames built inline, no tools)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.data.schema import Schema
from tasks.monitoring.profile import SAMPLE_CAP, reference_profile
from tasks.monitoring.settings import MonitoringSettings
from tasks.monitoring.verdict import DRIFT, NO_DRIFT, NOT_ENOUGH_DATA, check_drift, verdict_sentence

SCHEMA = Schema(
    target="y", task="classification", numeric=("size", "weight"), categorical=("colour",), datetime=(), classes=("a", "b")
)
SETTINGS = MonitoringSettings()


def table(rows: int, seed: int, shift: float = 0.0, colours=("red", "green", "blue"), p=(0.5, 0.3, 0.2)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "size": rng.normal(10 + shift, 2, rows),
            "weight": rng.normal(50 + 5 * shift, 10, rows),
            "colour": rng.choice(np.array(colours), rows, p=p),
        }
    )


def labels(rows: int, seed: int, share_a: float = 0.5) -> np.ndarray:
    return np.where(np.random.default_rng(seed).random(rows) < share_a, "a", "b").astype(object)


def profile_of(rows: int) -> dict:
    return reference_profile(table(rows, 1), SCHEMA, labels(rows, 2))


def by_column(report: dict) -> dict:
    return {f["column"]: f for f in report["features"]}


def test_same_distribution_does_not_drift():
    report = check_drift(profile_of(800), table(600, 3), labels(600, 4), SETTINGS)
    assert report["verdict"] == NO_DRIFT
    assert report["drifted"] is False
    assert report["drift_share"] == 0.0
    assert report["top_features"] == []


def test_identical_rows_do_not_drift_on_any_statistic():
    frame, predictions = table(3000, 1), labels(3000, 2)
    report = check_drift(reference_profile(frame, SCHEMA, predictions), frame, predictions, SETTINGS)
    assert all(not f["drifted"] for f in report["features"])
    assert all(f["psi"] == pytest.approx(0.0, abs=1e-9) for f in report["features"])


def test_shifted_numbers_drift_and_come_first():
    report = check_drift(profile_of(800), table(600, 3, shift=2.0), labels(600, 4), SETTINGS)
    assert report["verdict"] == DRIFT
    assert report["drift_share"] == pytest.approx(2 / 3)
    assert [f["column"] for f in report["features"]][:2] == report["top_features"]
    assert set(report["top_features"]) == {"size", "weight"}
    assert by_column(report)["colour"]["drifted"] is False


def test_a_small_reference_is_tested_with_ks_and_chi2_p_values():
    features = by_column(check_drift(profile_of(1000), table(300, 3), labels(300, 4), SETTINGS))
    assert (features["size"]["statistic"], features["size"]["threshold"]) == ("ks", 0.05)
    assert (features["colour"]["statistic"], features["colour"]["threshold"]) == ("chi2", 0.05)


def test_a_large_reference_is_measured_with_wasserstein_and_jensenshannon():
    report = check_drift(profile_of(1001), table(300, 3), labels(300, 4), SETTINGS)
    features = by_column(report)
    assert (features["size"]["statistic"], features["size"]["threshold"]) == ("wasserstein", 0.1)
    assert (features["colour"]["statistic"], features["colour"]["threshold"]) == ("jensenshannon", 0.1)
    assert report["prediction_drift"]["statistic"] == "jensenshannon"


def test_large_reference_shift_is_measured_in_reference_stds():
    report = check_drift(profile_of(20_000), table(5000, 3, shift=1.0), labels(5000, 4), SETTINGS)
    size = by_column(report)["size"]
    assert size["value"] == pytest.approx(0.5, abs=0.05)  # a shift of 1 against a std of 2
    assert size["drifted"] is True


def test_the_profile_keeps_at_most_the_sample_cap_of_raw_values():
    profile = profile_of(20_000)
    assert len(profile["features"]["size"]["sample"]) == SAMPLE_CAP
    assert profile["rows"] == 20_000
    assert profile["prediction"]["frequencies"].keys() == {"a", "b"}


def test_prediction_drift_alone_makes_the_dataset_drift():
    report = check_drift(profile_of(800), table(600, 3), labels(600, 4, share_a=0.9), SETTINGS)
    assert report["drift_share"] == 0.0
    assert report["prediction_drift"]["drifted"] is True
    assert report["verdict"] == DRIFT


def test_drift_share_threshold_comes_from_the_settings():
    report = check_drift(profile_of(800), table(600, 3, shift=2.0), labels(600, 4), MonitoringSettings(drift_share=0.9))
    assert report["drift_share"] == pytest.approx(2 / 3)
    assert report["drifted"] is False


def test_under_min_rows_the_verdict_is_not_enough_data():
    report = check_drift(profile_of(800), table(99, 3, shift=5.0), labels(99, 4), SETTINGS)
    assert report["verdict"] == NOT_ENOUGH_DATA
    assert report["drifted"] is False
    assert report["features"] == []
    assert verdict_sentence(report) == "not enough data: 99 rows, a check needs at least 100"


def test_unknown_categories_are_counted_and_drift():
    current = table(400, 3, colours=("red", "green", "purple"), p=(0.5, 0.3, 0.2))
    colour = by_column(check_drift(profile_of(800), current, labels(400, 4), SETTINGS))["colour"]
    assert colour["unknown_rate"] == pytest.approx((current["colour"] == "purple").mean())
    assert colour["value"] < 1e-6
    assert colour["drifted"] is True


def test_missing_values_are_reported_and_left_out_of_the_statistic():
    current = table(400, 3)
    current.loc[:199, "size"] = np.nan
    size = by_column(check_drift(profile_of(800), current, labels(400, 4), SETTINGS))["size"]
    assert size["missing_rate"] == 0.5
    assert size["reference_missing_rate"] == 0.0
    assert size["drifted"] is False


def test_a_feature_missing_from_the_window_is_all_missing():
    current = table(400, 3).drop(columns=["weight"])
    weight = by_column(check_drift(profile_of(800), current, labels(400, 4), SETTINGS))["weight"]
    assert weight["missing_rate"] == 1.0
    assert weight["value"] is None


def test_regression_predictions_are_compared_as_numbers():
    schema = Schema(target="y", task="regression", numeric=("size", "weight"), categorical=("colour",), datetime=())
    reference = table(800, 1)
    profile = reference_profile(reference, schema, reference["size"].to_numpy() * 3)
    assert profile["prediction"]["kind"] == "number"
    same = check_drift(profile, table(400, 3), table(400, 3)["size"].to_numpy() * 3, SETTINGS)
    moved = check_drift(profile, table(400, 3), table(400, 3)["size"].to_numpy() * 3 + 5, SETTINGS)
    assert same["prediction_drift"]["statistic"] == "ks"
    assert (same["prediction_drift"]["drifted"], moved["prediction_drift"]["drifted"]) == (False, True)


def test_dates_are_compared_as_times():
    schema = Schema(target="y", task="classification", numeric=(), categorical=(), datetime=("day",), classes=("a", "b"))

    def days(start: str, rows: int) -> pd.DataFrame:
        stamps = pd.date_range(start, periods=rows, freq="h").astype("str").to_series(index=range(rows))
        return pd.DataFrame({"day": stamps.where(stamps.index % 50 != 0, None)})

    profile = reference_profile(days("2026-01-01", 500), schema, labels(500, 2))
    assert profile["features"]["day"]["datetime"] is True
    later = by_column(check_drift(profile, days("2026-06-01", 500), labels(500, 2), SETTINGS))["day"]
    assert later["missing_rate"] == pytest.approx(0.02)
    assert later["drifted"] is True
    assert by_column(check_drift(profile, days("2026-01-01", 500), labels(500, 2), SETTINGS))["day"]["drifted"] is False


def test_thresholds_are_overridable_in_config_and_checked():
    from tasks.config import ConfigError, load_config

    cfg = load_config(None, ["monitoring.drift_share=0.3", "monitoring.wasserstein=0.2", "monitoring.window=1000"])
    assert (cfg.monitoring.drift_share, cfg.monitoring.wasserstein, cfg.monitoring.window) == (0.3, 0.2, 1000)
    assert cfg.monitoring.min_rows == 100
    with pytest.raises(ConfigError, match=r"monitoring\.drift_shares: unknown key"):
        load_config(None, ["monitoring.drift_shares=0.3"])
    with pytest.raises(ConfigError, match=r"monitoring\.small_reference_rows"):
        load_config(None, ["monitoring.small_reference_rows=10000"])
