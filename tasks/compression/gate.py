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

Each rule has a severity (`settings.severity`, default `fail` for all three). A failed `fail`
rule rejects the variant; a failed `warn` rule is reported (verdict `warn`, shown as `!`, never
as the ✓ of a clean pass) and the variant may still ship.

float32 is the reference and always passes; the `keras` baseline row is never gated
(`passed=None`); control variants (student_scratch_int8) are gated but never shipped.

For people: `display_rows` (rounded strings, full reasons, roles; the Prefect table) and
`tradeoff_plot`; for machines: `comparison_table` (raw numbers; the CSV).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from tasks.compression.measure import GateCheck, VariantReport
from tasks.compression.settings import CONTROL_VARIANTS, KERAS_BASELINE, REFERENCE_VARIANT, CompressionSettings

Policy = Literal["smallest", "fastest"]


def budget_kind(primary_metric: str, higher_is_better: bool, settings: CompressionSettings) -> Literal["absolute", "relative"]:
    """Absolute for accuracy-type metrics, relative for error metrics and r2 (unless overridden)."""
    if settings.budget_kind != "auto":
        return settings.budget_kind
    return "relative" if (not higher_is_better or primary_metric.lower().startswith("r2")) else "absolute"


def quality_rule(
    value: float, reference: float, primary_metric: str, higher_is_better: bool, settings: CompressionSettings
) -> tuple[bool, str]:
    """Rule 1: the primary metric's drop against float32 within budget."""
    drop = (reference - value) if higher_is_better else (value - reference)
    if budget_kind(primary_metric, higher_is_better, settings) == "absolute":
        ok = drop <= settings.max_metric_drop
        return (
            ok,
            f"{primary_metric} drop {drop * 100:.2f} pp {'<=' if ok else '>'} budget {settings.max_metric_drop * 100:.2f} pp",
        )
    relative = drop / max(abs(reference), 1e-12)
    ok = relative <= settings.max_relative_drop
    return ok, f"{primary_metric} relative drop {relative:.2%} {'<=' if ok else '>'} budget {settings.max_relative_drop:.2%}"


def size_rule(report: VariantReport, reference: VariantReport) -> tuple[bool, str]:
    """Rule 2: gzip bytes strictly below float32's."""
    ok = report.gzip_bytes < reference.gzip_bytes  # type: ignore[operator]
    return ok, f"gzip {report.gzip_bytes:,} B {'<' if ok else '>='} float32 gzip {reference.gzip_bytes:,} B"


def latency_rule(report: VariantReport, reference: VariantReport, tolerance: float, noise_ms: float = 0.0) -> tuple[bool, str]:
    """Rule 3: p50 within float32's p50 times (1 + tolerance), plus an absolute noise floor."""
    limit = reference.latency_ms_p50 * (1 + tolerance) + noise_ms  # type: ignore[operator]
    ok = report.latency_ms_p50 <= limit  # type: ignore[operator]
    floor = f" + {noise_ms:.4f} ms" if noise_ms else ""
    return (
        ok,
        f"p50 {format_ms(report.latency_ms_p50)} ms {'<=' if ok else '>'} {format_ms(limit)} ms (float32 p50 x {1 + tolerance:.2f}{floor})",
    )


def gate_one(
    report: VariantReport, reference: VariantReport, settings: CompressionSettings, primary_metric: str, higher_is_better: bool
) -> VariantReport:
    """Apply every rule to one lossy variant. `checks` holds each rule's outcome and severity,
    `reasons` each rule's value and threshold; `passed` is False only when a `fail` rule fails."""
    if not report.ok:
        return report.model_copy(update={"passed": False})
    value = report.metrics.get(primary_metric)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        quality = (False, f"{primary_metric} was not measured (got {sorted(report.metrics)})")
    else:
        quality = quality_rule(value, reference.metrics[primary_metric], primary_metric, higher_is_better, settings)
    outcomes = {
        "quality": quality,
        "size": size_rule(report, reference),
        "latency": latency_rule(report, reference, settings.latency_tolerance, settings.latency_noise_ms),
    }
    checks = [
        GateCheck(rule=rule, passed=ok, severity=getattr(settings.severity, rule), reason=reason)
        for rule, (ok, reason) in outcomes.items()
    ]
    return report.model_copy(
        update={
            "passed": all(c.passed for c in checks if c.severity == "fail"),
            "reasons": [c.reason for c in checks],
            "checks": checks,
        }
    )


