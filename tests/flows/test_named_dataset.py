"""A named dataset behaves the same on every batch: its recorded config, its suite, its unlabelled rows.

Real `pmf run` / `pmf validate` in-process, real Prefect harness, MLflow store, GX and TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.registry.datasets import recorded_config
from tests.conftest import DATA
from tests.flows.helpers import child_runs, pmf

pytestmark = pytest.mark.slow

NEW_BATCH = str(DATA / "batches" / "penguins_new.csv")
PENGUINS_GATES = [("accuracy", ">=", 0.9), ("f1_macro", ">=", 0.85), ("roc_auc", ">=", 0.95)]
QUICK = ["--set", "train.epochs=12", "--set", "compression.variants=[float32]", "--set", "promotion.auto_promote=false"]


def gates(result: dict) -> list[tuple]:
    return [(g["name"], g["op"], g["threshold"]) for g in result["gates"]]


def train_params(client, result: dict) -> dict:
    return child_runs(client, result)["train"].data.params


@pytest.mark.usefixtures("prefect_harness")
def test_a_new_batch_with_only_its_name_runs_with_the_config_the_name_was_set_up_with(mlflow_client):
    code, first = pmf("run", "--config", str(DATA / "penguins.yaml"), *QUICK)
    assert code == 0
    assert first["config_source"] == f"--config {DATA / 'penguins.yaml'}"
    assert first["config_recorded"] == 1

    code, batch = pmf("run", "--data", NEW_BATCH, "--name", "penguins")
    assert code == 0, batch
    assert batch["config_source"] == "recorded v1"
    assert batch["config_overrides"] == []
    assert batch["config_recorded"] is None
    assert gates(batch) == PENGUINS_GATES
    assert batch["primary_metric"] == "accuracy"
    assert {s["column"] for s in batch["slices"]} == {"island", "sex"}
    params = train_params(mlflow_client, batch)
    assert params["hidden_units"] == "[32, 16]"
    assert params["epochs"] == "12"
    assert params["batch_size"] == "16"
    assert [r["variant"] for r in batch["compression"] if r["variant"] != "keras"] == ["float32"]
    if batch["version"]:  # the champion margin it is promoted under is the recorded one
        tag = mlflow_client.get_model_version("penguins", batch["version"]).tags["pmf.config"]
        assert '"champion_margin":0.01' in tag

    # --set wins for that run only; the record does not change.
    code, tweaked = pmf("validate", "--data", NEW_BATCH, "--name", "penguins", "--set", "validation.min_rows_per_class=100")
    assert code == 3
    assert tweaked["config_source"] == "recorded v1"
    assert tweaked["config_overrides"] == ["validation.min_rows_per_class=100"]
    assert {e["expectation"] for e in tweaked["errors"]} == {"at_least_100_rows_per_class"}
    code, again = pmf("validate", "--data", NEW_BATCH, "--name", "penguins")
    assert code == 0
    assert again["config_source"] == "recorded v1"
    assert recorded_config("penguins").version == 1

    # --update-config makes this run's config the record for later batches.
    code, updated = pmf(
        "validate", "--data", NEW_BATCH, "--name", "penguins", "--update-config", "--set", "promotion.champion_margin=0.05"
    )
    assert code == 0
    assert updated["config_recorded"] == 2
    record = recorded_config("penguins")
    assert record.version == 2
    assert record.document["promotion"]["champion_margin"] == 0.05
    assert record.document["primary_metric"] == "accuracy"
    assert "path" not in record.document["data"]
    code, later = pmf("validate", "--data", NEW_BATCH, "--name", "penguins")
    assert code == 0
    assert later["config_source"] == "recorded v2"


def penguins_with_unlabelled(share: float, seed: int = 0) -> pd.DataFrame:
    frame = pd.read_csv(DATA / "penguins.csv")
    rows = np.random.default_rng(seed).choice(len(frame), int(len(frame) * share), replace=False)
    frame.loc[rows, "species"] = None
    return frame


@pytest.mark.usefixtures("prefect_harness")
def test_unlabelled_rows_are_set_aside_and_counted_within_their_budget(mlflow_client, tmp_path):
    path = tmp_path / "birds.csv"
    penguins_with_unlabelled(0.06).to_csv(path, index=False)
    code, first = pmf("validate", "--data", str(path), "--target", "species")
    assert code == 0, first
    assert first["status"] == "valid", first
    assert first["unlabelled_rows"] == 20
    assert first["suite_version"] == 1

    later = tmp_path / "later.csv"
    penguins_with_unlabelled(0.05, seed=1).to_csv(later, index=False)
    code, second = pmf("validate", "--data", str(later), "--name", "birds")
    assert code == 0
    assert second["unlabelled_rows"] == 17

    penguins_with_unlabelled(0.3).to_csv(later, index=False)
    code, over = pmf("validate", "--data", str(later), "--name", "birds")
    assert code == 3
    assert over["status"] == "data_rejected"
    assert [(e["column"], e["expectation"]) for e in over["errors"]] == [("species", "unlabelled_rows_within_budget")]
    assert "103 of 344 rows (29.9%) have no 'species' value; the budget is 10%" in over["errors"][0]["observed"]

    code, allowed = pmf("validate", "--data", str(later), "--name", "birds", "--set", "validation.max_unlabelled_share=0.5")
    assert code == 0
    assert allowed["unlabelled_rows"] == 103


@pytest.mark.usefixtures("prefect_harness")
def test_regression_target_with_gaps_and_infinities_trains_on_the_labelled_rows(mlflow_client, tmp_path):
    frame = pd.read_csv(DATA / "diabetes.csv")
    frame.loc[:9, "progression"] = np.nan
    frame.loc[10:14, "progression"] = np.inf
    path = tmp_path / "sugar.parquet"
    frame.to_parquet(path)
    code, result = pmf(
        "run",
        "--data",
        str(path),
        "--target",
        "progression",
        "--set",
        "train.epochs=5",
        "--set",
        "compression.variants=[float32]",
        "--set",
        "gates=[]",
        "--set",
        "promotion.auto_promote=false",
    )
    assert code == 0, result
    assert result["status"] == "completed", result
    assert result["unlabelled_rows"] == 15
    assert np.isfinite(result["metrics"]["mse"])
    rows = child_runs(mlflow_client, result)["preprocess"].data.params
    assert sum(int(rows[k]) for k in ("rows_train", "rows_validation", "rows_test")) == len(frame) - 15
