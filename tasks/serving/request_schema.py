"""Request bodies of the MLflow scoring protocol, checked against the model's input columns.

`POST /invocations` takes `{"dataframe_records": [...]}`, `{"dataframe_split": {"columns", "data"}}`
or `{"inputs": ...}` (records, columns or one row); `instances` is read like `inputs`. Anything
wrong is a `RequestError` that names the field at fault, so a client always learns what to fix
(a 4xx, never a 5xx).

The encoder is a numpy-only copy of `Preprocessor.transform` for numeric and categorical columns:
pandas costs about a millisecond per request, which would cap a server at a few hundred requests
per second on its own. Models with date/time columns go through the preprocessor itself. The
equivalence of the two is a test (tests/server/test_request_schema.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

from tasks.data.preprocess import Preprocessor

FORMATS = ("dataframe_records", "dataframe_split", "inputs", "instances")
IGNORED_KEYS = ("params",)
Columns = dict[str, list[Any]]


class RequestError(ValueError):
    """A bad request: HTTP status, the field at fault and a message that names it."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message

    def body(self) -> bytes:
        return orjson.dumps(
            {
                "error_code": "BAD_REQUEST" if self.status == 400 else "INVALID_REQUEST",
                "message": self.message,
                "field": self.field,
            }
        )


@dataclass(frozen=True)
class ParsedRequest:
    columns: Columns  # input column -> values, one per row
    rows: int


