"""Flow runs as `pmf status` reports them: trigger and outcome from the run's tags, its duration, and the
duration trend of each flow and model. Input is plain data (`RunFacts`), so nothing here needs Prefect."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TRIGGERS = ("manual", "schedule", "drift")
TREND_RUNS = 10  # the durations a trend looks at: enough for a median, recent enough to mean today

# Prefect state types that have ended; any other (scheduled, pending, running, paused, cancelling) is running.
ENDED = {"completed": "completed", "failed": "failed", "crashed": "failed", "cancelled": "cancelled"}


@dataclass(frozen=True)
class RunFacts:
    """One flow run as read from Prefect, in plain types. `state_type` is Prefect's, lower case
    (`completed`, `failed`, `running`, ...); `created_by` the creator's type (`AUTOMATION`, ...) or None."""

    flow: str
    state_type: str
    state_name: str
    tags: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None
    expected_start: datetime | None = None
    auto_scheduled: bool = False
    created_by: str | None = None
    id: str = ""
    name: str = ""


def tag_value(tags: Iterable[str], key: str) -> str | None:
    """The value of the first `key:value` tag (`model:penguins` -> `penguins`), or None."""
    prefix = f"{key}:"
    return next((tag[len(prefix) :] for tag in tags if tag.startswith(prefix)), None)


def model_of(run: RunFacts) -> str | None:
    """The model a run is about: its `model:` tag, else the flow's `name` parameter (or its request's name)."""
    request = run.parameters.get("request")
    from_request = request.get("name") if isinstance(request, Mapping) else None
    named = run.parameters.get("name")
    return tag_value(run.tags, "model") or (named if isinstance(named, str) else None) or from_request


def trigger_of(run: RunFacts) -> str:
    """`manual`, `schedule` or `drift`: the run's `trigger:` tag; a run that has not tagged itself yet is
    `schedule` when the scheduler made it, `drift` when an automation did, else `manual`."""
    tagged = tag_value(run.tags, "trigger")
    if tagged:
        return tagged
    if run.auto_scheduled:
        return "schedule"
    return "drift" if (run.created_by or "").upper() == "AUTOMATION" else "manual"


def outcome_of(run: RunFacts, state_outcomes: Mapping[str, str]) -> str:
    """The run's outcome in DECISIONS' words: its `outcome:` tag (added as it ends); else what its state
    name says (`state_outcomes`: state name -> outcome, e.g. `Rejected` -> `data_rejected`); else its state
    type (`completed`, `failed` for failed and crashed, `cancelled`), or `running` while it has not ended."""
    tagged = tag_value(run.tags, "outcome")
    if tagged:
        return tagged
    if run.state_name in state_outcomes:
        return state_outcomes[run.state_name]
    return ENDED.get(run.state_type, "running")


def duration_s(run: RunFacts, now: datetime) -> float | None:
    """Wall time from start to end (to `now` while it runs); None for a run that never started."""
    if run.start is None:
        return None
    end = run.end if run.end is not None else (now if run.state_type not in ENDED else None)
    return None if end is None else max(0.0, (end - run.start).total_seconds())


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC, to the second, as pmf writes times everywhere (`2026-11-29T14:35:02Z`), or None."""
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_entry(run: RunFacts, now: datetime, state_outcomes: Mapping[str, str]) -> dict[str, Any]:
    """The run as `pmf status --json` lists it: {flow, model, state, trigger, started, duration_s, outcome,
    name, id}. `started` is the expected start for a run that has not started (a late scheduled run)."""
    return {
        "flow": run.flow,
        "model": model_of(run),
        "state": run.state_type,
        "trigger": trigger_of(run),
        "started": iso(run.start or run.expected_start),
        "duration_s": duration_s(run, now),
        "outcome": outcome_of(run, state_outcomes),
        "name": run.name,
        "id": run.id,
    }


def duration_trends(runs: Iterable[Mapping[str, Any]], last: int = TREND_RUNS) -> list[dict[str, Any]]:
    """Per flow and model, the durations of its last `last` completed runs (`runs`: entries as `run_entry`
    makes them, newest first): {flow, model, runs, durations_s (oldest first), median_s, last_s, change}.
    `change` is the last run against the median of the ones before it (0.25 = 25 % slower), None with
    fewer than two runs. Failed runs are left out: a run that stops early says nothing about speed."""
    grouped: dict[tuple[str, str | None], list[float]] = {}
    for run in runs:
        if run["state"] == "completed" and run["duration_s"] is not None:
            grouped.setdefault((run["flow"], run["model"]), []).append(float(run["duration_s"]))
    trends = []
    for (flow, model), newest_first in sorted(grouped.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        durations = newest_first[:last][::-1]
        before = durations[:-1]
        median_before = statistics.median(before) if before else None
        trends.append(
            {
                "flow": flow,
                "model": model,
                "runs": len(durations),
                "durations_s": durations,
                "median_s": statistics.median(durations),
                "last_s": durations[-1],
                "change": (durations[-1] / median_before - 1) if median_before else None,
            }
        )
    return trends
