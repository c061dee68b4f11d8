"""A name's suite: target and task resolution, labelled rows and their budget, the inferred document,
the text-in-numbers explanation and the validate stage's sentences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.config import ConfigError, PmfConfig, SplitConfig
from tasks.data.load import DataError
from tasks.data.schema import infer_schema
from tasks.data.suite import (
    DataRejected,
    check_split_fits,
    check_target,
    check_unlabelled_budget,
    explain_text_in_numbers,
    failed_list,
    infer_suite_document,
    rejection_message,
    split_off_unlabelled,
    target_and_task,
    unlabelled_line,
    validation_sentence,
)
from tasks.data.validate import ValidationReport


def penguins(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "bill_mm": rng.normal(40, 5, rows),
            "island": rng.choice(["Biscoe", "Dream"], rows),
            "species": np.resize(["Adelie", "Gentoo", "Chinstrap"], rows),
        }
    )


def suite_for(target: str, task: str) -> dict:
    return {"schema": {"target": target, "task": task}}


def test_a_stored_suite_decides_target_and_task_whatever_is_asked():
    stored = suite_for("species", "classification")
    assert target_and_task("p", penguins(), "bill_mm", "regression", stored, None) == ("species", "classification")


def test_a_new_suite_takes_the_wanted_target_and_infers_its_task():
    assert target_and_task("p", penguins(), "bill_mm", None, None, None) == ("bill_mm", "regression")


def test_a_redefined_suite_keeps_the_previous_target_and_task_when_none_is_asked():
    previous = suite_for("island", "classification")
    assert target_and_task("p", penguins(), None, None, None, previous) == ("island", "classification")


def test_a_wanted_task_overrides_the_previous_suites_for_the_same_target():
    previous = suite_for("bill_mm", "classification")
    assert target_and_task("p", penguins(), "bill_mm", "regression", None, previous) == ("bill_mm", "regression")


def test_a_target_missing_from_the_batch_is_left_for_the_suite_to_report():
    assert target_and_task("p", penguins(), "mass_g", None, None, None) == ("mass_g", None)


def test_no_target_anywhere_is_a_config_error_naming_the_flag_and_dataset():
    with pytest.raises(ConfigError, match=r"pass --target COL the first time dataset 'p' is seen"):
        target_and_task("p", penguins(), None, None, None, None)


def test_asking_for_another_target_than_the_stored_suites_is_a_config_error():
    with pytest.raises(ConfigError, match=r"dataset 'p' is set up with target 'species', not 'island': use --update-suite"):
        check_target("p", suite_for("species", "classification"), "island")


@pytest.mark.parametrize("wanted", [None, "species"])
def test_the_stored_target_or_none_asked_passes_the_target_check(wanted):
    assert check_target("p", suite_for("species", "classification"), wanted) is None


def test_unlabelled_rows_are_split_off_and_counted():
    frame = penguins()
    frame.loc[[3, 7], "species"] = None
    labelled, unlabelled = split_off_unlabelled(frame, "species", "classification")
    assert unlabelled == 2
    assert list(labelled.index) == [i for i in frame.index if i not in (3, 7)]


def test_infinite_regression_targets_count_as_unlabelled():
    frame = penguins()
    frame.loc[[1, 2, 4], "bill_mm"] = [np.inf, -np.inf, np.nan]
    labelled, unlabelled = split_off_unlabelled(frame, "bill_mm", "regression")
    assert (unlabelled, len(labelled)) == (3, 57)


def test_a_text_target_for_regression_is_refused_by_name():
    with pytest.raises(DataError) as caught:
        split_off_unlabelled(penguins(), "species", "regression")
    assert caught.value.errors[0]["column"] == "species"


def test_more_unlabelled_rows_than_the_budget_are_refused_naming_the_setting():
    with pytest.raises(
        DataError,
        match=r"^7 of 60 rows \(11\.7%\) have no 'species' value; the budget is 10% \(validation.max_unlabelled_share\)$",
    ) as caught:
        check_unlabelled_budget("species", "classification", 7, 60, 0.1)
    assert [(e["column"], e["expectation"]) for e in caught.value.errors] == [("species", "unlabelled_rows_within_budget")]


def test_unlabelled_rows_within_the_budget_pass_and_are_reported_in_one_line():
    assert check_unlabelled_budget("bill_mm", "regression", 6, 60, 0.1) is None
    assert unlabelled_line("bill_mm", 6, 60, 0.1) == "  set aside 6 row(s) without a 'bill_mm' value (10.0%, budget 10%)"


def test_a_class_too_small_for_every_split_is_refused():
    frame = penguins()
    frame["species"] = frame["species"].replace("Gentoo", "Adelie")
    frame.loc[0, "species"] = "Gentoo"  # one row: it cannot be in train, validation and test
    with pytest.raises(DataError, match="Gentoo"):
        check_split_fits(frame, "species", "classification", SplitConfig())


def test_the_inferred_document_names_its_batch_and_carries_schema_and_expectations():
    document = infer_suite_document("p", penguins(), "species", "classification", "abc123", PmfConfig())
    assert document["name"] == "p"
    assert document["inferred_from_sha256"] == "abc123"
    assert document["schema"]["target"] == "species"
    assert {e["kwargs"].get("column") for e in document["expectations"]} >= {"bill_mm", "island", "species"}


def test_a_numeric_column_that_arrived_as_text_names_the_values_that_are_not_numbers():
    schema = infer_schema(penguins(), "species", "classification")
    batch = penguins().astype({"bill_mm": str})
    batch.loc[0, "bill_mm"] = "n/a"
    failure = {"column": "bill_mm", "expectation": "expect_column_values_to_be_in_type_list", "observed": "object"}
    explained = explain_text_in_numbers(failure, batch, schema)
    assert (
        explained["observed"]
        == "numbers expected but the column arrived as text: 1 distinct value(s) are not numbers, e.g. ['n/a']"
    )


def test_other_failures_are_not_reworded():
    schema = infer_schema(penguins(), "species", "classification")
    failure = {"column": "island", "expectation": "expect_column_values_to_be_in_set", "observed": "Torgersen"}
    assert explain_text_in_numbers(failure, penguins(), schema) == failure


def failures(count: int) -> list[dict]:
    return [{"column": f"c{i}", "expectation": "expect_column_values_to_be_between"} for i in range(count)]


def test_the_failed_list_names_five_and_counts_the_rest():
    assert (
        failed_list([{"column": None, "expectation": "expect_table_row_count_to_be_between"}])
        == "table: table_row_count_to_be_between"
    )
    assert failed_list(failures(7)).endswith("c4: values_to_be_between, and 2 more")


def test_a_rejected_report_says_its_counts_and_failures():
    report = ValidationReport(False, 10, failures(2), [{}] * 8)
    assert rejection_message(DataRejected(report)) == (
        "rejected: 2 of 10 expectations failed (c0: values_to_be_between, c1: values_to_be_between)"
    )
    assert validation_sentence("new.csv", report) == (
        "validated new.csv: 8 of 10 expectations passed, 2 failed (c0: values_to_be_between, c1: values_to_be_between): batch rejected"
    )


def test_a_passing_report_and_an_unusable_file_each_say_so_in_one_line():
    assert (
        validation_sentence("new.csv", ValidationReport(True, 3, [], [{}] * 3)) == "validated new.csv: 3 of 3 expectations passed"
    )
    assert rejection_message(DataError("new.csv is not a table")) == "rejected: new.csv is not a table"
