"""The gate and the shipping policy on hand-made reports: every rule, every reason, no TensorFlow."""
import pytest

from tasks.compression.gate import choose_variant, comparison_table, compression_gate, mark_shipped, tradeoff_plot
from tasks.compression.measure import VariantReport, failed_report
from tasks.compression.settings import CompressionSettings


def report(variant, accuracy, gzip_bytes, p50, size=None):
    return VariantReport(variant=variant, metrics={"accuracy": accuracy}, bytes=size or gzip_bytes + 100, gzip_bytes=gzip_bytes, latency_ms_p50=p50, latency_ms_p99=p50 * 2)


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
    assert gated["int8"].passed and gated["float16"].passed
    assert not gated["pruned_int8"].passed
    assert "accuracy drop 2.00 pp > budget 1.00 pp" in gated["pruned_int8"].reasons
    assert gated["float32"].passed and gated["float32"].reasons == ["float32 is the reference"]
    assert gated["keras"].passed is None


def test_zero_budget_rejects_every_variant_that_lost_anything(reports):
    # Budget 0 means "no loss allowed": each lossy variant here lost accuracy, so each is rejected
    # and says by how much. (A variant that ties float32 would pass this rule: see the next test.)
    lossy = [r.model_copy(update={"metrics": {"accuracy": 0.90 - 0.001 * (i + 1)}}) if r.variant not in ("float32", "keras") else r for i, r in enumerate(reports)]
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
        "gzip 12000 B >= float32 gzip 10000 B",
        "p50 0.0200 ms > 0.0130 ms (float32 p50 x 1.10 + 0.0020 ms)",
    ]


def test_error_metrics_use_a_relative_budget():
    rows = [report("float32", 0.0, 10_000, 0.01), report("int8", 0.0, 3_000, 0.005), report("float16", 0.0, 5_000, 0.01)]
    rows = [r.model_copy(update={"metrics": {"mse": m}}) for r, m in zip(rows, (0.50, 0.52, 0.53))]
    gated = {r.variant: r for r in compression_gate(rows, CompressionSettings(), "mse", higher_is_better=False)}
    assert gated["int8"].passed and "mse relative drop 4.00% <= budget 5.00%" in gated["int8"].reasons
    assert not gated["float16"].passed and "mse relative drop 6.00% > budget 5.00%" in gated["float16"].reasons


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
    assert chosen.variant == expected and chosen.shipped
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
    assert chosen.variant == "float32" and chosen.shipped
    assert chosen.reasons[-1].startswith("shipped float32: no lossy variant passed the gate")


def test_the_control_student_is_never_shipped(reports):
    control = report("student_scratch_int8", 0.90, 100, 0.001)
    assert choose_variant(list(gate([*reports, control]).values()), "smallest").variant == "int8"


def test_table_ratios_are_reference_over_variant(reports):
    table = comparison_table(list(gate(reports).values()), "accuracy").set_index("variant")
    assert table.loc["int8", "gzip_ratio_vs_float32"] == pytest.approx(10_000 / 3_000)
    assert table.loc["int8", "latency_ratio_vs_keras"] == pytest.approx(1.2 / 0.004)
    assert table.loc["pruned_int8", "metric_delta"] == pytest.approx(-0.02)


def test_tradeoff_plot_writes_a_png(reports, tmp_path):
    path = tradeoff_plot(reports, tmp_path / "tradeoff.png", "accuracy")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
    assert chosen.variant == "float32" and chosen.reasons[-1] == "shipped float32: no other variant is configured"
