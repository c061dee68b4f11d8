"""`pmf validate`: load a batch and validate it against its dataset's suite — nothing else runs.

Its final Prefect state says the outcome (Completed/`Valid`, Failed/`Rejected`, Failed/`ConfigError`)
and carries the result's JSON; the MLflow parent run ends FINISHED for a valid batch, FAILED for a
rejected one (DECISIONS.md), with the outcome, the failed expectations and the links in its description.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import State

from flows import stages, ui
from tasks import processes
from tasks.config import ConfigError, RunRequest
from tasks.data.load import DataError
from tasks.data.suite import DataRejected, rejection_message, validation_sentence
from tasks.registry import tracking
from tasks.run_result import json_safe
from tasks.workspace import remove_scratch_folder, scratch_folder

# The parent run's end state for each outcome (DECISIONS.md); a valid batch is a finished validation.
MLFLOW_STATUS = {"valid": "FINISHED", "killed": "KILLED"}
TRIGGER = "manual"


@flow(name="pmf-validate", flow_run_name="{request.name} · {request.data.name} (validate)", log_prints=False)
def validate_flow(request: RunRequest) -> State:
    run_name = f"validate-{time.strftime('%Y%m%d-%H%M%S')}"
    experiment_id, prefect_id, parent = stages.open_parent_run(request, "validation", run_name, "pmf validate", TRIGGER)
    tracking.log_params(parent, {"data": str(request.data), "name": request.name, "config_source": request.config_source})
    ctx = stages.RunContext.for_request(request, experiment_id, parent, scratch_folder("pmf-validate"))
    result: dict[str, Any] = {
        "name": request.name,
        "data": str(request.data),
        "mlflow_run_id": parent,
        "prefect_flow_run_id": prefect_id or "",
        "config_source": request.config_source,
        "config_overrides": list(request.overrides),
        "links": ui.links(prefect_id, experiment_id, parent),
    }
    message = ""
    try:
        batch = stages.settled(stages.load_batch(request.data))
        tracking.log_dataset(
            parent, batch.frame, batch.source, batch.sha256, "validation", request.target or request.cfg.data.target
        )
        _, report, version = stages.settled(stages.validate_batch(ctx, batch))
        result.update(status="valid", suite_version=version, **report.summary(), errors=[])
        message = f"valid: {validation_sentence(batch.source.name, report).removeprefix('validated ')}"
    except DataRejected as exc:
        result.update(status="data_rejected", **exc.report.summary(), errors=exc.report.failures)
        message = rejection_message(exc)
    except DataError as exc:
        result.update(status="data_rejected", errors=exc.errors)
        message = rejection_message(exc)
    except ConfigError as exc:
        result.update(status="usage_error", error=str(exc))
        message = f"config error: {exc}"
    except BaseException as exc:
        result["status"] = "killed" if processes.is_interruption(exc) else "failed"  # Ctrl-C, SIGTERM: see flows.cli
        message = f"failed: {type(exc).__name__}: {exc}"
        raise
    finally:
        status = result.setdefault("status", "failed")
        markdown = _markdown(result, message)
        tracking.set_tags(parent, {"pmf.status": status, "pmf.outcome": status, "mlflow.note.content": markdown})
        tracking.end_run(parent, MLFLOW_STATUS.get(status, "FAILED"))
        remove_scratch_folder(ctx.workdir)
        if status != "killed":
            create_markdown_artifact(key="pmf-validation", markdown=markdown, description=f"pmf validate: {message}")
            ui.add_tags(prefect_id, [f"outcome:{status}"])
    get_run_logger().info("%s", message)
    payload = json_safe({**result, "unlabelled_rows": ctx.unlabelled_rows, "config_recorded": ctx.config_recorded})
    return ui.final_state(status, message, payload)


def _markdown(result: dict[str, Any], message: str) -> str:
    details = ui.failed_expectations_table(result["errors"]) if result.get("errors") else []
    title = f"{flow_run.name or result['name']}: {ui.STATES.get(result['status'], ui.STATES['failed'])[1]}"
    return ui.outcome_markdown(title, message, result["links"], details)
