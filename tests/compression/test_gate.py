"""The gate and the shipping policy on hand-made reports: every rule, every reason, no TensorFlow."""

import pytest
from pydantic import ValidationError

from tasks.compression.gate import (
    choose_variant,
    comparison_table,
    compression_gate,
    display_rows,
    format_kib,
    format_metric_short,
    format_ms,
    mark_shipped,
    tradeoff_figure,
    tradeoff_plot,
)
from tasks.compression.measure import VariantReport, failed_report
from tasks.compression.settings import CompressionSettings


def report(variant, accuracy, gzip_bytes, p50, size=None):
    return VariantReport(
        variant=variant,
        metrics={"accuracy": accuracy},
        bytes=size or gzip_bytes + 100,
        gzip_bytes=gzip_bytes,
        latency_ms_p50=p50,
        latency_ms_p99=p50 * 2,
    )


@pytest.fixture
def reports():
    return [
        report("keras", 0.90, 40_000, 1.2),
        report("float32", 0.90, 10_000, 0.010),
        report("int8", 0.895, 3_000, 0.004),  # -0.5 pp
        report("pruned_int8", 0.880, 900, 0.004),  # -2.0 pp
        report("float16", 0.90, 6_000, 0.0105),  # +5 % slower: inside the noise tolerance
    ]


def gate(reports, **settings):
    return {r.variant: r for r in compression_gate(reports, CompressionSettings(**settings), "accuracy", higher_is_better=True)}


def test_default_budget_passes_small_drops_and_rejects_large_ones_with_value_and_threshold(reports):
    gated = gate(reports)
    assert gated["int8"].passed
    assert gated["float16"].passed
    assert not gated["pruned_int8"].passed
    assert "accuracy drop 2.00 pp > budget 1.00 pp" in gated["pruned_int8"].reasons
    assert gated["float32"].passed
    assert gated["float32"].reasons == ["float32 is the reference"]
    assert gated["keras"].passed is None


def test_zero_budget_rejects_every_variant_that_lost_anything(reports):
    # Budget 0 means "no loss allowed": each lossy variant here lost accuracy, so each is rejected
    # and says by how much. (A variant that ties float32 would pass this rule: see the next test.)
    lossy = [
        r.model_copy(update={"metrics": {"accuracy": 0.90 - 0.001 * (i + 1)}}) if r.variant not in ("float32", "keras") else r
        for i, r in enumerate(reports)
    ]
    gated = gate(lossy, max_metric_drop=0.0)
    for name in ("int8", "pruned_int8", "float16"):
        assert gated[name].passed is False
        assert any(reason.startswith("accuracy drop") and "> budget 0.00 pp" in reason for reason in gated[name].reasons)


def test_zero_budget_lets_a_lossless_variant_pass(reports):
    assert gate(reports, max_metric_drop=0.0)["float16"].passed


def test_every_failed_rule_is_reported_not_just_the_first(reports):
    worst = report("dynamic_range", 0.80, 12_000, 0.02)
    reasons = gate([*reports, worst])["dynamic_range"].reasons
    assert reasons == [
        "accuracy drop 10.00 pp > budget 1.00 pp",
        "gzip 12,000 B >= float32 gzip 10,000 B",
        "p50 0.0200 ms > 0.0130 ms (float32 p50 x 1.10 + 0.0020 ms)",
    ]


def test_error_metrics_use_a_relative_budget():
    rows = [report("float32", 0.0, 10_000, 0.01), report("int8", 0.0, 3_000, 0.005), report("float16", 0.0, 5_000, 0.01)]
    rows = [r.model_copy(update={"metrics": {"mse": m}}) for r, m in zip(rows, (0.50, 0.52, 0.53), strict=False)]
    gated = {r.variant: r for r in compression_gate(rows, CompressionSettings(), "mse", higher_is_better=False)}
    assert gated["int8"].passed
    assert "mse relative drop 4.00% <= budget 5.00%" in gated["int8"].reasons
    assert not gated["float16"].passed
    assert "mse relative drop 6.00% > budget 5.00%" in gated["float16"].reasons