class RequestSchema:
    """Parse, check and encode request bodies for one model's preprocessor."""

    def __init__(self, preprocessor: Preprocessor, max_rows: int = 10_000):
        schema = preprocessor.schema
        self.preprocessor = preprocessor
        self.max_rows = max_rows
        self.numeric = list(schema.numeric)
        self.categorical = list(schema.categorical)
        self.datetime = list(schema.datetime)
        self.columns = self.numeric + self.categorical + self.datetime
        self._medians = np.array([preprocessor.medians[c] for c in self.numeric], dtype=np.float64)
        self._means = np.array([preprocessor.means[c] for c in self.numeric], dtype=np.float64)
        self._stds = np.array([preprocessor.stds[c] for c in self.numeric], dtype=np.float64)
        self._codes = {c: {v: i for i, v in enumerate(preprocessor.categories[c])} for c in self.categorical}
        self._width = len(self.numeric) + sum(len(preprocessor.categories[c]) for c in self.categorical)

    # ---- parsing --------------------------------------------------------------------------------
    def parse(self, body: bytes) -> ParsedRequest:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestError(400, "body", f"body: not valid JSON ({exc})") from None
        if not isinstance(document, dict):
            raise RequestError(400, "body", f"body: expected a JSON object with one of {', '.join(FORMATS)}")
        keys = [k for k in document if k not in IGNORED_KEYS]
        unknown = [k for k in keys if k not in FORMATS]
        if unknown:
            where = unknown[0] or "body"  # an empty key still gets a field a client can find in the message
            raise RequestError(400, where, f"{where}: unknown key {unknown[0]!r}; expected one of {', '.join(FORMATS)}")
        if len(keys) != 1:
            raise RequestError(400, "body", f"body: expected exactly one of {', '.join(FORMATS)}, got {keys or 'none'}")
        key = keys[0]
        columns, rows = self._read(key, document[key])
        if rows == 0:
            raise RequestError(400, key, f"{key}: no rows")
        if rows > self.max_rows:
            raise RequestError(413, key, f"{key}: {rows} rows exceed the limit of {self.max_rows} per request")
        for column in self.columns:
            self._check_values(column, columns[column])
        return ParsedRequest(columns, rows)

    def _read(self, key: str, payload: Any) -> tuple[Columns, int]:
        if key == "dataframe_split":
            return self._from_split(key, payload)
        if isinstance(payload, list):
            return self._from_records(key, payload)
        if key != "dataframe_records" and isinstance(payload, dict):
            if all(isinstance(v, list) for v in payload.values()) and payload:
                return self._from_columns(key, payload)
            return self._from_records(key, [payload])
        raise RequestError(
            400, key, f"{key}: expected a list of records" + ("" if key == "dataframe_records" else " or a mapping of columns")
        )

    def _from_records(self, key: str, records: list) -> tuple[Columns, int]:
        self._check_size(key, len(records))
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise RequestError(400, key, f"{key}[{i}]: expected an object of column: value, got {_kind(record)}")
        columns: Columns = {}
        for column in self.columns:
            try:
                columns[column] = [record[column] for record in records]
            except KeyError:
                row = next(i for i, r in enumerate(records) if column not in r)
                raise RequestError(400, column, f"missing field {column!r} (row {row})") from None
        return columns, len(records)

    def _from_split(self, key: str, payload: Any) -> tuple[Columns, int]:
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("columns"), list)
            or not isinstance(payload.get("data"), list)
        ):
            raise RequestError(400, key, f'{key}: expected {{"columns": [...], "data": [[...], ...]}}')
        names, data = payload["columns"], payload["data"]
        self._check_size(key, len(data))
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(names):
                raise RequestError(400, key, f"{key}.data[{i}]: expected a list of {len(names)} values, one per column")
        position = {name: i for i, name in enumerate(names) if isinstance(name, str)}
        columns: Columns = {}
        for column in self.columns:
            if column not in position:
                raise RequestError(400, column, f"missing field {column!r} in {key}.columns")
            index = position[column]
            columns[column] = [row[index] for row in data]
        return columns, len(data)

    def _from_columns(self, key: str, payload: dict) -> tuple[Columns, int]:
        lengths = {len(v) for v in payload.values()}
        if len(lengths) != 1:
            raise RequestError(400, key, f"{key}: every column needs the same number of values")
        rows = lengths.pop()
        self._check_size(key, rows)
        for column in self.columns:
            if column not in payload:
                raise RequestError(400, column, f"missing field {column!r}")
        return {c: payload[c] for c in self.columns}, rows

    def _check_size(self, key: str, rows: int) -> None:
        if rows > self.max_rows:  # before any per-row work, so an oversized body costs little
            raise RequestError(413, key, f"{key}: {rows} rows exceed the limit of {self.max_rows} per request")

    def _check_values(self, column: str, values: list) -> None:
        allowed: tuple[type, ...]
        if column in self._codes:
            allowed, expected = (str, int, float, bool, type(None)), "a string, number or null"
        elif column in self.datetime:
            allowed, expected = (str, type(None)), "a date/time string or null"
        else:
            allowed, expected = (int, float, type(None)), "a number or null"
        for i, value in enumerate(values):
            if type(value) not in allowed:
                raise RequestError(400, column, f"field {column!r} (row {i}): expected {expected}, got {_kind(value)}")
            if type(value) is int and abs(value) > 2**63 and column not in self._codes:
                raise RequestError(400, column, f"field {column!r} (row {i}): number out of range")

    # ---- encoding -------------------------------------------------------------------------------
    def encode(self, request: ParsedRequest) -> np.ndarray:
        """Model inputs for the parsed rows: exactly what `Preprocessor.transform` gives on the same rows."""
        if self.datetime:
            return self.preprocessor.transform(pd.DataFrame(request.columns))
        blocks: list[np.ndarray] = []
        if self.numeric:
            values = np.array(
                [[math.nan if v is None else v for v in request.columns[c]] for c in self.numeric], dtype=np.float64
            ).T
            values = np.where(np.isnan(values), self._medians, values)
            blocks.append((values - self._means) / self._stds)
        for column in self.categorical:
            codes = self._codes[column]
            block = np.zeros((request.rows, len(codes)), dtype=np.float32)
            for row, value in enumerate(request.columns[column]):
                text = value if type(value) is str else _as_text(value)
                index = None if text is None else codes.get(text)
                if index is not None:
                    block[row, index] = 1.0
            blocks.append(block)
        return np.concatenate(blocks, axis=1).astype(np.float32, copy=False)

    def example_record(self) -> dict[str, Any]:
        """A valid row (medians and first categories) for warm-up and the OpenAPI example."""
        record: dict[str, Any] = {c: float(m) for c, m in zip(self.numeric, self._medians, strict=True)}
        record.update({c: next(iter(self.preprocessor.categories[c]), None) for c in self.categorical})
        record.update(dict.fromkeys(self.datetime, "2024-01-01"))
        return record


def _as_text(value: Any) -> str | None:
    """Non-string category values as pandas writes them (`astype("str")`): 2007 -> '2007', True -> 'True'."""
    if value is None:
        return None
    return str(value)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )
