"""Prefect tasks, one per stage: each calls the stage logic in `tasks` and records it in a child MLflow run.

Tasks pass frames and models in memory, so caching is off (NO_CACHE): hashing a million-row frame
per call would cost more than the stage. Retries only where I/O can fail (the registry).
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State

from flows.console import CONSOLE
from tasks.config import ConfigError, PmfConfig, RunRequest, gates_for, primary_metric_for, recordable
from tasks.data.load import DataError, file_sha256, read_table
from tasks.data.preprocess import Preprocessor, Split, check_split, fit_preprocessor, split_frame
from tasks.data.schema import Schema, infer_schema, infer_task, label_strings, labelled_mask, non_numbers, target_problems
from tasks.data.validate import ValidationReport, class_balance_checks, declared_expectations, infer_expectations, validate_frame
from tasks.data.validation_report import write_report
from tasks.model.evaluate import confusion_matrix_png, residual_plot_png, slice_metrics, task_metrics
from tasks.model.gates import GateDecision, evaluation_gate
from tasks.registry import datasets, tracking
from tasks.run_result import json_safe
from tasks.workspace import pmf_home


class DataRejected(Exception):
    """Validation failed: nothing is trained or registered; the CLI exits with code 3."""

    def __init__(self, report: ValidationReport):
        super().__init__(f"{report.failed} of {report.evaluated} expectation(s) failed")
        self.report = report


# Prefect state names of the expected outcomes (DECISIONS.md): they show in the UI badge and the event name.
REJECTED, CONFIG_ERROR = "Rejected", "ConfigError"


def expected_outcomes(stage: Callable[..., Any]) -> Callable[..., Any]:
    """Under `@task`: a rejected batch or a config error ends the task in a Failed state named `Rejected` or
    `ConfigError` with a one-line message, instead of an exception through Prefect's engine (which would
    print a traceback in the task's log for an outcome nobody has to debug). The task call then returns
    that state; pass it through `settled` to get the value or the exception back in the flow."""

    @functools.wraps(stage)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return stage(*args, **kwargs)
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


def rejection_message(exc: DataRejected | DataError) -> str:
    """`rejected: 3 of 32 expectations failed (species: values_in_set, ...)` — what a Prefect state says."""
    if isinstance(exc, DataRejected):
        report = exc.report
        return f"rejected: {report.failed} of {report.evaluated} expectations failed ({failed_list(report.failures)})"
    return f"rejected: {exc}"


def failed_list(failures: list[dict[str, Any]], limit: int = 5) -> str:
    """`species: values_in_set, body_mass_g: values_between` and `and N more` past `limit`."""
    named = [
        f"{f.get('column') or 'table'}: {str(f['expectation']).removeprefix('expect_column_').removeprefix('expect_')}"
        for f in failures
    ]
    more = f", and {len(named) - limit} more" if len(named) > limit else ""
    return ", ".join(named[:limit]) + more


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
    stage_runs: dict[str, str] = field(default_factory=dict)
    config_source: str = "defaults"
    record_config: str | None = None
    unlabelled_rows: int = 0  # set aside by the validate stage
    config_recorded: int | None = None  # the config version this run recorded with the name, if it did

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


@dataclass
class Batch:
    frame: pd.DataFrame
    path: Path
    sha256: str


@dataclass
class Prepared:
    split: Split
    preprocessor: Preprocessor
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]


@task(name="load", cache_policy=NO_CACHE)
@expected_outcomes
def load_batch(path: Path) -> Batch:
    with CONSOLE.stage("load"):
        frame = read_table(path)
        CONSOLE.line(f"  {len(frame):,} rows × {frame.shape[1]} columns from {path}")
        return Batch(frame, path, file_sha256(path))


@task(name="validate", cache_policy=NO_CACHE)
@expected_outcomes
def validate_batch(ctx: RunContext, batch: Batch) -> tuple[Schema, ValidationReport, int]:
    """Validate against the stored suite; the first batch of a name (or --update-suite) defines it.

    Rows without a label are set aside first (and counted on the parent run as `unlabelled_rows`),
    so a first batch is never rejected by expectations inferred from itself; a target the task
    cannot learn from, or a split that cannot be made, is refused before any expectation runs.
    """
    with CONSOLE.stage("validate"), tracking.stage_run(ctx.experiment_id, ctx.parent_run_id, "validate") as run_id:
        ctx.stage_runs["validate"] = run_id
        stored = None if ctx.update_suite else datasets.latest_suite(ctx.experiment_id)
        previous = datasets.latest_suite(ctx.experiment_id) if ctx.update_suite else None
        if stored is not None:
            _check_target(ctx, stored[1])
        target, task = _target_and_task(ctx, batch.frame, stored, previous)
        frame = labelled_rows(ctx, batch.frame, target, task)
        version, document = stored if stored else (None, infer_suite_document(ctx, frame, target, task, batch.sha256))
        report = _run_suite(ctx, frame, document)
        if report.success and version is None:
            version, winner = datasets.save_suite(ctx.experiment_id, ctx.name, document, replace=ctx.update_suite)
            if winner != json_safe(document):  # another first run stored its suite first: use that one (compared as stored: JSON)
                CONSOLE.line(f"  suite v{version} was stored meanwhile by another run; validating against it")
                document, report = winner, _run_suite(ctx, frame, winner)
            else:
                CONSOLE.line(
                    f"  inferred expectation suite v{version} from this batch ({len(document['expectations'])} expectations)"
                )
        if report.success and ctx.record_config:
            _record_config(ctx)
        schema = Schema.from_dict(document["schema"])
        _log_validation(ctx, run_id, batch, document, report, version)
        for column, reason in schema.dropped.items():
            CONSOLE.line(f"  dropped column {column!r}: {reason}")
        CONSOLE.line(f"  {len(report.passed)}/{report.evaluated} expectations passed")
        get_run_logger().info("%s", validation_sentence(batch.path.name, report))
        if not report.success:
            raise DataRejected(report)
        return schema, report, version


def validation_sentence(file_name: str, report: ValidationReport) -> str:
    """`validated penguins_new.csv: 31 of 32 expectations passed, 1 failed (species: values_to_be_in_set)`."""
    verdict = f"validated {file_name}: {len(report.passed)} of {report.evaluated} expectations passed"
    if report.success:
        return verdict
    return f"{verdict}, {report.failed} failed ({failed_list(report.failures)}): batch rejected"


def _target_and_task(
    ctx: RunContext, frame: pd.DataFrame, stored: tuple[int, dict] | None, previous: tuple[int, dict] | None
) -> tuple[str, str | None]:
    """The stored suite's target and task; when (re)defining the suite, the flags' and config's, falling
    back to the previous suite's target (--update-suite) and inferring the task when unset."""
    from tasks.config import ConfigError

    if stored:
        return stored[1]["schema"]["target"], stored[1]["schema"]["task"]
    known = previous[1]["schema"] if previous else None
    target = ctx.target or ctx.cfg.data.target or (known or {}).get("target")
    if not target:
        raise ConfigError(f"no target column: pass --target COL the first time dataset {ctx.name!r} is seen")
    if known and known["target"] == target and not ctx.cfg.data.task:
        return target, known["task"]
    if target not in frame.columns:
        return target, ctx.cfg.data.task  # reported by the suite (or schema inference) as a missing column
    return target, ctx.cfg.data.task or infer_task(frame[target])


