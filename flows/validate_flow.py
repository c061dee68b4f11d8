"""`pmf validate`: load a batch and validate it against its dataset's suite — nothing else runs."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows import stages
from tasks.config import RunRequest
from tasks.registry import tracking
from tasks.data.load import DataError


@flow(name="pmf-validate", log_prints=False)
def validate_flow(request: RunRequest) -> dict[str, Any]:
    experiment_id = tracking.ensure_experiment(request.name)
    parent = tracking.start_run(experiment_id, f"validate-{time.strftime('%Y%m%d-%H%M%S')}",
                                tags={"pmf.kind": "validation", "prefect.flow_run_id": str(flow_run.id or "")})
    ctx = stages.RunContext(request.name, request.cfg, experiment_id, parent, Path(tempfile.mkdtemp(prefix="pmf-validate-")),
                            request.target, request.update_suite)
    result: dict[str, Any] = {"name": request.name, "data": str(request.data), "mlflow_run_id": parent,
                              "prefect_flow_run_id": str(flow_run.id or "")}
    try:
        batch = stages.load_batch(request.data)
        _, report, version = stages.validate_batch(ctx, batch)
        result.update(status="valid", suite_version=version, **report.summary(), errors=[])
    except stages.DataRejected as exc:
        result.update(status="data_rejected", **exc.report.summary(), errors=exc.report.failures)
    except DataError as exc:
        result.update(status="data_rejected", errors=exc.errors)
    finally:
        tracking.set_tags(parent, {"pmf.status": result.get("status", "failed")})
        tracking.end_run(parent, "FINISHED" if "status" in result else "FAILED")
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    return stages.to_json(result)
