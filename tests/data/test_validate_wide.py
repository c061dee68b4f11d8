"""Validation reports what GX reports on the whole suite, however wide the table; declared rules are config."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tasks.config import ConfigError, ExpectationRule, ValidationConfig
from tasks.data.schema import infer_schema
from tasks.data.validate import check_declared_rules, declared_expectations, infer_expectations, validate_frame
from tests.support.report_html import report_counts, table_rows

pytestmark = pytest.mark.component


def gx_on_whole_suite(frame: pd.DataFrame, expectations: list[dict]) -> tuple[bool, int, list[tuple]]:
    """The reference: plain GX running every expectation of the suite (the way validation worked before)."""
    import great_expectations as gx
    from great_expectations.expectations.registry import get_expectation_impl

    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("ref").add_dataframe_asset("ref").add_batch_definition_whole_dataframe("b")
    suite = context.suites.add(
        gx.ExpectationSuite(name="ref", expectations=[get_expectation_impl(e["type"])(**e["kwargs"]) for e in expectations])
    )
    result = context.validation_definitions.add(gx.ValidationDefinition(name="ref", data=batch, suite=suite)).run(
        batch_parameters={"dataframe": frame}
    )
    failures = []
    for r in result.results:
        if not r.success:
            details = r.result or {}
            observed = details.get("observed_value", details.get("unexpected_count"))
            failures.append((r.expectation_config.kwargs.get("column"), r.expectation_config.type, observed))
    return bool(result.success), len(result.results), failures


def ours(report) -> list[tuple]:
    return [
        (
            f["column"],
            f["expectation"],
            f["observed"].get("unexpected_count") if isinstance(f["observed"], dict) else f["observed"],
        )
        for f in report.failures
    ]


def mixed_table(rows: int, numeric: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, numeric)), columns=[f"n{i}" for i in range(numeric)])
    frame["count"] = rng.integers(0, 100, rows)
    frame["flag"] = rng.random(rows) < 0.5
    frame["colour"] = rng.choice(np.array(["red", "green", "blue"]), rows)
    frame["gappy"] = np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows))
    frame["day"] = pd.date_range("2024-01-01", periods=rows, freq="h").astype("str")
    frame["label"] = rng.choice(np.array([0, 1, 2]), rows)
    return frame


@pytest.fixture(scope="module")
def reference():
    frame = mixed_table(400, 6)
    schema = infer_schema(frame, "label", "classification")
    rules = ValidationConfig(
        rules=(
            ExpectationRule(expectation="ExpectColumnMeanToBeBetween", kwargs={"column": "n0", "min_value": -5, "max_value": 5}),
        )
    )
    return frame, infer_expectations(frame, schema, ValidationConfig()) + declared_expectations(rules)


def broken(frame: pd.DataFrame) -> pd.DataFrame:
    """One batch with every kind of failure the inferred suite knows, beside many columns that pass."""
    bad = frame.copy()
    bad.loc[0, "n1"] = 1e6  # out of range
    bad["n2"] = bad["n2"].astype("str").where(bad.index != 5, "oops")  # text in a numeric column
    bad.loc[3, "n3"] = np.inf  # infinite
    bad.loc[bad.index[:200], "gappy"] = np.nan  # over the null budget
    bad.loc[7, "colour"] = "purple"  # unseen category
    bad.loc[8, "count"] = -50  # integer out of range
    bad.loc[9, "label"] = 7  # unseen class
    bad.loc[bad.index[:5], "label"] = np.nan  # missing labels
    bad.loc[11, "day"] = "not a date"  # unparseable date
    bad["n0"] = bad["n0"] + 100  # declared rule: mean out of range
    return bad


def test_report_equals_gx_on_the_whole_suite_for_every_kind_of_failure(reference):
    frame, suite = reference
    bad = broken(frame)
    report = validate_frame(bad, suite, "mixed")
    success, evaluated, failures = gx_on_whole_suite(bad, suite)
    assert (report.success, report.evaluated) == (success, evaluated) == (False, len(suite))
    assert ours(report) == failures
    assert {c for c, _, _ in failures} >= {"n0", "n1", "n2", "n3", "gappy", "colour", "count", "label", "day"}


def test_clean_batch_report_equals_gx_on_the_whole_suite(reference):
    frame, suite = reference
    report = validate_frame(frame, suite, "mixed")
    assert (report.success, report.evaluated, report.failures) == (True, len(suite), [])
    assert gx_on_whole_suite(frame, suite) == (True, len(suite), [])


def test_failures_carry_what_gx_observed(reference):
    frame, suite = reference
    report = validate_frame(broken(frame), suite, "mixed")
    colour = next(f for f in report.failures if f["column"] == "colour")
    assert colour["observed"] == {"unexpected_count": 1, "unexpected_percent": 0.25, "partial_unexpected_list": ["purple"]}
    assert colour["expected"] == {"value_set": ["blue", "green", "red"]}


def test_wide_table_counts_every_expectation_and_names_each_failure(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(2_000, 300)), columns=[f"c{i}" for i in range(300)])
    frame["label"] = rng.choice(np.array(["a", "b"]), 2_000)
    schema = infer_schema(frame, "label", None)
    suite = infer_expectations(frame, schema, ValidationConfig())
    assert len(suite) == 4 * 300 + 4
    bad = frame.drop(columns=["c10"])
    bad.loc[0, "c20"] = 1e9
    bad.loc[bad.index[:500], "c30"] = np.nan
    report = validate_frame(bad, suite, "wide", tmp_path / "docs")
    assert report.evaluated == len(suite)
    assert not report.success
    assert [(f["column"], f["expectation"]) for f in report.failures] == [
        ("c10", "expect_column_to_exist"),
        ("c20", "expect_column_values_to_be_between"),
        ("c30", "expect_column_values_to_not_be_null"),
    ]
    # c10's other three expectations fail with it: six failed expectations, three lines.
    assert (report.failed, len(report.passed)) == (6, len(suite) - 6)
    # The report page lists the whole suite's result, not only what GX had to compute itself.
    page = (tmp_path / "docs" / "validation_report.html").read_text(encoding="utf-8")
    assert report_counts(page) == {"evaluated": len(suite), "passed": len(suite) - 6, "failed": 6}
    assert sorted(row[:2] for row in table_rows(page, "failed")) == [
        ["c10", "expect_column_to_exist"],
        ["c10", "expect_column_values_to_be_between"],
        ["c10", "expect_column_values_to_be_in_type_list"],
        ["c10", "expect_column_values_to_not_be_null"],
        ["c20", "expect_column_values_to_be_between"],
        ["c30", "expect_column_values_to_not_be_null"],
    ]
    assert len(table_rows(page, "passed")) == len(suite) - 6


def test_declared_rule_on_a_column_the_batch_lacks_rejects_it_by_name(reference):
    frame, suite = reference
    rule = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "body_mas_g", "min_value": 0}}
    report = validate_frame(frame, [*suite, rule], "mixed")
    assert not report.success
    assert [(f["column"], f["observed"]) for f in report.failures] == [("body_mas_g", "column is missing")]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (ExpectationRule(expectation="NoSuchThing"), "validation.rules[1] (NoSuchThing): unknown Great Expectations expectation"),
        (
            ExpectationRule(expectation="ExpectColumnValuesToBeBetwen", kwargs={"column": "x", "min_value": 1}),
            "did you mean ExpectColumnValuesToBeBetween?",
        ),
        (
            ExpectationRule(expectation="ExpectColumnValuesToBeBetween", kwargs={"column": "x", "min_value": "low"}),
            "validation.rules[1] (ExpectColumnValuesToBeBetween): min_value: value is not a valid float",
        ),
        (
            ExpectationRule(expectation="expect_column_values_to_be_in_set", kwargs={"value_set": ["a"]}),
            "validation.rules[1] (expect_column_values_to_be_in_set): column: field required",
        ),
        (
            ExpectationRule(expectation="ExpectColumnValuesToBeInSet", kwargs={"column": "x", "value_set": ["a"], "most": 0.9}),
            "most: extra fields not permitted",
        ),
    ],
)
def test_invalid_declared_rules_are_config_errors_naming_the_rule(rule, message):
    good = ExpectationRule(expectation="ExpectColumnValuesToNotBeNull", kwargs={"column": "x"})
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_declared_rules(ValidationConfig(rules=(good, rule)))


def test_valid_declared_rules_pass_the_check():
    check_declared_rules(
        ValidationConfig(
            rules=(
                ExpectationRule(
                    expectation="ExpectColumnValuesToBeBetween", kwargs={"column": "x", "min_value": 0, "max_value": 3}
                ),
                ExpectationRule(expectation="expect_table_row_count_to_be_between", kwargs={"min_value": 1}),
            )
        )
    )
