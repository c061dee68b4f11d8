"""Preprocess: seeded split, imputation, scaling, one-hot encoding — fitted once, shipped with the model.

The fitted preprocessor is plain JSON (no pickle, so loading it runs no code) and uses only pandas
and numpy, so serving applies exactly this code to raw rows without importing TensorFlow.
Unknown categories encode as all zeros (the model sees "none of the known values").
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.data.load import DataError
from tasks.data.schema import Schema, as_datetime, label_strings, labelled_mask

DATE_PARTS = ("year", "month", "day", "dayofweek", "hour")


@dataclass(frozen=True)
class Preprocessor:
    schema: Schema
    medians: dict[str, float]
    means: dict[str, float]
    stds: dict[str, float]
    categories: dict[str, list[str]]
    target_mean: float = 0.0
    target_std: float = 1.0

    # ---- features -------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        names = list(self.schema.numeric)
        names += [f"{c}={v}" for c in self.schema.categorical for v in self.categories[c]]
        names += [f"{c}.{p}" for c in self.schema.datetime for p in DATE_PARTS]
        return names

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw rows (as in the CSV) -> float32 matrix. Missing feature columns raise KeyError."""
        blocks = [self._numeric_block(frame)] if self.schema.numeric else []
        blocks += [self._one_hot(frame[c], self.categories[c]) for c in self.schema.categorical]
        blocks += [self._date_block(frame[c]) for c in self.schema.datetime]
        return np.concatenate(blocks, axis=1).astype(np.float32, copy=False)

    def _numeric_block(self, frame: pd.DataFrame) -> np.ndarray:
        cols = list(self.schema.numeric)
        values = frame[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        medians = np.array([self.medians[c] for c in cols])
        values = np.where(np.isnan(values), medians, values)
        means = np.array([self.means[c] for c in cols])
        stds = np.array([self.stds[c] for c in cols])
        return (values - means) / stds

    def _one_hot(self, column: pd.Series, categories: list[str]) -> np.ndarray:
        codes = pd.Categorical(_as_text(column), categories=categories).codes  # -1 for unknown/missing
        block = np.zeros((len(column), len(categories)), dtype=np.float32)
        known = codes >= 0
        block[np.flatnonzero(known), codes[known]] = 1.0
        return block

    def _date_block(self, column: pd.Series) -> np.ndarray:
        dates = as_datetime(column)
        parts = np.stack([getattr(dates.dt, p).to_numpy(dtype=np.float64, na_value=np.nan) for p in DATE_PARTS], axis=1)
        key = column.name
        medians = np.array([self.medians[f"{key}.{p}"] for p in DATE_PARTS])
        stds = np.array([self.stds[f"{key}.{p}"] for p in DATE_PARTS])
        means = np.array([self.means[f"{key}.{p}"] for p in DATE_PARTS])
        parts = np.where(np.isnan(parts), medians, parts)
        return (parts - means) / stds

    # ---- target ---------------------------------------------------------------------------
    def encode_target(self, target: pd.Series) -> np.ndarray:
        if self.schema.task == "classification":
            codes = pd.Categorical(label_strings(target), categories=list(self.schema.classes)).codes
            return codes.astype(np.int64)
        return ((pd.to_numeric(target).to_numpy(dtype=np.float64) - self.target_mean) / self.target_std).astype(np.float32)

    def decode_output(self, outputs: np.ndarray) -> np.ndarray:
        """Model outputs -> predictions in the user's terms: class labels or target values."""
        if self.schema.task == "classification":
            return np.asarray(self.schema.classes, dtype=object)[np.argmax(outputs, axis=1)]
        return outputs.reshape(-1).astype(np.float64) * self.target_std + self.target_mean

    # ---- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        raw = asdict(self)
        raw["schema"] = self.schema.to_dict()
        return raw

    @classmethod
    def from_dict(cls, raw: dict) -> Preprocessor:
        return cls(**{**raw, "schema": Schema.from_dict(raw["schema"])})

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=1, default=float), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> Preprocessor:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _as_text(column: pd.Series) -> pd.Series:
    return column.astype("str").where(column.notna(), None)