def test_a_failed_build_fails_the_gate_and_keeps_its_reason(reports):
    gated = gate([*reports, failed_report("qat_int8", ValueError("layer not supported"))])
    assert gated["qat_int8"].passed is False
    assert gated["qat_int8"].reasons == ["qat_int8 could not be built: ValueError: layer not supported"]


def test_without_float32_every_lossy_variant_fails(reports):
    gated = gate([r for r in reports if r.variant != "float32"])
    assert all(r.passed is False and "no float32 reference" in r.reasons[-1] for name, r in gated.items() if name != "keras")


@pytest.mark.parametrize(("policy", "expected"), [("smallest", "int8"), ("fastest", "int8")])
def test_policy_picks_among_passing_lossy_variants(reports, policy, expected):
    gated = list(gate(reports).values())
    chosen = choose_variant(gated, policy)
    assert chosen.variant == expected
    assert chosen.shipped
    assert [r.variant for r in mark_shipped(gated, chosen) if r.shipped] == [expected]


def test_fastest_and_smallest_differ_when_the_smallest_is_slower(reports):
    extra = report("dynamic_range", 0.90, 2_000, 0.006)
    gated = list(gate([*reports, extra]).values())
    assert choose_variant(gated, "smallest").variant == "dynamic_range"
    assert choose_variant(gated, "fastest").variant == "int8"


def test_float32_ships_with_a_reason_when_nothing_passes(reports):
    gated = list(gate(reports, max_metric_drop=0.0, latency_tolerance=0.0).values())
    gated = [r.model_copy(update={"passed": False}) if r.variant not in ("float32", "keras") else r for r in gated]
    chosen = choose_variant(gated, "smallest")
    assert chosen.variant == "float32"
    assert chosen.shipped
    assert chosen.reasons[-1].startswith("shipped float32: no lossy variant passed the gate")


def test_the_control_student_is_never_shipped(reports):
    control = report("student_scratch_int8", 0.90, 100, 0.001)
    assert choose_variant(list(gate([*reports, control]).values()), "smallest").variant == "int8"


def test_table_ratios_are_reference_over_variant(reports):
    table = comparison_table(list(gate(reports).values()), "accuracy").set_index("variant")
    assert table.loc["int8", "gzip_ratio_vs_float32"] == pytest.approx(10_000 / 3_000)
    assert table.loc["int8", "latency_ratio_vs_keras"] == pytest.approx(1.2 / 0.004)
    assert table.loc["pruned_int8", "metric_delta"] == pytest.approx(-0.02)


def test_tradeoff_plot_writes_a_png_large_enough_to_read(reports, tmp_path):
    path = tradeoff_plot(final(reports), tmp_path / "tradeoff.png", "accuracy")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # the IHDR chunk
    assert width >= 1000
    assert height >= 600
    assert 20_000 < len(data) < 2_000_000


def final(reports, **settings):
    gated = compression_gate(reports, CompressionSettings(**settings), "accuracy", higher_is_better=True)
    return mark_shipped(gated, choose_variant(gated, "smallest"))


def test_tradeoff_plot_names_variants_in_a_legend_not_on_the_points(reports):
    # Clustered variants (int8, qat_int8 and dynamic_range within a few bytes and microseconds)
    # cannot overlap: no text is drawn among the points, the legend names every variant.
    clustered = [
        *reports,
        report("qat_int8", 0.896, 3_010, 0.0041),
        report("dynamic_range", 0.897, 3_020, 0.0042),
        report("student_scratch_int8", 0.85, 2_000, 0.003),
    ]
    figure = tradeoff_figure(final(clustered), "accuracy")
    size_axes, latency_axes = figure.axes
    assert (len(size_axes.texts), len(latency_axes.texts)) == (0, 0)
    assert size_axes.get_xlabel() == "gzipped size (KiB, log scale)"
    assert latency_axes.get_xlabel() == "single-row p50 latency (ms, log scale)"
    assert size_axes.get_ylabel() == "accuracy (test split)"
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert [line.split(":")[0] for line in legend[:-1]] == [
        "– keras (baseline)",
        "✓ float32 (reference)",
        "✓ int8 (shipped)",
        "✗ pruned_int8",
        "✓ float16",
        "✓ qat_int8",
        "✓ dynamic_range",
        "✗ student_scratch_int8 (control)",
    ]
    assert legend[0] == "– keras (baseline): 39.1 KiB, 1.20 ms, 0.9000"
    points = {line.get_label().split(":")[0].split(" ")[1]: line for line in size_axes.get_lines() if line.get_marker() != "None"}
    assert points["int8"].get_marker() == "*"
    assert points["int8"].get_markersize() > points["float16"].get_markersize()
    assert (points["student_scratch_int8"].get_marker(), points["student_scratch_int8"].get_fillstyle()) == ("s", "none")
    assert (points["float16"].get_marker(), points["float16"].get_fillstyle()) == ("o", "full")
    assert points["pruned_int8"].get_fillstyle() == "none"


