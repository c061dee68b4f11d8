"""`pmf run --tune` end to end on the bundled penguins data: trials as Prefect task runs on a real Dask
cluster (a scheduler and two workers as processes), each a nested MLflow run; the best trial trains the model."""

from __future__ import annotations

import pytest

from tasks.config import TrainConfig, load_config
from tasks.tuning.space import apply_params
from tests.conftest import DATA
from tests.flows.helpers import child_runs, pmf
from tests.support.dask_cluster import dask_cluster

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

TRIALS = 4
LEAN = [
    "--set", f"tune.trials={TRIALS}",
    "--set", "tune.parallelism=2",
    "--set", "tune.epochs=5",
    "--set", "tune.warmup_epochs=2",
    "--set", "train.epochs=8",
    "--set", "compression.variants=[float32,int8]",
]  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with dask_cluster(tmp_path_factory.mktemp("dask")) as running:
        yield running


@pytest.fixture(scope="module")
def tuned_run(cluster, tmp_path_factory):
    """One tuned `pmf run` for the module (a search takes minutes): its result and its workspace's MLflow client."""
    from tasks.registry.tracking import client

    home = tmp_path_factory.mktemp("tuned") / "pmf-home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PMF_HOME", str(home))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        patch.delenv("PMF_DASK_ADDRESS", raising=False)
        code, result = pmf("run", "--tune", "--dask-address", cluster.address, *LEAN)
        assert code == 0, result
        yield result, client()


@pytest.fixture
def tuned(tuned_run):
    return tuned_run[0]


@pytest.fixture
def mlflow_client(tuned_run):
    return tuned_run[1]


def task_run_names(flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [r.name for r in runs]


def test_a_tuned_run_records_every_trial_in_prefect_and_mlflow_and_trains_the_best(tuned, mlflow_client):
    tuning = tuned["tuning"]
    assert tuning["trials"] == TRIALS
    assert tuning["completed"] + tuning["pruned"] + tuning["failed"] == TRIALS
    assert tuning["best"] is not None
    assert tuned["outcome"] in ("promoted", "not_promoted")
    # one Prefect task run per trial, on the flow run the user opens
    trial_task_runs = [n for n in task_run_names(tuned["prefect_flow_run_id"]) if n.startswith("trial-")]
    assert sorted(trial_task_runs) == [f"trial-{i}" for i in range(TRIALS)]
    # one nested MLflow run per trial under the tune stage's run, with its values and its outcome
    tune_run = child_runs(mlflow_client, tuned)["tune"]
    trials = mlflow_client.search_runs(
        [tuned["mlflow_experiment_id"]], filter_string=f"tags.`mlflow.parentRunId` = '{tune_run.info.run_id}'"
    )
    assert len(trials) == TRIALS
    assert {t.data.tags["pmf.trial.state"] for t in trials} <= {"completed", "pruned", "failed"}
    best = next(t for t in trials if t.data.params["trial"] == str(tuning["best"]["trial"]))
    assert best.data.metrics[f"trial_{tuning['metric']}"] == pytest.approx(tuning["best"]["value"])
    # the final model trained with the best trial's values, and says which trial they came from
    train_run = child_runs(mlflow_client, tuned)["train"]
    expected = apply_params(TrainConfig(), tuning["best"]["params"])
    assert train_run.data.params["hidden_units"] == str(list(expected.hidden_units)) or train_run.data.params[
        "hidden_units"
    ] == str(expected.hidden_units)
    assert float(train_run.data.params["learning_rate"]) == pytest.approx(tuning["best"]["params"]["learning_rate"])
    parent = mlflow_client.get_run(tuned["mlflow_run_id"])
    assert parent.data.params["tuned_from_trial"] == str(tuning["best"]["trial"])


def test_trials_spread_over_both_dask_workers(tuned, mlflow_client, cluster):
    tune_run = child_runs(mlflow_client, tuned)["tune"]
    trials = mlflow_client.search_runs(
        [tuned["mlflow_experiment_id"]], filter_string=f"tags.`mlflow.parentRunId` = '{tune_run.info.run_id}'"
    )
    workers = {t.data.tags["pmf.trial.worker"].split(":")[1] for t in trials}
    assert workers == {str(process.pid) for process in cluster.workers}  # each worker is its own process (no nanny)


def test_the_search_ends_at_least_as_good_as_the_configured_model_on_the_validation_split(tuned, mlflow_client):
    """Trial 0 is the model the config describes, trained and scored as every trial; the best is no worse."""
    cfg = load_config(DATA / "penguins.yaml")
    tune_run = child_runs(mlflow_client, tuned)["tune"]
    trials = {
        int(t.data.params["trial"]): t
        for t in mlflow_client.search_runs(
            [tuned["mlflow_experiment_id"]], filter_string=f"tags.`mlflow.parentRunId` = '{tune_run.info.run_id}'"
        )
    }
    configured = trials[0]
    assert int(configured.data.params["layers"]) == len(cfg.train.hidden_units)
    assert int(configured.data.params["width"]) == cfg.train.hidden_units[0]
    assert float(configured.data.params["learning_rate"]) == pytest.approx(cfg.train.learning_rate)
    metric = tuned["tuning"]["metric"]
    if configured.data.tags["pmf.trial.state"] == "completed":
        assert tuned["tuning"]["best"]["value"] >= configured.data.metrics[f"trial_{metric}"]
    tuning = tuned["tuning"]
    assert tuning["leader"]["value"] == max(
        t.data.metrics[f"trial_{metric}"] for t in trials.values() if t.data.tags["pmf.trial.state"] == "completed"
    )
    # the leader trains the model unless its lead over trial 0 is within its standard error
    leader = trials[tuning["leader"]["trial"]]
    lead = tuning["leader"]["value"] - configured.data.metrics.get(f"trial_{metric}", float("-inf"))
    completed = configured.data.tags["pmf.trial.state"] == "completed"
    within = completed and tuning["leader"]["trial"] != 0 and lead <= leader.data.metrics[f"trial_{metric}_se"]
    assert tuning["kept_configured"] is within
    assert tuning["best"]["trial"] == (0 if within else tuning["leader"]["trial"])
