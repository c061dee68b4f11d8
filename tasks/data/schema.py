"""The one source of truth for a dataset's columns: roles inferred once from the reference data.

The schema feeds the expectation suite, the preprocessor, the model's input signature and the
evaluation slices. It is stored with the suite, so every later batch of the same name is read
with the same roles.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from tasks.data.load import DataError

Task = Literal["classification", "regression"]
DATETIME_PARSE_SHARE = 0.95  # a text column is a date/time column when this share parses as dates


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
    def from_dict(cls, raw: dict) -> "Schema":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def infer_task(target: pd.Series) -> Task:
    """Text, boolean or few-valued integer targets are classes; other numbers are regression."""
    values = target.dropna()
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "classification"
    integral = pd.api.types.is_integer_dtype(values) or bool(np.all(np.mod(values.to_numpy(), 1) == 0))
    return "classification" if integral and values.nunique() <= 20 else "regression"


def class_labels(target: pd.Series) -> tuple[str, ...]:
    return tuple(sorted(label_strings(target.dropna()).unique()))


def label_strings(target: pd.Series) -> pd.Series:
    """Class labels as strings: 1.0 and 1 are the same class, and JSON round-trips them."""
    if pd.api.types.is_float_dtype(target) and np.all(np.mod(target.dropna().to_numpy(), 1) == 0):
        target = target.astype("Int64")
    return target.astype("str")


def infer_schema(frame: pd.DataFrame, target: str, task: Task | None, drop: tuple[str, ...] = (), max_categories: int = 50,
                 keep_constant: bool = False) -> Schema:
    """Decide each column's role. Columns that cannot be used are listed in `dropped` with why.

    `keep_constant` keeps constant numeric columns (an image's always-blank border pixels).
    """
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} is not in the data; columns are: {', '.join(map(str, frame.columns))}",
            [{"column": target, "expectation": "expect_column_to_exist", "observed": "missing"}],
        )
    task = task or infer_task(frame[target])
    numeric, categorical, dates, dropped = [], [], [], {}
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
    numeric = pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values)
    if values.nunique() == 1 and not (keep_constant and numeric):
        return "dropped", "a single constant value carries no signal"
    if numeric:
        if pd.api.types.is_integer_dtype(values) and values.is_unique and values.is_monotonic_increasing and len(values) > 20:
            return "dropped", "unique increasing integers look like a row ID"
        return "numeric", ""
    if pd.api.types.is_datetime64_any_dtype(values) or _parses_as_dates(values):
        return "datetime", ""
    if values.nunique() > max_categories or values.nunique() > 0.5 * len(values):
        return "dropped", f"free text or ID-like ({values.nunique()} distinct values)"
    return "categorical", ""


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
