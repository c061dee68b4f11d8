"""From a drift event to the retrain run starting, on a real `pmf server start` (goal: p50 of 5 ≤ 30 s).

A temporary workspace, a lean first run of penguins, `pmf schedule` (its drift automation), then five
times: emit `pmf.drift.detected` (flows.events.emit_drift, as `pmf monitor` does) and time the
automation's retrain run until it is created and until it is Running (its start_time) in the runner.
The automation is re-created before each event: its 15-minute debounce would swallow the next ones.

    python benchmarks/bench_drift_latency.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_server_overhead import free_ports

REPO = Path(__file__).resolve().parent.parent
NAME = "bench-drift"
EVENTS = 5
GOAL_S = 30.0


def pmf(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pmf {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done


def drift_runs(client, deployment_id) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
    return [r for r in runs if r.parameters.get("trigger") == "drift"]


def measure_one(client, deployment_id, seen: set) -> tuple[float, float]:
    """Emit one drift event; seconds until its run exists and until it is Running (then wait for its end)."""
    from prefect.events.worker import EventsWorker

    from flows.deployments import replace_drift_automation
    from flows.events import emit_drift

    replace_drift_automation(NAME, deployment_id)
    time.sleep(5)  # the triggers service loads a new automation on its next refresh
    sent = datetime.now(UTC)
    emit_drift(NAME, "1", {"drift_share": 1.0, "benchmark": True})
    EventsWorker.drain_all()
    created = started = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        new = [r for r in drift_runs(client, deployment_id) if r.id not in seen]
        if new:
            created = created or (new[0].created - sent).total_seconds()
            if new[0].start_time is not None:
                started = (new[0].start_time - sent).total_seconds()
                if new[0].state and new[0].state.is_final():
                    seen.add(new[0].id)
                    return created, started
        time.sleep(0.5)
    raise SystemExit("no drift-triggered run started within 300 s")


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="pmf-bench-drift-"))
    env = {**os.environ, "PMF_HOME": str(home), "PYTHONPATH": str(REPO)}
    for key in ("PREFECT_API_URL", "PREFECT_HOME", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    prefect_port, mlflow_port = free_ports(2)
    pmf(env, "server", "start", "--port", str(prefect_port), "--mlflow-port", str(mlflow_port))
    try:
        lean = ["--set", "train.epochs=12", "--set", "compression.variants=[float32]"]
        pmf(env, "run", "--config", str(REPO / "data" / "penguins.yaml"), "--name", NAME, *lean)
        pmf(env, "schedule", NAME, "--cron", "0 3 1 1 *")
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{prefect_port}/api"
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            deployment_id = client.read_deployment_by_name(f"pmf-retrain/{NAME}").id
            seen: set = set()
            samples = [measure_one(client, deployment_id, seen) for _ in range(EVENTS)]
    finally:
        pmf(env, "server", "stop")
    created = statistics.median(s[0] for s in samples)
    started = statistics.median(s[1] for s in samples)
    print(f"{'measure':<42} {'p50 s':>7} {'max s':>7}  goal")
    print(f"{'drift event -> retrain run created':<42} {created:>7.1f} {max(s[0] for s in samples):>7.1f}")
    print(f"{'drift event -> retrain run Running':<42} {started:>7.1f} {max(s[1] for s in samples):>7.1f}  ≤ {GOAL_S:.0f} s")
    print(json.dumps({"created_s": [s[0] for s in samples], "started_s": [s[1] for s in samples], "goal_met": started <= GOAL_S}))


if __name__ == "__main__":
    main()
