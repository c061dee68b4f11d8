"""The compression stage: variants built in parallel, measured one at a time, gated, one shipped.

Builds fan out as Prefect task runs `compress-<variant>`: threads in the flow's process, or, with
`PMF_DASK_ADDRESS` set, the Dask cluster there (flows/task_runners.py; the teacher travels as bytes,
the .tflite comes back as bytes, tasks/compression/remote.py). Latency is measured afterwards in
the flow's process, one variant at a time, so no variant is timed while another trains on the
same cores. Each variant gets a child MLflow run; the comparison table and the size-versus-quality
plot go to the stage run and the table to Prefect as a table artifact.
"""

from __future__ import annotations

import functools
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.console import CONSOLE
from flows.stages import Evaluation, Prepared, RunContext, stage
from flows.task_runners import DaskCluster, check_dask_cluster, dask_task_runner, lost_build
from flows.tune_stage import tune_student
from tasks.compression import (
    CompressionData,
    CompressionSettings,
    VariantReport,
    build_only,
    choose_variant,
    comparison_table,
    compression_gate,
    display_rows,
    mark_shipped,
    measure_built,
    measure_keras,
    tradeoff_plot,
)
from tasks.compression.gate import role
from tasks.compression.remote import RemoteBuild, build_remote, land, model_to_bytes
from tasks.compression.student import student_builder
from tasks.config import TrainConfig
from tasks.model.builders import Task
from tasks.model.evaluate import HIGHER_IS_BETTER, scorer_on_test_split
from tasks.registry import tracking


@dataclass
class Compression:
    reports: list[VariantReport]
    shipped: VariantReport

    def rows(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.reports]


@task(name="compress-variant", cache_policy=NO_CACHE, task_run_name="compress-{variant}")
def build_variant(
    variant: str,
    teacher: Any,
    arrays: CompressionData,
    task_kind: Task,
    settings: CompressionSettings,
    workdir: Path,
    train_cfg: TrainConfig,
    n_outputs: int,
) -> VariantReport:
    """Build one variant's .tflite (never raises: a failure is a report with `error`); the build
    time goes to `extra["build_seconds"]`."""
    start = time.perf_counter()
    report = build_only(
        variant,
        teacher,
        arrays,
        task_kind,
        settings,
        workdir,
        student_builder(train_cfg, arrays.x_train.shape[1], n_outputs, task_kind),
    )
    return report.model_copy(update={"extra": {**report.extra, "build_seconds": round(time.perf_counter() - start, 3)}})


def progress_line(report: VariantReport, done: int, total: int) -> str:
    """`  ✓ int8 built in 1.2 s (3/8)` or `  ✗ qat_int8 failed (4/8): <reason>` cut to 80 columns
    (the full reason is in the table, the MLflow variant run and --json)."""
    if report.ok:
        seconds = report.extra.get("build_seconds")
        took = f" in {seconds:.1f} s" if isinstance(seconds, (int, float)) else ""
        return f"  ✓ {report.variant} built{took} ({done}/{total})"
    text = f"  ✗ {report.variant} failed ({done}/{total}): {report.error}"
    return text if len(text) <= 80 else text[:79] + "…"


@task(name="compress-variant", cache_policy=NO_CACHE, persist_result=False, task_run_name="compress-{variant}")
def build_variant_remote(
    variant: str,
    teacher_model: bytes,
    arrays: CompressionData,
    task_kind: Task,
    settings: CompressionSettings,
    train_cfg: TrainConfig,
    n_outputs: int,
) -> RemoteBuild:
    """`build_variant` for a Dask worker: the teacher as the bytes of its saved model, the .tflite
    back as bytes (never a local path either way). Which worker built it goes to `extra["built_on"]`."""
    start = time.perf_counter()
    build = build_remote(variant, teacher_model, arrays, task_kind, settings, train_cfg, n_outputs)
    extra = {**build.report.extra, "build_seconds": round(time.perf_counter() - start, 3), "built_on": _worker()}
    return RemoteBuild(build.report.model_copy(update={"extra": extra}), build.tflite)