def compression_gate(
    reports: Iterable[VariantReport], settings: CompressionSettings, primary_metric: str, higher_is_better: bool
) -> list[VariantReport]:
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
            why = "float32 is the reference"
            gated.append(
                report.model_copy(
                    update={"passed": True, "reasons": [why], "checks": [GateCheck(rule="reference", passed=True, reason=why)]}
                )
            )
        elif reference is None:
            why = "no float32 reference to compare against"
            gated.append(
                report.model_copy(
                    update={
                        "passed": False,
                        "reasons": [*report.reasons, why],
                        "checks": [*report.checks, GateCheck(rule="reference", passed=False, reason=why)],
                    }
                )
            )
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
    candidates = [
        r
        for r in reports
        if r.passed and r.variant not in (REFERENCE_VARIANT, KERAS_BASELINE) and r.variant not in CONTROL_VARIANTS
    ]
    if candidates:
        size_first = policy == "smallest"
        chosen = min(
            candidates, key=lambda r: (r.gzip_bytes, r.latency_ms_p50) if size_first else (r.latency_ms_p50, r.gzip_bytes)
        )
        why = f"shipped by policy '{policy}': {'smallest gzip' if size_first else 'lowest p50'} of {len(candidates)} passing variant(s)"
        return chosen.model_copy(update={"shipped": True, "reasons": [*chosen.reasons, why]})
    reference = next((r for r in reports if r.variant == REFERENCE_VARIANT and r.ok), None)
    if reference is None:
        raise ValueError("nothing to ship: float32 is missing or failed and no lossy variant passed")
    lossy = [r for r in reports if r.variant not in (REFERENCE_VARIANT, KERAS_BASELINE)]
    failed = [r.variant for r in lossy if not r.control]
    controls = [r.variant for r in lossy if r.control]
    why = (
        f"shipped float32: no lossy variant passed the gate (failed: {', '.join(failed)})"
        if failed
        else "shipped float32: no other variant is configured"
    )
    if controls:  # a passing control must not read as "failed", nor as a candidate that was overlooked
        why += f"; {', '.join(controls)}: control, never shipped"
    return reference.model_copy(update={"shipped": True, "reasons": [*reference.reasons, why]})


def mark_shipped(reports: Iterable[VariantReport], chosen: VariantReport) -> list[VariantReport]:
    """The reports with `chosen` in place of its row (every other row `shipped=False`)."""
    return [chosen if r.variant == chosen.variant else r.model_copy(update={"shipped": False}) for r in reports]


def _ratio(reference: float | None, value: float | None) -> float | None:
    return None if not reference or not value else reference / value


# How a person reads a verdict: a failed warn-only rule is `!`, never the ✓ of a clean pass.
GATE_MARKS: dict[str, str] = {"pass": "✓", "warn": "!", "fail": "✗", "baseline": "–", "not gated": "?"}
GATE_WORDS: dict[str, str] = {
    "pass": "✓ passed",
    "warn": "! passed with warnings",
    "fail": "✗ failed",
    "baseline": "– not gated",
    "not gated": "? not gated",
}


def role(row: dict[str, Any]) -> str:
    """What a row is, for people: `shipped`, `reference` (float32), `baseline` (the Keras model),
    `control` (never shipped) or `candidate`. `row` is a `VariantReport.to_json()` dict."""
    if row.get("shipped"):
        return "shipped"
    if row.get("control") or row["variant"] in CONTROL_VARIANTS:
        return "control"
    return {REFERENCE_VARIANT: "reference", KERAS_BASELINE: "baseline"}.get(row["variant"], "candidate")


def gate_mark(row: dict[str, Any]) -> str:
    """✓ passed, ! passed but a warn-only rule failed, ✗ failed, – the never-gated baseline."""
    return GATE_MARKS[row.get("gate") or "not gated"]


def marked_reasons(row: dict[str, Any]) -> list[str]:
    """Every reason of a row, in full, each rule's outcome first with its mark (`! ... (warn only)`),
    then the decisions (shipping, control). `row` is a `VariantReport.to_json()` dict."""
    checks = row.get("checks") or []
    lines = [
        f"{GateCheck(**c).mark} {c['reason']}{' (warn only)' if c['severity'] == 'warn' and not c['passed'] else ''}"
        for c in checks
    ]
    checked = {c["reason"] for c in checks}
    lines += [reason for reason in row.get("reasons") or [] if reason not in checked]
    if row["variant"] == KERAS_BASELINE:
        lines.append("baseline: the float Keras model called directly; never gated, never shipped")
    if role(row) == "control":
        lines.append("control: the student trained on labels only, to show what distillation bought; never shipped")
    return lines