def labelled_rows(ctx: RunContext, frame: pd.DataFrame, target: str, task: str | None) -> pd.DataFrame:
    """The rows with a usable label. Rejects (DataError) a target the task cannot learn from, more
    unlabelled rows than `validation.max_unlabelled_share`, and classes that do not fit the split."""
    if target not in frame.columns or task is None:
        return frame
    problems = target_problems(frame[target], task)
    if problems:
        raise DataError(problems[0]["observed"], problems)
    mask = labelled_mask(frame[target], task)
    unlabelled = int(len(frame) - mask.sum())
    budget = ctx.cfg.validation.max_unlabelled_share
    ctx.unlabelled_rows = unlabelled
    tracking.log_metrics(ctx.parent_run_id, {"unlabelled_rows": unlabelled})
    if unlabelled > budget * len(frame):
        observed = (
            f"{unlabelled:,} of {len(frame):,} rows ({unlabelled / len(frame):.1%}) have no {target!r} value"
            f"{' (or ±inf)' if task == 'regression' else ''}; the budget is {budget:.0%} "
            "(validation.max_unlabelled_share)"
        )
        raise DataError(
            observed,
            [
                {
                    "column": target,
                    "expectation": "unlabelled_rows_within_budget",
                    "observed": observed,
                    "expected": {"max_unlabelled_share": budget},
                }
            ],
        )
    if unlabelled:
        CONSOLE.line(
            f"  set aside {unlabelled:,} row(s) without a {target!r} value ({unlabelled / len(frame):.1%}, budget {budget:.0%})"
        )
    labelled = frame[mask]
    classes = label_strings(labelled[target]).value_counts().to_dict() if task == "classification" else {}
    check_split(len(labelled), classes, ctx.cfg.split.test_size, ctx.cfg.split.validation_size)
    return labelled


