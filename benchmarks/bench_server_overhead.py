"""Orchestration overhead with the local server up: `pmf run` (recording on `pmf server start`'s Prefect
server, so no embedded server starts) against the plain script doing the same work, in one run.

Same commands, data and training settings as bench_pipeline.py (whose helpers it uses). Also times, on
the same workspace: `pmf run` with Prefect's embedded server (after `pmf server stop`), and at the
smallest size `pmf run` logging to MLflow through the tracking server's HTTP API instead of writing the
SQLite store directly (what the local server's commands do).

    python benchmarks/bench_server_overhead.py [--rows 1000 1000000] [--quick] [--embedded-all]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_pipeline import REPO, TRAIN, pipeline_command, timed
from synthetic import write_tabular


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for probe in sockets:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in sockets]
    for probe in sockets:
        probe.close()
    return ports


def server(env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "flows.cli", "server", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pmf server {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="1k and 100k rows only")
    parser.add_argument("--embedded-all", action="store_true", help="time the embedded server at every size (default: 1k only)")
    args = parser.parse_args()
    rows_list = [1_000, 100_000] if args.quick else sorted(args.rows)
    folder = Path(tempfile.mkdtemp(prefix="pmf-bench-server-"))
    env = {**os.environ, "PMF_HOME": str(folder / "home")}
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PREFECT_HOME", "PMF_MLFLOW_UI_URL"):
        env.pop(key, None)
    prefect_port, mlflow_port = free_ports(2)
    server(env, "start", "--port", str(prefect_port), "--mlflow-port", str(mlflow_port))
    table = []
    try:
        # One untimed run first: the first pmf run on a machine reads TensorFlow, GX and MLflow from a cold
        # disk cache, which would be charged to whichever variant happened to run first.
        timed(pipeline_command(write_tabular(rows_list[0], folder), "warm-up"), env)
        for rows in rows_list:
            data = write_tabular(rows, folder)
            plain_s, _ = timed([sys.executable, "benchmarks/plain_script.py", str(data), "label", *TRAIN], env)
            pmf_s, flow = timed(pipeline_command(data, f"server-{rows}"), env)
            assert flow["links"]["prefect_flow_run"].startswith(f"http://127.0.0.1:{prefect_port}/"), (
                "the run did not use the server"
            )
            outside_s = pmf_s - flow["wall_seconds"]  # process start, imports, reaching Prefect
            table.append(
                {
                    "rows": rows,
                    "plain_s": plain_s,
                    "pmf_s": pmf_s,
                    "outside_s": outside_s,
                    "stages": flow["stage_seconds"],
                    "data": data,
                }
            )
        smallest = table[0]
        over_http = {
            **env,
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
            "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        }
        http_s, _ = timed(pipeline_command(smallest["data"], f"http-{smallest['rows']}"), over_http)
    finally:
        server(env, "stop")
    for row in table if args.embedded_all else table[:1]:
        row["embedded_s"], flow = timed(pipeline_command(row["data"], f"embedded-{row['rows']}"), env)
        row["embedded_outside_s"] = row["embedded_s"] - flow["wall_seconds"]
        row["embedded_stages"] = flow["stage_seconds"]
    print_table(table, http_s)


def print_table(table: list[dict], http_s: float) -> None:
    print("| rows | plain script s | pmf run, server up s | ratio | pmf run, embedded s | ratio embedded |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in table:
        embedded = r.get("embedded_s")
        tail = f"{embedded:.1f} | {embedded / r['plain_s']:.2f}" if embedded else "– | –"
        print(f"| {r['rows']:,} | {r['plain_s']:.1f} | {r['pmf_s']:.1f} | {r['pmf_s'] / r['plain_s']:.2f} | {tail} |")
    first, last = table[0], table[-1]
    print(f"\nfixed cost at {first['rows']:,} rows, server up: {first['pmf_s'] - first['plain_s']:.1f} s over the plain script")
    print(f"  of which outside the flow (process start, imports, reaching Prefect): {first['outside_s']:.1f} s")
    if first.get("embedded_s"):
        print(
            f"embedded server instead: {first['embedded_s'] - first['plain_s']:.1f} s over the plain script, "
            f"{first['embedded_outside_s']:.1f} s outside the flow"
        )
    print(
        f"MLflow through the server's HTTP API at {first['rows']:,} rows: {http_s:.1f} s "
        f"(direct to the SQLite store: {first['pmf_s']:.1f} s)"
    )
    for r in table:
        for label, key in (("server up", "stages"), ("embedded", "embedded_stages")):
            if key in r:
                print(f"  {r['rows']:>9,} rows, {label}: " + "  ".join(f"{k} {v:.1f}" for k, v in r[key].items()))
    if len(table) > 1:
        print(f"overhead ratio at {last['rows']:,} rows, server up: {last['pmf_s'] / last['plain_s']:.2f} (goal ≤ 1.10)")
    print(json.dumps({"server_overhead": [{k: v for k, v in r.items() if k != "data"} for r in table], "http_s": http_s}))


if __name__ == "__main__":
    main()