def format_ms(value: float | None) -> str:
    """Milliseconds to 3 significant digits, never in scientific notation: 0.00123, 5.78, 17.6, 1,234."""
    if value is None or math.isnan(value):
        return "–"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def format_metric(value: float | None) -> str:
    """A metric with 4 decimals (thousands separated for large error metrics); `–` when missing."""
    return "–" if value is None or math.isnan(value) else f"{value:,.4f}"


def format_kib(value: int | float | None) -> str:
    """Bytes as KiB in at most 7 characters below 1 GiB: 5.6, 4,466.3, 614,400."""
    if value is None:
        return "–"
    kib = value / 1024
    return f"{kib:,.1f}" if kib < 10_000 else f"{kib:,.0f}"


def format_metric_short(value: float | None) -> str:
    """A metric in at most 9 characters: 4 decimals below 1,000 (0.9420, -12.3456), whole
    numbers with separators below a million (-409,790), 3 significant digits beyond (4.1e+06)."""
    if value is None or math.isnan(value):
        return "–"
    if abs(value) < 1000:
        return f"{value:.4f}"
    return f"{value:,.0f}" if abs(value) < 1e6 else f"{value:.3g}"


def format_count(value: int | float | None) -> str:
    """A count with thousands separators: 43,136."""
    return "–" if value is None else f"{value:,.0f}"


def display_rows(reports: Iterable[VariantReport], primary_metric: str) -> list[dict[str, str]]:
    """The comparison table as people read it (the Prefect table artifact): one row per variant,
    every value a rounded string, `role` naming the reference, the baseline, the shipped variant and
    the controls, `gate` as ✓/!/✗ and `reasons` in full. `comparison_table` keeps the raw numbers."""
    reports = list(reports)
    f32 = next((r for r in reports if r.variant == REFERENCE_VARIANT and r.ok), None)
    reference_metric = f32.metrics.get(primary_metric) if f32 else None
    rows = []
    for report in reports:
        row = report.to_json()
        value = report.metrics.get(primary_metric)
        delta = None if value is None or reference_metric is None else value - reference_metric
        ratio = _ratio(f32.gzip_bytes if f32 else None, report.gzip_bytes)
        rows.append(
            {
                "variant": report.variant,
                "role": role(row),
                "gate": GATE_WORDS[report.verdict],
                primary_metric: format_metric(value),
                f"{primary_metric} vs float32": "–" if delta is None else f"{delta:+.4f}",
                "bytes": format_count(report.bytes),
                "gzip bytes": format_count(report.gzip_bytes),
                "gzip x smaller": "–" if ratio is None else f"{ratio:.2f}x",
                "p50 ms": format_ms(report.latency_ms_p50),
                "p99 ms": format_ms(report.latency_ms_p99),
                "reasons": " · ".join(marked_reasons(row)) or "–",
            }
        )
    return rows


def comparison_table(reports: Iterable[VariantReport], primary_metric: str) -> Any:
    """A pandas DataFrame, one row per variant, with the raw numbers (for the CSV; `display_rows` is
    for people). Ratios are reference / variant, so > 1 means smaller or faster than float32 TFLite
    (`*_vs_float32`) or the Keras model (`*_vs_keras`); `metric_delta` = variant - float32 in the
    metric's units (x 100 = pp for accuracy-type). `role`, `gate` (pass/warn/fail/baseline) and
    every reason in full close each row."""
    import pandas as pd

    reports = list(reports)
    by_name = {r.variant: r for r in reports}
    f32, keras = by_name.get(REFERENCE_VARIANT), by_name.get(KERAS_BASELINE)
    reference_metric = f32.metrics.get(primary_metric) if f32 and f32.ok else None
    rows = []
    for r in reports:
        value = r.metrics.get(primary_metric)
        row = r.to_json()
        rows.append(
            {
                "variant": r.variant,
                "role": role(row),
                "bytes": r.bytes,
                "gzip_bytes": r.gzip_bytes,
                "size_ratio_vs_float32": _ratio(f32.bytes if f32 else None, r.bytes),
                "gzip_ratio_vs_float32": _ratio(f32.gzip_bytes if f32 else None, r.gzip_bytes),
                "latency_ms_p50": r.latency_ms_p50,
                "latency_ms_p99": r.latency_ms_p99,
                "latency_ratio_vs_float32": _ratio(f32.latency_ms_p50 if f32 else None, r.latency_ms_p50),
                "latency_ratio_vs_keras": _ratio(keras.latency_ms_p50 if keras else None, r.latency_ms_p50),
                "throughput_rows_s": r.throughput_rows_s,
                primary_metric: value,
                "metric_delta": None if value is None or reference_metric is None else value - reference_metric,
                "passed": r.passed,
                "gate": r.verdict,
                "shipped": r.shipped,
                "error": r.error,
                "reasons": " · ".join(marked_reasons(row)),
            }
        )
    return pd.DataFrame(rows)


