"""The compression gate, the shipping policy, the comparison table and the trade-off plot.

Gate rules for every lossy variant, all evaluated and all reported (value and threshold):

1. quality: the primary metric's drop against float32 TFLite stays within budget. Accuracy-type
   metrics (higher is better, bounded by 1: accuracy, f1, auc...) use an absolute budget in
   points, `max_metric_drop` (0.01 = 1 pp). Error metrics (lower is better: mse, mae...) and r2
   use a relative budget, `max_relative_drop` (drop / |float32 value|), because their scale
   depends on the target. `budget_kind` overrides the choice. A budget of 0 means "no loss
   allowed": a variant whose metric ties or beats float32 passes this rule, by design.
2. size: gzip bytes strictly below float32's gzip bytes (a variant that does not shrink the
   download has no reason to exist).
3. latency: single-row p50 at most float32's p50 x (1 + `latency_tolerance`). The tolerance
   (default 10 %) absorbs timer noise: p50s of a few microseconds on a shared 2-core machine
   move by several percent between runs, and float16, which cannot be faster on CPU, must not
   fail on noise alone.

float32 is the reference and always passes; the `keras` baseline row is never gated
(`passed=None`); control variants (student_scratch_int8) are gated but never shipped.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Literal

from tasks.compression.measure import VariantReport
from tasks.compression.settings import CONTROL_VARIANTS, KERAS_BASELINE, REFERENCE_VARIANT, CompressionSettings

Policy = Literal["smallest", "fastest"]


def budget_kind(primary_metric: str, higher_is_better: bool, settings: CompressionSettings) -> Literal["absolute", "relative"]:
    """absolute for accuracy-type metrics, relative for error metrics and r2 (unless overridden)."""
    if settings.budget_kind != "auto":
        return settings.budget_kind
    return "relative" if (not higher_is_better or primary_metric.lower().startswith("r2")) else "absolute"


def quality_rule(value: float, reference: float, primary_metric: str, higher_is_better: bool, settings: CompressionSettings) -> tuple[bool, str]:
    """Rule 1: the primary metric's drop against float32 within budget."""
    drop = (reference - value) if higher_is_better else (value - reference)
    if budget_kind(primary_metric, higher_is_better, settings) == "absolute":
        ok = drop <= settings.max_metric_drop
        return ok, f"{primary_metric} drop {drop * 100:.2f} pp {'<=' if ok else '>'} budget {settings.max_metric_drop * 100:.2f} pp"
    relative = drop / max(abs(reference), 1e-12)
    ok = relative <= settings.max_relative_drop
    return ok, f"{primary_metric} relative drop {relative:.2%} {'<=' if ok else '>'} budget {settings.max_relative_drop:.2%}"


def size_rule(report: VariantReport, reference: VariantReport) -> tuple[bool, str]:
    """Rule 2: gzip bytes strictly below float32's."""
    ok = report.gzip_bytes < reference.gzip_bytes  # type: ignore[operator]
    return ok, f"gzip {report.gzip_bytes} B {'<' if ok else '>='} float32 gzip {reference.gzip_bytes} B"


def latency_rule(report: VariantReport, reference: VariantReport, tolerance: float, noise_ms: float = 0.0) -> tuple[bool, str]:
    """Rule 3: p50 within float32's p50 times (1 + tolerance), plus an absolute noise floor."""
    limit = reference.latency_ms_p50 * (1 + tolerance) + noise_ms  # type: ignore[operator]
    ok = report.latency_ms_p50 <= limit  # type: ignore[operator]
    floor = f" + {noise_ms:.4f} ms" if noise_ms else ""
    return ok, f"p50 {report.latency_ms_p50:.4f} ms {'<=' if ok else '>'} {limit:.4f} ms (float32 p50 x {1 + tolerance:.2f}{floor})"


def gate_one(report: VariantReport, reference: VariantReport, settings: CompressionSettings, primary_metric: str, higher_is_better: bool) -> VariantReport:
    """Apply every rule to one lossy variant; `reasons` lists each rule's value and threshold."""
    if not report.ok:
        return report.model_copy(update={"passed": False})
    value = report.metrics.get(primary_metric)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        checks = [(False, f"{primary_metric} was not measured (got {sorted(report.metrics)})")]
    else:
        checks = [quality_rule(value, reference.metrics[primary_metric], primary_metric, higher_is_better, settings)]
    checks += [size_rule(report, reference), latency_rule(report, reference, settings.latency_tolerance, settings.latency_noise_ms)]
    return report.model_copy(update={"passed": all(ok for ok, _ in checks), "reasons": [reason for _, reason in checks]})


def compression_gate(reports: Iterable[VariantReport], settings: CompressionSettings, primary_metric: str, higher_is_better: bool) -> list[VariantReport]:
    """Gate every variant against float32; returns new reports with `passed` and `reasons` set.

    Without a usable float32 reference (missing, failed, or no primary metric) every lossy
    variant fails with that reason.
    """
    reports = list(reports)
    reference = next((r for r in reports if r.variant == REFERENCE_VARIANT and r.ok), None)
    if reference is not None and primary_metric not in reference.metrics:
        raise ValueError(f"primary metric {primary_metric!r} is not among the measured metrics {sorted(reference.metrics)}")
    gated = []
    for report in reports:
        if report.variant == KERAS_BASELINE:
            gated.append(report)
        elif report.variant == REFERENCE_VARIANT and report.ok:
            gated.append(report.model_copy(update={"passed": True, "reasons": ["float32 is the reference"]}))
        elif reference is None:
            gated.append(report.model_copy(update={"passed": False, "reasons": [*report.reasons, "no float32 reference to compare against"]}))
        else:
            gated.append(gate_one(report, reference, settings, primary_metric, higher_is_better))
    return gated


