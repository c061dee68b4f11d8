"""A model's deployments on the Prefect server: `pmf-retrain/NAME` (on a schedule and on drift) and
`pmf-monitor/NAME` (the drift check on an interval), created through Prefect's client API.

What a caller must know:
- the server is the one PREFECT_API_URL points at (`pmf server start`, or a team server);
- deployments go to work pool `pmf` when the server has it (team mode), else `pmf-local` (the
  runner `pmf server start` starts);
- a schedule's runs carry `trigger: schedule`, the drift automation's runs `trigger: drift` and the
  drift summary (`drift`), a run started from the UI the deployment's default `trigger: manual`;
- two retrains of one name never overlap: deployment concurrency limit 1, collision strategy
  ENQUEUE (the second waits in `AwaitingConcurrencySlot`); `trim_waiting_retrains` keeps one waiting.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import FlowRun
    from prefect.client.schemas.responses import DeploymentResponse

Kind = Literal["retrain", "monitor"]

FLOWS: dict[Kind, str] = {"retrain": "pmf-retrain", "monitor": "pmf-monitor"}
# Module paths of the installed package, so a worker needs pmf installed, not a checkout.
ENTRYPOINTS: dict[Kind, str] = {
    "retrain": "flows.retrain_flow:retrain_flow",
    "monitor": "flows.monitor_flow:monitor_flow",
}
TEAM_POOL, LOCAL_POOL = "pmf", "pmf-local"
# With pull steps the flow is imported by its module path, in the folder the worker gave the run;
# without any, Prefect 3.9 first copies `deployment.path` (none here) into that folder.
PULL_STEPS = [{"prefect.deployments.steps.set_working_directory": {"directory": "."}}]
DRIFT_DEBOUNCE = timedelta(minutes=15)  # a burst of drift events within this window makes one retrain
WAITING_NAME = "AwaitingConcurrencySlot"  # Prefect's state name for a run queued behind the limit


# ---- what the user types ---------------------------------------------------------------------------


DURATION = re.compile(r"^(\d+)([smhd])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`30s`, `15m`, `6h`, `1d`, `7d` as a timedelta; ValueError saying what is expected otherwise."""
    match = DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration: expected a positive number and a unit s, m, h or d (30s, 15m, 6h, 7d)")
    return timedelta(seconds=int(match.group(1)) * UNIT_SECONDS[match.group(2)])


