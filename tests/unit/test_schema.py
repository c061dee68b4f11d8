import numpy as np
import pandas as pd
import pytest

from tasks.data.load import DataError
from tasks.data.schema import Schema, infer_schema, infer_task


def mixed_table(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "row_id": np.arange(rows),
        "amount": rng.normal(100, 20, rows),
        "count": rng.integers(0, 10, rows),
        "flag": rng.random(rows) > 0.5,
        "country": rng.choice(["fr", "de", "it"], rows),
        "signup": pd.date_range("2024-01-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M"),
        "comment": [f"free text number {i}" for i in range(rows)],
        "constant": "same",
        "empty": [None] * rows,
        "label": rng.choice(["yes", "no"], rows),
    })


def test_roles_cover_what_real_tables_hold():
    schema = infer_schema(mixed_table(), "label", None)
    assert schema.task == "classification"
    assert set(schema.numeric) == {"amount", "count", "flag"}
    assert schema.categorical == ("country",)
    assert schema.datetime == ("signup",)
    assert set(schema.dropped) == {"row_id", "comment", "constant", "empty"}
    assert "ID" in schema.dropped["row_id"] and "free text" in schema.dropped["comment"]
    assert schema.classes == ("no", "yes")


def test_drop_columns_from_config_are_reported():
    schema = infer_schema(mixed_table(), "label", None, drop=("amount",))
    assert "amount" not in schema.features and "drop_columns" in schema.dropped["amount"]


@pytest.mark.parametrize("values, expected", [
    (pd.Series(["a", "b"]), "classification"),
    (pd.Series([0, 1, 1, 0]), "classification"),
    (pd.Series([1.0, 2.0, 3.0]), "classification"),
    (pd.Series(np.linspace(0, 1, 50)), "regression"),
    (pd.Series(np.arange(100)), "regression"),
])
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
