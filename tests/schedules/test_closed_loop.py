"""The loop closed on a real `pmf server start`, as the README walks through it: a model in production, a
retrain schedule over an incoming folder, a drifted batch arrives → `pmf monitor` finds drift → the
automation runs the retrain deployment on the runner → it trains on the new batch warm-started from
production, registers a new version and goes through the gates → `pmf status` shows all of it."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import DATA
from tests.schedules.conftest import LEAN, deployment_runs, pmf_json
from tests.support.pmf_process import wait_for

pytestmark = pytest.mark.slow

NAME = "loop-penguins"  # its own name: the other tests on the shared server count their own runs
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def test_drift_retrains_on_the_runner_warm_started_and_status_shows_the_loop(local_server, prefect, mlflow_at, tmp_path):
    code, first = pmf_json(local_server, "run", "--config", str(DATA / "penguins.yaml"), "--name", NAME, *LEAN)
    assert code == 0, first
    assert first["promoted"], first
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    shutil.copy(DATA / "incoming" / "penguins" / "drifted.csv", incoming / "2026-11-29.csv")
    # A schedule that will not fire during the test: the drift automation is what starts the retrain.
    code, scheduled = pmf_json(local_server, "schedule", NAME, "--cron", "0 3 1 1 *", "--incoming", str(incoming))
    assert code == 0, scheduled
    try:
        code, check = pmf_json(local_server, "monitor", NAME, "--data", str(incoming / "2026-11-29.csv"))
        assert code == 0, check
        assert (check["drifted"], check["event_emitted"]) == (True, True)

        def finished() -> list:
            return [r for r in deployment_runs(prefect, f"pmf-retrain/{NAME}") if r.state_type.value in FINAL]

        wait_for(finished, 420, "the drift-triggered retrain to finish on the runner")
        runs = deployment_runs(prefect, f"pmf-retrain/{NAME}")  # read before --delete takes the deployment away
    finally:
        assert pmf_json(local_server, "schedule", NAME, "--delete")[0] == 0
    # Exactly one retrain ran, and it was the drift's (the cron's planned runs for next January wait as SCHEDULED).
    (run,) = [r for r in runs if r.state_type.value != "SCHEDULED"]
    assert run.state_type.value == "COMPLETED", (run.state_name, run.state.message)
    assert run.state_name in ("Promoted", "NotPromoted"), run.state.message
    assert {"trigger:drift", f"model:{NAME}"} <= set(run.tags)
    assert run.parameters["drift"]["top_features"] == check["top_features"]

    # The retrain trained on the new batch, warm-started from v1, and registered v2 (promoted or not: the gates decide).
    client = mlflow_at(local_server)
    v2 = client.get_model_version(NAME, "2")
    source = client.get_run(v2.run_id)
    assert source.data.tags["pmf.trigger"] == "drift"
    assert source.data.params["warm_start"] == "true"
    production = str(client.get_model_version_by_alias(NAME, "production").version)
    assert production == ("2" if run.state_name == "Promoted" else "1")

    code, status = pmf_json(local_server, "status", NAME)
    assert code == 0, status
    assert (status["server"]["up"], status["server"]["runner_up"]) == (True, True)
    retrains = [r for r in status["runs"] if r["flow"] == "pmf-retrain"]
    assert [(r["trigger"], r["state"], r["outcome"]) for r in retrains] == [
        ("drift", "completed", "promoted" if run.state_name == "Promoted" else "not_promoted")
    ]
    # The retrain's promotion is a flow run of its own, and says what started the pipeline it belongs to.
    assert ("pmf-promote", "drift") in {(r["flow"], r["trigger"]) for r in status["runs"]}
    (drift,) = status["drift"]
    assert (drift["model"], drift["drifted"]) == (NAME, True)
    assert drift["top_features"] == check["top_features"][: len(drift["top_features"])]
    (model,) = status["models"]
    assert model["aliases"]["production"]["version"] == production


@pytest.fixture
def mlflow_at():
    """An MLflow client of a server's workspace store (the SQLite file its MLflow server serves)."""
    from mlflow import MlflowClient

    def client(server) -> MlflowClient:
        return MlflowClient(tracking_uri=f"sqlite:///{server.home / 'mlflow.db'}")

    return client
