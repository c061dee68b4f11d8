"""Bad input: a clear message naming the problem, the documented exit code, and an untouched registry."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA
from tests.flows.helpers import child_runs, pmf, registry_state

pytestmark = pytest.mark.slow

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
    assert code == 0
    assert first["status"] == "valid"
    assert first["suite_version"] == 1

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
    assert code == 0
    assert again["suite_version"] == 1


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(
    ("case", "content", "message"),
    [
        ("empty.csv", b"", "is empty"),
        ("header_only.csv", b"a,b,species\n", "no rows"),
        ("binary.csv", bytes(range(256)) * 8, "binary file"),
        ("one_column.csv", b"just text\nmore text\n", "1 column"),
    ],
)
def test_files_that_are_not_tables_exit_3_with_the_file_named(mlflow_client, tmp_path, case, content, message):
    path = write(tmp_path, case, raw=content)
    code, result = pmf("run", "--data", path, "--target", "species")
    assert code == 3
    assert result["status"] == "data_rejected"
    assert message in result["errors"][0]["observed"]
    assert case in result["errors"][0]["observed"]
    assert registry_state(mlflow_client) == {}


@pytest.mark.usefixtures("prefect_harness")
def test_target_not_in_the_file_is_rejected(mlflow_client):
    code, result = pmf("run", "--data", str(DATA / "penguins.csv"), "--target", "wingspan", "--name", "x")
    assert code == 3
    assert result["errors"][0]["column"] == "wingspan"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--data", "/no/such/file.csv", "--target", "y"], "does not exist"),
        (["run", "--set", "train.epochz=3"], "train.epochz: unknown key"),
        (["run", "--set", "train.epochs"], "expected key=value"),
        (["run", "--name", "bad/name"], "invalid name"),
    ],
)
def test_usage_errors_exit_2_before_anything_runs(workspace, args, message):
    code, result = pmf(*args)
    assert code == 2
    assert result["status"] == "usage_error"
    assert message in result["error"]


@pytest.mark.usefixtures("prefect_harness")
def test_first_run_without_a_target_is_a_usage_error(mlflow_client, tmp_path):
    code, result = pmf("run", "--data", write(tmp_path, "new.csv", PENGUINS))
    assert code == 2
    assert "--target" in result["error"]
    assert registry_state(mlflow_client) == {}


def test_argparse_usage_errors_exit_2(capsys):
    from flows.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--task", "clustering"])
    assert exit_info.value.code == 2


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(
    ("case", "content", "message"),
    [
        (
            "penguins.csv.gz",
            gzip.compress(PENGUINS.to_csv(index=False).encode()),
            "gzip-compressed: compressed files are not supported; decompress it",
        ),
        ("renamed_gzip.csv", gzip.compress(PENGUINS.to_csv(index=False).encode()), "gzip-compressed"),
        ("penguins.zip", b"PK\x03\x04" + bytes(60) + b"penguins.csv", "zip-compressed"),
        (
            "book.xlsx",
            b"PK\x03\x04" + bytes(26) + b"[Content_Types].xml",
            "Excel workbook: not supported; export the sheet to CSV",
        ),
        ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "Excel workbook"),
        (
            "latin1.csv",
            "island,species\nBiscoe,Adelie\nTorgersen,Adélie\n".encode("latin-1"),
            "not UTF-8 text: byte 0xe9 at byte position 41 (line 3) cannot be decoded; re-encode the file as UTF-8",
        ),
        ("utf16.csv", "island,species\nBiscoe,Adelie\n".encode("utf-16"), "UTF-16 text: re-encode it as UTF-8"),
    ],
)
def test_files_in_formats_pmf_does_not_read_say_what_to_do(mlflow_client, tmp_path, case, content, message):
    code, result = pmf("run", "--data", write(tmp_path, case, raw=content), "--target", "species", "--name", "birds")
    assert code == 3
    assert result["status"] == "data_rejected"
    assert message in result["errors"][0]["observed"]
    assert case in result["errors"][0]["observed"]
    assert registry_state(mlflow_client) == {}


@pytest.mark.usefixtures("prefect_harness")
def test_a_numeric_column_arriving_as_text_is_named_with_the_offending_values(mlflow_client, tmp_path):
    code, _ = pmf("validate", "--data", str(DATA / "penguins.csv"), "--target", "species", "--name", "birds")
    assert code == 0
    batch = PENGUINS.astype({"body_mass_g": "str"})
    batch.loc[[3, 7], "body_mass_g"] = ["4,150", "heavy"]
    code, result = pmf("validate", "--data", write(tmp_path, "texty.csv", batch), "--name", "birds")
    assert code == 3
    failure = next(
        e
        for e in result["errors"]
        if (e["column"], e["expectation"]) == ("body_mass_g", "expect_column_values_to_be_in_type_list")
    )
    assert failure["observed"].startswith("numbers expected but the column arrived as text: 2 distinct value(s) are not numbers")
    assert "'4,150'" in failure["observed"]
    assert "'heavy'" in failure["observed"]


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(
    ("frame", "args", "expectation", "message"),
    [
        (
            PENGUINS.assign(when=pd.date_range("2024-01-01", periods=len(PENGUINS)).strftime("%Y-%m-%d")),
            ["--target", "when"],
            "target_is_not_a_date",
            "'when' holds dates",
        ),
        (
            PENGUINS.assign(score=np.where(np.arange(len(PENGUINS)) % 2, np.inf, np.nan)),
            ["--target", "score", "--task", "regression"],
            "target_has_finite_values",
            "'score' has no finite value in any row",
        ),
        (
            PENGUINS.head(60).assign(kind=[f"k{i}" for i in range(20)] * 3),
            ["--target", "kind", "--set", "validation.min_rows_per_class=1"],
            "classes_fit_the_split",
            "20 classes but the validation split holds only 10 of 60 rows",
        ),
    ],
)
def test_targets_the_task_cannot_learn_from_are_refused_before_any_work(
    mlflow_client, tmp_path, frame, args, expectation, message
):
    code, result = pmf("run", "--data", write(tmp_path, "odd.csv", frame), *args)
    assert code == 3
    assert result["status"] == "data_rejected"
    assert [e["expectation"] for e in result["errors"]][:1] == [expectation]
    assert message in result["errors"][0]["observed"]
    assert set(child_runs(mlflow_client, result)) == {"validate"}
    # Nothing stored for the name: no suite, no config (their experiment NAME.pmf-store was never created).
    assert mlflow_client.get_experiment_by_name(f"{result['registered_model']}.pmf-store") is None


@pytest.mark.usefixtures("prefect_harness")
def test_nested_parquet_columns_are_dropped_with_a_reason(mlflow_client, tmp_path):
    path = tmp_path / "nested.parquet"
    PENGUINS.assign(tags=[["a", "b"]] * len(PENGUINS), where=[{"x": 1.0, "y": 2.0}] * len(PENGUINS)).to_parquet(path)
    code, result = pmf("validate", "--data", str(path), "--target", "species")
    assert code == 0, result
    assert result["status"] == "valid", result
    from tasks.registry.datasets import latest_suite

    dropped = latest_suite(mlflow_client.get_experiment_by_name("nested").experiment_id)[1]["schema"]["dropped"]
    assert set(dropped) == {"tags", "where"}
    assert all("nested values (lists or structs)" in r for r in dropped.values())


@pytest.mark.usefixtures("prefect_harness")
def test_split_sizes_that_leave_no_rows_are_a_config_error_naming_the_setting(mlflow_client):
    code, result = pmf("run", "--set", "split.test_size=0.999")
    assert code == 2
    assert result["status"] == "usage_error"
    assert "split.test_size=0.999 and split.validation_size=0.2 leave no train and no validation rows" in result["error"]
    assert registry_state(mlflow_client) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--data", str(DATA / "penguins.csv"), "--name", ".."], "--name: invalid name '..'"),
        (["run", "--data", str(DATA / "penguins.csv"), "--name", "."], "--name: invalid name '.'"),
        (["validate", "--data", str(DATA / "penguins.csv"), "--name=_x"], "--name: invalid name '_x'"),
        (["run", "--set", "name=../up"], "invalid name '../up'"),
    ],
)
def test_names_off_the_allow_list_exit_2_before_anything_is_written(workspace, args, message):
    code, result = pmf(*args)
    assert code == 2
    assert result["status"] == "usage_error"
    assert message in result["error"]
    assert not (workspace / "mlflow.db").exists()
    assert not (workspace / "suites").exists()
    assert not (workspace / "v1.json").exists()


def test_a_file_stem_that_is_not_a_valid_name_asks_for_name(workspace, tmp_path):
    path = write(tmp_path, "sales (copy).csv", PENGUINS)
    code, result = pmf("run", "--data", path, "--target", "species")
    assert code == 2
    assert "the data file 'sales (copy).csv': invalid name 'sales (copy)'" in result["error"]
    assert result["error"].endswith("pass --name NAME")
    assert not (workspace / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "is a folder: pass the path of a YAML file, e.g. data/penguins.yaml"),
        ("train:\n  epochs: 5 # café\n".encode("latin-1"), "is not UTF-8 text (byte 0xe9 at position 24): re-encode it as UTF-8"),
    ],
)
def test_config_files_that_cannot_be_read_exit_2_naming_the_file(workspace, tmp_path, content, message):
    path = tmp_path / "conf.yaml"
    path.mkdir() if content is None else path.write_bytes(content)
    code, result = pmf("run", "--config", str(path))
    assert code == 2
    assert result["error"] == f"config file {path} {message}"
