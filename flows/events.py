"""The Prefect events pmf emits beyond Prefect's own flow-run state events, and how to emit them.

Automations match on these names and on the model's resource id (`pmf.model.NAME`): the drift
automation that runs a name's retrain deployment, and the alerts (`pmf alerts`). Prefect's own
state events carry the custom state names (`prefect.flow-run.Rejected`, `...Promoted`).
"""

from __future__ import annotations

from typing import Any

DRIFT_EVENT = "pmf.drift.detected"  # a monitor check found drift over the threshold
PRODUCTION_EVENT = "pmf.production.moved"  # NAME@production now points at another version


def model_resource(name: str) -> dict[str, str]:
    """The event resource of a registered model: automations select one model with `pmf.model.NAME`."""
    return {"prefect.resource.id": f"pmf.model.{name}", "prefect.resource.name": name, "pmf.model": name}


def emit_drift(name: str, version: str | None, summary: dict[str, Any]) -> bool:
    """Announce drift of NAME's production version; `summary` becomes the event payload (and, through the
    automation, the retrain run's `drift` parameter). Returns whether Prefect accepted the event."""
    return _emit(DRIFT_EVENT, name, {"version": version, **summary})


def emit_production_moved(name: str, version: str, previous: str | None, actor: str, reason: str) -> bool:
    """Announce that NAME@production moved from `previous` to `version` (promotion, forced promotion, rollback)."""
    return _emit(PRODUCTION_EVENT, name, {"version": version, "previous": previous, "actor": actor, "reason": reason})


def _emit(event: str, name: str, payload: dict[str, Any]) -> bool:
    from prefect.events import emit_event

    return emit_event(event=event, resource=model_resource(name), payload=payload) is not None
