"""`pmf-monitor`: one drift check of NAME's production version, on its served prediction log or a batch.

window -> drift check -> record. The verdict goes to an MLflow run in the model's experiment (tagged
`pmf.kind=monitor`, with its plot), to a Prefect table artifact, and to PMF_HOME/monitoring/NAME.jsonl;
a drift emits `pmf.drift.detected` (flows/events.py) with the drift summary, which the drift
automation turns into a retrain. The flow completes whatever the verdict, in a state named `Drift`,
`NoDrift` or `NotEnoughData`; an unknown name, no @production or no reference profile end
Failed/`ConfigError`, an unreadable batch Failed/`Rejected`. Deployments run it as
`flows.monitor_flow:monitor_flow` with parameters (name, data, trigger).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import State

from flows import events, stages, ui
from tasks.config import ConfigError
from tasks.data.load import DataError
from tasks.data.suite import DataRejected, rejection_message
from tasks.monitoring import check, history, record
from tasks.monitoring.profile import load_profile
from tasks.monitoring.settings import MonitoringSettings
from tasks.monitoring.verdict import check_drift, verdict_sentence
from tasks.run_result import json_safe
from tasks.workspace import remove_scratch_folder, scratch_folder

TRIGGERS = ("manual", "schedule", "drift")
SUMMARY_FEATURES = 5  # the drifted features the event's summary details


@task(name="window", cache_policy=NO_CACHE)
@stages.expected_outcomes
def read_current(name: str, version: str, data: str | None, settings: MonitoringSettings, workdir: Path) -> check.Current:
    if data is None:
        return check.log_window(name, settings.window)
    return check.batch_window(name, version, Path(data), workdir)


@task(name="drift-check", cache_policy=NO_CACHE)
def drift_check(profile: dict[str, Any], current: check.Current, settings: MonitoringSettings) -> dict[str, Any]:
    return check_drift(profile, current.frame, current.predictions, settings)


@task(name="record", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def record_verdict(name: str, result: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """MLflow run, drift event (when it drifted), history line; returns the result as recorded."""
    experiment_id, run_id = record.record_check(name, result, markdown(result), workdir)
    result = {**result, "mlflow_run_id": run_id, "links": ui.links(result["prefect_flow_run_id"], experiment_id, run_id)}
    if result["drifted"]:
        result["event_emitted"] = events.emit_drift(name, result["version"], drift_summary(result))
    from tasks.registry import tracking

    tracking.set_tags(run_id, {"pmf.event_emitted": str(result["event_emitted"]).lower()})
    history.append_check(name, result)
    return result


@flow(name="pmf-monitor", flow_run_name="{name} · drift check", log_prints=False)
def monitor_flow(name: str, data: str | None = None, trigger: str = "manual") -> State:
    prefect_id = str(flow_run.id) if flow_run.id else None
    ui.add_tags(prefect_id, ui.run_tags(name, trigger))
    workdir = scratch_folder("pmf-monitor")
    result: dict[str, Any] = {"model": name, "trigger": trigger, "prefect_flow_run_id": prefect_id or ""}
    try:
        if trigger not in TRIGGERS:
            raise ConfigError(f"trigger {trigger!r}: expected one of {', '.join(TRIGGERS)}")
        version = check.production_version(name)
        settings, profile = check.monitoring_settings(name), load_profile(name, version)
        current = stages.settled(read_current(name, version, data, settings, workdir))
        checked_at = history.now_iso()
        verdict = drift_check(profile, current, settings)
        result.update(version=version, checked_at=checked_at, source=current.source, event_emitted=False, **verdict)
        result = record_verdict(name, json_safe(result), workdir)
        outcome, message = result["verdict"], verdict_sentence(result)
        table_artifact(name, result, message)
    except ConfigError as exc:
        outcome, message = "usage_error", f"config error: {exc}"
        result.update(status="usage_error", error=str(exc))
    except (DataRejected, DataError) as exc:
        outcome, message = "data_rejected", rejection_message(exc)
        result.update(status="data_rejected", error=message)
    finally:
        remove_scratch_folder(workdir)
    ui.add_tags(prefect_id, [f"outcome:{outcome}"])
    get_run_logger().info("%s", message)
    return ui.final_state(outcome, message, json_safe({"status": result.get("status", "completed"), **result}))


def drift_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The drift event's payload (beside `version`): what the retrain it starts records about why."""
    drifted = [f for f in result["features"] if f["drifted"]][:SUMMARY_FEATURES]
    return {
        "verdict": result["verdict"],
        "checked_at": result["checked_at"],
        "rows": result["rows"],
        "drift_share": result["drift_share"],
        "top_features": result["top_features"],
        "features": [{k: f[k] for k in ("column", "statistic", "value", "threshold")} for f in drifted],
        "prediction_drift": result["prediction_drift"],
        "source": result["source"]["kind"],
        "mlflow_run_id": result.get("mlflow_run_id"),
        "monitor_flow_run_id": result["prefect_flow_run_id"],
    }


def markdown(result: dict[str, Any]) -> str:
    """The check as both UIs show it: the verdict sentence, then the table of features."""
    title = f"{result['model']} v{result['version']}: {result['verdict'].replace('_', ' ')}"
    where = result["source"].get("path") or "the prediction log"
    lines = [f"# {title}", "", f"**{verdict_sentence(result)}**", "", f"{result['rows']:,} rows from {where}", ""]
    return "\n".join([*lines, *(record.features_table(result) if result["features"] else [])]) + "\n"


def table_artifact(name: str, result: dict[str, Any], message: str) -> None:
    """The verdict per feature as a Prefect table artifact (key `pmf-drift-NAME`, one series per model)."""
    from prefect.artifacts import create_table_artifact

    rows = [
        {k: f.get(k) for k in ("column", "statistic", "value", "threshold", "drifted", "psi", "missing_rate", "unknown_rate")}
        for f in [*result["features"], {"column": "(predictions)", **result["prediction_drift"]}]
    ]
    key = "pmf-drift-" + re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    create_table_artifact(table=rows, key=key, description=f"pmf monitor {name} v{result['version']}: {message}")
