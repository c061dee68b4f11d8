"""Whether each part of the local server answers: one HTTP request each, a short timeout, never raising."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from tasks.local_server.state import WORK_POOL, ServerState

TIMEOUT_S = 2.0
RUNNER_NAME = "pmf-runner"
# Prefect's worker heartbeat is 10 s here (see launch); three missed ones and the runner counts as down.
RUNNER_HEARTBEAT_LIMIT_S = 30.0


def _request(url: str, body: dict | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET (or a JSON POST when `body` is given); (0, b"") when nothing answered."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})  # noqa: S310 (our own http://127.0.0.1 URLs)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 (as above)
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (OSError, ValueError):  # refused, reset, timed out: not up (yet)
        return 0, b""


def prefect_answers(api_url: str) -> bool:
    """Prefect's /api/health says true once the database is migrated and the API serves."""
    status, body = _request(f"{api_url}/health")
    return status == 200 and body.strip() == b"true"


def mlflow_answers(url: str) -> bool:
    return _request(f"{url}/health")[0] == 200


def runner_heartbeat(api_url: str, name: str = RUNNER_NAME, pool: str = WORK_POOL) -> datetime | None:
    """When the worker `name` of work pool `pool` (default: the runner) last told the Prefect server it
    is alive (None: never, or no server).

    The worker row outlives the worker in Prefect's database: compare the time with when it started.
    """
    status, body = _request(f"{api_url}/work_pools/{pool}/workers/filter", {})
    if status != 200:
        return None
    for worker in json.loads(body):
        if worker.get("name") == name and worker.get("last_heartbeat_time"):
            return datetime.fromisoformat(worker["last_heartbeat_time"])
    return None


def report(state: ServerState | None) -> dict[str, Any]:
    """`{up, runner_up, prefect_url, mlflow_url, processes}` as `pmf server status --json` prints it.

    `up`: both servers' processes alive and answering; `runner_up`: the runner alive with a heartbeat in
    the last RUNNER_HEARTBEAT_LIMIT_S. Per process: pid, up, url (the runner: its work pool), log.
    Costs two or three local HTTP requests (a few milliseconds each).
    """
    if state is None:
        return {"up": False, "runner_up": False, "prefect_url": None, "mlflow_url": None, "processes": {}}
    answers = {
        "prefect": state.is_up("prefect") and prefect_answers(state.prefect_api_url),
        "mlflow": state.is_up("mlflow") and mlflow_answers(state.mlflow_url),
    }
    beat = runner_heartbeat(state.prefect_api_url) if answers["prefect"] else None
    age = (datetime.now(UTC) - beat).total_seconds() if beat else None
    answers["runner"] = state.runner_up() and age is not None and age <= RUNNER_HEARTBEAT_LIMIT_S
    processes: dict[str, dict[str, Any]] = {
        name: {"pid": p.pid, "up": answers.get(name, False), "url": p.url, "log": p.log} for name, p in state.processes.items()
    }
    if "runner" in processes:
        processes["runner"].update(url=None, work_pool=state.work_pool, heartbeat_age_s=age)
    return {
        "up": answers["prefect"] and answers["mlflow"],
        "runner_up": answers["runner"],
        "prefect_url": state.prefect_ui_url,
        "mlflow_url": state.mlflow_url,
        "processes": processes,
    }
