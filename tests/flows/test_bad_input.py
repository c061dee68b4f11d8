"""Bad input: a clear message naming the problem, the documented exit code, and an untouched registry."""
from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import DATA
from tests.flows.helpers import pmf, registry_state

PENGUINS = pd.read_csv(DATA / "penguins.csv")


def write(tmp_path, name, frame=None, raw: bytes | None = None):
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.usefixtures("prefect_harness")
def test_batches_that_break_the_stored_suite_are_rejected_by_name(mlflow_client, tmp_path):
    code, first = pmf("validate", "--data", str(DATA / "penguins.csv"), "--target", "species", "--name", "birds")
    assert code == 0 and first["status"] == "valid" and first["suite_version"] == 1

    cases = {
        "missing_column": (PENGUINS.drop(columns=["flipper_length_mm"]), ("flipper_length_mm", "expect_column_to_exist")),
        "wrong_type": (PENGUINS.assign(body_mass_g="heavy"), ("body_mass_g", "expect_column_values_to_be_in_type_list")),
        "unseen_label": (PENGUINS.assign(species="Emperor"), ("species", "expect_column_values_to_be_in_set")),
        "missing_target": (PENGUINS.drop(columns=["species"]), ("species", "expect_column_to_exist")),
    }
    for case, (frame, expected) in cases.items():
        code, result = pmf("run", "--data", write(tmp_path, f"{case}.csv", frame), "--name", "birds")
        assert code == 3, case
        assert expected in {(e["column"], e["expectation"]) for e in result["errors"]}, (case, result["errors"])
    assert registry_state(mlflow_client) == {}
    # The suite did not change because of the bad batches.
    code, again = pmf("validate", "--data", str(DATA / "penguins.csv"), "--name", "birds")
    assert code == 0 and again["suite_version"] == 1


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("case, content, message", [
    ("empty.csv", b"", "is empty"),
    ("header_only.csv", b"a,b,species\n", "no rows"),
    ("binary.csv", bytes(range(256)) * 8, "binary file"),
    ("one_column.csv", b"just text\nmore text\n", "1 column"),
])
def test_files_that_are_not_tables_exit_3_with_the_file_named(mlflow_client, tmp_path, case, content, message):
    path = write(tmp_path, case, raw=content)
    code, result = pmf("run", "--data", path, "--target", "species")
    assert code == 3 and result["status"] == "data_rejected"
    assert message in result["errors"][0]["observed"] and case in result["errors"][0]["observed"]
    assert registry_state(mlflow_client) == {}


@pytest.mark.usefixtures("prefect_harness")
def test_target_not_in_the_file_is_rejected(mlflow_client):
    code, result = pmf("run", "--data", str(DATA / "penguins.csv"), "--target", "wingspan", "--name", "x")
    assert code == 3 and result["errors"][0]["column"] == "wingspan"


@pytest.mark.parametrize("args, message", [
    (["run", "--data", "/no/such/file.csv", "--target", "y"], "does not exist"),
    (["run", "--set", "train.epochz=3"], "train.epochz: unknown key"),
    (["run", "--set", "train.epochs"], "expected key=value"),
    (["run", "--name", "bad/name"], "invalid name"),
])
def test_usage_errors_exit_2_before_anything_runs(workspace, args, message):
    code, result = pmf(*args)
    assert code == 2 and result["status"] == "usage_error" and message in result["error"]


@pytest.mark.usefixtures("prefect_harness")
def test_first_run_without_a_target_is_a_usage_error(mlflow_client, tmp_path):
    code, result = pmf("run", "--data", write(tmp_path, "new.csv", PENGUINS))
    assert code == 2 and "--target" in result["error"]
    assert registry_state(mlflow_client) == {}


def test_argparse_usage_errors_exit_2(capsys):
    from flows.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--task", "clustering"])
    assert exit_info.value.code == 2
