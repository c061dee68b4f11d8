"""Load a CSV or Parquet batch into pandas, with errors that name the file and what was expected."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd


class DataError(ValueError):
    """The data cannot be used: the CLI exits with code 3 (data rejected) and prints the message."""

    def __init__(self, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.errors = errors or [{"column": None, "expectation": "readable_table", "observed": message}]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_table(path: Path) -> pd.DataFrame:
    """Read a batch. Raises FileNotFoundError for a missing file, DataError for an unusable one."""
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist")
    if path.is_dir():
        raise DataError(f"{path} is a folder, expected a CSV or Parquet file")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty: expected a CSV or Parquet table with a header row")
    try:
        frame = _read(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise DataError(f"{path} is not a readable table: {exc}".strip()) from None
    if frame.shape[1] < 2:
        raise DataError(f"{path} has {frame.shape[1]} column(s): expected a table with feature columns and a target")
    if frame.empty:
        raise DataError(f"{path} has a header but no rows")
    return frame


def _read(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    with path.open("rb") as handle:
        head = handle.read(4096)
    if b"\x00" in head:
        raise DataError(f"{path} looks like a binary file, not a CSV table")
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    return pd.read_csv(path, sep=sep)
