"""`pmf monitor` against a real registry: the bundled batches, the prediction log, what is recorded where."""

from __future__ import annotations

import contextlib
import io
import json
from uuid import UUID

import pandas as pd
import pytest

from flows.cli import main
from tasks.serving.prediction_log import PredictionLog
from tests.conftest import DATA
from tests.flows.helpers import pmf
from tests.registry.store import NAME

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
INCOMING = DATA / "incoming" / "penguins"
RESULT_FIELDS = {"model", "version", "rows", "drifted", "drift_share", "features", "prediction_drift", "event_emitted", "verdict"}


def history(home) -> list[dict]:
    path = home / "monitoring" / f"{NAME}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def monitor_runs(client) -> list:
    experiment = client.get_experiment_by_name(NAME)
    return client.search_runs([experiment.experiment_id], "tags.`pmf.kind` = 'monitor'", order_by=["attributes.start_time ASC"])


def flow_state_name(flow_run_id: str) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        return prefect.read_flow_run(UUID(flow_run_id)).state.name


def drift_events(flow_run_ids: set[str], expected: int, deadline_s: float = 30.0) -> list:
    """The drift events the checks of these flow runs emitted, polled until `expected` arrived (or the deadline)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    from flows.events import DRIFT_EVENT

    query = EventFilter(event=EventNameFilter(name=[DRIFT_EVENT]), resource=EventResourceFilter(id=[f"pmf.model.{NAME}"]))
    end = time.monotonic() + deadline_s
    while True:
        with get_client(sync_client=True) as prefect:
            found = [
                e for e in prefect.read_events(query, limit=50).events if e.payload.get("monitor_flow_run_id") in flow_run_ids
            ]
        if len(found) >= expected or time.monotonic() > end:
            return found
        time.sleep(0.5)


def test_a_drifted_batch_drifts_and_a_clean_one_does_not(monitored):
    from tasks.registry.tracking import client

    code, drifted = pmf("monitor", NAME, "--data", str(INCOMING / "drifted.csv"))
    assert code == 0, drifted
    assert set(drifted) >= RESULT_FIELDS
    assert (drifted["model"], drifted["version"], drifted["rows"]) == (NAME, "3", 200)
    assert drifted["verdict"] == "drift"
    assert drifted["drifted"] is True
    assert drifted["drift_share"] >= 0.5
    assert drifted["event_emitted"] is True
    assert {f["statistic"] for f in drifted["features"]} == {"ks", "chi2"}  # a reference of 220 rows
    assert {"body_mass_g", "bill_length_mm", "flipper_length_mm"} <= set(drifted["top_features"])
    assert flow_state_name(drifted["prefect_flow_run_id"]) == "Drift"

    code, clean = pmf("monitor", NAME, "--data", str(INCOMING / "clean.csv"))
    assert code == 0
    assert clean["verdict"] == "no_drift"
    assert clean["drifted"] is False
    assert clean["event_emitted"] is False
    assert flow_state_name(clean["prefect_flow_run_id"]) == "NoDrift"

    records = history(monitored)
    assert [r["verdict"] for r in records] == ["drift", "no_drift"]
    assert [r["event_emitted"] for r in records] == [True, False]
    assert records[0]["top_features"] == drifted["top_features"]
    assert records[0]["checked_at"].endswith("Z")

    mlflow_client = client()
    runs = monitor_runs(mlflow_client)
    assert [r.data.tags["pmf.verdict"] for r in runs] == ["drift", "no_drift"]
    assert [r.info.run_id for r in runs] == [drifted["mlflow_run_id"], clean["mlflow_run_id"]]
    assert runs[0].data.metrics["drift_share"] == pytest.approx(drifted["drift_share"])
    artifacts = {a.path for a in mlflow_client.list_artifacts(runs[0].info.run_id, "drift")}
    assert artifacts == {"drift/drift.png", "drift/report.json"}

    (event,) = drift_events({drifted["prefect_flow_run_id"], clean["prefect_flow_run_id"]}, expected=1)
    assert event.payload["monitor_flow_run_id"] == drifted["prefect_flow_run_id"]
    assert event.payload["version"] == "3"
    assert event.payload["drift_share"] == pytest.approx(drifted["drift_share"])
    assert event.payload["top_features"] == drifted["top_features"]
    assert event.payload["mlflow_run_id"] == drifted["mlflow_run_id"]


def test_the_terminal_output_fits_80_columns(monitored):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["monitor", NAME, "--data", str(INCOMING / "drifted.csv")])
    lines = out.getvalue().splitlines()
    assert code == 0
    assert lines[1].startswith("drift: ")
    assert max(len(line) for line in lines) <= 80
    assert any(line.split()[:2] == ["body_mass_g", "ks"] for line in lines)


def test_the_prediction_log_window_is_checked(monitored):
    rows = pd.read_csv(INCOMING / "drifted.csv")
    features = rows.drop(columns=["species"]).astype(object).where(rows.notna(), None)
    log = PredictionLog(monitored / "predictions" / f"{NAME}.jsonl").open()
    log.record("3", {c: features[c].tolist() for c in features}, rows["species"].tolist())
    log.close()

    code, result = pmf("monitor", NAME)
    assert code == 0
    assert result["source"]["kind"] == "prediction_log"
    assert result["source"]["versions"] == {"3": 200}
    assert result["rows"] == 200
    assert result["drifted"] is True
    assert history(monitored)[-1]["source"]["kind"] == "prediction_log"


def test_a_short_log_is_not_enough_data(monitored):
    log = PredictionLog(monitored / "predictions" / f"{NAME}.jsonl").open()
    log.record("3", {"island": ["Biscoe"] * 20, "body_mass_g": [9000] * 20}, ["Gentoo"] * 20)
    log.close()
    code, result = pmf("monitor", NAME)
    assert code == 0
    assert (result["verdict"], result["drifted"], result["rows"]) == ("not_enough_data", False, 20)
    assert flow_state_name(result["prefect_flow_run_id"]) == "NotEnoughData"


def test_usage_errors_exit_2_with_one_line(monitored):
    code, result = pmf("monitor", "no-such-model")
    assert code == 2
    assert "no registered model named 'no-such-model'" in result["error"]
    code, result = pmf("monitor", NAME, "--data", str(INCOMING / "missing.csv"))
    assert code == 2
    assert "--data" in result["error"]
    from tasks.registry import tracking

    tracking.client().delete_registered_model_alias(NAME, "production")
    code, result = pmf("monitor", NAME)
    assert code == 2
    assert "no production version" in result["error"]
    assert history(monitored) == []
