"""Prefect tasks, one per stage: each opens its stage (console line + child MLflow run), calls the
stage logic in `tasks`, and records what it did.

Tasks pass frames and models in memory, so caching is off (NO_CACHE): hashing a million-row frame
per call would cost more than the stage. Retries only where I/O can fail (the registry).
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State

from flows.console import CONSOLE
from tasks.config import ConfigError, PmfConfig, RunRequest, gates_for, primary_metric_for, recordable
from tasks.data import suite
from tasks.data.load import DataError, file_sha256, read_table
from tasks.data.preprocess import Preprocessor, Split, fit_preprocessor, split_frame
from tasks.data.schema import Schema, Task
from tasks.data.sql_source import SqlSource
from tasks.data.suite import DataRejected, SuiteDocument, rejection_message
from tasks.data.validate import ValidationReport
from tasks.data.validation_report import write_report
from tasks.model.evaluate import evaluation_plot, evaluation_sentence, in_target_units, slice_metrics, task_metrics
from tasks.model.gates import GateDecision, evaluation_gate
from tasks.model.train import TrainResult
from tasks.registry import datasets, tracking
from tasks.run_result import json_safe

# Prefect state names of the expected outcomes (DECISIONS.md): they show in the UI badge and the event name.
REJECTED, CONFIG_ERROR = "Rejected", "ConfigError"


def expected_outcomes(stage_fn: Callable[..., Any]) -> Callable[..., Any]:
    """Under `@task`: a rejected batch or a config error ends the task in a Failed state named `Rejected` or
    `ConfigError` with a one-line message, instead of an exception through Prefect's engine (which would
    print a traceback in the task's log for an outcome nobody has to debug). The task call then returns
    that state; pass it through `settled` to get the value or the exception back in the flow."""

    @functools.wraps(stage_fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return stage_fn(*args, **kwargs)
        except (DataRejected, DataError) as exc:
            return Failed(name=REJECTED, message=rejection_message(exc), data=exc)
        except ConfigError as exc:
            return Failed(name=CONFIG_ERROR, message=str(exc), data=exc)

    return run


def settled(value: Any) -> Any:
    """A stage's value; for a stage that ended in an expected outcome, raise what its state carries, so the
    flow reports it (as a state of its own) exactly as if the stage had raised it."""
    if isinstance(value, State):
        carried = value.result(raise_on_failure=False)
        if isinstance(carried, BaseException):
            raise carried
        raise RuntimeError(f"stage ended {value.type.value}/{value.name}: {value.message}")
    return value


@dataclass
class RunContext:
    """What every stage needs to know about the run it belongs to."""

    name: str
    cfg: PmfConfig
    experiment_id: str
    parent_run_id: str
    workdir: Path
    target: str | None = None
    update_suite: bool = False
    config_source: str = "defaults"
    record_config: str | None = None
    unlabelled_rows: int = 0  # set aside by the validate stage
    config_recorded: int | None = None  # the config version this run recorded with the name, if it did
    warm_start: Any = None  # the train stage's warm-start decision (tasks.retraining.warm_start.WarmStart)
    trigger: str = "manual"  # what started the flow run (manual, schedule, drift): its promotion says the same

    @classmethod
    def for_request(cls, request: RunRequest, experiment_id: str, parent_run_id: str, workdir: Path) -> RunContext:
        return cls(
            request.name,
            request.cfg,
            experiment_id,
            parent_run_id,
            workdir,
            request.target,
            request.update_suite,
            config_source=request.config_source,
            record_config=request.record_config,
        )


def open_parent_run(
    request: RunRequest, kind: str, run_name: str, source: str, trigger: str, extra_tags: dict[str, str] | None = None
) -> tuple[str, str | None, str]:
    """The flow run's MLflow parent run, tagged with its kind, Prefect flow run, batch and source; the
    Prefect flow run tagged with the model and trigger. Returns (experiment id, flow run id, run id)."""
    from prefect.runtime import flow_run

    from flows import ui

    experiment_id = tracking.ensure_experiment(request.name)
    prefect_id = str(flow_run.id) if flow_run.id else None
    ui.add_tags(prefect_id, ui.run_tags(request.name, trigger))
    tags = {"pmf.kind": kind, "prefect.flow_run_id": prefect_id or "", "pmf.data": str(request.data), **(extra_tags or {})}
    parent = tracking.start_run(experiment_id, run_name, tags={**tags, **tracking.source_tags(source)})
    return experiment_id, prefect_id, parent


@dataclass
class Batch:
    """The rows of one batch, where they came from (a file, or a PostgreSQL table or query) and their hash
    (the file's SHA-256; for SQL, over the rows read: tasks/data/sql_source.py)."""

    frame: pd.DataFrame
    source: Path | SqlSource
    sha256: str


@dataclass
class Prepared:
    split: Split
    preprocessor: Preprocessor
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]


