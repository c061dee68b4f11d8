"""What `pmf status` reports, collected: the server and its runner, the schedules and recent runs (Prefect),
what each alias points to (the MLflow registry) and the last drift checks (the history files).

Which Prefect it asks: the local server while `pmf server start` runs; the user's PREFECT_API_URL (a team
server) when it is set; else the workspace's own Prefect database through the embedded server (a few
seconds to start), and only once a flow run has created that database. Schedules are read from a real
server only (the embedded one runs no scheduler). A Prefect that cannot be read leaves its sections empty
and says why in `problems`: the registry half of the report still stands.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from tasks.status.runs import RunFacts, duration_trends, iso, run_entry

PMF_FLOWS = ("pmf-train", "pmf-retrain", "pmf-monitor", "pmf-validate", "pmf-promote")
RUNS_READ = 200  # read for the list and the duration trends
RUNS_LISTED = 50  # in `--json`; the terminal shows fewer


@dataclass(frozen=True)
class PrefectTarget:
    """The Prefect `status` reads: `local` (pmf's server), `team` (the user's PREFECT_API_URL) or `embedded`."""

    mode: Literal["local", "team", "embedded"]
    api_url: str | None = None
    ui_url: str | None = None
    mlflow_url: str | None = None
    runner_alive: bool = False  # the local runner's process (a team's workers are asked from the server)


def prefect_target(user_api_url: str | None) -> PrefectTarget:
    """Where the runs are: the user's PREFECT_API_URL (as set before pmf pointed it anywhere) wins unless it
    is the local server's own; then the local server if it is up; else the embedded server."""
    from tasks.local_server import running_server
    from tasks.workspace import tracking_uri

    local = running_server()
    if local is not None and user_api_url in (None, local.prefect_api_url):
        return PrefectTarget("local", local.prefect_api_url, local.prefect_ui_url, local.mlflow_url, local.runner_up())
    uri = tracking_uri()
    mlflow_url = uri if uri.startswith(("http://", "https://")) else None
    if user_api_url:
        api = user_api_url.rstrip("/")
        return PrefectTarget("team", api, os.environ.get("PREFECT_UI_URL") or api.removesuffix("/api"), mlflow_url)
    return PrefectTarget("embedded", mlflow_url=mlflow_url)


def collect_status(name: str | None, user_api_url: str | None, now: datetime) -> dict[str, Any]:
    """The report `pmf status --json` prints (DESIGN.md; DECISIONS.md fixes its fields).

    Raises what the MLflow store raises when it cannot be read (the caller makes that one line, exit 1)."""
    from tasks.status.drift import last_verdicts

    target = prefect_target(user_api_url)
    problems: list[str] = []
    up = target.mode != "embedded" and _answers(target, problems)
    prefect = read_prefect(target, name, now, problems) if up or target.mode == "embedded" else PrefectFindings()
    runs = [run_entry(run, now, state_outcomes()) for run in prefect.runs]
    return {
        "status": "ok",
        "model": name,
        "checked_at": iso(now),
        "server": {
            "up": up,
            "runner_up": up and (target.runner_alive if target.mode == "local" else prefect.team_runner),
            "prefect_url": target.ui_url,
            "mlflow_url": target.mlflow_url,
            "mode": target.mode,
        },
        "schedules": prefect.schedules,
        "runs": runs[:RUNS_LISTED],
        "models": models_section(name, now),
        "drift": last_verdicts(name),
        "trends": duration_trends(runs),
        "problems": problems,
    }


def _answers(target: PrefectTarget, problems: list[str]) -> bool:
    from tasks.local_server.health import prefect_answers

    if target.api_url and prefect_answers(target.api_url):
        return True
    where = "pmf's local server" if target.mode == "local" else "PREFECT_API_URL"
    problems.append(f"the Prefect server at {target.api_url} ({where}) does not answer: runs and schedules are not shown")
    return False


