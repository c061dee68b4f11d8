"""The main flow: load → validate → preprocess → train → evaluate + gate → compress → register → promote.

One Prefect flow run = one MLflow parent run, with a child run per stage. Read top to bottom.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.runtime import flow_run

from flows import stages
from flows.compress_stage import compress
from flows.console import CONSOLE
from tasks import processes
from tasks.config import RunRequest
from tasks.data.load import DataError
from tasks.registry import tracking
from tasks.run_result import RunResult
from tasks.workspace import remove_scratch_folder, scratch_folder


@flow(name="pmf-train", log_prints=False)
def train_flow(request: RunRequest) -> dict[str, Any]:
    started = time.perf_counter()
    CONSOLE.durations.clear()
    ctx, result = _open_run(request)
    try:
        batch = stages.load_batch(request.data)
        schema, _, result.suite_version = stages.validate_batch(ctx, batch)
        data = stages.preprocess(ctx, batch, schema)
        trained = stages.train(ctx, data, batch.sha256)
        evaluation = stages.evaluate(ctx, data, trained.model)
        result.training = {"epochs_run": trained.epochs_run, "resumed_from_epoch": trained.resumed_from_epoch,
                           "parameters": trained.parameters}
        result.metrics, result.slices = evaluation.metrics, evaluation.slices
        result.gates, result.primary_metric = [g.to_dict() for g in evaluation.gate.results], evaluation.primary_metric
        if evaluation.gate.passed:
            compression = compress(ctx, data, trained.model, evaluation)
            result.compression, shipped = compression.rows(), compression.shipped
            meta = stages.model_meta(ctx, data, shipped.variant, shipped.metrics)
            registered = stages.register(ctx, data, Path(shipped.path).read_bytes(), _lineage(ctx, batch, result.suite_version), meta)
            result.version, result.aliases = registered["version"], registered["aliases"]
            result.model_uri, result.shipped_variant = registered["model_uri"], shipped.variant
            if request.cfg.promotion.auto_promote:
                promotion = stages.promote(ctx, registered["version"], data.preprocessor.schema.task)
                result.promoted, result.promotion = promotion["promoted"], promotion
                result.aliases = sorted(a for a, v in promotion["aliases"].items() if v == registered["version"])
                result.reasons += promotion["reasons"]
        else:
            result.reasons = evaluation.gate.reasons
        result.status = "completed"
    except (stages.DataRejected, DataError) as exc:
        result.status = "data_rejected"
        result.errors = exc.report.failures if isinstance(exc, stages.DataRejected) else exc.errors
    except BaseException as exc:
        if processes.is_interruption(exc):  # Ctrl-C, SIGTERM (Prefect raises its own TerminationSignal)
            tracking.set_tags(ctx.parent_run_id, {"pmf.status": "killed"})
            tracking.end_run(ctx.parent_run_id, "KILLED")  # DECISIONS.md: KILLED on Ctrl-C
        else:
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
            _close_run(ctx, result, started)
        raise
    finally:
        remove_scratch_folder(ctx.workdir)  # on every path: everything worth keeping is in MLflow
    return _close_run(ctx, result, started)


def _open_run(request: RunRequest) -> tuple[stages.RunContext, RunResult]:
    experiment_id = tracking.ensure_experiment(request.name)
    prefect_id = str(flow_run.id) if flow_run.id else None
    parent = tracking.start_run(experiment_id, f"{request.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                                tags={"pmf.kind": "pipeline", "prefect.flow_run_id": prefect_id or "",
                                      "pmf.data": str(request.data)})
    tracking.log_params(parent, {"data": str(request.data), "name": request.name})
    tracking.log_dict(parent, request.cfg.model_dump(mode="json"), "config.json")
    workdir = scratch_folder(f"pmf-{request.name}")
    ctx = stages.RunContext.for_request(request, experiment_id, parent, workdir)
    create_link_artifact(key="mlflow-run", link=tracking.run_url(experiment_id, parent), link_text="MLflow run",
                         description=f"MLflow parent run of this flow run ({request.name})")
    result = RunResult(registered_model=request.name, mlflow_run_id=parent, mlflow_experiment_id=experiment_id,
                       prefect_flow_run_id=prefect_id, config_source=request.config_source,
                       config_overrides=list(request.overrides))
    return ctx, result


def _lineage(ctx: stages.RunContext, batch: stages.Batch, suite_version: int) -> dict[str, str]:
    return {"pmf.data_sha256": batch.sha256, "pmf.data_path": str(batch.path), "pmf.suite_version": str(suite_version),
            "prefect.flow_run_id": str(flow_run.id or ""), "git_commit": tracking.git_commit(),
            "mlflow.parent_run_id": ctx.parent_run_id}


def _close_run(ctx: stages.RunContext, result: RunResult, started: float) -> dict[str, Any]:
    result.unlabelled_rows, result.config_recorded = ctx.unlabelled_rows, ctx.config_recorded
    result.stage_seconds = {k: round(v, 3) for k, v in CONSOLE.durations.items()}
    result.wall_seconds = round(time.perf_counter() - started, 3)
    payload = result.to_json()
    tracking.log_dict(ctx.parent_run_id, payload, "result.json")
    tracking.set_tags(ctx.parent_run_id, {"pmf.status": result.status, "pmf.version": result.version or ""})
    if result.metrics:
        tracking.log_metrics(ctx.parent_run_id, result.metrics)
    tracking.end_run(ctx.parent_run_id, "FAILED" if result.status == "failed" else "FINISHED")
    create_markdown_artifact(key="pmf-summary", markdown=_markdown(result), description="pmf run summary")
    return payload


def _markdown(result: RunResult) -> str:
    lines = [f"# {result.registered_model}: {result.status}", "", "| gate | value | threshold | passed |", "|---|---|---|---|"]
    lines += [f"| {g['name']} | {g['value']} | {g['op']} {g['threshold']} | {g['passed']} |" for g in result.gates]
    lines += ["", f"version: {result.version}  aliases: {result.aliases}", f"MLflow run: {result.mlflow_run_id}"]
    return "\n".join(lines)