@contextmanager
def stage(ctx: RunContext, name: str, shown: str | None = None) -> Iterator[str]:
    """The preamble every stage shares: its console lines (`▸ name …`, then `✓ name 1.2s` or
    `✗ name failed after 1.2s`, timed in CONSOLE.durations) around its child MLflow run under the
    pipeline's parent run (FINISHED, FAILED or KILLED as the block ends). Yields the child run's id.
    `shown`: what the console calls the stage when it says more than the run's name (`compress (8 variants)`)."""
    with CONSOLE.stage(shown or name), tracking.stage_run(ctx.experiment_id, ctx.parent_run_id, name) as run_id:
        yield run_id


@task(name="load", cache_policy=NO_CACHE)
@expected_outcomes
def load_batch(source: Path | SqlSource) -> Batch:
    with CONSOLE.stage("load"):  # no child run: the batch is logged on the parent run as its dataset
        if isinstance(source, SqlSource):
            from tasks.data.sql_source import read_sql_source

            frame, sha256 = read_sql_source(source)
        else:
            frame, sha256 = read_table(source), file_sha256(source)
        CONSOLE.line(f"  {len(frame):,} rows × {frame.shape[1]} columns from {source}")
        return Batch(frame, source, sha256)


@task(name="validate", cache_policy=NO_CACHE)
@expected_outcomes
def validate_batch(ctx: RunContext, batch: Batch) -> tuple[Schema, ValidationReport, int]:
    """Validate against the stored suite; the first batch of a name (or --update-suite) defines it.

    Rows without a label are set aside first (and counted on the parent run as `unlabelled_rows`),
    so a first batch is never rejected by expectations inferred from itself; a target the task
    cannot learn from, or a split that cannot be made, is refused before any expectation runs.
    """
    with stage(ctx, "validate") as run_id:
        stored = None if ctx.update_suite else datasets.latest_suite(ctx.experiment_id)
        previous = datasets.latest_suite(ctx.experiment_id) if ctx.update_suite else None
        wanted = ctx.target or ctx.cfg.data.target
        if stored is not None:
            suite.check_target(ctx.name, stored[1], wanted)
        target, task_kind = suite.target_and_task(
            ctx.name, batch.frame, wanted, ctx.cfg.data.task, stored[1] if stored else None, previous[1] if previous else None
        )
        frame = _labelled_rows(ctx, batch.frame, target, task_kind)
        version, document = (
            stored if stored else (None, suite.infer_suite_document(ctx.name, frame, target, task_kind, batch.sha256, ctx.cfg))
        )
        report, where = _validate(ctx, batch, frame, document)
        if report.success and version is None:
            version, winner = datasets.save_suite(ctx.experiment_id, ctx.name, document, replace=ctx.update_suite)
            if winner != json_safe(document):  # another first run stored its suite first: use that one (compared as stored: JSON)
                CONSOLE.line(f"  suite v{version} was stored meanwhile by another run; validating against it")
                document, (report, where) = winner, _validate(ctx, batch, frame, winner)
            else:
                CONSOLE.line(
                    f"  inferred expectation suite v{version} from this batch ({len(document['expectations'])} expectations)"
                )
        if report.success and ctx.record_config:
            _record_config(ctx)
        schema = Schema.from_dict(document["schema"])
        _log_validation(ctx, run_id, batch, document, report, version, where)
        for column, reason in schema.dropped.items():
            CONSOLE.line(f"  dropped column {column!r}: {reason}")
        CONSOLE.line(f"  {len(report.passed)}/{report.evaluated} expectations passed")
        get_run_logger().info("%s", suite.validation_sentence(batch.source.name, report))
        if not report.success:
            raise DataRejected(report)
        assert version is not None  # a batch that passed has its suite stored
        return schema, report, version


