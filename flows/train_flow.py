"""The main flow: load → validate → preprocess → train → evaluate + gate → compress → register → promote.

One Prefect flow run = one MLflow parent run, with a child run per stage. Read top to bottom.
The flow returns its final Prefect state (DECISIONS.md: Completed/Promoted, Completed/NotPromoted,
Failed/Rejected, Failed/ConfigError; a crash raises, and Prefect records it as Failed) carrying the
result's JSON; the MLflow parent run ends FINISHED or FAILED to match, described in markdown.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import State

from flows import stages, ui
from flows.compress_stage import compress
from flows.console import CONSOLE
from tasks import processes
from tasks.config import ConfigError, RunRequest
from tasks.data.load import DataError
from tasks.data.suite import DataRejected, failed_list, rejection_message
from tasks.data.validate import ValidationReport
from tasks.model.train import model_params
from tasks.registry import tracking
from tasks.run_result import RunResult
from tasks.serving.package import model_meta
from tasks.workspace import remove_scratch_folder, scratch_folder


@flow(name="pmf-train", flow_run_name="{request.name} · {request.data.name}", log_prints=False)
def train_flow(request: RunRequest) -> State:
    started = time.perf_counter()
    CONSOLE.durations.clear()
    ctx, result = _open_run(request)
    message = None  # the state's message when the outcome's own words are better than the result's
    try:
        batch = stages.settled(stages.load_batch(request.data))
        tracking.log_dataset(
            ctx.parent_run_id, batch.frame, batch.path, batch.sha256, "training", request.target or request.cfg.data.target
        )
        schema, report, result.suite_version = stages.settled(stages.validate_batch(ctx, batch))
        tracking.log_metrics(ctx.parent_run_id, _validation_metrics(report))
        data = stages.preprocess(ctx, batch, schema)
        trained = stages.train(ctx, data, batch.sha256)
        evaluation = stages.evaluate(ctx, data, trained.model)
        result.training = {
            "epochs_run": trained.epochs_run,
            "resumed_from_epoch": trained.resumed_from_epoch,
            "parameters": trained.parameters,
        }
        result.metrics, result.slices = evaluation.metrics, evaluation.slices
        result.gates, result.primary_metric = [g.to_dict() for g in evaluation.gate.results], evaluation.primary_metric
        if evaluation.gate.passed:
            compression = compress(ctx, data, trained.model, evaluation)
            result.compression, shipped = compression.rows(), compression.shipped
            meta = model_meta(ctx.name, data.preprocessor.schema, shipped.variant, shipped.metrics, evaluation.primary_metric)
            registered = stages.register(
                ctx, data, Path(shipped.path).read_bytes(), _lineage(ctx, batch, result.suite_version), meta, result
            )
            result.version, result.aliases = registered["version"], registered["aliases"]
            _link_version(result)
            result.model_uri, result.shipped_variant = registered["model_uri"], shipped.variant
            if request.cfg.promotion.auto_promote:
                promotion = stages.promote(ctx, registered["version"], data.preprocessor.schema.task)
                result.promoted, result.promotion = promotion["promoted"], promotion
                result.aliases = sorted(a for a, v in promotion["aliases"].items() if v == registered["version"])
                result.reasons += promotion["reasons"]
        else:
            result.reasons = evaluation.gate.reasons
        result.status = "completed"
    except (DataRejected, DataError) as exc:
        result.status, message = "data_rejected", rejection_message(exc)
        result.errors = exc.report.failures if isinstance(exc, DataRejected) else exc.errors
        if isinstance(exc, DataRejected):
            tracking.log_metrics(ctx.parent_run_id, _validation_metrics(exc.report))
    except ConfigError as exc:  # found once the data is read (a target the stored suite does not have, ...)
        result.status, result.error = "usage_error", str(exc)
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
    return _close_run(ctx, result, started, message)


def _open_run(request: RunRequest) -> tuple[stages.RunContext, RunResult]:
    run_name = f"{request.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    experiment_id, prefect_id, parent = stages.open_parent_run(
        request, "pipeline", run_name, "pmf run", TRIGGER, {"pmf.trigger": TRIGGER}
    )
    tracking.log_params(parent, _parent_params(request))
    tracking.log_dict(parent, request.cfg.model_dump(mode="json"), "config.json")
    workdir = scratch_folder(f"pmf-{request.name}")
    ctx = stages.RunContext.for_request(request, experiment_id, parent, workdir)
    result = RunResult(
        registered_model=request.name,
        mlflow_run_id=parent,
        mlflow_experiment_id=experiment_id,
        prefect_flow_run_id=prefect_id,
        trigger=TRIGGER,
        config_source=request.config_source,
        config_overrides=list(request.overrides),
        links=ui.links(prefect_id, experiment_id, parent),
    )
    create_link_artifact(
        key="mlflow-run",
        link=result.links["mlflow_run"] or "",
        link_text="MLflow run",
        description=f"The MLflow parent run of this flow run ({request.name}). {ui.how_to_open().get('mlflow', '')}",
    )
    # Until the run ends and says its outcome, its description links the Prefect flow run already.
    tracking.set_tags(
        parent,
        {"mlflow.note.content": ui.outcome_markdown(f"{flow_run.name or request.name}: running", "running", result.links, [])},
    )
    return ctx, result


TRIGGER = "manual"  # `pmf run`; schedules and drift automations will say `schedule` and `drift`


def _parent_params(request: RunRequest) -> dict[str, Any]:
    """What the runs table should let a person compare at a glance: the batch, the config's source, the model."""
    train = {f"train.{k}": v for k, v in model_params(request.cfg.train).items()}
    return {"data": str(request.data), "name": request.name, "config_source": request.config_source, **train}