def infer_suite_document(ctx: RunContext, frame: pd.DataFrame, target: str, task: str | None, sha256: str) -> dict[str, Any]:
    data = ctx.cfg.data
    schema = infer_schema(frame, target, task, data.drop_columns, data.max_categories, keep_constant=ctx.cfg.train.model == "cnn")
    expectations = infer_expectations(frame, schema, ctx.cfg.validation) + declared_expectations(ctx.cfg.validation)
    return {"name": ctx.name, "schema": schema.to_dict(), "expectations": expectations, "inferred_from_sha256": sha256}


def _run_suite(ctx: RunContext, frame: pd.DataFrame, document: dict) -> ValidationReport:
    """GX on the suite plus the class balance checks, in one report; numeric columns that arrived as text say so."""
    schema = Schema.from_dict(document["schema"])
    report = validate_frame(frame, document["expectations"], ctx.name).with_checks(
        class_balance_checks(frame, schema, ctx.cfg.validation.min_rows_per_class)
    )
    return report.with_failures([_explain_text_in_numbers(f, frame, schema) for f in report.failures])


def _explain_text_in_numbers(failure: dict[str, Any], frame: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """A numeric column that arrived as text fails its type expectation; name the values that are not numbers."""
    column = failure.get("column")
    numeric = set(schema.numeric) | ({schema.target} if schema.task == "regression" else set())
    if failure["expectation"] != "expect_column_values_to_be_in_type_list" or column not in numeric or column not in frame:
        return failure
    bad = non_numbers(frame[column])
    what = (
        f"{len(bad)} distinct value(s) are not numbers, e.g. {bad[:5]}"
        if bad
        else "every value is a number written as text (check the file's quoting)"
    )
    return {**failure, "observed": f"numbers expected but the column arrived as text: {what}"}


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
    ctx: RunContext, run_id: str, batch: Batch, document: dict, report: ValidationReport, version: int | None
) -> None:
    tracking.set_tags(ctx.parent_run_id, {"pmf.config_source": ctx.config_source})
    tracking.log_dict(run_id, document, "suite/suite.json")
    tracking.log_dict(run_id, {**report.summary(), "failures": report.failures}, "validation/result.json")
    facts = {
        "data": str(batch.path),
        "rows": f"{len(batch.frame):,}",
        "sha256": batch.sha256,
        "suite": f"v{version}" if version else "inferred from this batch (not stored: it was rejected)",
    }
    page = write_report(report, ctx.workdir / "validation_report.html", ctx.name, facts)
    tracking.log_artifact(run_id, page, "validation")  # validation/validation_report.html, beside result.json
    tracking.log_metrics(run_id, {"expectations": report.evaluated, "failed_expectations": report.failed})
    tracking.log_params(
        run_id, {"suite_version": version or "rejected-first-batch", "data_sha256": batch.sha256, "rows": len(batch.frame)}
    )