def _labelled_rows(ctx: RunContext, frame: pd.DataFrame, target: str, task_kind: Task | None) -> pd.DataFrame:
    """The rows with a usable label; the unlabelled count goes to the parent run (also when it is over budget)."""
    if target not in frame.columns or task_kind is None:
        return frame  # the suite reports the missing target
    labelled, unlabelled = suite.split_off_unlabelled(frame, target, task_kind)
    budget = ctx.cfg.validation.max_unlabelled_share
    ctx.unlabelled_rows = unlabelled
    tracking.log_metrics(ctx.parent_run_id, {"unlabelled_rows": unlabelled})
    suite.check_unlabelled_budget(target, task_kind, unlabelled, len(frame), budget)
    if unlabelled:
        CONSOLE.line(suite.unlabelled_line(target, unlabelled, len(frame), budget))
    suite.check_split_fits(labelled, target, task_kind, ctx.cfg.split)
    return labelled


def _validate(ctx: RunContext, batch: Batch, frame: pd.DataFrame, document: SuiteDocument) -> tuple[ValidationReport, str]:
    """The report, and where the suite ran: in pandas, or for a SQL batch inside PostgreSQL (the few
    expectations GX cannot run in SQL on the rows read; the console line names them)."""
    if not isinstance(batch.source, SqlSource):
        return suite.validate_against_suite(ctx.name, frame, document, ctx.cfg.validation.min_rows_per_class), "pandas"
    from tasks.data.validate_sql import validate_sql_against_suite

    checked = validate_sql_against_suite(ctx.name, batch.source, frame, document, ctx.cfg.validation.min_rows_per_class)
    CONSOLE.line(checked.sentence())
    where = f"PostgreSQL (GX {checked.engine}): {checked.in_database} expectations"
    if checked.in_pandas:
        where += f"; pandas (GX cannot run them in SQL): {', '.join(checked.in_pandas)}"
    return checked.report, where


def _record_config(ctx: RunContext) -> None:
    """Record this run's effective config with the dataset name (first run, or --update-config)."""
    record, mine = datasets.record_config(
        ctx.experiment_id, recordable(ctx.cfg), ctx.record_config == "update", ctx.config_source
    )
    if mine:
        ctx.config_recorded = record.version
        tracking.set_tags(ctx.parent_run_id, {"pmf.config_recorded": str(record.version)})
        CONSOLE.line(f"  recorded this run's config as {ctx.name!r} config v{record.version}")


def _log_validation(
    ctx: RunContext, run_id: str, batch: Batch, document: SuiteDocument, report: ValidationReport, version: int | None, where: str
) -> None:
    tracking.set_tags(ctx.parent_run_id, {"pmf.config_source": ctx.config_source})
    tracking.log_dict(run_id, document, "suite/suite.json")
    tracking.log_dict(run_id, {**report.summary(), "failures": report.failures}, "validation/result.json")
    facts = {
        "data": str(batch.source),
        "rows": f"{len(batch.frame):,}",
        "sha256": batch.sha256,
        "suite": f"v{version}" if version else "inferred from this batch (not stored: it was rejected)",
        "validated in": where,
    }
    page = write_report(report, ctx.workdir / "validation_report.html", ctx.name, facts)
    tracking.log_artifact(run_id, page, "validation")  # validation/validation_report.html, beside result.json
    tracking.log_metrics(run_id, {"expectations": report.evaluated, "failed_expectations": report.failed})
    tracking.log_params(
        run_id,
        {
            "suite_version": version or "rejected-first-batch",
            "data_sha256": batch.sha256,
            "rows": len(batch.frame),
            "validated_in": where.split(" (", 1)[0],  # pandas | PostgreSQL
        },
    )
    tracking.set_tags(run_id, {"pmf.validated_in": where})