def duration_text(interval: timedelta) -> str:
    """The shortest DURATION for `interval` (`21600 s` → `6h`)."""
    seconds = int(interval.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds % UNIT_SECONDS[unit] == 0:
            return f"{seconds // UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def check_cron(expression: str) -> str:
    """The expression when it is a valid five-field cron (as Prefect's CronSchedule takes it); ValueError otherwise."""
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        valid = len(expression.split()) == 5 and CronSchedule(cron=expression) is not None
    except ValidationError:
        valid = False
    if not valid:
        raise ValueError(
            f"{expression!r} is not a cron expression: expected 5 fields, minute hour day month weekday ('0 3 * * *')"
        )
    return expression


def check_timezone(name: str) -> str:
    """The IANA time zone name when it exists (`Europe/Paris`, `UTC`); ValueError otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone: expected an IANA name such as UTC or Europe/Paris") from None
    return name


@dataclass(frozen=True)
class Timing:
    """When a deployment runs: a cron expression in a time zone, or an interval."""

    cron: str | None = None
    interval: timedelta | None = None
    timezone: str = "UTC"

    def prefect_schedule(self) -> Any:
        from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

        if self.cron is not None:
            return CronSchedule(cron=self.cron, timezone=self.timezone)
        return IntervalSchedule(interval=self.interval or timedelta(days=1), timezone=self.timezone)


def schedule_text(schedule: Any) -> str:
    """A Prefect schedule as the user wrote it: `cron 0 3 * * * (Europe/Paris)`, `every 6h`."""
    if getattr(schedule, "cron", None):
        return f"cron {schedule.cron} ({schedule.timezone or 'UTC'})"
    if getattr(schedule, "interval", None):
        return f"every {duration_text(schedule.interval)}"
    return type(schedule).__name__


# ---- creating, listing, pausing, deleting ---------------------------------------------------------


def deployment_name(kind: Kind, name: str) -> str:
    return f"{FLOWS[kind]}/{name}"


def work_pool(client: SyncPrefectClient) -> str:
    """`pmf` when the server has that pool (team mode), else `pmf-local`, created if missing."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        client.read_work_pool(TEAM_POOL)
        return TEAM_POOL
    except ObjectNotFound:
        pass
    with contextlib.suppress(ObjectAlreadyExists):  # created meanwhile (another pmf schedule, pmf server start)
        client.create_work_pool(WorkPoolCreate(name=LOCAL_POOL, type="process"))
    return LOCAL_POOL


def deploy(kind: Kind, name: str, timing: Timing | None, parameters: dict[str, Any]) -> UUID:
    """Create or update `pmf-KIND/NAME` with `timing` (None: no schedule, runs only on demand or drift).

    The deployment's parameters are the defaults of every run; its schedule adds `trigger: schedule`.
    A retrain deployment has concurrency limit 1, collisions queued (ENQUEUE)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy, ConcurrencyOptions

    schedules = (
        [DeploymentScheduleCreate(schedule=timing.prefect_schedule(), parameters={"trigger": "schedule"}, slug=f"pmf-{kind}")]
        if timing
        else []
    )
    with get_client(sync_client=True) as client:
        pool = work_pool(client)
        flow_id = client.create_flow_from_name(FLOWS[kind])
        return client.create_deployment(
            flow_id=flow_id,
            name=name,
            entrypoint=ENTRYPOINTS[kind],
            pull_steps=PULL_STEPS,
            work_pool_name=pool,
            parameters={"name": name, "trigger": "manual", **parameters},
            schedules=schedules,
            concurrency_limit=1 if kind == "retrain" else None,
            concurrency_options=ConcurrencyOptions(collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
            if kind == "retrain"
            else None,
            paused=False,
            tags=["pmf", f"model:{name}"],
            description=_description(kind, name, timing),
        )


def _description(kind: Kind, name: str, timing: Timing | None) -> str:
    when = schedule_text(timing.prefect_schedule()) if timing else "on demand and on drift"
    what = "retrains" if kind == "retrain" else "checks the prediction log of"
    return f"pmf {what} {name} ({when}); created by `pmf schedule {name}`."


def read_deployment(kind: Kind, name: str) -> DeploymentResponse | None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(deployment_name(kind, name))
        except ObjectNotFound:
            return None


def pmf_deployments(client: SyncPrefectClient) -> list[DeploymentResponse]:
    """Every `pmf-retrain` and `pmf-monitor` deployment on the server."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    return client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOWS.values()))))


def list_schedules() -> list[dict[str, Any]]:
    """`[{model, kind, schedule, paused, next_run}]` for every pmf deployment that has a schedule,
    `next_run` ISO 8601 UTC (None when paused or not yet planned); sorted by model, kind."""
    from prefect.client.orchestration import get_client

    rows = []
    with get_client(sync_client=True) as client:
        kinds = {flow_id: kind for kind, flow_id in _flow_ids(client).items()}
        for deployment in pmf_deployments(client):
            rows += [
                {
                    "model": deployment.name,
                    "kind": kinds[deployment.flow_id],
                    "schedule": schedule_text(schedule.schedule),
                    "paused": bool(deployment.paused or not schedule.active),
                    "next_run": None if deployment.paused else _next_run(client, deployment.id),
                }
                for schedule in deployment.schedules
            ]
    return sorted(rows, key=lambda r: (r["model"], r["kind"]))


def _flow_ids(client: SyncPrefectClient) -> dict[Kind, UUID]:
    """The ids of the pmf-retrain and pmf-monitor flows on this server (those it knows)."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    kinds: dict[str, Kind] = {flow_name: kind for kind, flow_name in FLOWS.items()}
    flows = client.read_flows(flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOWS.values()))))
    return {kinds[f.name]: f.id for f in flows}


def _next_run(client: SyncPrefectClient, deployment_id: UUID) -> str | None:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC,
        limit=1,
    )
    return iso_utc(runs[0].expected_start_time) if runs and runs[0].expected_start_time else None


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def set_paused(name: str, paused: bool) -> list[str]:
    """Pause (or resume) NAME's deployments and its drift automation; returns what changed, by name."""
    from prefect.client.orchestration import get_client

    changed = []
    with get_client(sync_client=True) as client:
        for kind in FLOWS:
            deployment = read_deployment(kind, name)
            if deployment is not None:
                (client.pause_deployment if paused else client.resume_deployment)(deployment.id)
                changed.append(deployment_name(kind, name))
        for automation in client.read_automations_by_name(drift_automation_name(name)):
            (client.pause_automation if paused else client.resume_automation)(automation.id)
            changed.append(automation.name)
    return changed


def delete_schedules(name: str) -> list[str]:
    """Delete NAME's deployments (their scheduled runs go with them) and its drift automation."""
    from prefect.client.orchestration import get_client

    deleted = []
    with get_client(sync_client=True) as client:
        for kind in FLOWS:
            deployment = read_deployment(kind, name)
            if deployment is not None:
                client.delete_deployment(deployment.id)
                deleted.append(deployment_name(kind, name))
        deleted += delete_drift_automation(client, name)
    return deleted


# ---- the drift automation --------------------------------------------------------------------------


def drift_automation_name(name: str) -> str:
    return f"pmf-drift-retrain-{name}"


def drift_automation(name: str, deployment_id: UUID) -> Any:
    """`pmf.drift.detected` for `pmf.model.NAME` → run `pmf-retrain/NAME` with `trigger: drift` and the
    event's payload as `drift` (a dict: Prefect renders `| tojson` and parses it back).

    Reactive with threshold 1: it fires on the first event, then ignores the same model's drift events
    for DRIFT_DEBOUNCE (Prefect opens the next window only after this one ends), so a burst makes
    one retrain."""
    from prefect.automations import AutomationCore
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    from flows.events import DRIFT_EVENT

    drift = {"__prefect_kind": "json", "value": {"__prefect_kind": "jinja", "template": "{{ event.payload | tojson }}"}}
    return AutomationCore(
        name=drift_automation_name(name),
        description=f"pmf: drift of {name} in production retrains it (one retrain per "
        f"{duration_text(DRIFT_DEBOUNCE)} of drift events). Created by `pmf schedule {name}`.",
        trigger=EventTrigger(
            expect={DRIFT_EVENT},
            match={"prefect.resource.id": f"pmf.model.{name}"},
            posture=Posture.Reactive,
            threshold=1,
            within=DRIFT_DEBOUNCE,
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=deployment_id,
                parameters={"name": name, "trigger": "drift", "drift": drift},
            )
        ],
    )


