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


# Formats pmf does not read, told apart by their first bytes (a renamed file is still caught).
COMPRESSED = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"7z\xbc\xaf\x27\x1c": "7z",
    b"PK\x03\x04": "zip",
}
COMPRESSED_SUFFIXES = {
    ".gz": "gzip",
    ".gzip": "gzip",
    ".bz2": "bzip2",
    ".xz": "xz",
    ".zst": "zstd",
    ".zip": "zip",
    ".7z": "7z",
    ".tgz": "gzip",
    ".tar": "tar",
}
EXCEL_SUFFIXES = {".xls", ".xlsx", ".xlsm", ".xlsb", ".ods"}
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls
PARQUET_MAGIC = b"PAR1"


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
    except DataError:
        raise
    except UnicodeDecodeError:
        raise DataError(_not_utf8(path)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
        raise DataError(f"{path} is not a readable table: {exc}".strip()) from None
    if frame.shape[1] < 2:
        raise DataError(f"{path} has {frame.shape[1]} column(s): expected a table with feature columns and a target")
    if frame.empty:
        raise DataError(f"{path} has a header but no rows")
    return frame


def _read(path: Path) -> pd.DataFrame:
    with path.open("rb") as handle:
        head = handle.read(4096)
    unsupported = _unsupported_format(path, head)
    if unsupported:
        raise DataError(unsupported)
    if path.suffix.lower() in {".parquet", ".pq"} or head.startswith(PARQUET_MAGIC):
        return pd.read_parquet(path)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path} is UTF-16 text: re-encode it as UTF-8 (e.g. iconv -f utf-16 -t utf-8)")
    if b"\x00" in head:
        raise DataError(f"{path} looks like a binary file, not a CSV table")
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    # compression=None: a gzip file named .csv is refused above, never half-guessed from its suffix.
    return pd.read_csv(path, sep=sep, encoding="utf-8", compression=None)


def _unsupported_format(path: Path, head: bytes) -> str | None:
    """The actionable message for an Excel or compressed file, or None for anything else."""
    suffix = path.suffix.lower()
    is_zip = head.startswith(b"PK\x03\x04")
    if suffix in EXCEL_SUFFIXES or head.startswith(OLE2) or (is_zip and (b"xl/" in head or b"[Content_Types].xml" in head)):
        return f"{path} is an Excel workbook: not supported; export the sheet to CSV (File > Save As > CSV UTF-8) and pass that"
    kind = next((name for magic, name in COMPRESSED.items() if head.startswith(magic)), None) or COMPRESSED_SUFFIXES.get(suffix)
    if kind:
        return f"{path} is {kind}-compressed: compressed files are not supported; decompress it and pass the CSV or Parquet file"
    return None


def _not_utf8(path: Path) -> str:
    """Where the file stops being UTF-8: the first undecodable byte, its offset and line."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return (
            f"{path} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at byte position {exc.start} (line {line}) "
            "cannot be decoded; re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        )
    return f"{path} is not UTF-8 text: re-encode the file as UTF-8"