@task(name="preprocess", cache_policy=NO_CACHE)
def preprocess(ctx: RunContext, batch: Batch, schema: Schema) -> Prepared:
    with stage(ctx, "preprocess") as run_id:
        s = ctx.cfg.split
        split = split_frame(batch.frame, schema, s.test_size, s.validation_size, s.seed)
        preprocessor = fit_preprocessor(split.train, schema)
        parts = {"train": split.train, "validation": split.validation, "test": split.test}
        x = {k: preprocessor.transform(v) for k, v in parts.items()}
        y = {k: preprocessor.encode_target(v[schema.target]) for k, v in parts.items()}
        tracking.log_params(
            run_id,
            {
                **split.sizes(),
                "features_in": len(schema.features),
                "features_out": x["train"].shape[1],
                "split_seed": s.seed,
                "task": schema.task,
                "target": schema.target,
            },
        )
        tracking.log_dict(run_id, preprocessor.to_dict(), "preprocessor/preprocessor.json")
        CONSOLE.line(f"  split {split.sizes()}  → {x['train'].shape[1]} model inputs")
        return Prepared(split, preprocessor, x, y)


@task(name="train", cache_policy=NO_CACHE)
def train(ctx: RunContext, data: Prepared, data_sha256: str, warm_start: bool = False) -> TrainResult:
    """Train the model; `warm_start` (a retrain): start from the production version's weights when they
    still fit (tasks.retraining.warm_start), else from scratch. Which it was, and why, goes to the train
    run (param `warm_start`, tag `pmf.warm_start_reason`), the parent run and the console; the result
    says it in `warm_start`, and `ctx.warm_start` keeps the whole decision for the run's result."""
    from tasks.model.train import checkpoint_dir, model_params, train_model

    cfg = ctx.cfg.train
    with stage(ctx, "train") as run_id:
        tracking.log_params(run_id, model_params(cfg))
        schema = data.preprocessor.schema
        n_outputs = len(schema.classes) if schema.task == "classification" else 1
        start = _start_weights(ctx, data, n_outputs, run_id, warm_start)

        def on_epoch(epoch: int, logs: dict[str, float]) -> None:
            tracking.log_metrics(run_id, logs, step=epoch)
            CONSOLE.epoch(epoch, cfg.epochs, logs)

        result = train_model(
            data.x["train"],
            data.y["train"],
            data.x["validation"],
            data.y["validation"],
            schema.task,
            n_outputs,
            cfg,
            checkpoint_dir(ctx.name, data_sha256, ctx.cfg),
            on_epoch=on_epoch,
            initial_weights=start.weights,
        )
        CONSOLE.end_epochs()
        if result.resumed_from_epoch:
            CONSOLE.line(f"  resumed from the checkpoint at epoch {result.resumed_from_epoch}")
        tracking.log_metrics(
            run_id,
            {"epochs_run": result.epochs_run, "resumed_from_epoch": result.resumed_from_epoch, "parameters": result.parameters},
        )
        model_file = ctx.workdir / "float_model.keras"
        result.model.save(model_file)
        tracking.log_artifact(run_id, model_file, "float_model")
        return result


def _start_weights(ctx: RunContext, data: Prepared, n_outputs: int, run_id: str, warm_start: bool) -> Any:
    """The warm-start decision for this training, recorded on the train and parent runs and said on the console."""
    from tasks.model.train import build_model
    from tasks.retraining.warm_start import WarmStart, inputs_of, production_start

    schema = data.preprocessor.schema
    if warm_start:
        start = production_start(
            ctx.name,
            inputs_of(data.preprocessor),
            lambda: build_model(ctx.cfg.train, data.x["train"].shape[1], n_outputs, schema.task),
        )
    else:
        start = WarmStart(False, "pmf run trains from scratch")
    facts = {"warm_start": str(start.used).lower(), **({"warm_start_from": f"v{start.version}"} if start.used else {})}
    for run in (run_id, ctx.parent_run_id):
        tracking.log_params(run, facts)
        tracking.set_tags(run, {"pmf.warm_start_reason": start.reason})
    if warm_start:  # a retrain says which it was; `pmf run` always starts from scratch
        CONSOLE.line(f"  {'warm start' if start.used else 'from scratch'}: {start.reason}")
    ctx.warm_start = start
    return start


