"""A table like the ones teams really have: dates, free text, IDs, gaps, an imbalanced binary target,
in CSV and in Parquet, through the real `pmf run`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.flows.helpers import child_runs, pmf

pytestmark = pytest.mark.slow

ONE_VARIANT = ["--set", "compression.variants=[float32]", "--set", "train.epochs=25"]


def customer_table(rows: int = 1200, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    spend = rng.gamma(2.0, 50.0, rows)
    tenure = rng.integers(1, 120, rows).astype(float)
    plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.6, 0.3, 0.1])
    risk = -3.2 + 0.02 * (60 - tenure) + 0.01 * (100 - spend) + (plan == "basic") * 0.8
    churned = rng.random(rows) < 1 / (1 + np.exp(-risk))
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(10_000, 10_000 + rows),
            "signup_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 700, rows), unit="D"),
            "plan": plan,
            "monthly_spend": spend.round(2),
            "tenure_months": tenure,
            "support_note": [f"ticket {i}: customer wrote something unique" for i in range(rows)],
            "churned": np.where(churned, "yes", "no"),
        }
    )
    frame.loc[rng.random(rows) < 0.05, "monthly_spend"] = np.nan
    frame.loc[rng.random(rows) < 0.03, "plan"] = None
    frame["signup_date"] = frame["signup_date"].dt.strftime("%Y-%m-%d")
    return frame


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_mixed_table_with_imbalanced_binary_target(mlflow_client, tmp_path, suffix):
    frame = customer_table()
    assert 0.05 < (frame["churned"] == "yes").mean() < 0.3  # imbalanced on purpose
    path = tmp_path / f"customers{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)

    code, result = pmf("run", "--data", str(path), "--target", "churned", *ONE_VARIANT)
    assert code == 0, result
    assert result["status"] == "completed", result
    assert result["registered_model"] == "customers"
    assert result["metrics"]["recall_macro"] > 0.55, "class weights should keep the minority class from being ignored"

    preprocess = child_runs(mlflow_client, result)["preprocess"]
    preprocessor = mlflow_client.download_artifacts(preprocess.info.run_id, "preprocessor/preprocessor.json", str(tmp_path))
    import json

    schema = json.loads(Path(preprocessor).read_text(encoding="utf-8"))["schema"]
    assert schema["datetime"] == ["signup_date"]
    assert schema["categorical"] == ["plan"]
    assert set(schema["dropped"]) == {"customer_id", "support_note"}
    assert schema["classes"] == ["no", "yes"]


@pytest.mark.usefixtures("prefect_harness")
def test_a_first_batch_with_some_unlabelled_rows_is_trained_on_not_rejected(mlflow_client, tmp_path):
    frame = customer_table()
    unlabelled = np.random.default_rng(7).random(len(frame)) < 0.04
    frame.loc[unlabelled, "churned"] = None
    path = tmp_path / "accounts.csv"
    frame.to_csv(path, index=False)

    code, result = pmf("run", "--data", str(path), "--target", "churned", *ONE_VARIANT)
    assert code == 0, result
    assert result["status"] == "completed", result
    assert result["unlabelled_rows"] == int(unlabelled.sum()) > 0
    assert result["suite_version"] == 1
    sizes = child_runs(mlflow_client, result)["preprocess"].data.params
    assert sum(int(sizes[k]) for k in ("rows_train", "rows_validation", "rows_test")) == len(frame) - unlabelled.sum()