def replace_drift_automation(name: str, deployment_id: UUID) -> UUID:
    """Create NAME's drift automation, replacing one of the same name (so it follows a re-created deployment)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        delete_drift_automation(client, name)
        return client.create_automation(drift_automation(name, deployment_id))


def delete_drift_automation(client: SyncPrefectClient, name: str) -> list[str]:
    found = client.read_automations_by_name(drift_automation_name(name))
    for automation in found:
        client.delete_automation(automation.id)
    return [a.name for a in found]


# ---- runs that must not pile up --------------------------------------------------------------------


def skip_missed_runs(now: datetime | None = None, models: list[str] | None = None) -> int:
    """Cancel the scheduled pmf runs whose time passed while the server was down, all but the most recent
    one of each deployment (it runs as soon as the runner is up); returns how many were cancelled.
    `models` limits it to those names' deployments (default: every model's).

    `pmf server start` calls it before the runner starts, so a server down for a week does not
    start a week of retrains at once."""
    from collections import defaultdict

    from prefect.client.orchestration import get_client

    moment = now or datetime.now(UTC)
    cancelled = 0
    with _environment_server(), get_client(sync_client=True) as client:
        missed: dict[UUID, list[FlowRun]] = defaultdict(list)
        chosen = [d.id for d in pmf_deployments(client) if models is None or d.name in models]
        for run in _scheduled_runs(client, chosen):
            if run.deployment_id and run.expected_start_time and run.expected_start_time < moment:
                missed[run.deployment_id].append(run)
        for runs in missed.values():
            runs.sort(key=lambda r: r.expected_start_time or moment)
            message = f"skipped: missed while the server was down ({len(runs)} missed, only the latest runs)"
            cancelled += _cancel(client, runs[:-1], message)
    return cancelled


def _environment_server() -> contextlib.AbstractContextManager[object]:
    """Prefect's settings with PREFECT_API_URL as the environment says now: `pmf server start` sets it just
    before the call, and Prefect reads its settings once, when it is first imported."""
    import os

    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = os.environ.get("PREFECT_API_URL")
    return temporary_settings({PREFECT_API_URL: url}) if url else contextlib.nullcontext()


def trim_waiting_retrains(name: str) -> int:
    """Keep at most one retrain of NAME waiting behind the one that runs (DECISIONS: "queued, one waiting
    at most"): cancel the waiting runs but the oldest, each with a message saying why; returns how many.

    The retrain flow calls it when it starts: the runs still waiting then are queued behind it."""
    deployment = read_deployment("retrain", name)
    if deployment is None:
        return 0
    from prefect.client.orchestration import get_client

    now = datetime.now(UTC)
    with get_client(sync_client=True) as client:
        waiting = [r for r in _scheduled_runs(client, [deployment.id]) if r.expected_start_time and r.expected_start_time <= now]
        waiting.sort(key=lambda r: r.expected_start_time or now)
        message = f"cancelled: a retrain of {name} is already queued (one waits at most; the next one covers this request)"
        return _cancel(client, waiting[1:], message)


def _scheduled_runs(client: SyncPrefectClient, deployment_ids: list[UUID]) -> list[FlowRun]:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    if not deployment_ids:
        return []
    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)),
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
    )


def _cancel(client: SyncPrefectClient, runs: list[FlowRun], message: str) -> int:
    from prefect.states import Cancelled

    for run in runs:
        client.set_flow_run_state(run.id, Cancelled(message=message), force=True)
    return len(runs)