@dataclass
class Evaluation:
    metrics: dict[str, float]
    slices: list[dict]
    gate: GateDecision
    primary_metric: str


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate(ctx: RunContext, data: Prepared, model: Any) -> Evaluation:
    with stage(ctx, "evaluate") as run_id:
        schema = data.preprocessor.schema
        outputs = in_target_units(data.preprocessor, model.predict(data.x["test"], verbose=0, batch_size=4096))
        y_true = in_target_units(data.preprocessor, data.y["test"])
        metrics = task_metrics(schema.task, y_true, outputs)
        slices = slice_metrics(schema.task, data.split.test, ctx.cfg.data.slice_columns, y_true, outputs)
        gate = evaluation_gate(gates_for(ctx.cfg, schema.task), metrics)
        tracking.log_metrics(run_id, metrics)
        tracking.log_dict(run_id, slices, "evaluation/slices.json")
        tracking.log_dict(run_id, [r.to_dict() for r in gate.results], "evaluation/gate_report.json")
        tracking.log_artifact(run_id, evaluation_plot(schema, y_true, outputs, ctx.workdir), "evaluation")
        tracking.set_tags(run_id, {"pmf.gate": "passed" if gate.passed else "failed"})
        get_run_logger().info("%s", evaluation_sentence(metrics, gate))
        return Evaluation(metrics, slices, gate, primary_metric_for(ctx.cfg, schema.task))


@task(name="register", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def register(
    ctx: RunContext, data: Prepared, model_bytes: bytes, lineage: dict[str, str], meta: dict, run: Any = None
) -> dict[str, Any]:
    """Register the shipped model with its model card. `run`: the flow's RunResult so far (metrics,
    gates, slices, training, compression), the facts the card shows beside the data and lineage.

    The model, the held-out split and `model_card.md` go to the pipeline's parent run (the version's
    source run); the register stage's run records the logged model's metrics and `registration.json`."""
    from tasks.registry.register import card_facts, package_and_register

    with stage(ctx, "register") as run_id:
        tags = {**lineage, "pmf.config": ctx.cfg.model_dump_json(exclude_defaults=True)}
        facts = card_facts(
            ctx.name,
            data.preprocessor.schema,
            data.split.sizes(),
            ctx.cfg.train.model_dump(mode="json"),
            lineage,
            meta,
            run,
            ctx.parent_run_id,
            tracking.run_url(ctx.experiment_id, ctx.parent_run_id),
        )
        with tempfile.TemporaryDirectory(dir=ctx.workdir) as folder:
            registered = package_and_register(
                ctx.parent_run_id,
                run_id,
                ctx.name,
                model_bytes,
                data.preprocessor,
                meta,
                data.split.test,
                Path(folder),
                tags,
                facts,
                reference=data.split.train,  # its profile is what `pmf monitor` compares with
            )
        tracking.log_dict(run_id, registered, "registration.json")
        CONSOLE.line(f"  registered {ctx.name} version {registered['version']} as @{', @'.join(registered['aliases'])}")
        return registered


@task(name="promote", cache_policy=NO_CACHE)
def promote(ctx: RunContext, version: str, task_kind: str) -> dict[str, Any]:
    """Infra check -> @staging -> champion gate -> @production, as `pmf promote` does it."""
    from flows.promote_flow import promote_flow
    from tasks.registry.promotion import settings_for_config

    with stage(ctx, "promote") as run_id:
        settings = settings_for_config(ctx.cfg, task_kind)
        # Called directly, a flow returns its final state's data: the promotion result dict.
        outcome = cast(
            dict[str, Any],
            promote_flow(
                ctx.name, version, "production", settings, reason=f"pipeline run {ctx.parent_run_id}", trigger=ctx.trigger
            ),
        )
        tracking.log_dict(run_id, json_safe(outcome), "promotion/result.json")
        tracking.log_metrics(run_id, {"promoted": float(outcome["promoted"])})
        CONSOLE.line(f"  {'promoted to @production' if outcome['promoted'] else 'not promoted'}")
        for reason in outcome["reasons"]:
            CONSOLE.line(f"  - {reason}")
        return outcome