def fit_preprocessor(train: pd.DataFrame, schema: Schema) -> Preprocessor:
    """Learn imputation values, scaling and category sets from the training split only."""
    medians: dict[str, float] = {}
    means: dict[str, float] = {}
    stds: dict[str, float] = {}
    for column in schema.numeric:
        _fit_scale(
            pd.to_numeric(train[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan),
            column,
            medians,
            means,
            stds,
        )
    for column in schema.datetime:
        dates = as_datetime(train[column])
        for part in DATE_PARTS:
            _fit_scale(
                getattr(dates.dt, part).to_numpy(dtype=np.float64, na_value=np.nan), f"{column}.{part}", medians, means, stds
            )
    categories = {c: sorted(_as_text(train[c]).dropna().unique().tolist()) for c in schema.categorical}
    target_mean, target_std = 0.0, 1.0
    if schema.task == "regression":
        values = pd.to_numeric(train[schema.target]).to_numpy(dtype=np.float64)
        target_mean, target_std = float(values.mean()), float(values.std() or 1.0)
    return Preprocessor(schema, medians, means, stds, categories, target_mean, target_std)


def _fit_scale(values: np.ndarray, key: str, medians: dict, means: dict, stds: dict) -> None:
    finite = values[~np.isnan(values)]
    medians[key] = float(np.median(finite)) if finite.size else 0.0
    filled = np.where(np.isnan(values), medians[key], values)
    means[key] = float(filled.mean()) if filled.size else 0.0
    stds[key] = float(filled.std()) or 1.0


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame

    def sizes(self) -> dict[str, int]:
        return {"rows_train": len(self.train), "rows_validation": len(self.validation), "rows_test": len(self.test)}


def split_sizes(rows: int, test_size: float, validation_size: float) -> dict[str, int]:
    """Rows in each split, rounded as scikit-learn rounds them (test and validation round up)."""
    test = math.ceil(test_size * rows)
    validation = math.ceil(validation_size * (rows - test))
    return {"train": rows - test - validation, "validation": validation, "test": test}


def check_split(rows: int, class_counts: dict[str, int], test_size: float, validation_size: float) -> None:
    """Refuse a split that cannot be made before any work is done.

    ConfigError (exit 2) when the split sizes leave a split empty; DataError (exit 3) when the data
    has more classes than a split can hold or a class too small to appear in every split.
    """
    from tasks.config import ConfigError

    sizes = split_sizes(rows, test_size, validation_size)
    empty = [part for part, size in sizes.items() if size <= 0]
    if empty:
        raise ConfigError(
            f"split.test_size={test_size:g} and split.validation_size={validation_size:g} leave no "
            f"{' and no '.join(empty)} rows out of {rows} labelled rows: lower them"
        )
    problems = []
    if class_counts and min(sizes.values()) < len(class_counts):
        part = min(sizes, key=lambda name: sizes[name])
        problems.append(
            f"{len(class_counts)} classes but the {part} split holds only {sizes[part]} of {rows} rows: "
            "every class needs a row in each split (fewer classes or more rows)"
        )
    tiny = {label: count for label, count in class_counts.items() if count < len(sizes)}
    if tiny:
        problems.append(
            f"{len(tiny)} class(es) have fewer than {len(sizes)} rows, so they cannot appear in the train, "
            f"validation and test splits, e.g. {dict(list(tiny.items())[:5])}"
        )
    if problems:
        raise DataError(problems[0], [{"column": None, "expectation": "classes_fit_the_split", "observed": p} for p in problems])


def split_frame(frame: pd.DataFrame, schema: Schema, test_size: float, validation_size: float, seed: int) -> Split:
    """Seeded split, stratified on the class for classification; rows without a usable label are left out.

    Raises as `check_split` does when the split cannot be made, and DataError when a class would be
    missing from the test split (its metrics would be meaningless).
    """
    from sklearn.model_selection import train_test_split

    frame = frame[labelled_mask(frame[schema.target], schema.task)]
    labels = label_strings(frame[schema.target]) if schema.task == "classification" else None
    check_split(len(frame), labels.value_counts().to_dict() if labels is not None else {}, test_size, validation_size)
    rest, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=labels)
    stratify = label_strings(rest[schema.target]) if schema.task == "classification" else None
    train, validation = train_test_split(rest, test_size=validation_size, random_state=seed, stratify=stratify)
    if labels is not None:
        missing = sorted(set(labels) - set(label_strings(test[schema.target])))
        if missing:
            raise DataError(
                f"classes {missing} have too few rows to appear in the test split",
                [
                    {
                        "column": schema.target,
                        "expectation": "classes_fit_the_split",
                        "observed": f"classes {missing[:5]} have too few rows to appear in the test split",
                    }
                ],
            )
    return Split(train, validation, test)