def test_a_failed_warn_only_rule_is_reported_with_a_bang_and_does_not_block(reports):
    slow = report("dynamic_range", 0.90, 2_000, 0.05)  # smallest, but 5x slower than float32
    hard = {r.variant: r for r in final([*reports, slow])}
    assert (hard["dynamic_range"].passed, hard["dynamic_range"].verdict) == (False, "fail")
    assert hard["int8"].shipped
    warned = {r.variant: r for r in final([*reports, slow], severity={"latency": "warn"})}
    assert (warned["dynamic_range"].passed, warned["dynamic_range"].verdict) == (True, "warn")
    assert warned["dynamic_range"].shipped, "a warn-only rule never blocks shipping"
    assert [(c.rule, c.passed, c.severity, c.mark) for c in warned["dynamic_range"].checks] == [
        ("quality", True, "fail", "✓"),
        ("size", True, "fail", "✓"),
        ("latency", False, "warn", "!"),
    ]
    assert warned["int8"].verdict == "pass"
    rows = {row["variant"]: row for row in display_rows(warned.values(), "accuracy")}
    assert rows["dynamic_range"]["gate"] == "! passed with warnings"
    assert rows["int8"]["gate"] == "✓ passed"
    assert "! p50 0.0500 ms > 0.0130 ms (float32 p50 x 1.10 + 0.0020 ms) (warn only)" in rows["dynamic_range"]["reasons"]
    hard_rows = {row["variant"]: row for row in display_rows(hard.values(), "accuracy")}
    assert hard_rows["dynamic_range"]["gate"] == "✗ failed"
    assert "✗ p50 0.0500 ms > 0.0130 ms" in hard_rows["dynamic_range"]["reasons"]
    assert warned["dynamic_range"].to_json()["gate"] == "warn"


def test_severity_rejects_unknown_rules_and_levels():
    with pytest.raises(ValidationError, match="speed"):
        CompressionSettings(severity={"speed": "warn"})
    with pytest.raises(ValidationError, match="latency"):
        CompressionSettings(severity={"latency": "info"})


def test_display_rows_are_rounded_with_roles_and_every_reason_in_full(reports):
    control = report("student_scratch_int8", 0.8812345, 1_234_567, 0.0123456)
    rows = {row["variant"]: row for row in display_rows(final([*reports, control]), "accuracy")}
    assert rows["int8"] == {
        "variant": "int8",
        "role": "shipped",
        "gate": "✓ passed",
        "accuracy": "0.8950",
        "accuracy vs float32": "-0.0050",
        "bytes": "3,100",
        "gzip bytes": "3,000",
        "gzip x smaller": "3.33x",
        "p50 ms": "0.00400",
        "p99 ms": "0.00800",
        "reasons": "✓ accuracy drop 0.50 pp <= budget 1.00 pp · ✓ gzip 3,000 B < float32 gzip 10,000 B · "
        "✓ p50 0.00400 ms <= 0.0130 ms (float32 p50 x 1.10 + 0.0020 ms) · "
        "shipped by policy 'smallest': smallest gzip of 2 passing variant(s)",
    }
    assert rows["student_scratch_int8"]["role"] == "control"
    assert (rows["student_scratch_int8"]["accuracy"], rows["student_scratch_int8"]["p50 ms"]) == ("0.8812", "0.0123")
    assert rows["student_scratch_int8"]["bytes"] == "1,234,667"
    assert rows["student_scratch_int8"]["reasons"].endswith("never shipped")
    assert "✗ accuracy drop 1.88 pp > budget 1.00 pp" in rows["student_scratch_int8"]["reasons"]
    assert "✗ gzip 1,234,567 B >= float32 gzip 10,000 B" in rows["student_scratch_int8"]["reasons"]
    assert (rows["float32"]["role"], rows["keras"]["role"], rows["pruned_int8"]["role"]) == ("reference", "baseline", "candidate")
    assert (rows["keras"]["gate"], rows["keras"]["p50 ms"]) == ("– not gated", "1.20")
    assert rows["pruned_int8"]["gate"] == "✗ failed"
    long_error = "ValueError: " + "layer LayerNormalization has no quantize config; " * 4
    failed = {row["variant"]: row for row in display_rows(final([*reports, failed_report("qat_int8", long_error)]), "accuracy")}
    assert failed["qat_int8"]["reasons"] == f"✗ qat_int8 could not be built: {long_error}"


