"""The last drift verdict per model, from the history `pmf monitor` appends to (tasks.monitoring.history:
`$PMF_HOME/monitoring/NAME.jsonl`, one JSON object per check)."""

from __future__ import annotations

from typing import Any

TOP_FEATURES = 3  # the most drifted columns a status line names


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


def last_verdicts(name: str | None = None) -> list[dict[str, Any]]:
    """The last check of each model with a history (or of `name`), by model name. A history whose last
    line does not parse (cut by a crash mid-write) is left out: it is a record for people, not a source of truth."""
    from tasks.monitoring.history import history_path, last_check

    names = [name] if name else sorted(path.stem for path in history_path("any").parent.glob("*.jsonl"))
    entries = []
    for model in names:
        try:
            record = last_check(model)
        except (OSError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            entries.append(verdict_entry(model, record))
    return entries
