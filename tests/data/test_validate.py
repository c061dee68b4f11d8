"""Data tests: an inferred suite accepts its reference batch and rejects each kind of bad batch by name."""

import numpy as np
import pandas as pd
import pytest

from tasks.config import ExpectationRule, ValidationConfig
from tasks.data.load import read_table
from tasks.data.schema import infer_schema
from tasks.data.validate import class_balance_failures, declared_expectations, infer_expectations, validate_frame
from tests.conftest import DATA
from tests.support.report_html import report_counts, table_rows

pytestmark = pytest.mark.component


@pytest.fixture(scope="module")
def reference():
    frame = read_table(DATA / "penguins.csv")
    schema = infer_schema(frame, "species", None)
    return frame, schema, infer_expectations(frame, schema, ValidationConfig())


def failed(report):
    return {(f["column"], f["expectation"]) for f in report.failures}


def test_reference_batch_passes_its_own_suite(reference):
    frame, _, suite = reference
    report = validate_frame(frame, suite, "penguins")
    assert report.success
    assert report.failures == []
    assert report.evaluated == len(suite)


def test_new_clean_batch_passes(reference):
    _, _, suite = reference
    assert validate_frame(read_table(DATA / "batches" / "penguins_new.csv"), suite, "penguins").success


def test_missing_column_is_reported_once_as_missing(reference):
    frame, _, suite = reference
    report = validate_frame(frame.drop(columns=["island"]), suite, "penguins")
    assert not report.success
    island = [f for f in report.failures if f["column"] == "island"]
    # Its other expectations are folded into the one line, named, so the failures still account for each.
    assert island == [
        {
            "column": "island",
            "expectation": "expect_column_to_exist",
            "observed": "column is missing",
            "expected": {},
            "also_failed": ["expect_column_values_to_be_in_set", "expect_column_values_to_not_be_null"],
        }
    ]
    assert (report.evaluated, report.failed, len(report.passed)) == (len(suite), 3, len(suite) - 3)


def test_wrong_type_out_of_range_and_unseen_label_are_each_named(reference):
    frame, _, suite = reference
    bad = frame.copy()
    bad["bill_length_mm"] = bad["bill_length_mm"].astype("str").where(bad.index != 3, "long")
    bad.loc[0, "body_mass_g"] = 99_999
    bad.loc[1, "species"] = "Emperor"
    report = validate_frame(bad, suite, "penguins")
    names = failed(report)
    assert ("bill_length_mm", "expect_column_values_to_be_in_type_list") in names
    assert ("body_mass_g", "expect_column_values_to_be_between") in names
    assert ("species", "expect_column_values_to_be_in_set") in names
    label = next(f for f in report.failures if f["column"] == "species")
    assert "Emperor" in label["observed"]["partial_unexpected_list"]


def test_null_budget(reference):
    frame, _, suite = reference
    bad = frame.copy()
    bad.loc[bad.index[:100], "flipper_length_mm"] = np.nan
    assert ("flipper_length_mm", "expect_column_values_to_not_be_null") in failed(validate_frame(bad, suite, "penguins"))


def test_declared_rules_join_the_suite(reference):
    frame, _, suite = reference
    rules = ValidationConfig(
        rules=(ExpectationRule(expectation="ExpectColumnValuesToBeBetween", kwargs={"column": "body_mass_g", "min_value": 4000}),)
    )
    report = validate_frame(frame, suite + declared_expectations(rules), "penguins")
    assert ("body_mass_g", "expect_column_values_to_be_between") in failed(report)


def test_unknown_declared_expectation_is_a_clear_error(reference):
    frame, _, _ = reference
    with pytest.raises(ValueError, match="unknown Great Expectations expectation 'expect_magic'"):
        validate_frame(frame, [{"type": "expect_magic", "kwargs": {}}], "penguins")


def test_class_balance_needs_two_classes_with_enough_rows():
    frame = pd.DataFrame({"x": np.arange(40.0) % 7, "y": ["a"] * 38 + ["b"] * 2})
    schema = infer_schema(frame, "y", None)
    assert class_balance_failures(frame, schema, 5)[0]["observed"] == {"b": 2}
    one_class = frame.assign(y="a")
    assert class_balance_failures(one_class, schema, 5)[0]["expectation"] == "at_least_two_classes"


def test_the_report_page_is_written_with_every_check(reference, tmp_path):
    frame, _, suite = reference
    report = validate_frame(frame, suite, "penguins", tmp_path / "docs")
    page = (tmp_path / "docs" / "validation_report.html").read_text(encoding="utf-8")
    assert (
        report_counts(page)
        == {"evaluated": len(suite), "passed": len(suite), "failed": 0}
        == {"evaluated": report.evaluated, "passed": len(report.passed), "failed": report.failed}
    )
    assert table_rows(page, "failed") == []
    assert len(table_rows(page, "passed")) == len(suite)
    assert [p.name for p in (tmp_path / "docs").iterdir()] == ["validation_report.html"]


def test_a_first_batch_with_a_few_unparseable_dates_passes_the_suite_inferred_from_it():
    dates = [f"2024-01-{d:02d}" for d in range(1, 29)] * 10
    dates[5] = "2024-13-45"  # looks like a date, is not one: under 5 % of the column, so still a date column
    frame = pd.DataFrame({"when": dates, "x": range(280), "y": ["a", "b"] * 140})
    schema = infer_schema(frame, "y", None, (), 50)
    assert schema.datetime == ("when",)
    report = validate_frame(frame, infer_expectations(frame, schema, ValidationConfig()), "dates")
    assert report.success, report.failures
    worse = frame.assign(when=["not a date"] * 40 + dates[40:])
    rejected = validate_frame(worse, infer_expectations(frame, schema, ValidationConfig()), "dates")
    assert [f["column"] for f in rejected.failures] == ["when"]