def _link_version(result: RunResult) -> None:
    """The registered version's link: on the result and as a Prefect link artifact beside the MLflow run's."""
    result.links["model_version"] = tracking.model_version_url(result.registered_model, str(result.version))
    create_link_artifact(
        key="model-version",
        link=result.links["model_version"] or "",
        link_text=f"{result.registered_model} version {result.version}",
        description="The model version this flow run registered, in the MLflow model registry.",
    )


def _lineage(ctx: stages.RunContext, batch: stages.Batch, suite_version: int) -> dict[str, str]:
    return {
        "pmf.data_sha256": batch.sha256,
        "pmf.data_path": str(batch.path),
        "pmf.suite_version": str(suite_version),
        "prefect.flow_run_id": str(flow_run.id or ""),
        "git_commit": tracking.git_commit(),
        "mlflow.parent_run_id": ctx.parent_run_id,
    }


def _close_run(ctx: stages.RunContext, result: RunResult, started: float, message: str | None = None) -> State:
    """Record the outcome everywhere at once: MLflow (status, tags, description, key metrics), Prefect
    (summary artifact, outcome tag, the returned state), the log."""
    result.unlabelled_rows, result.config_recorded = ctx.unlabelled_rows, ctx.config_recorded
    result.stage_seconds = {k: round(v, 3) for k, v in CONSOLE.durations.items()}
    result.wall_seconds = round(time.perf_counter() - started, 3)
    message = message or outcome_message(result)
    payload = result.to_json()
    markdown = _markdown(result, message)
    tracking.log_dict(ctx.parent_run_id, payload, "result.json")
    tracking.set_tags(
        ctx.parent_run_id,
        {
            "pmf.status": result.status,
            "pmf.outcome": result.outcome,
            "pmf.version": result.version or "",
            "mlflow.note.content": markdown,
        },
    )
    tracking.log_metrics(ctx.parent_run_id, result.metrics)
    finished = result.status in ("completed", "no_new_data")
    tracking.end_run(ctx.parent_run_id, "FINISHED" if finished else "FAILED")
    create_markdown_artifact(key="pmf-summary", markdown=markdown, description=f"pmf run summary: {message}")
    ui.add_tags(result.prefect_flow_run_id, [f"outcome:{result.outcome}"])
    get_run_logger().info("%s", message)
    return ui.final_state(result.outcome, message, payload)


def outcome_message(result: RunResult) -> str:
    """One line a person reads on the state badge: `not promoted: f1_macro 0.81 < 0.85`."""
    if result.outcome == "promoted":
        value = result.metrics.get(result.primary_metric or "")
        shown = f" ({result.primary_metric} {value:.4g})" if value is not None else ""
        return f"promoted: {result.registered_model} v{result.version} is @production{shown}"
    if result.outcome == "not_promoted":
        registered = f"v{result.version} registered as @{', @'.join(result.aliases)}" if result.version else "nothing registered"
        why = "; ".join(result.reasons) or "promotion.auto_promote is off"
        return f"not promoted: {why} ({registered})"
    if result.outcome == "data_rejected":
        return f"rejected: {len(result.errors)} expectation(s) failed ({failed_list(result.errors)})"
    return f"{'config error' if result.outcome == 'usage_error' else 'failed'}: {result.error}"


def _validation_metrics(report: ValidationReport) -> dict[str, float]:
    """The validation counts on the parent run, so the runs table shows them (the same numbers as the terminal's)."""
    return {"expectations": report.evaluated, "failed_expectations": report.failed}


def _markdown(result: RunResult, message: str) -> str:
    """The run's description in MLflow and its summary artifact in Prefect: outcome, links, then what decided it."""
    details: list[str] = []
    if result.errors:
        details += [*ui.failed_expectations_table(result.errors), ""]
    if result.gates:
        details += [*ui.gate_table(result.gates), ""]
    if result.promotion and result.promotion.get("reasons"):
        details += ["## promotion", "", *[f"- {reason}" for reason in result.promotion["reasons"]], ""]
    if result.metrics:
        details += ["## metrics (test split, float model)", "", "| metric | value |", "|---|---|"]
        details += [f"| {k} | {v:.4g} |" for k, v in result.metrics.items()] + [""]
    if result.version:
        details.append(
            f"registered: {result.registered_model} version {result.version} (aliases: {', '.join(result.aliases) or '-'})"
        )
    title = f"{flow_run.name or result.registered_model}: {ui.STATES[result.outcome][1]}"  # "penguins · new.csv: Rejected"
    return ui.outcome_markdown(title, message, result.links, details)
