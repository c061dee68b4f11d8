"""Team mode on this machine's PostgreSQL: `pmf team up` time to healthy, and `pmf run` overhead against the
team's servers compared with the plain script doing the same work, in one run.

(a) `pmf team up` on fresh databases (migrations included), then again on the databases it left (a
    restart), against `pmf server start` on a fresh workspace (SQLite) as the baseline.
(b) `pmf run` with the team's exports set (Prefect on PostgreSQL, MLflow over HTTP with proxied
    artifacts) against benchmarks/plain_script.py, same data and training settings as
    bench_pipeline.py / bench_server_overhead.py (whose helpers it uses). Goal: ≤ 1.10 at 1M rows.

    python benchmarks/bench_team.py [--rows 1000 1000000] [--quick] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_pipeline import REPO, TRAIN, pipeline_command, timed
from bench_server_overhead import free_ports, server
from synthetic import write_tabular

POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def team(env: dict, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    """`pmf team ARGS` as a whole command: (seconds, the finished process). Raises if it failed."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flows.cli", "team", *args], cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"pmf team {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, done


def exports_of(stdout: str) -> dict[str, str]:
    lines = [line.removeprefix("export ") for line in stdout.splitlines() if line.startswith("export ")]
    return dict(line.split("=", 1) for line in lines)


def time_to_healthy(env: dict, postgres: str) -> tuple[dict[str, float], dict[str, str]]:
    """(seconds of: server start baseline, team up fresh, team up restart), and the exports of the team left up."""
    prefect_port, mlflow_port, dask_port, base_prefect, base_mlflow = free_ports(5)
    baseline_env = {**env, "PMF_HOME": str(Path(env["PMF_HOME"]).parent / "server-home")}
    started = time.perf_counter()
    server(baseline_env, "start", "--port", str(base_prefect), "--mlflow-port", str(base_mlflow))
    baseline_s = time.perf_counter() - started
    server(baseline_env, "stop")
    prefix = f"pmf_b{uuid.uuid4().hex[:8]}"
    ports = ["--port", str(prefect_port), "--mlflow-port", str(mlflow_port), "--dask-port", str(dask_port)]
    up = ["up", "--postgres", postgres, "--prefix", prefix, *ports]
    fresh_s, _ = team(env, *up)
    team(env, "down")
    restart_s, done = team(env, *up)
    return {"server_start_s": baseline_s, "team_up_fresh_s": fresh_s, "team_up_restart_s": restart_s}, exports_of(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="1k and 100k rows only")
    parser.add_argument("--postgres", default=POSTGRES, help=f"the PostgreSQL server (default: {POSTGRES})")
    args = parser.parse_args()
    rows_list = [1_000, 100_000] if args.quick else sorted(args.rows)
    folder = Path(tempfile.mkdtemp(prefix="pmf-bench-team-"))
    env = {**os.environ, "PMF_HOME": str(folder / "home")}
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PREFECT_HOME", "PMF_MLFLOW_UI_URL", "PMF_DASK_ADDRESS"):
        env.pop(key, None)
    table = []
    try:
        startup, exports = time_to_healthy(env, args.postgres)
        on_team = {**env, **exports}
        # One untimed run first: a cold disk cache (TensorFlow, GX, MLflow) would be charged to the first variant.
        timed(pipeline_command(write_tabular(rows_list[0], folder), "warm-up"), on_team)
        for rows in rows_list:
            data = write_tabular(rows, folder)
            plain_s, _ = timed([sys.executable, "benchmarks/plain_script.py", str(data), "label", *TRAIN], env)
            pmf_s, flow = timed(pipeline_command(data, f"team-{rows}"), on_team)
            assert flow["links"]["prefect_flow_run"].startswith(exports["PREFECT_API_URL"].removesuffix("/api")), (
                "the run did not use the team's Prefect server"
            )
            table.append({"rows": rows, "plain_s": plain_s, "pmf_s": pmf_s, "outside_s": pmf_s - flow["wall_seconds"]})
            table[-1]["stages"] = flow["stage_seconds"]
    finally:  # whatever failed: stop the team and drop its databases
        subprocess.run([sys.executable, "-m", "flows.cli", "team", "down", "--drop"], cwd=REPO, env=env, check=False)
    print_tables(startup, table)


def print_tables(startup: dict[str, float], table: list[dict]) -> None:
    base = startup["server_start_s"]
    print("| start | to healthy s | ratio to `pmf server start` (fresh SQLite) |")
    print("|---|---:|---:|")
    print(f"| `pmf server start`, fresh workspace (baseline) | {base:.1f} | 1.00 |")
    print(f"| `pmf team up`, fresh databases | {startup['team_up_fresh_s']:.1f} | {startup['team_up_fresh_s'] / base:.2f} |")
    print(
        f"| `pmf team up`, restart on its databases | {startup['team_up_restart_s']:.1f} | {startup['team_up_restart_s'] / base:.2f} |"
    )
    print("\n| rows | plain script s | pmf run on the team s | ratio | outside the flow s |")
    print("|---:|---:|---:|---:|---:|")
    for r in table:
        print(
            f"| {r['rows']:,} | {r['plain_s']:.1f} | {r['pmf_s']:.1f} | {r['pmf_s'] / r['plain_s']:.2f} | {r['outside_s']:.1f} |"
        )
    for r in table:
        print(f"  {r['rows']:>9,} rows: " + "  ".join(f"{k} {v:.1f}" for k, v in r["stages"].items()))
    last = table[-1]
    print(f"overhead ratio at {last['rows']:,} rows on the team: {last['pmf_s'] / last['plain_s']:.2f} (goal ≤ 1.10)")
    print(json.dumps({"team_startup": startup, "team_overhead": table}))


if __name__ == "__main__":
    main()
