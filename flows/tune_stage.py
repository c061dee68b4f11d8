"""The tune stage, between preprocess and train: Optuna's ask/tell in the flow, each trial a Prefect task
run (on the Dask cluster at PMF_DASK_ADDRESS, else on a local one sized to the machine) and a nested
MLflow run under the stage's run. Trial 0 takes the configured values (where the space holds them), so
a search never ends worse than the model the config describes; the best trial's values train the final model.

Trials see the train and validation splits only; the test split stays for the evaluation after training.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.console import CONSOLE
from flows.stages import Prepared, RunContext, stage
from tasks.config import ConfigError, TrainConfig, primary_metric_for
from tasks.model.evaluate import HIGHER_IS_BETTER
from tasks.registry import tracking
from tasks.tuning.report import kept_sentence, parallel_coordinates, study_name, trial_rows
from tasks.tuning.search import Asked, SearchResult, run_search
from tasks.tuning.space import apply_params, configured_values, search_space
from tasks.tuning.trial import PruneRule, TrialData, TrialOutcome, run_trial

DASK_VARIABLE = "PMF_DASK_ADDRESS"


@task(name="tune-trial", cache_policy=NO_CACHE, task_run_name="trial-{number}")
def tune_trial(
    number: int, params: dict[str, Any], cfg: TrainConfig, data: TrialData, metric: str, prune: PruneRule | None
) -> TrialOutcome:
    return run_trial(number, params, cfg, data, metric, prune)


def trial_data(data: Prepared) -> TrialData:
    pre = data.preprocessor
    task_kind = pre.schema.task
    return TrialData(
        data.x["train"],
        data.y["train"],
        data.x["validation"],
        data.y["validation"],
        task_kind,
        len(pre.schema.classes) if task_kind == "classification" else 1,
        float(getattr(pre, "target_mean", 0.0) or 0.0),
        float(getattr(pre, "target_std", 1.0) or 1.0),
    )


def tune(ctx: RunContext, data: Prepared, data_sha256: str) -> SearchResult | None:
    """Search when `tune.enabled`; returns the search (the caller trains with `tuned_config`) or None."""
    settings = ctx.cfg.tune
    if not settings.enabled:
        return None
    task_kind = data.preprocessor.schema.task
    metric = settings.metric or primary_metric_for(ctx.cfg, task_kind)
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(f"tune.metric: {metric!r} is not a metric pmf computes; expected one of {', '.join(HIGHER_IS_BETTER)}")
    space = search_space(settings, ctx.cfg.train.model, ctx.cfg.train)
    base = ctx.cfg.train
    epochs = settings.epochs or base.epochs
    arrays = trial_data(data)
    with stage(ctx, "tune", f"tune ({settings.trials} trials, batches of {settings.parallelism})") as run_id:
        tracking.log_params(
            run_id, {"trials": settings.trials, "minutes": settings.minutes, "metric": metric, "sampler": settings.sampler}
        )
        with trial_runner(settings.parallelism) as (runner, where), TrialRecorder(ctx, run_id, metric, "trial") as record:
            CONSOLE.line(f"  trials run {where}; each optimises validation {metric}")

            def submit(asked: Asked) -> Any:
                number, params, prune = asked
                call = {
                    "number": number,
                    "params": params,
                    "cfg": apply_params(base, params, epochs),
                    "data": arrays,
                    "metric": metric,
                    "prune": prune,
                }
                return runner.submit(tune_trial, call)

            storage = os.environ.get("PMF_DATABASE_URL") or None
            result = run_search(
                settings,
                space,
                metric,
                HIGHER_IS_BETTER[metric],
                submit,
                storage=storage,
                study_name=study_name(ctx.name, data_sha256, ctx.cfg),
                first=configured_values(base, space),
                on_outcome=record,
            )
        _record_search(ctx, run_id, result)
        return result


def tuned_config(cfg: TrainConfig, result: SearchResult) -> TrainConfig:
    """The final model's training config: the best trial's values on the configured epochs."""
    assert result.best is not None  # run_search raises when no trial completed
    return apply_params(cfg, result.best.params)


class TrialRecorder:
    """Records each told trial as a nested MLflow run under the stage's run `run_id` and says it on the
    console, on a thread of its own, so the search asks the next trial while the store is written. Leaving
    the block waits for every record; the first one that failed is raised there."""

    def __init__(self, ctx: RunContext, run_id: str, metric: str, label: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.ctx, self.run_id, self.metric, self.label = ctx, run_id, metric, label
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pmf-trial-record")
        self.pending: list[Any] = []

    def __enter__(self) -> TrialRecorder:
        return self

    def __call__(self, outcome: TrialOutcome) -> None:
        self.pending.append(self.pool.submit(self._record, outcome))

    def _record(self, outcome: TrialOutcome) -> None:
        _record_trial(self.ctx, self.run_id, outcome, self.metric)
        CONSOLE.line("  " + trial_line(outcome, self.metric, self.label))

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True)
        if exc[0] is None:
            for done in self.pending:
                done.result()


def trial_line(outcome: TrialOutcome, metric: str, label: str = "trial") -> str:
    if outcome.state == "completed":
        return f"✓ {label} {outcome.number}: validation {metric} {outcome.value:.4f} in {outcome.seconds:.1f} s"
    return f"{'–' if outcome.state == 'pruned' else '✗'} {label} {outcome.number} {outcome.state}: {outcome.reason}"[:100]


@contextmanager
def trial_runner(parallelism: int) -> Iterator[tuple[Any, str]]:
    """A started DaskTaskRunner: on the cluster at PMF_DASK_ADDRESS, else on a local cluster of
    min(parallelism, cores) single-threaded worker processes that report to this flow's Prefect server."""
    from prefect_dask import DaskTaskRunner

    address = os.environ.get(DASK_VARIABLE)
    if address:
        runner = DaskTaskRunner(address=address)
        where = f"on the Dask cluster at {address}"
    else:
        workers = max(1, min(parallelism, os.cpu_count() or 1))
        runner = DaskTaskRunner(
            cluster_kwargs={
                "n_workers": workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
                "local_directory": str(_dask_folder()),
                "env": _worker_environment(),
            }
        )
        where = f"on a local Dask cluster of {workers} worker process{'es' if workers > 1 else ''}"
    with runner:
        yield runner, where


