"""The retrain flow: find new batches → validate each → window → preprocess → train (warm start) →
evaluate + gate → compress → register → promote.

Deployments run it as `flows.retrain_flow:retrain_flow` (`pmf schedule`, the drift automation) and
`pmf retrain` calls it in its own process. New batches are the files in the incoming folder (or the
one `--data` file) whose content hash the store has not seen (tasks/retraining/batches.py). A
rejected batch is recorded as rejected in the store (not tried again until its content changes) and
the others go on; all rejected → Failed/Rejected; none new → Completed/NoNewData. From the window on
it is `pmf run`'s pipeline (flows/pipeline.py): a retrained model reaches production only by beating
the champion.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from flows import pipeline, stages, ui
from flows.console import CONSOLE
from tasks.config import ConfigError, RunRequest
from tasks.data.load import DataError, file_sha256
from tasks.data.schema import Schema
from tasks.data.suite import DataRejected, failed_list
from tasks.registry import tracking
from tasks.retraining import batches as store
from tasks.retraining.request import retrain_request, run_trigger
from tasks.retraining.window import describe
from tasks.run_result import RunResult


@flow(name="pmf-retrain", flow_run_name="{name} · retrain", log_prints=False)
def retrain_flow(
    name: str, data: str | None = None, incoming: str | None = None, trigger: str = "manual", drift: dict | None = None
) -> State:
    """Retrain `name` on its new batches: the one file `data`, else those in `incoming` (default
    `$PMF_HOME/incoming/NAME/`). `trigger`: manual or schedule (a run its schedule created says schedule
    anyway); with a `drift` summary (the drift automation passes the event's) the trigger is drift."""
    started = time.perf_counter()
    CONSOLE.durations.clear()
    try:
        request = retrain_request(name, data, incoming)
        trigger = run_trigger(trigger, drift, _auto_scheduled())
    except ConfigError as exc:  # nothing to open a run for: the state says why
        return ui.final_state("usage_error", f"config error: {exc}", {"status": "usage_error", "error": str(exc)})
    _trim_queue(name)
    ctx, result = pipeline.open_run(request, "pmf retrain", trigger, {"trigger": trigger})
    result.warm_start = False  # until the train stage says otherwise (nothing new, all rejected: not trained)
    _record_drift(ctx, result, drift)
    return pipeline.run_to_outcome(ctx, result, started, lambda: _stages(request, ctx, result))


def _stages(request: RunRequest, ctx: stages.RunContext, result: RunResult) -> str | None:
    if not isinstance(request.data, Path):  # `pmf retrain` takes batch files (a SQL table goes through `pmf run`)
        raise ConfigError(f"pmf retrain reads batch files from a folder or a file, not {request.data}")
    found = find_batches(ctx, request.data)
    result.batches = found.as_json(request.data)
    if not found.new:
        result.status = "no_new_data"
        return f"no new data: nothing in {request.data} that was not trained on or rejected before"
    accepted, schema = _validated(ctx, result, found)
    result.batches = found.as_json(request.data)
    if not accepted:
        result.status, result.errors = "data_rejected", [e for b in found.rejected for e in b["errors"]]
        return f"rejected: every new batch failed validation ({', '.join(b['file'] for b in found.rejected)})"
    assert schema is not None  # a batch that passed validation has the suite's schema
    window = combine(ctx, accepted, schema)
    batch = stages.Batch(window.pop("frame"), request.data, window.pop("digest"))
    result.batches = {**found.as_json(request.data), "window": window}
    pipeline.log_training_data(ctx, batch, schema.target)
    pipeline.train_to_production(ctx, result, batch, schema, keep=accepted, warm_start=True)
    return None


@dataclass
class FoundBatches:
    """The new batches (to validate), those seen before (skipped) and, once validated, the rejected ones."""

    new: list[store.FoundBatch]
    skipped: list[store.FoundBatch]
    rejected_before: set[str] = field(default_factory=set)  # content hashes rejected by an earlier retrain
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self, source: Path) -> dict[str, Any]:
        return {
            "source": str(source),
            "new": self.accepted,
            "rejected": self.rejected,
            "skipped": [
                {"file": b.path.name, "sha256": b.sha256, "seen": "rejected" if b.sha256 in self.rejected_before else "trained"}
                for b in self.skipped
            ],
        }


