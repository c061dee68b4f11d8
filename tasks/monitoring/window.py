"""The window a check looks at: the tail of the served prediction log, read from the end of the file.

The log (`tasks/serving/prediction_log.py`) grows for as long as a model is served; a check reads
blocks backwards from its end until it holds the last `window` complete lines, and parses them in
one call (a JSON array), never the whole file. A line still being written (no newline yet) is left
out; a row the server truncated (`{"truncated": true}`) is counted, not compared.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

BLOCK_BYTES = 1 << 20


@dataclass
class Window:
    frame: pd.DataFrame  # the raw input rows
    predictions: np.ndarray
    versions: dict[str, int]  # records per model version that served them
    truncated: int = 0  # rows the server logged as truncated (left out)
    unreadable: int = 0  # lines that were not JSON records (left out)


def prediction_log(name: str) -> Path:
    from tasks.workspace import pmf_home

    return pmf_home() / "predictions" / f"{name}.jsonl"


def tail_lines(path: Path, count: int, block: int = BLOCK_BYTES) -> list[bytes]:
    """The last `count` complete lines of `path` (without their newline), reading blocks from the end."""
    if count <= 0 or not path.is_file():
        return []
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        handle.seek(end - 1 if end else 0)
        position = end if end and handle.read(1) == b"\n" else _last_newline(handle, end, block)
        data = b""
        start = position
        while start > 0 and data.count(b"\n") <= count:
            start = max(0, start - block)
            handle.seek(start)
            data = handle.read(position - start)
    lines = data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first piece may begin mid-line
    return [line for line in lines if line.strip()][-count:]


def _last_newline(handle: Any, end: int, block: int) -> int:
    """Where the last complete line ends (just after its newline), when the file ends mid-line."""
    position = end
    while position > 0:
        start = max(0, position - block)
        handle.seek(start)
        index = handle.read(position - start).rfind(b"\n")
        if index >= 0:
            return start + index + 1
        position = start
    return 0


def parse_records(lines: list[bytes]) -> tuple[list[dict[str, Any]], int]:
    """(records, how many lines were not JSON objects): one parse of the whole window when it is clean."""
    import orjson

    try:
        records = orjson.loads(b"[" + b",".join(lines) + b"]")
        bad = 0
    except orjson.JSONDecodeError:  # a damaged line: parse one by one, leaving out what does not parse
        records = [_record(line) for line in lines]
        bad = records.count(None)
        records = [r for r in records if r is not None]
    good = [r for r in records if isinstance(r, dict) and isinstance(r.get("row"), dict)]
    return good, bad + len(records) - len(good)


def _record(line: bytes) -> Any:
    import orjson

    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def read_window(path: Path, window: int) -> Window:
    """The last `window` logged predictions of `path` as raw rows and predictions."""
    records, unreadable = parse_records(tail_lines(path, window))
    table = pd.DataFrame.from_records(records, columns=["version", "row", "prediction"])
    rows = pd.DataFrame.from_records(table["row"].tolist(), index=table.index)
    truncated = rows["truncated"].eq(True).to_numpy() if "truncated" in rows else np.zeros(len(rows), dtype=bool)
    versions = table["version"].astype("str").value_counts()
    return Window(
        rows.loc[~truncated].reset_index(drop=True),
        table["prediction"].to_numpy(dtype=object)[~truncated],
        {str(k): int(v) for k, v in versions.items()},
        int(truncated.sum()),
        unreadable,
    )