def test_the_csv_table_keeps_raw_numbers_and_says_role_and_verdict(reports):
    table = comparison_table(final(reports, severity={"latency": "warn"}), "accuracy").set_index("variant")
    assert (table.loc["int8", "bytes"], table.loc["int8", "latency_ms_p50"]) == (3_100, 0.004)
    assert (table.loc["int8", "role"], table.loc["int8", "gate"]) == ("shipped", "pass")
    assert (table.loc["keras", "gate"], table.loc["pruned_int8", "gate"]) == ("baseline", "fail")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.00123456, "0.00123"),
        (0.0123456, "0.0123"),
        (5.783, "5.78"),
        (17.617, "17.6"),
        (123.4, "123"),
        (4097899.9999999995, "4,097,900"),
        (0.0, "0"),
        (None, "–"),
    ],
)
def test_milliseconds_have_three_significant_digits(value, text):
    assert format_ms(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.942, "0.9420"), (-12.34567, "-12.3457"), (4097899.9999999995, "4.1e+06"), (409789.99999, "409,790"), (None, "–")],
)
def test_terminal_metrics_fit_nine_characters(value, text):
    assert format_metric_short(value) == text
    assert len(text) <= 9


def test_sizes_in_kib():
    assert (format_kib(5_764), format_kib(43_136), format_kib(629_145_600)) == ("5.6", "42.1", "614,400")


def test_a_passing_control_is_not_listed_as_failed_when_float32_ships(reports):
    control = report("student_scratch_int8", 0.90, 500, 0.003)
    lossy_failing = [r for r in reports if r.variant in ("keras", "float32", "pruned_int8")]
    shipped = next(r for r in final([*lossy_failing, control]) if r.shipped)
    assert shipped.variant == "float32"
    assert shipped.reasons[-1] == (
        "shipped float32: no lossy variant passed the gate (failed: pruned_int8); student_scratch_int8: control, never shipped"
    )


def test_report_json_has_the_public_keys(reports):
    row = reports[1].to_json()
    for key in ("variant", "metrics", "bytes", "gzip_bytes", "latency_ms_p50", "latency_ms_p99", "passed", "reasons", "shipped"):
        assert key in row


def test_latency_noise_floor_forgives_microseconds_not_real_slowdowns(reports):
    # float32 p50 is 0.010 ms: 0.0125 ms is within 10 % + 2 µs, 0.014 ms is not.
    near = report("dynamic_range", 0.90, 5_000, 0.0125)
    slow = report("qat_int8", 0.90, 5_000, 0.014)
    gated = gate([*reports, near, slow])
    assert gated["dynamic_range"].passed
    assert not gated["qat_int8"].passed
    assert not gate([*reports, near], latency_noise_ms=0.0)["dynamic_range"].passed


def test_float32_alone_ships_and_says_it_was_the_only_variant():
    only = [report("keras", 0.90, 40_000, 1.2), report("float32", 0.90, 10_000, 0.010)]
    chosen = choose_variant(compression_gate(only, CompressionSettings(variants=("float32",)), "accuracy", True), "smallest")
    assert chosen.variant == "float32"
    assert chosen.reasons[-1] == "shipped float32: no other variant is configured"