def _check_target(ctx: RunContext, document: dict) -> None:
    from tasks.config import ConfigError

    stored = document["schema"]["target"]
    wanted = ctx.target or ctx.cfg.data.target
    if wanted and wanted != stored:
        raise ConfigError(
            f"dataset {ctx.name!r} is set up with target {stored!r}, not {wanted!r}: "
            f"use --update-suite to redefine it, or another --name"
        )


@task(name="preprocess", cache_policy=NO_CACHE)
def preprocess(ctx: RunContext, batch: Batch, schema: Schema) -> Prepared:
    with CONSOLE.stage("preprocess"), tracking.stage_run(ctx.experiment_id, ctx.parent_run_id, "preprocess") as run_id:
        ctx.stage_runs["preprocess"] = run_id
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
def train(ctx: RunContext, data: Prepared, data_sha256: str) -> Any:
    from tasks.model.train import train_model

    cfg = ctx.cfg.train
    with CONSOLE.stage("train"), tracking.stage_run(ctx.experiment_id, ctx.parent_run_id, "train") as run_id:
        ctx.stage_runs["train"] = run_id
        tracking.log_params(run_id, model_params(cfg))
        schema = data.preprocessor.schema
        n_outputs = len(schema.classes) if schema.task == "classification" else 1

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
            checkpoint_dir(ctx, data_sha256),
            on_epoch=on_epoch,
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


# Settings only one kind of model reads: the other kind's run does not log them (an MLP has no conv filters).
MODEL_ONLY_PARAMS = {"mlp": set(), "cnn": {"image_shape", "conv_filters", "augment"}}


def model_params(cfg: Any) -> dict[str, Any]:
    """The training settings that apply to the model `cfg.model` builds."""
    foreign = set().union(*(keys for model, keys in MODEL_ONLY_PARAMS.items() if model != cfg.model))
    return {k: v for k, v in cfg.model_dump().items() if k not in foreign}


def checkpoint_dir(ctx: RunContext, data_sha256: str) -> Path:
    """Same data + same config = same folder, so a rerun after an interruption resumes there."""
    key = hashlib.sha256((data_sha256 + ctx.cfg.model_dump_json()).encode()).hexdigest()[:16]
    return pmf_home() / "checkpoints" / ctx.name / key


@dataclass
class Evaluation:
    metrics: dict[str, float]
    slices: list[dict]
    gate: GateDecision
    primary_metric: str


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate(ctx: RunContext, data: Prepared, model: Any) -> Evaluation:
    with CONSOLE.stage("evaluate"), tracking.stage_run(ctx.experiment_id, ctx.parent_run_id, "evaluate") as run_id:
        ctx.stage_runs["evaluate"] = run_id
        schema = data.preprocessor.schema
        outputs = model.predict(data.x["test"], verbose=0, batch_size=4096)
        y_true = data.y["test"]
        if schema.task == "regression":  # metrics in the target's own units
            y_true = data.preprocessor.decode_output(y_true.reshape(-1, 1))
            outputs = data.preprocessor.decode_output(outputs)
        metrics = task_metrics(schema.task, y_true, outputs)
        slices = slice_metrics(schema.task, data.split.test, ctx.cfg.data.slice_columns, y_true, outputs)
        gate = evaluation_gate(gates_for(ctx.cfg, schema.task), metrics)
        tracking.log_metrics(run_id, metrics)
        tracking.log_dict(run_id, slices, "evaluation/slices.json")
        tracking.log_dict(run_id, [r.to_dict() for r in gate.results], "evaluation/gate_report.json")
        _log_plot(run_id, schema, y_true, outputs, ctx.workdir)
        tracking.set_tags(run_id, {"pmf.gate": "passed" if gate.passed else "failed"})
        get_run_logger().info("%s", evaluation_sentence(metrics, gate))
        return Evaluation(metrics, slices, gate, primary_metric_for(ctx.cfg, schema.task))