def state_outcomes() -> dict[str, str]:
    """Prefect state name -> pmf outcome (`Rejected` -> `data_rejected`), from the states pmf's flows end in."""
    from flows.ui import STATES

    return {state_name: outcome for outcome, (_, state_name) in STATES.items()}


# ---- Prefect ------------------------------------------------------------------------------------


@dataclass
class PrefectFindings:
    runs: tuple[RunFacts, ...] = ()
    schedules: list[dict[str, Any]] = field(default_factory=list)
    team_runner: bool = False


def read_prefect(target: PrefectTarget, name: str | None, now: datetime, problems: list[str]) -> PrefectFindings:
    """Runs (newest first), schedules and a team's runner from the target's Prefect; nothing at all from a
    workspace whose Prefect database does not exist yet (no run ever made one: nothing to start a server for)."""
    if target.mode == "embedded" and not prefect_database_exists():
        return PrefectFindings()
    try:
        with prefect_client(target) as client:
            runs = tuple(recent_runs(client, name, now))
            if target.mode == "embedded":
                return PrefectFindings(runs)
            return PrefectFindings(runs, read_schedules(name), target.mode == "team" and team_runner_up(client))
    except Exception as exc:  # noqa: BLE001  (a Prefect that fails to answer must not hide the registry's half of the report)
        problems.append(f"the flow runs could not be read from Prefect: {failure_line(exc)}")
        return PrefectFindings()


def failure_line(exc: BaseException) -> str:
    """`Type: first line of the message (details: LOG)`; the traceback goes to the log, never the terminal."""
    import traceback

    from tasks.workspace import log_path

    first = (str(exc).strip().splitlines() or ["no message"])[0][:200]
    try:
        path = log_path("status-error")
        path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
    except OSError:
        return f"{type(exc).__name__}: {first}"
    return f"{type(exc).__name__}: {first} (details: {path})"


def prefect_database_exists() -> bool:
    """Whether the embedded server's database exists (a database that is not a SQLite file is assumed to)."""
    from prefect.settings import get_current_settings

    from tasks.workspace import sqlite_path

    url = get_current_settings().server.database.connection_url
    text = url.get_secret_value() if url is not None else ""
    path = sqlite_path(text.replace("sqlite+aiosqlite:", "sqlite:", 1))
    return path is None or path.exists()


@contextmanager
def prefect_client(target: PrefectTarget) -> Iterator[Any]:
    """A synchronous Prefect client for the target; the embedded server starts the way pmf starts it
    (logged to PMF_HOME/logs, recorded so a killed command's server is stopped later)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if target.api_url is None:
        from flows.embedded_server import track_embedded_server

        track_embedded_server()
        with get_client(sync_client=True) as client:
            yield client
        return
    with temporary_settings({PREFECT_API_URL: target.api_url}), get_client(sync_client=True) as client:
        yield client


def recent_runs(client: Any, name: str | None, now: datetime) -> list[RunFacts]:
    """The last RUNS_READ runs of pmf's flows (of model `name`), newest first; runs the scheduler made for
    later are left out (the schedules show the next one), late ones are kept."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    flows = {flow.id: flow.name for flow in client.read_flows(flow_filter=FlowFilter(name=FlowFilterName(any_=list(PMF_FLOWS))))}
    if not flows:
        return []
    run_filter = FlowRunFilter(
        expected_start_time=FlowRunFilterExpectedStartTime(before_=now),
        tags=FlowRunFilterTags(all_=[f"model:{name}"]) if name else None,
    )
    found = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=list(PMF_FLOWS))),
        flow_run_filter=run_filter,
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=RUNS_READ,
    )
    # Newest first by when each run started (a run an automation made waits a moment for the runner).
    return sorted((run_facts(run, flows) for run in found), key=_began, reverse=True)


def _began(run: RunFacts) -> datetime:
    return run.start or run.expected_start or datetime.min.replace(tzinfo=UTC)


