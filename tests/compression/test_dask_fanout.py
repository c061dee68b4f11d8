"""Compression variants built on a real Dask cluster (a scheduler and two one-thread workers as
processes, tests/support/dask_cluster.py) by `pmf run --dask-address`, recorded on the harness's
Prefect server: which worker built what, a worker SIGKILLed mid fan-out, and a wrong address.

The workers get no PREFECT_API_URL of their own: each task carries the flow's Prefect settings,
so their task runs land on the flow run a user opens.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time

import pytest

from tests.flows.helpers import child_runs, pmf
from tests.support.dask_cluster import dask_cluster, free_port

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

VARIANTS = ["float32", "dynamic_range", "float16", "int8"]
LEAN = ["--set", "train.epochs=2", "--set", "gates=[]", "--set", f"compression.variants=[{', '.join(VARIANTS)}]"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with dask_cluster(tmp_path_factory.mktemp("dask")) as running:
        yield running


@pytest.fixture
def dask_env(monkeypatch):
    """`--dask-address` sets PMF_DASK_ADDRESS in this process: put it back afterwards."""
    monkeypatch.delenv("PMF_DASK_ADDRESS", raising=False)


def run(*args: str) -> tuple[int, dict, str]:
    """`pmf run ARGS --json` in this process: exit code, JSON result, and what it printed on stderr."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code, result = pmf("run", *args)
    return code, result, stderr.getvalue()


def task_runs(flow_run_id: str) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name: r for r in runs}


@pytest.mark.usefixtures("dask_env")
def test_variants_are_built_on_both_dask_workers_measured_here_and_the_shipped_one_is_registered(
    cluster, workspace, mlflow_client
):
    workers = set(cluster.worker_addresses())
    code, result, stderr = run("--dask-address", cluster.address, *LEAN)
    assert code == 0, (result, stderr[-3000:], cluster.logs())
    assert result["status"] == "completed"
    assert f"building on the Dask cluster at {cluster.address} (2 workers)" in stderr
    rows = {row["variant"]: row for row in result["compression"]}
    assert set(rows) == {"keras", *VARIANTS}
    for variant in VARIANTS:
        assert rows[variant]["error"] is None, rows[variant]
        assert rows[variant]["built_on"] in workers, rows[variant]
        assert rows[variant]["bytes"] > 0
        assert rows[variant]["latency_ms_p50"] > 0
    assert {rows[v]["built_on"] for v in VARIANTS} == workers  # both workers got work
    assert "built_on" not in rows["keras"]  # the Keras baseline is measured in the flow's process, never shipped out
    # Prefect: one compress-<variant> task run per variant on the flow run the user opens, each completed
    runs = task_runs(result["prefect_flow_run_id"])
    for variant in VARIANTS:
        assert runs[f"compress-{variant}"].state.is_completed()
    others = {name.rsplit("-", 1)[0] for name in runs}  # Prefect names the others `train-a1b`, ...
    assert {"compress-measure-gate", "train", "evaluate", "register"} <= others
    # MLflow: the shipped variant registered as usual; every variant's landed .tflite logged on its run
    assert result["version"] == "1"
    assert result["shipped_variant"] in VARIANTS
    version = mlflow_client.get_model_version("penguins", "1")
    assert version.run_id == result["mlflow_run_id"]
    compress_run = child_runs(mlflow_client, result)["compress"]
    variant_runs = mlflow_client.search_runs(
        [result["mlflow_experiment_id"]], filter_string=f"tags.`mlflow.parentRunId` = '{compress_run.info.run_id}'"
    )
    by_stage = {r.data.tags["pmf.stage"]: r for r in variant_runs}
    for variant in VARIANTS:
        logged = [a.path for a in mlflow_client.list_artifacts(by_stage[f"compress-{variant}"].info.run_id, "model")]
        assert logged == [f"model/{variant}.tflite"]


@pytest.mark.usefixtures("dask_env")
def test_a_wrong_dask_address_fails_before_training_and_names_the_address_and_the_setting(workspace, mlflow_client):
    nobody = f"tcp://127.0.0.1:{free_port()}"
    code, result, _ = run("--dask-address", nobody, *LEAN)
    assert code == 1, result
    assert result["status"] == "failed"
    assert f"cannot reach the Dask scheduler at {nobody} (PMF_DASK_ADDRESS / --dask-address)" in result["error"]
    experiment = mlflow_client.get_experiment_by_name("penguins")
    runs = mlflow_client.search_runs([experiment.experiment_id])
    assert {r.data.tags.get("pmf.stage") for r in runs} == {None, "validate"}  # the parent run, validated, nothing trained
    (parent,) = [r for r in runs if "pmf.stage" not in r.data.tags]
    assert parent.info.status == "FAILED"
    assert mlflow_client.search_registered_models() == []

    code, result, _ = run("--dask-address", "scheduler-host", *LEAN)
    assert code == 2, result  # a usage error: not an address at all
    assert (
        "the Dask scheduler address 'scheduler-host' (PMF_DASK_ADDRESS / --dask-address) is not tcp://HOST:PORT"
        in (result["error"])
    )


def test_without_a_prefect_server_the_workers_could_report_to_dask_is_a_usage_error(monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.task_runners import check_dask_cluster
    from tasks.config import ConfigError

    monkeypatch.setenv("PMF_DASK_ADDRESS", "tcp://127.0.0.1:8786")
    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(ConfigError) as refused:
        check_dask_cluster()
    assert "PMF_DASK_ADDRESS / --dask-address" in str(refused.value)
    assert "set PREFECT_API_URL" in str(refused.value)


@pytest.mark.usefixtures("dask_env")
def test_a_worker_killed_during_the_fan_out_has_its_builds_rerun_on_the_other_and_the_run_completes(
    cluster, workspace, mlflow_client
):
    """Runs last: it leaves the module's cluster with one worker."""
    pids = cluster.worker_addresses()
    killed: dict[str, int] = {}

    def kill_a_worker_mid_build() -> None:
        """As soon as a worker holds a compress build (one thread: it is running it), SIGKILL it."""
        with cluster.client() as client:
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                busy = [address for address, keys in client.processing().items() if keys]  # only builds go to Dask
                if busy:
                    killed[busy[0]] = pids[busy[0]]
                    cluster.kill(pids[busy[0]])
                    return
                time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker_mid_build, daemon=True)
    killer.start()
    code, result, stderr = run("--dask-address", cluster.address, *LEAN)
    killer.join(timeout=10)
    assert killed, "no worker was ever seen holding a build"
    assert code == 0, (result, stderr[-3000:], cluster.logs())
    assert result["status"] == "completed"
    assert result["version"] == "1"
    (dead,) = killed
    (survivor,) = set(pids) - {dead}
    assert set(cluster.worker_addresses()) == {survivor}
    rows = {row["variant"]: row for row in result["compression"]}
    for variant in VARIANTS:
        assert rows[variant]["error"] is None, rows[variant]
    assert survivor in {rows[v]["built_on"] for v in VARIANTS}
    runs = task_runs(result["prefect_flow_run_id"])
    assert all(runs[f"compress-{v}"].state.is_completed() for v in VARIANTS)
