"""The main flow: load → validate → preprocess → train → evaluate + gate → compress → register → promote.

One Prefect flow run = one MLflow parent run, with a child run per stage. Read top to bottom; the
stages from preprocess on are the pipeline `pmf retrain` shares (flows/pipeline.py). The flow returns
its final Prefect state (DECISIONS.md: Completed/Promoted, Completed/NotPromoted, Failed/Rejected,
Failed/ConfigError; a crash raises, and Prefect records it as Failed) carrying the result's JSON; the
MLflow parent run ends FINISHED or FAILED to match, described in markdown.
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.states import State

from flows import pipeline, stages
from flows.console import CONSOLE
from tasks.config import RunRequest
from tasks.registry import tracking
from tasks.run_result import RunResult

TRIGGER = "manual"  # `pmf run`; the retrain flow says `schedule` and `drift` when those started it


@flow(name="pmf-train", flow_run_name="{request.name} · {request.data.name}", log_prints=False)
def train_flow(request: RunRequest) -> State:
    started = time.perf_counter()
    CONSOLE.durations.clear()
    ctx, result = pipeline.open_run(request, "pmf run", TRIGGER)
    return pipeline.run_to_outcome(ctx, result, started, lambda: _stages(request, ctx, result))


def _stages(request: RunRequest, ctx: stages.RunContext, result: RunResult) -> None:
    batch = stages.settled(stages.load_batch(request.data))
    pipeline.log_training_data(ctx, batch, request.target or request.cfg.data.target)
    schema, report, result.suite_version = stages.settled(stages.validate_batch(ctx, batch))
    tracking.log_metrics(ctx.parent_run_id, pipeline.validation_metrics(report))
    # The batch is kept as trained on once trained: the reference a later `pmf retrain` combines new batches with.
    pipeline.train_to_production(ctx, result, batch, schema, keep=[batch])
