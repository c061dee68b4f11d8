"""The last drift verdict per model, from the history `pmf monitor` appends to: `$PMF_HOME/monitoring/NAME.jsonl`,
one JSON object per check ({checked_at, model, version, rows, verdict, drifted, drift_share, top_features, ...})."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TOP_FEATURES = 3  # the most drifted columns a status line names


def history_folder(home: Path) -> Path:
    return home / "monitoring"


def last_record(text: str) -> dict[str, Any] | None:
    """The newest readable check in a history file's text: its last line that is a JSON object (a line cut
    by a crash mid-write, or edited by hand, is passed over)."""
    for line in reversed(text.splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            return record
    return None


def verdict_entry(model: str, record: dict[str, Any]) -> dict[str, Any]:
    """{model, checked_at, drifted, top_features, verdict, version, drift_share} of one check."""
    top = record.get("top_features")
    return {
        "model": model,
        "checked_at": record.get("checked_at"),
        "drifted": bool(record.get("drifted")),
        "top_features": [str(column) for column in top[:TOP_FEATURES]] if isinstance(top, list) else [],
        "verdict": record.get("verdict"),
        "version": None if record.get("version") is None else str(record["version"]),
        "drift_share": record.get("drift_share"),
    }


def last_verdicts(home: Path, name: str | None = None) -> list[dict[str, Any]]:
    """The last check of each model (or of `name`) with a history under `home`, by model name.
    An unreadable file is skipped: the history is a record for people, not a source of truth."""
    folder = history_folder(home)
    paths = [folder / f"{name}.jsonl"] if name else sorted(folder.glob("*.jsonl"))
    entries = []
    for path in paths:
        try:
            record = last_record(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        if record is not None:
            entries.append(verdict_entry(path.stem, record))
    return entries