def evaluation_sentence(metrics: dict[str, float], gate: GateDecision) -> str:
    """`test split: accuracy 0.985, f1_macro 0.982; gates passed (accuracy 0.985 >= 0.9 ✓, ...)`."""
    shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
    # ! marks a warn-only rule that failed: reported, but it does not stop the run.
    verdicts = ", ".join(f"{r.reason()} {'✓' if r.passed else '!' if r.severity == 'warn' else '✗'}" for r in gate.results)
    return f"test split: {shown}; gates {'passed' if gate.passed else 'failed'} ({verdicts or 'none configured'})"


def _log_plot(run_id: str, schema: Schema, y_true: np.ndarray, outputs: np.ndarray, workdir: Path) -> None:
    if schema.task == "classification":
        path = confusion_matrix_png(y_true, outputs.argmax(axis=1), schema.classes, workdir / "confusion_matrix.png")
    else:
        path = residual_plot_png(y_true, outputs, workdir / "residuals.png")
    tracking.log_artifact(run_id, path, "evaluation")


@task(name="register", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def register(
    ctx: RunContext, data: Prepared, model_bytes: bytes, lineage: dict[str, str], meta: dict, run: Any = None
) -> dict[str, Any]:
    """Register the shipped model with its model card. `run`: the flow's RunResult so far (metrics,
    gates, slices, training, compression), the facts the card shows beside the data and lineage.

    The model, the held-out split and `model_card.md` go to the pipeline's parent run (the version's
    source run); the register stage's run records the logged model's metrics and `registration.json`."""
    from tasks.registry.register import card_facts, package_and_register

    with CONSOLE.stage("register"), tracking.stage_run(ctx.experiment_id, ctx.parent_run_id, "register") as run_id:
        ctx.stage_runs["register"] = run_id
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
            )
        tracking.log_dict(run_id, registered, "registration.json")
        CONSOLE.line(f"  registered {ctx.name} version {registered['version']} as @{', @'.join(registered['aliases'])}")
        return registered


@task(name="promote", cache_policy=NO_CACHE)
def promote(ctx: RunContext, version: str, task_kind: str) -> dict[str, Any]:
    """Infra check -> @staging -> champion gate -> @production, as `pmf promote` does it."""
    from flows.promote_flow import promote_flow
    from tasks.registry.promotion import settings_for_config

    with CONSOLE.stage("promote"), tracking.stage_run(ctx.experiment_id, ctx.parent_run_id, "promote") as run_id:
        ctx.stage_runs["promote"] = run_id
        settings = settings_for_config(ctx.cfg, task_kind)
        outcome = promote_flow(ctx.name, version, "production", settings, reason=f"pipeline run {ctx.parent_run_id}")
        tracking.log_dict(run_id, json_safe(outcome), "promotion/result.json")
        tracking.log_metrics(run_id, {"promoted": float(outcome["promoted"])})
        CONSOLE.line(f"  {'promoted to @production' if outcome['promoted'] else 'not promoted'}")
        for reason in outcome["reasons"]:
            CONSOLE.line(f"  - {reason}")
        return outcome


def model_meta(ctx: RunContext, data: Prepared, variant: str, metrics: dict[str, float]) -> dict[str, Any]:
    schema = data.preprocessor.schema
    return {
        "name": ctx.name,
        "task": schema.task,
        "target": schema.target,
        "variant": variant,
        "input_columns": list(schema.features),
        "classes": list(schema.classes),
        "metrics": metrics,
        "primary_metric": primary_metric_for(ctx.cfg, schema.task),
    }
