"""What the Prefect and MLflow UIs show for a promoted, a rejected and a not-promoted run, read through
their APIs: states and messages, run names, tags, links both ways, descriptions, datasets, metrics."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tasks.data.load import file_sha256
from tests.conftest import DATA
from tests.flows.helpers import child_runs, pmf

pytestmark = pytest.mark.slow

FAST = ["--set", "train.epochs=15", "--set", "compression.variants=[float32]"]
BROKEN = DATA / "batches" / "penguins_broken.csv"


def flow_run(flow_run_id: str):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def artifacts(flow_run_id: str) -> dict[str, object]:
    """The flow run's artifacts by key (link artifacts hold their URL in `data`, markdown its text)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in found}


def task_runs(flow_run_id: str) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name.rsplit("-", 1)[0]: r for r in runs}


def logs_of(flow_run_id: str, containing: str, deadline_s: float = 30) -> list[str]:
    """Every log message of a flow run (its tasks' included), once one containing `containing` arrived:
    Prefect ships logs from a background worker, so they are polled for, with a deadline."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + deadline_s
    while True:
        with get_client(sync_client=True) as client:
            messages = [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))]
        if any(containing in m for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.2)


def prefect_base() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value().removesuffix("/api")


@pytest.mark.usefixtures("prefect_harness")
def test_promoted_then_rejected_batch_each_show_their_outcome_in_both_uis(mlflow_client):
    started = datetime.now(UTC)
    code, result = pmf("run", *FAST)
    assert code == 0, result
    assert result["outcome"] == "promoted"
    run_id, flow_run_id = result["mlflow_run_id"], result["prefect_flow_run_id"]

    # Prefect: named after the model and the batch, tagged, Completed/Promoted with a sentence.
    prefect = flow_run(flow_run_id)
    assert (prefect.state.type.value, prefect.state.name) == ("COMPLETED", "Promoted")
    assert prefect.state.message == f"promoted: penguins v1 is @production (accuracy {result['metrics']['accuracy']:.4g})"
    assert prefect.name == "penguins · penguins.csv"
    assert set(prefect.tags) >= {"pmf", "model:penguins", "trigger:manual", "outcome:promoted"}

    # Links both ways, built from the UIs in use: the harness's Prefect API, `mlflow ui` on the SQLite store.
    links = result["links"]
    assert links == {
        "mlflow_run": f"http://127.0.0.1:5000/#/experiments/{result['mlflow_experiment_id']}/runs/{run_id}",
        "prefect_flow_run": f"{prefect_base()}/runs/flow-run/{flow_run_id}",
        "model_version": "http://127.0.0.1:5000/#/models/penguins/versions/1",
    }
    found = artifacts(flow_run_id)
    assert found["mlflow-run"].data == f"[MLflow run]({links['mlflow_run']})"  # Prefect renders a link as markdown
    assert found["model-version"].data == f"[penguins version 1]({links['model_version']})"
    assert "mlflow ui --backend-store-uri sqlite:///" in found["mlflow-run"].description

    # MLflow: FINISHED, the outcome as a tag, a description linking the Prefect run, what the runs table shows.
    parent = mlflow_client.get_run(run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["pmf.outcome"] == "promoted"
    note = parent.data.tags["mlflow.note.content"]
    assert f"[{links['prefect_flow_run']}]({links['prefect_flow_run']})" in note
    assert links["model_version"] in note
    assert "| accuracy |" in note
    assert "✓ passed" in note
    assert parent.data.metrics["accuracy"] == pytest.approx(result["metrics"]["accuracy"])
    assert parent.data.params["train.model"] == "mlp"
    assert parent.data.params["train.epochs"] == "15"
    assert parent.data.tags["mlflow.source.name"] == "pmf run"
    assert len(parent.data.tags["mlflow.source.git.commit"]) == 40
    (dataset,) = parent.inputs.dataset_inputs
    assert (dataset.dataset.name, dataset.dataset.digest) == ("penguins.csv", file_sha256(DATA / "penguins.csv")[:16])
    assert [(t.key, t.value) for t in dataset.tags] == [("mlflow.data.context", "training")]
    assert '"num_rows": 344' in dataset.dataset.profile

    # An MLP's training run logs an MLP's settings only.
    train_params = child_runs(mlflow_client, result)["train"].data.params
    assert "hidden_units" in train_params
    assert not {"conv_filters", "image_shape", "augment"} & set(train_params)

    # Suite, config and trained-on batch records live beside the pipeline runs, not among them.
    pipeline_kinds = {r.data.tags.get("pmf.kind") for r in mlflow_client.search_runs([result["mlflow_experiment_id"]])}
    assert pipeline_kinds == {"pipeline", None}  # None: the stage runs
    store = mlflow_client.get_experiment_by_name("penguins.pmf-store")
    assert {r.data.tags["pmf.kind"] for r in mlflow_client.search_runs([store.experiment_id])} == {"suite", "config", "batch"}

    # The promotion subflow says its own outcome too.
    promotions = list(_flow_runs_named("penguins v1 → production", after=started))
    assert [(r.state.name, r.state.message) for r in promotions] == [("Promoted", "promoted: penguins v1 is @production")]

    # A broken batch: Failed/Rejected in Prefect, FAILED in MLflow, the failed expectations everywhere.
    code, rejected = pmf("run", "--data", str(BROKEN), "--name", "penguins")
    assert code == 3
    assert rejected["outcome"] == "data_rejected"
    prefect = flow_run(rejected["prefect_flow_run_id"])
    assert (prefect.state.type.value, prefect.state.name) == ("FAILED", "Rejected")
    parent = mlflow_client.get_run(rejected["mlflow_run_id"])
    failed, evaluated = int(parent.data.metrics["failed_expectations"]), int(parent.data.metrics["expectations"])
    assert failed >= len(rejected["errors"]) > 0  # a missing column's own expectations fold into its failure
    assert prefect.state.message.startswith(f"rejected: {failed} of {evaluated} expectations failed (")
    assert "body_mass_g: values_to_be_between" in prefect.state.message
    assert prefect.name == "penguins · penguins_broken.csv"
    assert set(prefect.tags) >= {"model:penguins", "trigger:manual", "outcome:data_rejected"}
    validate = task_runs(rejected["prefect_flow_run_id"])["validate"]
    assert (validate.state.type.value, validate.state.name) == ("FAILED", "Rejected")

    summary = artifacts(rejected["prefect_flow_run_id"])["pmf-summary"].data
    assert "# penguins · penguins_broken.csv: Rejected" in summary
    assert "## failed expectations" in summary
    assert "| body_mass_g | expect_column_values_to_be_between |" in summary
    assert "evaluation gate" not in summary

    assert parent.info.status == "FAILED"
    assert parent.data.tags["pmf.outcome"] == "data_rejected"
    assert "| bill_depth_mm | expect_column_to_exist |" in parent.data.tags["mlflow.note.content"]
    assert rejected["links"]["prefect_flow_run"] in parent.data.tags["mlflow.note.content"]
    validate_run = child_runs(mlflow_client, rejected)["validate"]
    assert validate_run.data.metrics["failed_expectations"] == failed  # one count, wherever it is shown
    assert parent.inputs.dataset_inputs[0].dataset.name == "penguins_broken.csv"

    # Prefect's logs read as sentences, and an expected outcome prints no traceback.
    logs = logs_of(rejected["prefect_flow_run_id"], "validated penguins_broken.csv")
    sentence = next(m for m in logs if m.startswith("validated penguins_broken.csv: "))
    assert " expectations passed, " in sentence
    assert sentence.endswith("batch rejected")
    assert not [m for m in logs if "Traceback" in m or "{'success'" in m]


def _flow_runs_named(name: str, after: datetime) -> list:
    """Flow runs of this name that started after `after` (the Prefect server is shared by the session)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterStartTime

    run_filter = FlowRunFilter(name=FlowRunFilterName(any_=[name]), start_time=FlowRunFilterStartTime(after_=after))
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=run_filter)


