"""Whether each part of team mode answers: Prefect's and MLflow's health URLs, the worker's heartbeat on
the `pmf` pool, and the Dask scheduler's list of workers. One cheap request each, never raising."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.local_server.health import RUNNER_HEARTBEAT_LIMIT_S, mlflow_answers, prefect_answers, runner_heartbeat
from tasks.team.state import WORK_POOL, TeamState

WORKER_NAME = "pmf-team-worker"
DASK_TIMEOUT_S = 3.0


def worker_heartbeat(api_url: str) -> datetime | None:
    """When the team's Prefect worker last told the server it is alive (None: never, or no server)."""
    return runner_heartbeat(api_url, WORKER_NAME, WORK_POOL)


def worker_registered(api_url: str, since: datetime) -> bool:
    """The worker has sent a heartbeat since `since` (an older one is a previous worker's)."""
    beat = worker_heartbeat(api_url)
    return beat is not None and beat >= since - timedelta(seconds=1)


def dask_workers(address: str) -> list[str] | None:
    """The names of the workers the Dask scheduler at `address` has (None: the scheduler does not answer).

    One call of the scheduler's `identity` over Dask's own protocol: no Client, no dashboard port.
    """
    import asyncio

    from distributed.core import rpc

    async def ask() -> dict[str, Any]:
        async with rpc(address, timeout=DASK_TIMEOUT_S) as scheduler:
            return await scheduler.identity()

    try:
        identity = asyncio.run(asyncio.wait_for(ask(), DASK_TIMEOUT_S))
    except (OSError, TimeoutError):
        return None
    return [str(worker.get("name")) for worker in identity.get("workers", {}).values()]


def part_answers(state: TeamState, part: str, since: datetime | None = None) -> bool:
    """Whether `part` answers its health check (the worker: a heartbeat since `since`, default within
    the last RUNNER_HEARTBEAT_LIMIT_S)."""
    if part == "prefect":
        return prefect_answers(state.prefect_api_url)
    if part == "mlflow":
        return mlflow_answers(state.mlflow_url)
    if part == "worker":
        since = since or datetime.now(UTC) - timedelta(seconds=RUNNER_HEARTBEAT_LIMIT_S)
        return worker_registered(state.prefect_api_url, since)
    names = dask_workers(state.dask_address)
    if part == "dask-scheduler":
        return names is not None
    return names is not None and part in names


def report(state: TeamState | None) -> dict[str, Any]:
    """`{up, exports, processes}` as `pmf team status --json` prints it: `up` when every part's process
    is alive and answers; per part its pid, up, url and log."""
    if state is None:
        return {"up": False, "exports": {}, "processes": {}}
    names = dask_workers(state.dask_address) if state.is_up("dask-scheduler") else None
    answers = {
        "prefect": state.is_up("prefect") and prefect_answers(state.prefect_api_url),
        "mlflow": state.is_up("mlflow") and mlflow_answers(state.mlflow_url),
        "dask-scheduler": names is not None,
    }
    beat = worker_heartbeat(state.prefect_api_url) if answers["prefect"] else None
    age = (datetime.now(UTC) - beat).total_seconds() if beat else None
    answers["worker"] = state.is_up("worker") and age is not None and age <= RUNNER_HEARTBEAT_LIMIT_S
    for part in state.parts:
        if part.startswith("dask-worker-"):
            answers[part] = state.is_up(part) and names is not None and part in names
    processes: dict[str, dict[str, Any]] = {
        part: {"pid": p.pid, "up": answers.get(part, False), "url": p.url, "log": p.log} for part, p in state.processes.items()
    }
    if "worker" in processes:
        processes["worker"].update(work_pool=state.work_pool, heartbeat_age_s=age)
    return {
        "up": all(answers.get(part, False) for part in state.parts),
        "prefix": state.prefix,
        "databases": state.databases,
        "exports": state.exports(),
        "processes": processes,
    }
