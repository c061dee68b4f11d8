"""The validation report: one self-contained HTML page whose counts are the terminal's, through the real CLI.

Real `pmf validate` in-process (Prefect harness, MLflow store, GX); the page is read back from the
validate run's artifacts, as MLflow's artifact view would show it.
"""

from __future__ import annotations

import contextlib
import io
import json
import re

import numpy as np
import pandas as pd
import pytest

from tasks.config import ValidationConfig
from tasks.data.load import read_table
from tasks.data.schema import infer_schema
from tasks.data.validate import class_balance_checks, infer_expectations, validate_frame
from tasks.data.validation_report import render_report
from tests.conftest import DATA
from tests.flows.helpers import pmf
from tests.support.report_html import external_references, report_counts, table_rows

PAGE = "validation/validation_report.html"


def validate(*args: str) -> tuple[int, dict, str]:
    """`pmf validate ARGS --json`: exit code, JSON result and the terminal's stage lines (stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code, result = pmf("validate", *args)
    return code, result, err.getvalue()


def validate_run(client, result: dict):
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=f"tags.`mlflow.parentRunId` = '{result['mlflow_run_id']}'")
    return next(r for r in runs if r.data.tags.get("pmf.stage") == "validate")


def report_page(client, result: dict, tmp_path) -> str:
    run = validate_run(client, result)
    path = client.download_artifacts(run.info.run_id, PAGE, str(tmp_path))
    with open(path, encoding="utf-8") as page:
        return page.read()


def terminal_counts(stderr: str) -> tuple[int, int]:
    passed, evaluated = re.search(r"(\d+)/(\d+) expectations passed", stderr).groups()
    return int(passed), int(evaluated)


def broken_penguins(tmp_path) -> str:
    """Failures of both kinds: a missing column and an out-of-range value (GX), a class too small (pmf's own)."""
    frame = read_table(DATA / "penguins.csv")
    chinstrap = frame.index[frame["species"] == "Chinstrap"]
    bad = frame.drop(index=chinstrap[4:]).drop(columns=["island"]).reset_index(drop=True)
    bad.loc[0, "body_mass_g"] = 99_999
    path = tmp_path / "penguins_bad.csv"
    bad.to_csv(path, index=False)
    return str(path)


@pytest.mark.slow
@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_rejected_batch_report_shows_the_terminals_counts_and_every_failure(mlflow_client, tmp_path):
    code, first, stderr = validate("--data", str(DATA / "penguins.csv"), "--name", "penguins", "--target", "species")
    assert code == 0, first
    page = report_page(mlflow_client, first, tmp_path / "first")
    passed, evaluated = terminal_counts(stderr)
    assert (
        report_counts(page)
        == {"evaluated": evaluated, "passed": passed, "failed": 0}
        == {"evaluated": first["expectations"], "passed": first["expectations"], "failed": first["failed"]}
    )
    assert "Accepted" in page
    assert external_references(page) == []

    code, result, stderr = validate("--data", broken_penguins(tmp_path), "--name", "penguins")
    assert code == 3
    assert result["status"] == "data_rejected"
    page = report_page(mlflow_client, result, tmp_path / "rejected")
    passed, evaluated = terminal_counts(stderr)
    # island's three expectations, body_mass_g's range and pmf's rows-per-class check fail; the same checks run.
    assert (evaluated - passed, evaluated) == (5, first["expectations"])
    assert report_counts(page) == {"evaluated": evaluated, "passed": passed, "failed": evaluated - passed}
    assert (result["expectations"], result["failed"]) == (evaluated, evaluated - passed)
    failed = {row[0] + " " + row[1]: row[2:] for row in table_rows(page, "failed")}
    assert sorted(failed) == [
        "body_mass_g expect_column_values_to_be_between",
        "island expect_column_to_exist",
        "island expect_column_values_to_be_in_set",
        "island expect_column_values_to_not_be_null",
        "species at_least_5_rows_per_class pmf",
    ]
    # Same order as the terminal's rejection lines; island's line stands for its three rows.
    terminal_order = [f"{e['column']} {name}" for e in result["errors"] for name in [e["expectation"], *e.get("also_failed", [])]]
    assert [key.removesuffix(" pmf") for key in failed] == terminal_order
    expected, observed = failed["body_mass_g expect_column_values_to_be_between"]
    assert expected.startswith("min_value=")
    assert observed.startswith("1 row (")
    assert "99999" in observed
    assert failed["species at_least_5_rows_per_class pmf"] == ["min_rows_per_class=5", "Chinstrap: 4"]
    assert len(table_rows(page, "passed")) == passed
    run = validate_run(mlflow_client, result)
    assert (run.data.metrics["expectations"], run.data.metrics["failed_expectations"]) == (evaluated, evaluated - passed)
    assert external_references(page) == []


@pytest.mark.slow
@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_regression_batch_counts_no_class_balance_check(mlflow_client, tmp_path):
    code, result, stderr = validate("--data", str(DATA / "diabetes.csv"), "--name", "diabetes", "--target", "progression")
    assert code == 0, result
    run = validate_run(mlflow_client, result)
    suite = mlflow_client.download_artifacts(run.info.run_id, "suite/suite.json", str(tmp_path))
    with open(suite, encoding="utf-8") as stored:
        expectations = len(json.load(stored)["expectations"])
    assert terminal_counts(stderr) == (expectations, expectations) == (result["expectations"], result["expectations"])
    assert report_counts(report_page(mlflow_client, result, tmp_path)) == {
        "evaluated": expectations,
        "passed": expectations,
        "failed": 0,
    }


@pytest.mark.component
def test_values_from_the_data_are_text_never_markup_or_links():
    frame = pd.DataFrame({"x": np.arange(30.0), "y": ["a", "b", "c"] * 10})
    schema = infer_schema(frame, "y", "classification")
    suite = infer_expectations(frame, schema, ValidationConfig())
    bad = frame.assign(y=["<script>alert(1)</script>", "https://example.com/x.js", "c"] * 10)
    report = validate_frame(bad, suite, "odd").with_checks(class_balance_checks(bad, schema, 5))
    page = render_report(report, "<b>odd</b> name", {"data": "//server/share/batch.csv"})
    assert external_references(page) == []
    assert "<script" not in page
    assert "<b>" not in page
    assert "<b>odd</b> name · validation report" in page.replace("&lt;", "<").replace("&gt;", ">")
    observed = table_rows(page, "failed")[0][3]
    assert "https://example.com/x.js" in observed
    assert "<script>alert(1)</script>" in observed