def _worker() -> str:
    """The Dask worker's address (`tcp://10.0.0.7:40313`), else `host:pid`."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # not on a Dask worker
        import os
        import socket

        return f"{socket.gethostname()}:{os.getpid()}"


def build_all(
    futures: Mapping[Any, str], total: int, collect: Callable[[Any, str], VariantReport] | None = None
) -> dict[str, VariantReport]:
    """Wait for the builds in the order they finish, one console line per variant as it lands.
    `collect(future, variant)`: the report from a finished future (default: its result)."""
    from prefect.futures import as_completed

    built: dict[str, VariantReport] = {}
    for future in as_completed(list(futures)):
        report = collect(future, futures[future]) if collect else future.result()
        built[futures[future]] = report
        CONSOLE.line(progress_line(report, len(built), total))  # only this thread writes: lines never interleave
    return built


def compress(ctx: RunContext, data: Prepared, teacher: Any, evaluation: Evaluation) -> Compression:
    """Run inside the flow: fan the builds out, then measure, gate and choose in one task."""
    settings = ctx.cfg.compression
    schema = data.preprocessor.schema
    arrays = CompressionData(
        data.x["train"], data.y["train"], data.x["validation"], data.y["validation"], data.x["test"], data.y["test"]
    )
    n_outputs = len(schema.classes) if schema.task == "classification" else 1
    workdir = ctx.workdir / "compression"
    # With tuning on, the distilled student's temperature, loss weight and width are searched first.
    student = student_builder(ctx.cfg.train, arrays.x_train.shape[1], n_outputs, schema.task)
    settings = tune_student(ctx, data, teacher, settings, arrays, student)
    with stage(ctx, "compress", f"compress ({len(settings.variants)} variants)") as run_id:
        cluster = check_dask_cluster()
        if cluster is None:
            futures = {
                build_variant.submit(v, teacher, arrays, schema.task, settings, workdir, ctx.cfg.train, n_outputs): v
                for v in settings.variants
            }
            built = build_all(futures, len(settings.variants))
        else:
            built = build_on_dask(
                cluster, settings.variants, teacher, arrays, schema.task, settings, workdir, ctx.cfg.train, n_outputs
            )
        CONSOLE.line(f"  measuring the Keras model and {len(built)} variant(s) one at a time …")
        return measure_gate_choose(
            ctx, run_id, data, teacher, arrays, [built[v] for v in settings.variants], settings, evaluation.primary_metric
        )


def build_on_dask(
    cluster: DaskCluster,
    variants: Sequence[str],
    teacher: Any,
    arrays: CompressionData,
    task_kind: Task,
    settings: CompressionSettings,
    workdir: Path,
    train_cfg: TrainConfig,
    n_outputs: int,
) -> dict[str, VariantReport]:
    """Only the builds go to the cluster (a DaskTaskRunner opened for them); each .tflite lands in
    `workdir/<variant>/` as a local build's would. A build the cluster loses fails the run (DaskUnavailable);
    a worker that dies mid-build is not a loss: Dask runs its builds again on another worker."""
    CONSOLE.line(f"  building on {cluster.describe()} …")
    teacher_model = model_to_bytes(teacher)
    common = {
        "teacher_model": teacher_model,
        "arrays": arrays,
        "task_kind": task_kind,
        "settings": settings,
        "train_cfg": train_cfg,
        "n_outputs": n_outputs,
    }
    with dask_task_runner(cluster) as runner:
        futures = {runner.submit(build_variant_remote, {"variant": v, **common}): v for v in variants}
        return build_all(futures, len(variants), functools.partial(_landed, cluster.address, workdir))


def _landed(address: str, workdir: Path, future: Any, variant: str) -> VariantReport:
    try:
        build = future.result()
    except Exception as error:  # a build's own failure is a report: an exception here is the cluster's
        raise lost_build(address, variant, error) from error
    return land(build, workdir)


@task(name="compress-measure-gate", cache_policy=NO_CACHE)
def measure_gate_choose(
    ctx: RunContext,
    run_id: str,
    data: Prepared,
    teacher: Any,
    arrays: CompressionData,
    built: list[VariantReport],
    settings: CompressionSettings,
    primary_metric: str,
) -> Compression:
    """Measure the Keras model and every built variant on the test split, gate them, choose the one to
    ship, and record it all in the compress stage's run `run_id` (a child run per variant)."""
    score = scorer_on_test_split(data.preprocessor, data.y["test"])
    reports = [measure_keras(teacher, arrays.x_test, score, settings.latency, ctx.workdir / "compression" / "keras")]
    reports += [measure_built(r, arrays, score, settings) for r in built]
    gated = compression_gate(reports, settings, primary_metric, HIGHER_IS_BETTER.get(primary_metric, True))
    chosen = choose_variant(gated, settings.policy)
    final = mark_shipped(gated, chosen)
    shipped = next(r for r in final if r.shipped)
    _record(ctx, run_id, final, primary_metric)
    decision = shipped.reasons[-1] if shipped.reasons else f"shipped {shipped.variant}"
    for line in textwrap.wrap(decision, 80, initial_indent="  ", subsequent_indent="    "):
        CONSOLE.line(line)
    return Compression(final, shipped)


def _record(ctx: RunContext, run_id: str, reports: list[VariantReport], primary_metric: str) -> None:
    for report in reports:
        with tracking.stage_run(ctx.experiment_id, run_id, f"compress-{report.variant}") as variant_run:
            tracking.log_params(
                variant_run,
                {
                    "variant": report.variant,
                    "passed": report.passed,
                    "gate": report.verdict,
                    "role": role(report.to_json()),
                    "shipped": report.shipped,
                },
            )
            sizes = {
                "bytes": report.bytes,
                "gzip_bytes": report.gzip_bytes,
                "latency_ms_p50": report.latency_ms_p50,
                "latency_ms_p99": report.latency_ms_p99,
                "throughput_rows_s": report.throughput_rows_s,
            }
            tracking.log_metrics(variant_run, {**report.metrics, **{k: v for k, v in sizes.items() if v is not None}})
            tracking.log_dict(variant_run, report.to_json(), "variant.json")
            if report.path and report.variant != "keras":
                tracking.log_artifact(variant_run, Path(report.path), "model")
    table = comparison_table(reports, primary_metric)
    tracking.log_text(run_id, table.to_csv(index=False), "compression/comparison.csv")
    tracking.log_artifact(run_id, tradeoff_plot(reports, ctx.workdir / "tradeoff.png", primary_metric), "compression")
    create_table_artifact(key="compression", table=display_rows(reports, primary_metric), description=TABLE_LEGEND)


TABLE_LEGEND = (
    "Compression variants, measured through LiteRT on the test split. gate: ✓ passed every rule · "
    "! passed, but a warn-only rule failed · ✗ failed a hard rule · – not gated. role: shipped is the "
    "registered variant; float32 is the reference every variant is gated against; a control is gated "
    "for information and never shipped. Raw numbers: compression/comparison.csv on the MLflow run."
)
