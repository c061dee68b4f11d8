"""End to end: `pmf run` on real data with the real Prefect harness, MLflow store, GX and TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.data.load import file_sha256
from tests.conftest import DATA
from tests.flows.helpers import child_runs, pmf, registry_state

pytestmark = pytest.mark.slow

FAST = ["--set", "train.epochs=15", "--set", "compression.variants=[float32, int8]"]
STAGES = {"validate", "preprocess", "train", "evaluate", "compress", "register", "promote"}
PROMOTED = ["candidate", "production", "staging"]
ALL_VARIANTS = {
    "keras",
    "float32",
    "dynamic_range",
    "float16",
    "int8",
    "pruned_int8",
    "qat_int8",
    "distilled_int8",
    "student_scratch_int8",
}


def flow_run_state(flow_run_id: str):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state


@pytest.mark.usefixtures("prefect_harness")
def test_penguins_run_records_everything_then_new_batches_are_validated_against_the_stored_suite(mlflow_client):
    code, result = pmf("run", "--set", "train.epochs=15")  # every compression variant
    assert code == 0, result
    assert result["status"] == "completed"
    assert result["version"] == "1"
    assert result["promoted"] is True
    assert result["aliases"] == PROMOTED
    assert set(result) >= {
        "status",
        "registered_model",
        "version",
        "promoted",
        "aliases",
        "metrics",
        "gates",
        "compression",
        "mlflow_run_id",
        "prefect_flow_run_id",
    }
    assert result["metrics"]["accuracy"] >= 0.95
    assert {g["name"] for g in result["gates"]} == {"accuracy", "f1_macro", "roc_auc"}

    parent = mlflow_client.get_run(result["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["prefect.flow_run_id"] == result["prefect_flow_run_id"]
    assert flow_run_state(result["prefect_flow_run_id"]).is_completed()

    children = child_runs(mlflow_client, result)
    assert set(children) == STAGES
    assert all(r.info.status == "FINISHED" for r in children.values())
    assert_compression_recorded(mlflow_client, result, children["compress"])
    assert children["evaluate"].data.metrics["accuracy"] == pytest.approx(result["metrics"]["accuracy"])
    history = mlflow_client.get_metric_history(children["train"].info.run_id, "val_loss")
    assert len(history) == result["training"]["epochs_run"] > 1

    def artifacts(stage, path):
        return {a.path for a in mlflow_client.list_artifacts(children[stage].info.run_id, path)}

    assert "validation/validation_report.html" in artifacts("validate", "validation")
    assert "evaluation/confusion_matrix.png" in artifacts("evaluate", "evaluation")
    assert "float_model/float_model.keras" in artifacts("train", "float_model")

    version = mlflow_client.get_model_version("penguins", "1")
    assert sorted(version.aliases) == PROMOTED
    moves = promotion_history(mlflow_client, "penguins")
    assert [(m["alias"], m["from_version"], m["to_version"]) for m in moves] == [
        ("staging", None, "1"),
        ("production", None, "1"),
    ]
    assert registered_variant(version) == result["shipped_variant"]
    assert version.tags["pmf.data_sha256"] == file_sha256(DATA / "penguins.csv")
    assert version.tags["pmf.prefect_flow_run_id"] == result["prefect_flow_run_id"]
    assert len(version.tags["pmf.git_commit"]) >= 7
    assert '"epochs":15' in version.tags["pmf.config"]
    assert version.run_id == result["mlflow_run_id"]  # the version's source run is the pipeline run

    # A later batch of the same name needs no target: it is validated against suite v1, unchanged.
    code, second = pmf("run", "--data", str(DATA / "batches" / "penguins_new.csv"), "--name", "penguins", *FAST)
    assert code == 0
    assert second["suite_version"] == 1
    assert second["version"] == "2"
    # Whether v2 beats v1 depends on the batch; either way the registry must say what the result says.
    expected_production = "2" if second["promoted"] else "1"
    production = str(mlflow_client.get_registered_model("penguins").aliases["production"])
    assert production == expected_production, second.get("reasons")
    production_moves = [m for m in promotion_history(mlflow_client, "penguins") if m["alias"] == "production"]
    assert production_moves[-1]["to_version"] == expected_production

    # A broken batch: exit 3, every problem named, nothing registered, no alias moved.
    before = registry_state(mlflow_client)
    code, rejected = pmf("run", "--data", str(DATA / "batches" / "penguins_broken.csv"), "--name", "penguins")
    assert code == 3
    assert rejected["status"] == "data_rejected"
    assert rejected["version"] is None
    named = {(e["column"], e["expectation"]) for e in rejected["errors"]}
    assert ("bill_depth_mm", "expect_column_to_exist") in named
    assert ("body_mass_g", "expect_column_values_to_be_between") in named
    assert ("species", "expect_column_values_to_be_in_set") in named
    assert registry_state(mlflow_client) == before
    assert set(child_runs(mlflow_client, rejected)) == {"validate"}


def assert_compression_recorded(client, result: dict, compress_run) -> None:
    rows = {row["variant"]: row for row in result["compression"]}
    assert set(rows) == ALL_VARIANTS
    for row in rows.values():
        assert set(row) >= {
            "variant",
            "metrics",
            "bytes",
            "gzip_bytes",
            "latency_ms_p50",
            "latency_ms_p99",
            "passed",
            "reasons",
            "shipped",
        }
        assert row["error"] is None
        assert row["bytes"] > 0
        assert row["latency_ms_p50"] > 0
    assert rows["keras"]["passed"] is None
    assert not rows["keras"]["shipped"]
    shipped = [row for row in rows.values() if row["shipped"]]
    assert len(shipped) == 1
    assert shipped[0]["variant"] == result["shipped_variant"]
    assert shipped[0]["passed"]
    assert all(row["reasons"] for row in rows.values() if row["passed"] is False), "a rejected variant without a reason"
    variant_runs = client.search_runs(
        [result["mlflow_experiment_id"]], filter_string=f"tags.`mlflow.parentRunId` = '{compress_run.info.run_id}'"
    )
    assert {r.data.tags["pmf.stage"] for r in variant_runs} == {f"compress-{v}" for v in ALL_VARIANTS}
    assert {a.path for a in client.list_artifacts(compress_run.info.run_id, "compression")} >= {
        "compression/comparison.csv",
        "compression/tradeoff.png",
    }
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        artifact = prefect.read_latest_artifacts(limit=50)
    assert any(a.key == "compression" and a.type == "table" for a in artifact)


def promotion_history(client, name: str) -> list[dict]:
    """The promotion history recorded in the registry, oldest first."""
    from tasks.registry.lifecycle import history as registry_history

    return registry_history(name)


def registered_variant(version) -> str:
    from mlflow.artifacts import download_artifacts

    folder = download_artifacts(f"models:/{version.name}/{version.version}")
    return json.loads((Path(folder) / "artifacts" / "package" / "model_meta.json").read_text())["variant"]


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(("config", "metric", "floor"), [("diabetes.yaml", "r2", 0.3), ("digits.yaml", "accuracy", 0.93)])
def test_bundled_regression_and_image_configs_run_end_to_end(mlflow_client, config, metric, floor):
    code, result = pmf(
        "run",
        "--config",
        str(DATA / config),
        "--set",
        "train.epochs=12",
        "--set",
        "compression.variants=[float32, dynamic_range, int8]",
    )
    assert code == 0, result
    assert result["status"] == "completed", result
    assert result["metrics"][metric] >= floor
    assert result["version"] == "1"
    assert sorted(mlflow_client.get_model_version(result["registered_model"], "1").aliases) == PROMOTED


@pytest.mark.usefixtures("prefect_harness")
def test_a_failed_gate_completes_without_registering(mlflow_client):
    code, result = pmf("run", "--set", "train.epochs=1", "--set", "gates=[{metric: accuracy, min: 1.01}]")
    assert code == 0
    assert result["status"] == "completed"
    assert result["version"] is None
    assert result["promoted"] is False
    assert result["reasons"] == [f"accuracy {result['metrics']['accuracy']:.4g} < 1.01"]
    assert registry_state(mlflow_client) == {}


@pytest.mark.usefixtures("prefect_harness")
def test_zero_quality_budget_rejects_every_variant_that_lost_quality_and_says_what_shipped(mlflow_client):
    code, result = pmf(
        "run",
        "--config",
        str(DATA / "diabetes.yaml"),
        "--set",
        "train.epochs=20",
        "--set",
        "compression.variants=[float32, float16, int8, dynamic_range]",
        "--set",
        "compression.max_relative_drop=0",
    )
    assert code == 0, result
    rows = {row["variant"]: row for row in result["compression"]}
    reference = rows["float32"]["metrics"]["r2"]
    for name in ("float16", "int8", "dynamic_range"):
        lost = rows[name]["metrics"]["r2"] < reference
        if lost:
            assert rows[name]["passed"] is False
            assert any(r.startswith("r2 ") and "drop" in r and "> budget" in r for r in rows[name]["reasons"]), rows[name][
                "reasons"
            ]
    assert rows["int8"]["metrics"]["r2"] != reference, "int8 should not reproduce float32 exactly"
    shipped = next(row for row in rows.values() if row["shipped"])
    if not any(rows[n]["passed"] for n in ("float16", "int8", "dynamic_range")):
        assert shipped["variant"] == "float32"
        assert "no lossy variant passed the gate" in shipped["reasons"][-1]
    assert result["shipped_variant"] == shipped["variant"]
