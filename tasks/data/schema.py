"""The one source of truth for a dataset's columns: roles inferred once from the reference data.

The schema feeds the expectation suite, the preprocessor, the model's input signature and the
evaluation slices. It is stored with the suite, so every later batch of the same name is read
with the same roles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from tasks.data.load import DataError

Task = Literal["classification", "regression"]
DATETIME_PARSE_SHARE = 0.95  # a text column is a date/time column when this share parses as dates
NUMBERS_AS_TEXT_SHARE = 0.9  # a text column where this share parses as numbers holds numbers stored as text
EXAMPLES = 5


@dataclass(frozen=True)
class Schema:
    target: str
    task: Task
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    datetime: tuple[str, ...]
    dropped: dict[str, str] = field(default_factory=dict)
    classes: tuple[str, ...] = ()

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical + self.datetime

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> Schema:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return cls(**fields)


def infer_task(target: pd.Series) -> Task:
    """Text, boolean or few-valued integer targets are classes; other numbers are regression."""
    values = target.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "classification"
    numbers = values.to_numpy(dtype=np.float64)
    numbers = numbers[np.isfinite(numbers)]  # ±inf says nothing about integrality (and warns in np.mod)
    integral = pd.api.types.is_integer_dtype(values) or bool(np.all(np.mod(numbers, 1) == 0))
    return "classification" if integral and values.nunique() <= 20 else "regression"


def class_labels(target: pd.Series) -> tuple[str, ...]:
    return tuple(sorted(label_strings(target.dropna()).unique()))


def label_strings(target: pd.Series) -> pd.Series:
    """Class labels as strings: 1.0 and 1 are the same class, and JSON round-trips them."""
    if pd.api.types.is_float_dtype(target) and np.all(np.mod(target.dropna().to_numpy(), 1) == 0):
        target = target.astype("Int64")
    return target.astype("str")


def infer_schema(
    frame: pd.DataFrame,
    target: str,
    task: Task | None,
    drop: tuple[str, ...] = (),
    max_categories: int = 50,
    keep_constant: bool = False,
) -> Schema:
    """Decide each column's role. Columns that cannot be used are listed in `dropped` with why.

    `keep_constant` keeps constant numeric columns (an image's always-blank border pixels).
    """
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} is not in the data; columns are: {', '.join(map(str, frame.columns))}",
            [{"column": target, "expectation": "expect_column_to_exist", "observed": "missing"}],
        )
    task = task or infer_task(frame[target])
    numeric: list[str] = []
    categorical: list[str] = []
    dates: list[str] = []
    dropped: dict[str, str] = {}
    for column in frame.columns:
        if column == target:
            continue
        role, reason = _column_role(frame[column], column in drop, max_categories, keep_constant)
        {"numeric": numeric, "categorical": categorical, "datetime": dates}.get(role, []).append(column)
        if role == "dropped":
            dropped[column] = reason
    classes = class_labels(frame[target]) if task == "classification" else ()
    if not numeric + categorical + dates:
        raise DataError("no usable feature columns: " + "; ".join(f"{c}: {r}" for c, r in dropped.items()))
    return Schema(target, task, tuple(numeric), tuple(categorical), tuple(dates), dropped, classes)


def _column_role(column: pd.Series, excluded: bool, max_categories: int, keep_constant: bool = False) -> tuple[str, str]:
    values = column.dropna()
    if excluded:
        return "dropped", "listed in data.drop_columns"
    if values.empty:
        return "dropped", "every value is missing"
    if is_nested(values):
        return "dropped", "nested values (lists or structs) cannot be model inputs; flatten them into columns to use them"
    numeric = pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values)
    if values.nunique() == 1 and not (keep_constant and numeric):
        return "dropped", "a single constant value carries no signal"
    if numeric:
        if pd.api.types.is_integer_dtype(values) and values.is_unique and values.is_monotonic_increasing and len(values) > 20:
            return "dropped", "unique increasing integers look like a row ID"
        return "numeric", ""
    if pd.api.types.is_datetime64_any_dtype(values) or _parses_as_dates(values):
        return "datetime", ""
    not_numbers = _numbers_stored_as_text(values)
    if not_numbers:
        return "dropped", (
            f"numbers stored as text: {len(not_numbers)} distinct value(s) are not numbers, e.g. "
            f"{not_numbers[:EXAMPLES]}; fix or blank them to use the column"
        )
    if values.nunique() > max_categories or values.nunique() > 0.5 * len(values):
        return "dropped", f"free text or ID-like ({values.nunique()} distinct values)"
    return "categorical", ""


def is_nested(values: pd.Series) -> bool:
    """Lists, arrays, structs or maps in the cells (nested Parquet columns): no role fits them."""
    dtype = values.dtype
    if isinstance(dtype, pd.ArrowDtype):
        import pyarrow as pa

        kind = dtype.pyarrow_dtype
        return pa.types.is_nested(kind)
    if not pd.api.types.is_object_dtype(dtype) or values.empty:
        return False
    return bool(values.head(100).map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray))).any())


def _numbers_stored_as_text(values: pd.Series) -> list[str]:
    """The distinct values that are not numbers, when most of a text column is numbers; else []."""
    sample = values.head(1000)
    if pd.to_numeric(sample, errors="coerce").notna().mean() < NUMBERS_AS_TEXT_SHARE:
        return []
    return non_numbers(values)


def non_numbers(values: pd.Series) -> list[str]:
    """Distinct non-missing values that do not parse as numbers (the offending ones in a numeric column)."""
    values = values.dropna()
    bad = values[pd.to_numeric(values, errors="coerce").isna()]
    return [str(v) for v in bad.unique()[:100]]


def labelled_mask(target: pd.Series, task: Task) -> pd.Series:
    """Rows with a label to learn from: a value, and for regression a finite one (±inf cannot be learned)."""
    mask = target.notna()
    if task == "regression" and pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target):
        mask &= np.isfinite(target.to_numpy(dtype=np.float64, na_value=np.nan))
    return mask


def target_problems(target: pd.Series, task: Task) -> list[dict]:
    """Why the task cannot learn from this target column (as rejection records), or [] when it can."""
    name = target.name
    values = target.dropna()
    if (
        task == "classification"
        and not values.empty
        and (pd.api.types.is_datetime64_any_dtype(values) or _parses_as_dates(values))
    ):
        return [
            _problem(
                name,
                "target_is_not_a_date",
                f"{name!r} holds dates, e.g. {[str(v) for v in values.head(3)]}: "
                "a date cannot be a class label; choose another --target",
            )
        ]
    if task != "regression":
        return []
    if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
        bad = non_numbers(values)
        if bad:
            return [
                _problem(
                    name,
                    "target_is_numeric",
                    f"{name!r} is a regression target but holds text: "
                    f"{len(bad)} distinct value(s) are not numbers, e.g. {bad[:EXAMPLES]}",
                )
            ]
    if not labelled_mask(pd.to_numeric(target, errors="coerce"), "regression").any():
        return [
            _problem(
                name,
                "target_has_finite_values",
                f"{name!r} has no finite value in any row (only missing values or ±inf): a regression target needs numbers",
            )
        ]
    return []


def _problem(column: str, expectation: str, observed: str) -> dict:
    return {"column": column, "expectation": expectation, "observed": observed}


def _parses_as_dates(values: pd.Series) -> bool:
    sample = values.astype("str").head(200)
    if not sample.str.contains(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}", regex=True).all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return parsed.notna().mean() >= DATETIME_PARSE_SHARE


def as_datetime(column: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(column):
        return column
    return pd.to_datetime(column, errors="coerce", format="mixed")