def tradeoff_plot(reports: Iterable[VariantReport], path: Path | str, primary_metric: str) -> Path:
    """Write `tradeoff_figure` as a PNG (110 dpi, about 1200 x 700 px) at `path`; returns `path`."""
    path = Path(path)
    tradeoff_figure(reports, primary_metric).savefig(path, dpi=110)
    return path


def tradeoff_figure(reports: Iterable[VariantReport], primary_metric: str) -> Any:
    """A matplotlib Figure with two panels sharing the primary metric on y: gzipped size (KiB)
    and single-row p50 latency (ms), both log scale. Points carry no text (names would overlap where variants cluster):
    the legend below names each variant with its gate mark, size, p50 and metric. Shape says the
    role (star shipped, square control, grey diamond the Keras baseline, circle the rest), fill the
    verdict (full passed, half passed with a failed warn-only rule, hollow failed); a dotted line
    marks float32's metric. On matplotlib's Agg canvas: no pyplot global state, safe in threads."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    shown = [r for r in reports if r.ok and r.gzip_bytes and r.latency_ms_p50 and primary_metric in r.metrics]
    figure = Figure(figsize=(11, 6.2), layout="constrained")
    FigureCanvasAgg(figure)
    size_axes, latency_axes = figure.subplots(1, 2, sharey=True)
    colours = iter(VARIANT_COLOURS)
    for report in shown:
        style = _point_style(report, "0.45" if report.variant == KERAS_BASELINE else next(colours, "black"))
        y, kib = report.metrics[primary_metric], (report.gzip_bytes or 0) / 1024
        label = (
            f"{GATE_MARKS[report.verdict]} {report.variant}{_role_suffix(report)}: {kib:,.1f} KiB, "
            f"{format_ms(report.latency_ms_p50)} ms, {format_metric(y)}"
        )
        size_axes.plot(kib, y, linestyle="none", label=label, **style)
        latency_axes.plot(report.latency_ms_p50, y, linestyle="none", **style)
    reference = next((r for r in shown if r.variant == REFERENCE_VARIANT), None)
    for axes in (size_axes, latency_axes):
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 0.01, 1, 10: not 10^-2
        axes.grid(True, which="both", alpha=0.25)
        axes.margins(x=0.15, y=0.12)
        if reference is not None:
            axes.axhline(
                reference.metrics[primary_metric],
                color="0.5",
                linestyle=":",
                linewidth=1,
                label=f"float32 {primary_metric}" if axes is size_axes else None,
            )
    size_axes.set(xlabel="gzipped size (KiB, log scale)", ylabel=f"{primary_metric} (test split)", title="size")
    latency_axes.set(xlabel="single-row p50 latency (ms, log scale)", title="latency")
    figure.legend(
        *size_axes.get_legend_handles_labels(),
        loc="outside lower center",
        ncols=2,
        fontsize=8,
        frameon=False,
        title="filled ✓ passed · half-filled ! passed, a warn-only rule failed · hollow ✗ failed · "
        "★ shipped · ■ control (never shipped) · ◆ Keras baseline (not gated)",
        title_fontsize=8,
    )
    figure.suptitle(f"Compression trade-off: {primary_metric} against size and latency", fontsize=11)
    return figure


# tab10 without its grey (kept for the Keras baseline), then darker shades for larger configs.
VARIANT_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#637939",
    "#8c6d31",
)


def _role_suffix(report: VariantReport) -> str:
    text = role(report.to_json())
    return "" if text == "candidate" else f" ({text})"


def _point_style(report: VariantReport, colour: str) -> dict[str, Any]:
    """`Axes.plot` marker keywords: the shape says the role, the fill the gate's verdict."""
    marker, size = (
        ("*", 18)
        if report.shipped
        else ("D", 8)
        if report.variant == KERAS_BASELINE
        else ("s", 10)
        if report.control
        else ("o", 10)
    )
    fill = {"pass": "full", "warn": "left", "fail": "none"}.get(report.verdict, "full")
    return {
        "marker": marker,
        "markersize": size,
        "fillstyle": fill,
        "color": colour,
        "markeredgecolor": "black" if report.shipped else colour,
        "markerfacecoloralt": "white",
        "markeredgewidth": 1.6,
        "zorder": 4 if report.shipped else 3,
    }
