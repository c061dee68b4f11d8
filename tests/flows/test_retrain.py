"""End to end: `pmf retrain` after a first `pmf run`, in-process with the real Prefect harness, MLflow store,
GX and TensorFlow; checked where a user looks: the JSON, the MLflow store and registry, the Prefect run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tasks.data.load import file_sha256
from tests.conftest import DATA
from tests.flows.helpers import child_runs, pmf

pytestmark = pytest.mark.slow

QUICK = ["--set", "train.epochs=5", "--set", "compression.variants=[float32]"]
CLEAN = DATA / "incoming" / "penguins" / "clean.csv"
BROKEN = DATA / "batches" / "penguins_broken.csv"


def flow_run(flow_run_id: str):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def store_records(client, kind: str) -> list:
    experiment = client.get_experiment_by_name("penguins.pmf-store")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`pmf.kind` = '{kind}'")


def penguins_sample(path: Path, rows: int, seed: int, drop: tuple[str, ...] = ()) -> Path:
    pd.read_csv(DATA / "penguins.csv").sample(rows, random_state=seed).drop(columns=list(drop)).to_csv(path, index=False)
    return path


@pytest.mark.usefixtures("prefect_harness")
def test_retrain_trains_warm_on_the_new_batch_sets_the_rejected_one_aside_then_has_nothing_new(mlflow_client, workspace):
    code, first = pmf("run", *QUICK)
    assert code == 0, first
    incoming = workspace / "incoming" / "penguins"
    incoming.mkdir(parents=True)
    (incoming / "clean.csv").write_bytes(CLEAN.read_bytes())
    (incoming / "broken.csv").write_bytes(BROKEN.read_bytes())

    code, retrain = pmf("retrain", "penguins")
    assert code == 0, retrain
    assert retrain["status"] == "completed"
    assert retrain["trigger"] == "manual"
    assert retrain["warm_start"] is True
    assert retrain["warm_start_reason"] == "from v1 (@production): same 10 model inputs and 3 classes, same network"
    assert [(b["file"], b["rows"]) for b in retrain["batches"]["new"]] == [("clean.csv", 200)]
    assert [b["file"] for b in retrain["batches"]["rejected"]] == ["broken.csv"]
    failed = {(e["column"], e["expectation"]) for e in retrain["batches"]["rejected"][0]["errors"]}
    assert ("bill_depth_mm", "expect_column_to_exist") in failed
    window = retrain["batches"]["window"]
    assert (window["older_batches"], window["older_rows"], window["rows"]) == (1, 344, 544)
    assert retrain["version"] == "2"
    production = str(mlflow_client.get_registered_model("penguins").aliases["production"])
    assert (production == "2") is retrain["promoted"]

    # The MLflow store: the trigger and the warm start on the runs, the batches trained on and the rejected one.
    parent = mlflow_client.get_run(retrain["mlflow_run_id"])
    assert parent.data.tags["pmf.trigger"] == "manual"
    assert parent.data.params["warm_start"] == "true"
    train = child_runs(mlflow_client, retrain)["train"]
    assert train.data.params["warm_start"] == "true"
    assert train.data.params["warm_start_from"] == "v1"
    trained = {r.data.tags["pmf.batch_sha256"]: r.data.tags["pmf.batch_source"] for r in store_records(mlflow_client, "batch")}
    assert trained == {file_sha256(DATA / "penguins.csv"): "pmf run", file_sha256(CLEAN): "pmf retrain"}
    assert [r.data.tags["pmf.batch_file"] for r in store_records(mlflow_client, "rejected_batch")] == ["broken.csv"]

    # The Prefect flow run: its state and tags.
    run = flow_run(retrain["prefect_flow_run_id"])
    assert run.state.name == ("Promoted" if retrain["promoted"] else "NotPromoted")
    assert {"pmf", "model:penguins", "trigger:manual", f"outcome:{retrain['outcome']}"} <= set(run.tags)

    code, again = pmf("retrain", "penguins")
    assert code == 0, again
    assert (again["status"], again["outcome"], again["version"]) == ("no_new_data", "no_new_data", None)
    assert {(b["file"], b["seen"]) for b in again["batches"]["skipped"]} == {("clean.csv", "trained"), ("broken.csv", "rejected")}
    assert flow_run(again["prefect_flow_run_id"]).state.name == "NoNewData"
    assert mlflow_client.get_run(again["mlflow_run_id"]).info.status == "FINISHED"


@pytest.mark.usefixtures("prefect_harness")
def test_a_batch_with_other_columns_is_rejected_and_a_changed_network_retrains_from_scratch(mlflow_client, workspace, tmp_path):
    code, first = pmf("run", *QUICK)
    assert code == 0, first

    no_year = penguins_sample(tmp_path / "no_year.csv", 150, seed=7, drop=("year",))
    code, rejected = pmf("retrain", "penguins", "--data", str(no_year))
    assert code == 3, rejected
    assert (rejected["status"], rejected["outcome"]) == ("data_rejected", "data_rejected")
    assert ("year", "expect_column_to_exist") in {(e["column"], e["expectation"]) for e in rejected["errors"]}
    assert rejected["version"] is None
    assert flow_run(rejected["prefect_flow_run_id"]).state.name == "Rejected"
    assert mlflow_client.get_run(rejected["mlflow_run_id"]).info.status == "FAILED"

    # The name's recorded config now builds a narrower network, over the newest 250 rows.
    code, _ = pmf(
        "validate", "--data", str(CLEAN), "--name", "penguins", "--update-config",
        "--set", "train.hidden_units=[8]", "--set", "retrain.window=rows", "--set", "retrain.size=250",
    )  # fmt: skip
    assert code == 0
    from flows.retrain_flow import retrain_flow

    batch = penguins_sample(tmp_path / "batch.csv", 120, seed=11)
    drift = {"drift_share": 0.6, "top_features": ["bill_length_mm", "body_mass_g"], "drifted": True}
    state = retrain_flow("penguins", data=str(batch), drift=drift, return_state=True)
    result = state.result()
    assert result["status"] == "completed", result
    assert result["trigger"] == "drift"
    assert result["drift"] == drift
    assert result["warm_start"] is False
    assert result["warm_start_reason"] == "the network changed (layer widths 10-32-16-3 → 10-8-3) since v1 (@production)"
    window = result["batches"]["window"]
    assert (window["older_batches"], window["older_rows"], window["rows"]) == (1, 130, 250)
    parent = mlflow_client.get_run(result["mlflow_run_id"])
    assert parent.data.tags["pmf.trigger"] == "drift"
    assert parent.data.params["warm_start"] == "false"
    assert parent.data.tags["pmf.warm_start_reason"] == result["warm_start_reason"]
    assert "drift_share 0.6" in parent.data.tags["pmf.drift"]
    assert "trigger:drift" in flow_run(result["prefect_flow_run_id"]).tags