@task(name="find-batches", cache_policy=NO_CACHE)
def find_batches(ctx: stages.RunContext, source: Path) -> FoundBatches:
    """The batch files at `source` (a file, or a folder's batch files) whose content the store has not seen."""
    with CONSOLE.stage("find batches"):
        files = [source] if source.is_file() else store.incoming_files(source)
        found = [store.FoundBatch(path, file_sha256(path)) for path in files]
        trained = {b.sha256 for b in store.trained_batches(ctx.name)}
        rejected = store.rejected_hashes(ctx.name)
        new, skipped = store.select_new(found, trained, rejected)
        CONSOLE.line(f"  {len(new)} new batch(es) in {source}; {len(skipped)} seen before")
        tracking.log_metrics(ctx.parent_run_id, {"new_batches": len(new), "skipped_batches": len(skipped)})
        return FoundBatches(new, skipped, rejected)


def _validated(ctx: stages.RunContext, result: RunResult, found: FoundBatches) -> tuple[list[stages.Batch], Schema | None]:
    """Each new batch validated against the stored suite, as `pmf run` validates; a rejected one is recorded
    as rejected in the store (with what failed) and set aside, the others go on."""
    accepted: list[stages.Batch] = []
    schema, unlabelled = None, 0
    for new in found.new:
        try:
            batch = stages.settled(stages.load_batch(new.path))
            schema, _, result.suite_version = stages.settled(stages.validate_batch(ctx, batch))
        except (DataRejected, DataError) as exc:
            errors = exc.report.failures if isinstance(exc, DataRejected) else exc.errors
            store.record_rejected(ctx.name, new.path, new.sha256, errors, ctx.parent_run_id)
            found.rejected.append(
                {"file": new.path.name, "sha256": new.sha256, "errors": [{"file": new.path.name, **e} for e in errors]}
            )
            CONSOLE.line(f"  ✗ {new.path.name} rejected, set aside: {failed_list(errors)}")
            continue
        unlabelled += ctx.unlabelled_rows
        accepted.append(batch)
        found.accepted.append({"file": new.path.name, "sha256": new.sha256, "rows": len(batch.frame)})
    ctx.unlabelled_rows = unlabelled
    tracking.log_metrics(ctx.parent_run_id, {"rejected_batches": len(found.rejected)})
    return accepted, schema


@task(name="window", cache_policy=NO_CACHE)
def combine(ctx: stages.RunContext, new: list[stages.Batch], schema: Schema) -> dict[str, Any]:
    """The training frame: the window's older batches from the store, then the new ones (`frame`, `digest`
    and what the window holds, for the result)."""
    from tasks.retraining.combine import window_frame

    settings = ctx.cfg.retrain
    with stages.stage(ctx, "window") as run_id:
        window = window_frame([(b.frame, b.sha256) for b in new], store.trained_batches(ctx.name), settings, schema, ctx.workdir)
        facts = {
            "window": settings.window,
            "size": settings.size,
            "description": describe(settings.window, settings.size),
            "older_batches": len(window.older),
            "older_rows": window.older_rows,
            "rows": len(window.frame),
            "left_out": window.skipped,
        }
        tracking.log_params(run_id, {k: v for k, v in facts.items() if k != "left_out"})
        CONSOLE.line(f"  {facts['description']}: {len(window.older)} older batch(es), {window.older_rows:,} rows")
        CONSOLE.line(f"  {len(window.frame):,} rows to train on")
        for file in window.skipped:
            CONSOLE.line(f"  left out {file}: it lacks columns the current suite needs")
        return {**facts, "frame": window.frame, "digest": window.digest}


def _record_drift(ctx: stages.RunContext, result: RunResult, drift: dict | None) -> None:
    """The drift summary that started this run, on the MLflow parent run and in the result."""
    if not drift:
        return
    result.drift = drift
    tracking.log_dict(ctx.parent_run_id, drift, "drift/summary.json")
    top = ", ".join(str(c) for c in (drift.get("top_features") or [])[:3])
    share = drift.get("drift_share")
    tracking.set_tags(ctx.parent_run_id, {"pmf.drift": f"drift_share {share}; top features: {top or '-'}"})
    CONSOLE.line(f"  started by drift (drift_share {share}; {top or 'prediction drift'})")


def _trim_queue(name: str) -> None:
    """A run a deployment started (schedule, drift, the UI): keep at most one more retrain of `name` waiting
    behind this one (DECISIONS); the cancelled ones say why. `pmf retrain` in a shell queues nothing."""
    from prefect.context import FlowRunContext

    from flows.deployments import trim_waiting_retrains

    context = FlowRunContext.get()
    if context and context.flow_run and context.flow_run.deployment_id:
        trimmed = trim_waiting_retrains(name)
        if trimmed:
            CONSOLE.line(f"  cancelled {trimmed} waiting retrain(s) of {name}: this run covers them")


def _auto_scheduled() -> bool:
    """Whether a deployment's schedule created this flow run (Prefect's `auto_scheduled`)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    return bool(context and context.flow_run and context.flow_run.auto_scheduled)
