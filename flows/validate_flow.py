"""`pmf validate`: load a batch and validate it against its dataset's suite — nothing else runs."""
from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows import stages
from tasks import processes
from tasks.config import RunRequest
from tasks.data.load import DataError
from tasks.registry import tracking
from tasks.run_result import json_safe
from tasks.workspace import remove_scratch_folder, scratch_folder

# The parent run's end state for each outcome; a valid or rejected batch is a finished validation.
MLFLOW_STATUS = {"failed": "FAILED", "killed": "KILLED"}


@flow(name="pmf-validate", log_prints=False)
def validate_flow(request: RunRequest) -> dict[str, Any]:
    experiment_id = tracking.ensure_experiment(request.name)
    parent = tracking.start_run(experiment_id, f"validate-{time.strftime('%Y%m%d-%H%M%S')}",
                                tags={"pmf.kind": "validation", "prefect.flow_run_id": str(flow_run.id or "")})
    ctx = stages.RunContext.for_request(request, experiment_id, parent, scratch_folder("pmf-validate"))
    result: dict[str, Any] = {"name": request.name, "data": str(request.data), "mlflow_run_id": parent,
                              "prefect_flow_run_id": str(flow_run.id or ""), "config_source": request.config_source,
                              "config_overrides": list(request.overrides)}
    try:
        batch = stages.load_batch(request.data)
        _, report, version = stages.validate_batch(ctx, batch)
        result.update(status="valid", suite_version=version, **report.summary(), errors=[])
    except stages.DataRejected as exc:
        result.update(status="data_rejected", **exc.report.summary(), errors=exc.report.failures)
    except DataError as exc:
        result.update(status="data_rejected", errors=exc.errors)
    except BaseException as exc:
        result["status"] = "killed" if processes.is_interruption(exc) else "failed"  # Ctrl-C, SIGTERM: see flows.cli
        raise
    finally:
        status = result.setdefault("status", "failed")
        tracking.set_tags(parent, {"pmf.status": status})
        tracking.end_run(parent, MLFLOW_STATUS.get(status, "FINISHED"))
        remove_scratch_folder(ctx.workdir)
    return json_safe({**result, "unlabelled_rows": ctx.unlabelled_rows, "config_recorded": ctx.config_recorded})
