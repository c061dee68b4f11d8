"""The compression stage: variants built in parallel, measured one at a time, gated, one shipped.

Builds fan out as Prefect task runs (threads); latency is measured afterwards, one variant at a
time, so no variant is timed while another trains on the same cores. Each variant gets a child
MLflow run; the comparison table and the size-versus-quality plot go to the stage run and the
table to Prefect as a table artifact.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.console import CONSOLE
from flows.stages import Evaluation, Prepared, RunContext
from tasks.registry import tracking
from tasks.compression import (CompressionData, CompressionSettings, VariantReport, build_only, choose_variant,
                               comparison_table, compression_gate, mark_shipped, measure_built, measure_keras,
                               tradeoff_plot)
from tasks.config import TrainConfig
from tasks.compression.student import student_builder
from tasks.model.evaluate import HIGHER_IS_BETTER, scorer_on_test_split


@dataclass
class Compression:
    reports: list[VariantReport]
    shipped: VariantReport

    def rows(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.reports]


@task(name="compress-variant", cache_policy=NO_CACHE, task_run_name="compress-{variant}")
def build_variant(variant: str, teacher: Any, arrays: CompressionData, task_kind: str, settings: CompressionSettings,
                  workdir: Path, train_cfg: TrainConfig, n_outputs: int) -> VariantReport:
    return build_only(variant, teacher, arrays, task_kind, settings, workdir,
                      student_builder(train_cfg, arrays.x_train.shape[1], n_outputs, task_kind))




def compress(ctx: RunContext, data: Prepared, teacher: Any, evaluation: Evaluation) -> Compression:
    """Run inside the flow: fan the builds out, then measure, gate and choose in one task."""
    settings = ctx.cfg.compression
    schema = data.preprocessor.schema
    arrays = CompressionData(data.x["train"], data.y["train"], data.x["validation"], data.y["validation"],
                             data.x["test"], data.y["test"])
    n_outputs = len(schema.classes) if schema.task == "classification" else 1
    workdir = ctx.workdir / "compression"
    with CONSOLE.stage(f"compress ({len(settings.variants)} variants)"):
        futures = [build_variant.submit(v, teacher, arrays, schema.task, settings, workdir, ctx.cfg.train, n_outputs)
                   for v in settings.variants]
        built = [f.result() for f in futures]
        return measure_gate_choose(ctx, data, teacher, arrays, built, settings, evaluation.primary_metric)


@task(name="compress-measure-gate", cache_policy=NO_CACHE)
def measure_gate_choose(ctx: RunContext, data: Prepared, teacher: Any, arrays: CompressionData, built: list[VariantReport],
                        settings: CompressionSettings, primary_metric: str) -> Compression:
    score = scorer_on_test_split(data.preprocessor, data.y["test"])
    with tracking.stage_run(ctx.experiment_id, ctx.parent_run_id, "compress") as run_id:
        ctx.stage_runs["compress"] = run_id
        reports = [measure_keras(teacher, arrays.x_test, score, settings.latency, ctx.workdir / "compression" / "keras")]
        reports += [measure_built(r, arrays, score, settings) for r in built]
        gated = compression_gate(reports, settings, primary_metric, HIGHER_IS_BETTER.get(primary_metric, True))
        chosen = choose_variant(gated, settings.policy)
        final = mark_shipped(gated, chosen)
        shipped = next(r for r in final if r.shipped)
        _record(ctx, run_id, final, primary_metric)
        CONSOLE.line(f"  {shipped.reasons[-1] if shipped.reasons else f'shipped {shipped.variant}'}")
        return Compression(final, shipped)




def _record(ctx: RunContext, run_id: str, reports: list[VariantReport], primary_metric: str) -> None:
    for report in reports:
        with tracking.stage_run(ctx.experiment_id, run_id, f"compress-{report.variant}") as variant_run:
            tracking.log_params(variant_run, {"variant": report.variant, "passed": report.passed, "shipped": report.shipped})
            sizes = {"bytes": report.bytes, "gzip_bytes": report.gzip_bytes, "latency_ms_p50": report.latency_ms_p50,
                     "latency_ms_p99": report.latency_ms_p99, "throughput_rows_s": report.throughput_rows_s}
            tracking.log_metrics(variant_run, {**report.metrics, **{k: v for k, v in sizes.items() if v is not None}})
            tracking.log_dict(variant_run, report.to_json(), "variant.json")
            if report.path and report.variant != "keras":
                tracking.log_artifact(variant_run, Path(report.path), "model")
    table = comparison_table(reports, primary_metric)
    tracking.log_text(run_id, table.to_csv(index=False), "compression/comparison.csv")
    tracking.log_artifact(run_id, tradeoff_plot(reports, ctx.workdir / "tradeoff.png", primary_metric), "compression")
    rows = [{k: v for k, v in r.to_json().items() if k in ("variant", "bytes", "gzip_bytes", "latency_ms_p50",
                                                            "latency_ms_p99", "passed", "shipped")}
            | {primary_metric: r.metrics.get(primary_metric), "reasons": "; ".join(r.reasons)} for r in reports]
    create_table_artifact(key="compression", table=rows, description="compression variants (shipped = true is registered)")