def run_facts(run: Any, flow_names: dict[Any, str]) -> RunFacts:
    """A Prefect FlowRun as the plain record tasks.status.runs summarises."""
    state = run.state
    return RunFacts(
        flow=flow_names.get(run.flow_id, "unknown"),
        state_type=state.type.value.lower() if state else "unknown",
        state_name=state.name if state else "",
        tags=tuple(run.tags),
        parameters=dict(run.parameters or {}),
        start=run.start_time,
        end=run.end_time,
        expected_start=run.expected_start_time,
        auto_scheduled=bool(run.auto_scheduled),
        created_by=str(run.created_by.type) if run.created_by and run.created_by.type else None,
        id=str(run.id),
        name=run.name,
    )


def read_schedules(name: str | None) -> list[dict[str, Any]]:
    """Every schedule of the `pmf-retrain/*` and `pmf-monitor/*` deployments (of `name`), as
    `pmf schedule --list` shows them: {model, kind, schedule, paused, next_run}."""
    from flows.deployments import list_schedules

    return [entry for entry in list_schedules() if name is None or entry["model"] == name]


def team_runner_up(client: Any) -> bool:
    """Whether a worker polls the team's work pool (`pmf`, else pmf's local pool on that server)."""
    from prefect.client.schemas.objects import WorkPoolStatus
    from prefect.exceptions import ObjectNotFound

    from flows.deployments import LOCAL_POOL, TEAM_POOL

    for pool in (TEAM_POOL, LOCAL_POOL):
        try:
            if client.read_work_pool(pool).status == WorkPoolStatus.READY:
                return True
        except ObjectNotFound:
            continue
    return False


# ---- the registry -------------------------------------------------------------------------------


def known_name(name: str) -> bool:
    """Whether the workspace knows `name`: a registered model or a dataset's experiment (a first batch
    that was rejected registers nothing, but its runs are worth a status)."""
    from tasks.config import name_problem
    from tasks.registry import tracking

    if name_problem(name):
        return False
    return is_registered(name) or tracking.client().get_experiment_by_name(name) is not None


def is_registered(name: str) -> bool:
    """Whether `name` is a registered model (pmf's promotion locks are not)."""
    from mlflow.exceptions import MlflowException

    from tasks.registry import lifecycle, tracking

    try:
        return not lifecycle.is_lock(tracking.client().get_registered_model(name))
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise


def models_section(name: str | None, now: datetime) -> list[dict[str, Any]]:
    """Per registered model (or `name`'s, when registered): each alias's version, primary metric and age,
    from the rows `pmf models` shows (tasks.registry.lifecycle.list_models)."""
    from tasks.registry.lifecycle import list_models
    from tasks.status.models import model_entry

    if name is not None and not is_registered(name):
        return []
    entries = []
    for model in list_models(name):
        rows = {row["version"]: row for row in model["versions"]}
        primary = {version: primary_metric(model["name"], rows[version]) for version in set(model["aliases"].values())}
        entries.append(model_entry(model, primary, now))
    return entries


def primary_metric(name: str, row: dict[str, Any]) -> str | None:
    """The metric the version was judged on (its recorded config). `pmf models` shows the usual metrics
    only; a primary metric beyond them (`recall_macro`) is read from the version's run into `row`."""
    from mlflow.exceptions import MlflowException

    from tasks.registry import tracking
    from tasks.status.models import primary_metric_of

    version = tracking.client().get_model_version(name, row["version"])
    metric = primary_metric_of(version.tags.get("pmf.config"), row["metrics"])
    if metric and metric not in row["metrics"]:
        run_id = version.tags.get("mlflow.parent_run_id") or version.run_id
        try:
            value = tracking.client().get_run(run_id).data.metrics.get(metric) if run_id else None
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            value = None  # the run was deleted: the version stays, its metrics are gone
        if value is not None:
            row["metrics"] = {**row["metrics"], metric: float(value)}
    return metric
