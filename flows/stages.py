"""Prefect tasks, one per stage: each calls the stage logic in `tasks` and records it in a child MLflow run.

Tasks pass frames and models in memory, so caching is off (NO_CACHE): hashing a million-row frame
per call would cost more than the stage. Retries only where I/O can fail (the registry).
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.console import CONSOLE
from tasks.registry import datasets, tracking
from tasks.config import PmfConfig, gates_for, primary_metric_for
from tasks.model.evaluate import confusion_matrix_png, residual_plot_png, slice_metrics, task_metrics
from tasks.model.gates import GateDecision, evaluation_gate
from tasks.data.load import file_sha256, read_table
from tasks.data.preprocess import Preprocessor, Split, fit_preprocessor, split_frame
from tasks.data.schema import Schema, infer_schema
from tasks.data.validate import (ValidationReport, class_balance_failures, declared_expectations, infer_expectations,
                            validate_frame)
from tasks.workspace import pmf_home


class DataRejected(Exception):
    """Validation failed: nothing is trained or registered; the CLI exits with code 3."""

    def __init__(self, report: ValidationReport):
        super().__init__(f"{len(report.failures)} expectation(s) failed")
        self.report = report


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
def load_batch(path: Path) -> Batch:
    with CONSOLE.stage("load"):
        frame = read_table(path)
        CONSOLE.line(f"  {len(frame):,} rows × {frame.shape[1]} columns from {path}")
        return Batch(frame, path, file_sha256(path))


@task(name="validate", cache_policy=NO_CACHE)
def validate_batch(ctx: RunContext, batch: Batch) -> tuple[Schema, ValidationReport, int]:
    """Validate against the stored suite; the first batch of a name (or --update-suite) defines it."""
    with CONSOLE.stage("validate"), tracking.stage_run(ctx.experiment_id, ctx.parent_run_id, "validate") as run_id:
        ctx.stage_runs["validate"] = run_id
        stored = None if ctx.update_suite else datasets.latest_suite(ctx.experiment_id)
        if stored is None:
            document = infer_suite_document(ctx, batch)
            version = None
        else:
            version, document = stored
            _check_target(ctx, document)
        schema = Schema.from_dict(document["schema"])
        docs_dir = ctx.workdir / "data_docs"
        report = validate_frame(batch.frame, document["expectations"], ctx.name, docs_dir)
        extra = class_balance_failures(batch.frame, schema, ctx.cfg.validation.min_rows_per_class)
        report = ValidationReport(report.success and not extra, report.evaluated + 1, report.failures + extra, report.docs_dir)
        if report.success and version is None:
            version = datasets.save_suite(ctx.experiment_id, ctx.name, document)
            CONSOLE.line(f"  inferred expectation suite v{version} from this batch ({len(document['expectations'])} expectations)")
        tracking.log_dict(run_id, document, "suite/suite.json")
        tracking.log_dict(run_id, {**report.summary(), "failures": report.failures}, "validation/result.json")
        tracking.log_artifact(run_id, docs_dir, "data_docs")
        tracking.log_metrics(run_id, {"expectations": report.evaluated, "failed_expectations": len(report.failures)})
        tracking.log_params(run_id, {"suite_version": version or "rejected-first-batch", "data_sha256": batch.sha256, "rows": len(batch.frame)})
        for column, reason in schema.dropped.items():
            CONSOLE.line(f"  dropped column {column!r}: {reason}")
        CONSOLE.line(f"  {report.evaluated - len(report.failures)}/{report.evaluated} expectations passed")
        get_run_logger().info("validation: %s", report.summary())
        if not report.success:
            raise DataRejected(report)
        return schema, report, version


def infer_suite_document(ctx: RunContext, batch: Batch) -> dict[str, Any]:
    from tasks.config import ConfigError

    target = ctx.target or ctx.cfg.data.target
    if not target:
        raise ConfigError(f"no target column: pass --target COL the first time dataset {ctx.name!r} is seen")
    data = ctx.cfg.data
    schema = infer_schema(batch.frame, target, data.task, data.drop_columns, data.max_categories, keep_constant=ctx.cfg.train.model == "cnn")
    expectations = infer_expectations(batch.frame, schema, ctx.cfg.validation) + declared_expectations(ctx.cfg.validation)
    return {"name": ctx.name, "schema": schema.to_dict(), "expectations": expectations, "inferred_from_sha256": batch.sha256}


def _check_target(ctx: RunContext, document: dict) -> None:
    from tasks.config import ConfigError

    stored = document["schema"]["target"]
    wanted = ctx.target or ctx.cfg.data.target
    if wanted and wanted != stored:
        raise ConfigError(f"dataset {ctx.name!r} is set up with target {stored!r}, not {wanted!r}: "
                          f"use --update-suite to redefine it, or another --name")


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
        tracking.log_params(run_id, {**split.sizes(), "features_in": len(schema.features), "features_out": x["train"].shape[1],
                                     "split_seed": s.seed, "task": schema.task, "target": schema.target})
        tracking.log_dict(run_id, preprocessor.to_dict(), "preprocessor/preprocessor.json")
        CONSOLE.line(f"  split {split.sizes()}  → {x['train'].shape[1]} model inputs")
        return Prepared(split, preprocessor, x, y)


@task(name="train", cache_policy=NO_CACHE)
def train(ctx: RunContext, data: Prepared, data_sha256: str) -> Any:
    from tasks.model.train import train_model

    cfg = ctx.cfg.train
    with CONSOLE.stage("train"), tracking.stage_run(ctx.experiment_id, ctx.parent_run_id, "train") as run_id:
        ctx.stage_runs["train"] = run_id
        tracking.log_params(run_id, cfg.model_dump())
        schema = data.preprocessor.schema
        n_outputs = len(schema.classes) if schema.task == "classification" else 1

        def on_epoch(epoch: int, logs: dict[str, float]) -> None:
            tracking.log_metrics(run_id, logs, step=epoch)
            CONSOLE.epoch(epoch, cfg.epochs, logs)

        result = train_model(data.x["train"], data.y["train"], data.x["validation"], data.y["validation"], schema.task,
                             n_outputs, cfg, checkpoint_dir(ctx, data_sha256), on_epoch=on_epoch)
        CONSOLE.end_epochs()
        if result.resumed_from_epoch:
            CONSOLE.line(f"  resumed from the checkpoint at epoch {result.resumed_from_epoch}")
        tracking.log_metrics(run_id, {"epochs_run": result.epochs_run, "resumed_from_epoch": result.resumed_from_epoch,
                                      "parameters": result.parameters})
        model_file = ctx.workdir / "float_model.keras"
        result.model.save(model_file)
        tracking.log_artifact(run_id, model_file, "float_model")
        return result


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
        return Evaluation(metrics, slices, gate, primary_metric_for(ctx.cfg, schema.task))


def _log_plot(run_id: str, schema: Schema, y_true: np.ndarray, outputs: np.ndarray, workdir: Path) -> None:
    if schema.task == "classification":
        path = confusion_matrix_png(y_true, outputs.argmax(axis=1), schema.classes, workdir / "confusion_matrix.png")
    else:
        path = residual_plot_png(y_true, outputs, workdir / "residuals.png")
    tracking.log_artifact(run_id, path, "evaluation")


@task(name="register", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def register(ctx: RunContext, data: Prepared, model_bytes: bytes, lineage: dict[str, str], meta: dict) -> dict[str, Any]:
    from tasks.registry.register import package_and_register

    with CONSOLE.stage("register"), tracking.stage_run(ctx.experiment_id, ctx.parent_run_id, "register") as run_id:
        ctx.stage_runs["register"] = run_id
        tags = {**lineage, "pmf.config": ctx.cfg.model_dump_json(exclude_defaults=True)}
        with tempfile.TemporaryDirectory(dir=ctx.workdir) as folder:
            registered = package_and_register(run_id, ctx.name, model_bytes, data.preprocessor, meta,
                                              data.split.test, Path(folder), tags)
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
        tracking.log_dict(run_id, to_json(outcome), "promotion/result.json")
        tracking.log_metrics(run_id, {"promoted": float(outcome["promoted"])})
        CONSOLE.line(f"  {'promoted to @production' if outcome['promoted'] else 'not promoted'}")
        for reason in outcome["reasons"]:
            CONSOLE.line(f"  - {reason}")
        return outcome


def model_meta(ctx: RunContext, data: Prepared, variant: str, metrics: dict[str, float]) -> dict[str, Any]:
    schema = data.preprocessor.schema
    return {"name": ctx.name, "task": schema.task, "target": schema.target, "variant": variant,
            "input_columns": list(schema.features), "classes": list(schema.classes), "metrics": metrics,
            "primary_metric": primary_metric_for(ctx.cfg, schema.task)}


def to_json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.item() if isinstance(v, np.generic) else str(v)))
