"""What each alias of a registered model points to, as `pmf status` shows it: version, primary metric, age.

Built from the model as `tasks.registry.lifecycle.list_models` describes it (the rows `pmf models` shows)
and the primary metric each version was trained for (its recorded config)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tasks.config import DEFAULT_PRIMARY
from tasks.status.runs import iso

# Aliases in the order people read them: what serves first.
ALIAS_ORDER = ("production", "staging", "candidate")


def primary_metric_of(config_text: str | None, metrics: Mapping[str, Any]) -> str | None:
    """The metric a version was judged on: its config's `primary_metric`, else the task's default; without a
    readable config (an older version), the first default the version has a value for."""
    try:
        config = json.loads(config_text) if config_text else None
    except ValueError:
        config = None
    if isinstance(config, dict):
        data = config["data"] if isinstance(config.get("data"), dict) else {}
        chosen = config.get("primary_metric") or DEFAULT_PRIMARY.get(str(data.get("task")))
        if chosen:
            return str(chosen)
    return next((metric for metric in DEFAULT_PRIMARY.values() if metric in metrics), None)


def alias_order(alias: str) -> tuple[int, str]:
    return (ALIAS_ORDER.index(alias) if alias in ALIAS_ORDER else len(ALIAS_ORDER), alias)


def model_entry(model: Mapping[str, Any], primary: Mapping[str, str | None], now: datetime) -> dict[str, Any]:
    """{name, aliases: {alias: {version, primary_metric, value, age_s, created}}}, production first.

    `model`: one entry of `list_models` (aliases, and versions with `created` and `metrics`); `primary`:
    the primary metric of each aliased version. `age_s` is the version's age (since it was registered)."""
    rows = {str(row["version"]): row for row in model["versions"]}
    aliases = {}
    for alias, version in sorted(model["aliases"].items(), key=lambda item: alias_order(item[0])):
        row = rows.get(str(version), {})
        metric = primary.get(str(version))
        created = datetime.fromisoformat(row["created"]) if row.get("created") else None
        aliases[alias] = {
            "version": str(version),
            "primary_metric": metric,
            "value": row.get("metrics", {}).get(metric) if metric else None,
            "age_s": (now - created).total_seconds() if created else None,
            "created": iso(created),
        }
    return {"name": model["name"], "aliases": aliases}