def choose_variant(reports: Iterable[VariantReport], policy: Policy) -> VariantReport:
    """The variant to ship, with `shipped=True` and the decision appended to its `reasons`.

    `smallest`: least gzip bytes (ties: lower p50); `fastest`: lowest p50 (ties: fewer gzip
    bytes), among gated, passing variants other than float32, the keras row and controls. When
    none pass, float32 ships and the reason names why. Raises ValueError without a float32 row.
    Apply the choice to the list with `mark_shipped`.
    """
    reports = list(reports)
    candidates = [r for r in reports if r.passed and r.variant not in (REFERENCE_VARIANT, KERAS_BASELINE) and r.variant not in CONTROL_VARIANTS]
    if candidates:
        size_first = policy == "smallest"
        chosen = min(candidates, key=lambda r: (r.gzip_bytes, r.latency_ms_p50) if size_first else (r.latency_ms_p50, r.gzip_bytes))
        why = f"shipped by policy '{policy}': {'smallest gzip' if size_first else 'lowest p50'} of {len(candidates)} passing variant(s)"
        return chosen.model_copy(update={"shipped": True, "reasons": [*chosen.reasons, why]})
    reference = next((r for r in reports if r.variant == REFERENCE_VARIANT and r.ok), None)
    if reference is None:
        raise ValueError("nothing to ship: float32 is missing or failed and no lossy variant passed")
    failed = [r.variant for r in reports if r.variant not in (REFERENCE_VARIANT, KERAS_BASELINE)]
    why = (f"shipped float32: no lossy variant passed the gate (failed: {', '.join(failed)})" if failed
           else "shipped float32: no other variant is configured")
    return reference.model_copy(update={"shipped": True, "reasons": [*reference.reasons, why]})


def mark_shipped(reports: Iterable[VariantReport], chosen: VariantReport) -> list[VariantReport]:
    """The reports with `chosen` in place of its row (every other row `shipped=False`)."""
    return [chosen if r.variant == chosen.variant else r.model_copy(update={"shipped": False}) for r in reports]


def _ratio(reference: float | None, value: float | None) -> float | None:
    return None if not reference or not value else reference / value


def comparison_table(reports: Iterable[VariantReport], primary_metric: str) -> Any:
    """A pandas DataFrame, one row per variant. Ratios are reference / variant, so > 1 means
    smaller or faster than float32 TFLite (`*_vs_float32`) or the Keras model (`*_vs_keras`);
    `metric_delta` = variant - float32 in the metric's units (x 100 = pp for accuracy-type)."""
    import pandas as pd

    reports = list(reports)
    by_name = {r.variant: r for r in reports}
    f32, keras = by_name.get(REFERENCE_VARIANT), by_name.get(KERAS_BASELINE)
    reference_metric = f32.metrics.get(primary_metric) if f32 and f32.ok else None
    rows = []
    for r in reports:
        value = r.metrics.get(primary_metric)
        rows.append({
            "variant": r.variant, "bytes": r.bytes, "gzip_bytes": r.gzip_bytes,
            "size_ratio_vs_float32": _ratio(f32.bytes if f32 else None, r.bytes),
            "gzip_ratio_vs_float32": _ratio(f32.gzip_bytes if f32 else None, r.gzip_bytes),
            "latency_ms_p50": r.latency_ms_p50, "latency_ms_p99": r.latency_ms_p99,
            "latency_ratio_vs_float32": _ratio(f32.latency_ms_p50 if f32 else None, r.latency_ms_p50),
            "latency_ratio_vs_keras": _ratio(keras.latency_ms_p50 if keras else None, r.latency_ms_p50),
            "throughput_rows_s": r.throughput_rows_s, primary_metric: value,
            "metric_delta": None if value is None or reference_metric is None else value - reference_metric,
            "passed": r.passed, "shipped": r.shipped, "error": r.error,
        })
    return pd.DataFrame(rows)


def tradeoff_plot(reports: Iterable[VariantReport], path: Path | str, primary_metric: str) -> Path:
    """A PNG of gzip size (log scale) against the primary metric, one labelled point per measured
    variant; the shipped one is starred. Uses matplotlib's Agg canvas, no pyplot global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for r in reports:
        if r.ok and r.gzip_bytes and primary_metric in r.metrics:
            axes.scatter(r.gzip_bytes / 1024, r.metrics[primary_metric], marker="*" if r.shipped else "o", s=160 if r.shipped else 40)
            axes.annotate(r.variant, (r.gzip_bytes / 1024, r.metrics[primary_metric]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    axes.set_xscale("log")
    axes.set(xlabel="gzipped size (KiB, log scale)", ylabel=primary_metric, title="Compression trade-off (star = shipped)")
    axes.grid(True, alpha=0.3)
    path = Path(path)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return path