@pytest.mark.usefixtures("prefect_harness")
def test_a_failed_gate_is_completed_not_promoted_with_the_failed_rule_in_both_uis(mlflow_client):
    code, result = pmf("run", "--set", "train.epochs=1", "--set", "gates=[{metric: accuracy, min: 1.01}]")
    assert code == 0
    assert result["outcome"] == "not_promoted"
    failed_rule = f"accuracy {result['metrics']['accuracy']:.4g} < 1.01"

    prefect = flow_run(result["prefect_flow_run_id"])
    assert (prefect.state.type.value, prefect.state.name) == ("COMPLETED", "NotPromoted")
    assert prefect.state.message == f"not promoted: {failed_rule} (nothing registered)"
    assert set(prefect.tags) >= {"model:penguins", "outcome:not_promoted"}
    found = artifacts(result["prefect_flow_run_id"])
    assert "model-version" not in found
    assert result["links"]["model_version"] is None
    assert f"| accuracy | {result['metrics']['accuracy']:.4g} | >= 1.01 | ✗ failed |" in found["pmf-summary"].data

    parent = mlflow_client.get_run(result["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["pmf.outcome"] == "not_promoted"
    assert failed_rule in parent.data.tags["mlflow.note.content"]
    logs = logs_of(result["prefect_flow_run_id"], "test split: ")
    assert any(m.startswith("test split: accuracy ") and f"{failed_rule} ✗" in m for m in logs), logs


@pytest.mark.usefixtures("prefect_harness")
def test_validate_flow_shows_a_rejection_as_failed_rejected(mlflow_client, tmp_path):
    code, _ = pmf("validate", "--data", str(DATA / "penguins.csv"), "--target", "species", "--name", "birds")
    assert code == 0
    code, result = pmf("validate", "--data", str(BROKEN), "--name", "birds")
    assert code == 3
    assert result["status"] == "data_rejected"
    prefect = flow_run(result["prefect_flow_run_id"])
    assert (prefect.state.type.value, prefect.state.name) == ("FAILED", "Rejected")
    assert prefect.name == "birds · penguins_broken.csv (validate)"
    parent = mlflow_client.get_run(result["mlflow_run_id"])
    assert parent.info.status == "FAILED"
    assert "## failed expectations" in parent.data.tags["mlflow.note.content"]


def test_mlflow_links_follow_the_tracking_server_or_the_configured_ui(monkeypatch, workspace):
    from tasks.registry.tracking import model_version_url, run_url

    monkeypatch.setenv("PMF_MLFLOW_UI_URL", "http://mlflow.example:8080/")
    assert run_url("3", "abc") == "http://mlflow.example:8080/#/experiments/3/runs/abc"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.team.example")  # a server serves its own UI
    assert model_version_url("my model", "2") == "https://mlflow.team.example/#/models/my%20model/versions/2"


def test_suites_an_older_pmf_stored_among_the_pipeline_runs_are_still_found(mlflow_client):
    from tasks.registry import datasets, tracking

    experiment_id = tracking.ensure_experiment("legacy")
    old = tracking.start_run(experiment_id, "suite-v1", tags={"pmf.kind": "suite", "pmf.suite_version": "1"})
    tracking.log_dict(old, {"v": "old"}, "suite/suite.json")
    tracking.end_run(old)

    assert datasets.latest_suite(experiment_id) == (1, {"v": "old"})
    assert datasets.save_suite(experiment_id, "legacy", {"v": "new"}, replace=True) == (2, {"v": "new"})
    store = mlflow_client.get_experiment_by_name("legacy.pmf-store").experiment_id
    assert [r.data.tags["pmf.suite_version"] for r in mlflow_client.search_runs([store])] == ["2"]
