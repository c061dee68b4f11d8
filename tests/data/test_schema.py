import numpy as np
import pandas as pd
import pytest

from tasks.data.load import DataError
from tasks.data.schema import Schema, infer_schema, infer_task
from tests.support.frames import mixed_table


def test_roles_cover_what_real_tables_hold():
    schema = infer_schema(mixed_table(), "label", None)
    assert schema.task == "classification"
    assert set(schema.numeric) == {"amount", "count", "flag"}
    assert schema.categorical == ("country",)
    assert schema.datetime == ("signup",)
    assert set(schema.dropped) == {"row_id", "comment", "constant", "empty"}
    assert "ID" in schema.dropped["row_id"]
    assert "free text" in schema.dropped["comment"]
    assert schema.classes == ("no", "yes")


def test_drop_columns_from_config_are_reported():
    schema = infer_schema(mixed_table(), "label", None, drop=("amount",))
    assert "amount" not in schema.features
    assert "drop_columns" in schema.dropped["amount"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pd.Series(["a", "b"]), "classification"),
        (pd.Series([0, 1, 1, 0]), "classification"),
        (pd.Series([1.0, 2.0, 3.0]), "classification"),
        (pd.Series(np.linspace(0, 1, 50)), "regression"),
        (pd.Series(np.arange(100)), "regression"),
    ],
)
def test_task_inference(values, expected):
    assert infer_task(values) == expected


def test_missing_target_names_the_column_and_lists_columns():
    with pytest.raises(DataError, match="target column 'nope' is not in the data; columns are: row_id"):
        infer_schema(mixed_table(), "nope", None)


def test_schema_round_trips_through_dict():
    schema = infer_schema(mixed_table(), "label", None)
    assert Schema.from_dict(schema.to_dict()) == schema


def test_images_keep_constant_pixels():
    frame = pd.DataFrame({"p0": [0] * 30, "p1": [3, 1, 2] * 10, "y": [0, 1] * 15})
    assert "p0" in infer_schema(frame, "y", None, keep_constant=True).numeric
    assert "p0" in infer_schema(frame, "y", None).dropped


def test_nested_columns_are_dropped_with_a_reason():
    frame = mixed_table().assign(tags=[[1, 2]] * 200, point=[{"x": 1, "y": 2}] * 200)
    schema = infer_schema(frame, "label", None)
    assert "nested values (lists or structs)" in schema.dropped["tags"]
    assert "nested values (lists or structs)" in schema.dropped["point"]


def test_nested_parquet_columns_are_dropped_with_a_reason(tmp_path):
    from tasks.data.load import read_table

    path = tmp_path / "t.parquet"
    mixed_table().assign(tags=[[1, 2]] * 200, point=[{"x": 1, "y": 2}] * 200).to_parquet(path)
    schema = infer_schema(read_table(path), "label", None)
    assert {"tags", "point"} <= set(schema.dropped)
    assert "nested" in schema.dropped["tags"]


def test_numbers_stored_as_text_are_dropped_naming_the_offending_values():
    frame = mixed_table().assign(price=[str(v) for v in range(198)] + ["n/a", "12,5"])
    schema = infer_schema(frame, "label", None)
    assert "numbers stored as text" in schema.dropped["price"]
    assert "'n/a'" in schema.dropped["price"]
    assert "'12,5'" in schema.dropped["price"]


def test_unlabelled_rows_include_infinite_regression_targets():
    from tasks.data.schema import labelled_mask

    target = pd.Series([1.0, np.nan, np.inf, -np.inf, 2.0])
    assert labelled_mask(target, "regression").tolist() == [True, False, False, False, True]
    assert labelled_mask(pd.Series(["a", None, "b"]), "classification").tolist() == [True, False, True]


@pytest.mark.parametrize(
    ("values", "task", "expectation"),
    [
        (pd.Series([np.inf, np.nan, -np.inf] * 10, name="y"), "regression", "target_has_finite_values"),
        (pd.Series([np.nan] * 30, name="y", dtype=float), "regression", "target_has_finite_values"),
        (pd.Series(["1.5", "2", "heavy"] * 10, name="y"), "regression", "target_is_numeric"),
        (
            pd.Series(pd.date_range("2024-01-01", periods=30).strftime("%Y-%m-%d"), name="y"),
            "classification",
            "target_is_not_a_date",
        ),
        (pd.Series(pd.date_range("2024-01-01", periods=30), name="y"), "classification", "target_is_not_a_date"),
    ],
)
def test_targets_the_task_cannot_learn_from_are_named(values, task, expectation):
    from tasks.data.schema import target_problems

    problems = target_problems(values, task)
    assert [p["expectation"] for p in problems] == [expectation]
    assert problems[0]["column"] == "y"
    assert "'y'" in problems[0]["observed"]


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (pd.Series([1.0, np.inf, 3.0], name="y"), "regression"),
        (pd.Series(["a", "b"], name="y"), "classification"),
        (pd.Series([0, 1], name="y"), "classification"),
    ],
)
def test_learnable_targets_have_no_problems(values, task):
    from tasks.data.schema import target_problems

    assert target_problems(values, task) == []
