"""The history of drift checks: one JSON line per check in PMF_HOME/monitoring/NAME.jsonl.

A record: `{checked_at (ISO 8601 UTC), model, version, rows, verdict, drifted, drift_share, top_features,
features, prediction_drift, event_emitted, source, trigger, mlflow_run_id, prefect_flow_run_id}`.
`pmf status` shows the last one per model.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HISTORY_FIELDS = (
    "checked_at",
    "model",
    "version",
    "rows",
    "verdict",
    "drifted",
    "drift_share",
    "top_features",
    "features",
    "prediction_drift",
    "event_emitted",
    "source",
    "trigger",
    "mlflow_run_id",
    "prefect_flow_run_id",
)


def history_path(name: str) -> Path:
    from tasks.workspace import pmf_home

    return pmf_home() / "monitoring" / f"{name}.jsonl"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def append_check(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """Append one check's record (the history fields of `result`) with one write; returns the record."""
    record = {key: result.get(key) for key in HISTORY_FIELDS}
    path = history_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one O_APPEND write: concurrent checks never interleave within a line
    finally:
        os.close(fd)
    return record


def last_check(name: str) -> dict[str, Any] | None:
    """The newest record of NAME's history, or None when it was never checked."""
    from tasks.monitoring.window import tail_lines

    path = history_path(name)
    lines = tail_lines(path, 1)
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except ValueError:
        return None
