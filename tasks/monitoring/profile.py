"""The reference profile: what a drift check compares a window with, stored with the registered version.

Built at registration from the training split's raw rows and the shipped package's predictions on
them; logged as `monitoring/reference_profile.json` in the version's source run (the pipeline run),
and the version's tag `pmf.reference_profile` names that artifact. Per feature (and for the
predictions), in the column's raw units:
- numbers: missing rate, mean, std, the quantile bin edges and counts (a histogram, and PSI's bins),
  and a seeded sample of at most SAMPLE_CAP raw values. The sample is what KS and Wasserstein need:
  KS is a test on the reference sample itself (a reference of <= 1,000 rows is kept whole, so the
  p-value is Evidently's), and Wasserstein compares whole distributions, which ten bins would blur;
  5,000 values estimate the distance to well under its 0.1 threshold at ~100 KB a column.
- categories: missing rate and the count of each category (chi2, Jensen-Shannon and PSI need no more).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.config import ConfigError
from tasks.data.schema import Schema, as_datetime
from tasks.monitoring.statistics import bin_counts, quantile_edges

PROFILE_ARTIFACT = "monitoring/reference_profile.json"
PROFILE_TAG = "pmf.reference_profile"  # on the version: the artifact path in its source run
PROFILE_FORMAT = 1
SAMPLE_CAP = 5000
SAMPLE_SEED = 0


class ProfileError(ConfigError):
    """A version has no usable reference profile (registered before pmf stored one, or unreadable): exit 2."""


def as_numbers(values: pd.Series, is_datetime: bool = False) -> np.ndarray:
    """A column as float64 (text that is not a number: NaN; a date: seconds since the epoch)."""
    if is_datetime:
        stamps = as_datetime(values).to_numpy(dtype="datetime64[ns]")
        return np.where(np.isnat(stamps), np.nan, stamps.astype(np.int64) / 1e9)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def as_text(values: pd.Series) -> pd.Series:
    """A column's non-missing values as text, the way the preprocessor reads categories."""
    present = values.dropna()
    return present.astype("str")


def describe_numbers(values: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    edges = quantile_edges(present)
    sample = rng.choice(present, SAMPLE_CAP, replace=False) if len(present) > SAMPLE_CAP else present
    return {
        "kind": "number",
        "rows": len(values),
        "missing_rate": float(np.isnan(values).mean()) if len(values) else 0.0,
        "mean": float(present.mean()) if len(present) else None,
        "std": float(present.std()) if len(present) else None,
        "bin_edges": edges.tolist(),
        "bin_counts": bin_counts(present, edges).tolist(),
        "sample": np.sort(sample).tolist(),
    }


def describe_categories(values: pd.Series) -> dict[str, Any]:
    counts = as_text(values).value_counts()
    return {
        "kind": "category",
        "rows": len(values),
        "missing_rate": float(values.isna().mean()) if len(values) else 0.0,
        "frequencies": {str(k): int(v) for k, v in counts.items()},
    }


def reference_profile(frame: pd.DataFrame, schema: Schema, predictions: np.ndarray) -> dict[str, Any]:
    """The profile of the reference rows (raw, as in the CSV) and of the model's predictions on them."""
    rng = np.random.default_rng(SAMPLE_SEED)
    features: dict[str, dict[str, Any]] = {}
    for column in schema.features:
        if column in schema.categorical:
            features[column] = describe_categories(frame[column])
        else:
            features[column] = describe_numbers(as_numbers(frame[column], column in schema.datetime), rng)
            features[column]["datetime"] = column in schema.datetime
    prediction = pd.Series(predictions)
    return {
        "format": PROFILE_FORMAT,
        "rows": len(frame),
        "task": schema.task,
        "target": schema.target,
        "features": features,
        "prediction": describe_categories(prediction)
        if schema.task == "classification"
        else describe_numbers(prediction.to_numpy(dtype=np.float64), rng),
    }


def load_profile(name: str, version: str) -> dict[str, Any]:
    """The reference profile stored with NAME vVERSION; ProfileError when it has none."""
    import json
    import tempfile
    from pathlib import Path

    import mlflow
    from mlflow.exceptions import MlflowException

    from tasks.registry import tracking
    from tasks.workspace import tracking_uri

    found = tracking.client().get_model_version(name, version)
    artifact = found.tags.get(PROFILE_TAG)
    if not artifact:
        raise ProfileError(
            f"{name} v{version} has no reference profile (registered before pmf stored one): "
            f"re-run `pmf run --name {name}` to register a version that has one"
        )
    with tempfile.TemporaryDirectory(prefix="pmf-profile-") as folder:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=found.run_id, artifact_path=artifact, dst_path=folder, tracking_uri=tracking_uri()
            )
            profile = json.loads(Path(path).read_text(encoding="utf-8"))
        except (MlflowException, OSError, ValueError) as exc:
            raise ProfileError(f"{name} v{version}: the reference profile {artifact} cannot be read ({exc})") from None
    if profile.get("format") != PROFILE_FORMAT:
        raise ProfileError(f"{name} v{version}: reference profile format {profile.get('format')!r}, expected {PROFILE_FORMAT}")
    return profile
