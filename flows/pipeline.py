"""The pipeline both training flows share: `pmf run` (flows/train_flow.py) and `pmf retrain`
(flows/retrain_flow.py) each load and validate their data their own way, then call these.

`open_run` opens the MLflow parent run and the run's result; `run_to_outcome` runs a flow's stages
and records whatever they end in (DECISIONS.md's outcome table) everywhere at once; `train_to_production`
is the common tail: preprocess → train → evaluate + gate → compress → register → promote.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import State

from flows import stages, tune_stage, ui
from flows.compress_stage import compress
from flows.console import CONSOLE
from flows.task_runners import check_dask_cluster
from tasks import processes
from tasks.config import ConfigError, RunRequest
from tasks.data.load import DataError
from tasks.data.schema import Schema
from tasks.data.suite import DataRejected, failed_list, rejection_message
from tasks.data.validate import ValidationReport
from tasks.model.train import model_params
from tasks.registry import tracking
from tasks.run_result import RunResult
from tasks.serving.package import model_meta
from tasks.workspace import remove_scratch_folder, scratch_folder


def open_run(
    request: RunRequest, source: str, trigger: str, params: dict[str, Any] | None = None
) -> tuple[stages.RunContext, RunResult]:
    """The flow run's MLflow parent run (tagged `pmf.trigger`), its scratch folder and its result so far.

    `source`: the command that runs it (`pmf run`); `params`: more of what the runs table shows."""
    run_name = f"{request.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    experiment_id, prefect_id, parent = stages.open_parent_run(
        request, "pipeline", run_name, source, trigger, {"pmf.trigger": trigger}
    )
    tracking.log_params(parent, {**_parent_params(request), **(params or {})})
    tracking.log_dict(parent, request.cfg.model_dump(mode="json"), "config.json")
    workdir = scratch_folder(f"pmf-{request.name}")
    ctx = stages.RunContext.for_request(request, experiment_id, parent, workdir)
    ctx.trigger = trigger
    result = RunResult(
        registered_model=request.name,
        mlflow_run_id=parent,
        mlflow_experiment_id=experiment_id,
        prefect_flow_run_id=prefect_id,
        trigger=trigger,
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


def run_to_outcome(ctx: stages.RunContext, result: RunResult, started: float, body: Callable[[], str | None]) -> State:
    """Run a flow's stages (`body`, which sets `result.status` on the paths it ends itself and may return
    the state's message) and close the run with whatever they ended in: a rejection, a config error
    and a crash each recorded as DECISIONS.md says (a crash is re-raised for Prefect to record)."""
    message = None  # the state's message when the outcome's own words are better than the result's
    try:
        message = body()
    except (DataRejected, DataError) as exc:
        result.status, message = "data_rejected", rejection_message(exc)
        result.errors = exc.report.failures if isinstance(exc, DataRejected) else exc.errors
        if isinstance(exc, DataRejected):
            tracking.log_metrics(ctx.parent_run_id, validation_metrics(exc.report))
    except ConfigError as exc:  # found once the data is read (a target the stored suite does not have, ...)
        result.status, result.error = "usage_error", str(exc)
    except BaseException as exc:
        if processes.is_interruption(exc):  # Ctrl-C, SIGTERM (Prefect raises its own TerminationSignal)
            tracking.set_tags(ctx.parent_run_id, {"pmf.status": "killed"})
            tracking.end_run(ctx.parent_run_id, "KILLED")  # DECISIONS.md: KILLED on Ctrl-C
        elif (down := tracking.unreachable_message(exc)) is not None:
            # Closing the run would wait out the retries again on each call: one line naming the server.
            raise tracking.TrackingServerUnreachable(down) from exc
        else:
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
            close_run(ctx, result, started)
        raise
    finally:
        remove_scratch_folder(ctx.workdir)  # on every path: everything worth keeping is in MLflow
    return close_run(ctx, result, started, message)


def train_to_production(
    ctx: stages.RunContext,
    result: RunResult,
    batch: stages.Batch,
    schema: Schema,
    keep: Sequence[stages.Batch],
    warm_start: bool = False,
) -> None:
    """Preprocess → train → evaluate + gate → compress → register → promote, on `batch` (validated
    against the suite whose schema is `schema`); sets `result.status` to `completed`.

    Once trained, the batches in `keep` are recorded as trained on (a copy of each file in the store,
    tasks.retraining.batches), so a retrain knows them and can rebuild its window from them."""
    check_dask_cluster()  # a wrong PMF_DASK_ADDRESS fails now, not once the model is trained
    data = stages.preprocess(ctx, batch, schema)
    search = tune_stage.tune(ctx, data, batch.sha256)
    if search is not None:  # the best trial's values train the final model
        ctx.cfg = ctx.cfg.model_copy(update={"train": tune_stage.tuned_config(ctx.cfg.train, search)})
        result.tuning = search.to_json()
    with kept_once_trained(ctx, keep, "pmf retrain" if warm_start else "pmf run"):
        trained = stages.train(ctx, data, batch.sha256, warm_start)
    result.warm_start, result.warm_start_reason = trained.warm_start, ctx.warm_start.reason if ctx.warm_start else None
    evaluation = stages.evaluate(ctx, data, trained.model)
    result.training = {
        "epochs_run": trained.epochs_run,
        "resumed_from_epoch": trained.resumed_from_epoch,
        "parameters": trained.parameters,
        "warm_start": trained.warm_start,
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
        if ctx.cfg.promotion.auto_promote:
            promotion = stages.promote(ctx, registered["version"], data.preprocessor.schema.task)
            result.promoted, result.promotion = promotion["promoted"], promotion
            result.aliases = sorted(a for a, v in promotion["aliases"].items() if v == registered["version"])
            result.reasons += promotion["reasons"]
    else:
        result.reasons = evaluation.gate.reasons
    result.status = "completed"


def kept_once_trained(ctx: stages.RunContext, batches: Sequence[stages.Batch], source: str) -> Any:
    """Around the training: the batches are copied into the store meanwhile (a file copy in a background
    thread: no time added to the run) and count as trained on by this run once the training completed.
    A batch read from PostgreSQL is kept as a Parquet copy of its rows (keyed by their hash), so a later
    `pmf retrain` uses it as reference data like a file."""
    from tasks.data.sql_source import SqlSource, parquet_copy
    from tasks.retraining.batches import kept_once_done

    files = [
        (
            parquet_copy(b.frame, b.source, b.sha256, ctx.workdir) if isinstance(b.source, SqlSource) else b.source,
            b.sha256,
            len(b.frame),
        )
        for b in batches
    ]
    return kept_once_done(ctx.name, files, source, ctx.parent_run_id)


def log_training_data(ctx: stages.RunContext, batch: stages.Batch, target: str | None) -> None:
    """The batch as the parent run's MLflow dataset input (the runs table's Dataset column)."""
    tracking.log_dataset(ctx.parent_run_id, batch.frame, batch.source, batch.sha256, "training", target)


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


def _lineage(ctx: stages.RunContext, batch: stages.Batch, suite_version: int | None) -> dict[str, str]:
    return {
        "pmf.data_sha256": batch.sha256,
        "pmf.data_path": str(batch.source),  # a SQL source's URL with its password masked
        "pmf.suite_version": str(suite_version),
        "prefect.flow_run_id": str(flow_run.id or ""),
        "git_commit": tracking.git_commit(),
        "mlflow.parent_run_id": ctx.parent_run_id,
    }


def close_run(ctx: stages.RunContext, result: RunResult, started: float, message: str | None = None) -> State:
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
    if result.outcome == "no_new_data":
        return "no new data: nothing to train on that was not trained on before"
    return f"{'config error' if result.outcome == 'usage_error' else 'failed'}: {result.error}"


def validation_metrics(report: ValidationReport) -> dict[str, float]:
    """The validation counts on the parent run, so the runs table shows them (the same numbers as the terminal's)."""
    return {"expectations": report.evaluated, "failed_expectations": report.failed}


def _markdown(result: RunResult, message: str) -> str:
    """The run's description in MLflow and its summary artifact in Prefect: outcome, links, then what decided it."""
    details: list[str] = []
    if result.batches:
        details += [*_batch_lines(result.batches), ""]
    if result.errors:
        details += [*ui.failed_expectations_table(result.errors), ""]
    if result.gates:
        details += [*ui.gate_table(result.gates), ""]
    if result.promotion and result.promotion.get("reasons"):
        details += ["## promotion", "", *[f"- {reason}" for reason in result.promotion["reasons"]], ""]
    if result.metrics:
        details += ["## metrics (test split, float model)", "", "| metric | value |", "|---|---|"]
        details += [f"| {k} | {v:.4g} |" for k, v in result.metrics.items()] + [""]
    if result.warm_start_reason and result.batches is not None:
        details += [f"training: {'warm start' if result.warm_start else 'from scratch'}, {result.warm_start_reason}", ""]
    if result.version:
        details.append(
            f"registered: {result.registered_model} version {result.version} (aliases: {', '.join(result.aliases) or '-'})"
        )
    title = f"{flow_run.name or result.registered_model}: {ui.STATES[result.outcome][1]}"  # "penguins · new.csv: Rejected"
    return ui.outcome_markdown(title, message, result.links, details)


def _batch_lines(batches: dict[str, Any]) -> list[str]:
    """A retrain's batches as markdown: trained on now, rejected (with what failed), skipped."""
    lines = ["## batches", ""]
    lines += [f"- trained on: {b['file']} ({b['rows']:,} rows)" for b in batches.get("new", [])]
    lines += [f"- rejected: {b['file']} ({failed_list(b['errors'])})" for b in batches.get("rejected", [])]
    lines += [f"- skipped (seen before): {b['file']}" for b in batches.get("skipped", [])]
    window = batches.get("window")
    if window:
        lines.append(
            f"- window: {window['description']}: {window['older_batches']} older batch(es), {window['older_rows']:,} rows"
        )
    return lines