def _dask_folder() -> Any:
    from tasks.workspace import pmf_home

    folder = pmf_home() / "tmp" / "dask"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _worker_environment() -> dict[str, str]:
    """What a local worker process needs to report its task runs to this flow's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    env = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PMF_NO_WARMUP": "1"}
    url = PREFECT_API_URL.value()
    if not url:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        if not server.running:
            server.start()
        url = server.api_url
    env["PREFECT_API_URL"] = str(url)
    return env


def _record_trial(ctx: RunContext, parent: str, outcome: TrialOutcome, metric: str) -> None:
    """One nested run: its params, per-epoch validation metric, final value and state in one batch."""
    from mlflow.entities import Metric

    tags = {
        "pmf.stage": "tune-trial",
        "pmf.trial.state": outcome.state,
        "pmf.trial.pruned": str(outcome.state == "pruned").lower(),
        "pmf.trial.worker": outcome.worker,
    } | ({"pmf.trial.reason": outcome.reason} if outcome.reason else {})
    run_id = tracking.start_run(ctx.experiment_id, f"trial-{outcome.number}", parent, tags)
    now = int(time.time() * 1000)
    final = {"epochs_run": outcome.epochs_run, "seconds": outcome.seconds}
    if outcome.value is not None:
        final[f"trial_{metric}"] = outcome.value
    if outcome.spread is not None:
        final[f"trial_{metric}_se"] = outcome.spread
    metrics = [Metric(f"val_{metric}", value, now, step) for step, value in enumerate(outcome.curve, start=1)]
    metrics += [Metric(key, float(value), now, 0) for key, value in final.items()]
    tracking.log_batch(run_id, {**outcome.params, "trial": outcome.number}, [m for m in metrics if math.isfinite(m.value)])
    tracking.end_run(run_id, "FAILED" if outcome.state == "failed" else "FINISHED")


def _record_search(ctx: RunContext, run_id: str, result: SearchResult, key: str = "tuning") -> None:
    summary = result.to_json()
    tracking.log_dict(run_id, {**summary, "trials_detail": [o.to_json() for o in result.ranked()]}, "tuning/summary.json")
    tracking.log_metrics(
        run_id,
        {k: float(summary[k]) for k in ("completed", "pruned", "failed", "seconds")}
        | ({f"best_{result.metric}": result.best.value} if result.best and result.best.value is not None else {}),
    )
    if result.best is not None:
        tracking.log_params(
            run_id,
            {"best_trial": result.best.number, "kept_configured": result.kept_configured}
            | {f"best.{k}": v for k, v in result.best.params.items()},
        )
        tracking.log_params(
            ctx.parent_run_id, {"tuned_from_trial" if key == "tuning" else "student_tuned_from_trial": result.best.number}
        )
    plot = parallel_coordinates(result, ctx.workdir / f"{key}_parallel_coordinates.png")
    if plot is not None:
        tracking.log_artifact(run_id, plot, "tuning")
    create_table_artifact(
        key=key,
        table=trial_rows(result),
        description=f"Trials of the search, best first: validation {result.metric}; pruned and failed trials say why.",
    )
    best = result.best
    CONSOLE.line(
        f"  {summary['completed']} completed, {summary['pruned']} pruned, {summary['failed']} failed in {result.seconds:.0f} s"
        + (f"; best: trial {best.number}, validation {result.metric} {best.value:.4f}" if best and best.value is not None else "")
    )
    kept = kept_sentence(summary)
    if kept:
        CONSOLE.line(f"  {kept}")


@task(name="tune-student-trial", cache_policy=NO_CACHE, task_run_name="student-trial-{number}")
def tune_student_trial(
    number: int,
    params: dict[str, Any],
    teacher: Any,
    build_student: Any,
    arrays: Any,
    scoring: TrialData,
    task_kind: str,
    base: Any,
    metric: str,
    seed: int,
) -> TrialOutcome:
    from tasks.tuning.student import run_student_trial

    return run_student_trial(number, params, teacher, build_student, arrays, scoring, task_kind, base, metric, seed)  # type: ignore[arg-type]


def tune_student(ctx: RunContext, data: Prepared, teacher: Any, settings: Any, arrays: Any, build_student: Any) -> Any:
    """With tuning on and a distilled variant asked for: search the student's temperature, loss weight and
    width on the validation split (threads in this process: the teacher stays here), and return the
    compression settings with the best values; else `settings` unchanged. The scratch control is built
    at the same width, so the two stay comparable."""
    from prefect.task_runners import ThreadPoolTaskRunner

    from tasks.tuning.student import STUDENT_SPACE, student_settings

    tune_cfg = ctx.cfg.tune
    if not (tune_cfg.enabled and tune_cfg.distillation and "distilled_int8" in settings.variants):
        return settings
    task_kind = data.preprocessor.schema.task
    metric = tune_cfg.metric or primary_metric_for(ctx.cfg, task_kind)
    scoring = trial_data(data)
    student_cfg = tune_cfg.model_copy(update={"trials": tune_cfg.distillation_trials, "space": {}})
    threads: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=max(1, min(tune_cfg.parallelism, os.cpu_count() or 1)))
    with (
        stage(ctx, "tune-student", f"tune the student ({tune_cfg.distillation_trials} trials)") as run_id,
        threads as runner,
        TrialRecorder(ctx, run_id, metric, "student trial") as record,
    ):

        def submit(asked: Asked) -> Any:
            number, params, _ = asked
            call = {
                "number": number,
                "params": params,
                "teacher": teacher,
                "build_student": build_student,
                "arrays": arrays,
                "scoring": scoring,
                "task_kind": task_kind,
                "base": settings.distillation,
                "metric": metric,
                "seed": ctx.cfg.train.seed,
            }
            return runner.submit(tune_student_trial, call)

        base = settings.distillation
        result = run_search(
            student_cfg.model_copy(update={"pruning": False}),
            STUDENT_SPACE,
            metric,
            HIGHER_IS_BETTER[metric],
            submit,
            first={"temperature": base.temperature, "alpha": base.alpha, "width_factor": base.width_factor},
            on_outcome=record,
        )
        _record_search(ctx, run_id, result, key="tuning-student")
    assert result.best is not None
    return settings.model_copy(update={"distillation": student_settings(base, result.best.params)})
