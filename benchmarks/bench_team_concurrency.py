"""Team mode under concurrency, against the PostgreSQL-backed servers `pmf team up` starts, in one run:

- pipelines: one lean `pmf run` alone, then three at once (distinct model names, the same team):
  pipelines per minute of each, and the ratio (three at once over one alone);
- registry operations per second through the MLflow server's HTTP API, 1 client vs 3 concurrent
  clients (processes): each cycle registers a version, moves an alias to it, searches the model's
  versions and reads the version back by its alias (4 requests), each client on a model of its own.

    python benchmarks/bench_team_concurrency.py [--postgres URL] [--cycles 40]

Needs PostgreSQL (default postgresql://postgres@127.0.0.1:5432/test); the team runs on free ports with a
random database prefix and `pmf team down --drop` removes it at the end. The ratio depends on the
machine's cores: pipelines on 2 cores share them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_server_overhead import free_ports

REPO = Path(__file__).resolve().parent.parent
PENGUINS = REPO / "data" / "penguins.yaml"
LEAN = ["--set", "train.epochs=2", "--set", "compression.variants=[float32]"]
CLIENTS = 3


def pmf(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def team_up(home: Path, postgres: str) -> dict[str, str]:
    """`pmf team up` on free ports; the environment a user has after pasting its exports."""
    prefix = f"pmf_bench{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "PMF_HOME": str(home), "PYTHONPATH": str(REPO)}
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PREFECT_HOME", "PMF_DASK_ADDRESS", "PMF_DATABASE_URL"):
        env.pop(key, None)
    prefect, mlflow, dask = free_ports(3)
    ports = ["--port", str(prefect), "--mlflow-port", str(mlflow), "--dask-port", str(dask)]
    done = pmf(env, "team", "up", "--postgres", postgres, "--prefix", prefix, *ports, timeout=600)
    if done.returncode != 0:
        pmf(env, "team", "down", "--drop")
        raise RuntimeError(f"pmf team up failed:\n{done.stdout}\n{done.stderr}")
    exports = dict(line.removeprefix("export ").split("=", 1) for line in done.stdout.splitlines() if line.startswith("export "))
    return {**env, **exports}


def pipeline(env: dict[str, str], name: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "flows.cli", "run", "--config", str(PENGUINS), "--name", name, *LEAN, "--json"]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def pipelines_at_once(env: dict[str, str], names: list[str]) -> float:
    """Seconds from starting `names`' pipelines together until the last one ended; each must complete."""
    start = time.perf_counter()
    processes = [pipeline(env, name) for name in names]
    for name, process in zip(names, processes, strict=True):
        stdout, stderr = process.communicate(timeout=1800)
        result = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
        if process.returncode != 0 or result.get("status") != "completed":
            raise RuntimeError(f"pmf run {name} exited {process.returncode}:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    return time.perf_counter() - start


# ---- registry operations ----------------------------------------------------------------------------


def registry_client(
    uri: str, source: tuple[str, str, str], model: str, cycles: int, start_at: float, out: multiprocessing.Queue
) -> None:
    """One client process: `cycles` × (register, move alias, search versions, read by alias) on `model`."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no line per version "waiting for creation"
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    model_uri, run_id, model_id = source
    client.create_registered_model(model)
    time.sleep(max(0.0, start_at - time.time()))  # every client starts its cycles at the same moment
    began = time.perf_counter()
    for _ in range(cycles):
        version = client.create_model_version(model, model_uri, run_id=run_id, model_id=model_id).version
        client.set_registered_model_alias(model, "bench", version)
        client.search_model_versions(f"name = '{model}'", max_results=100)
        assert client.get_model_version_by_alias(model, "bench").version == version
    out.put((cycles * 4, time.perf_counter() - began))


def registry_ops_per_second(uri: str, source: tuple[str, str, str], clients: int, cycles: int) -> float:
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = context.Queue()
    start_at = time.time() + 8  # time for every spawned process to import MLflow first
    tag = uuid.uuid4().hex[:6]
    processes = [
        context.Process(target=registry_client, args=(uri, source, f"bench-ops-{tag}-{i}", cycles, start_at, out))
        for i in range(clients)
    ]
    for process in processes:
        process.start()
    results = [out.get(timeout=900) for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a registry client exited {process.exitcode}")
    operations = sum(count for count, _ in results)
    return operations / max(seconds for _, seconds in results)


def model_source(uri: str, name: str) -> tuple[str, str, str]:
    """A registered pipeline model's (source URI, run id, logged model id): new versions of the benchmark's models point at it."""
    from mlflow import MlflowClient

    version = MlflowClient(tracking_uri=uri).get_model_version(name, "1")
    return version.source, version.run_id, version.model_id or version.source.removeprefix("models:/")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--cycles", type=int, default=40, help="registry cycles (4 requests each) per client")
    parser.add_argument(
        "--quick", action="store_true", help="accepted for `make bench BENCH_ARGS=--quick`; the defaults are already short"
    )
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="pmf-bench-team-")) / "home"
    started = time.perf_counter()
    env = team_up(home, args.postgres)
    up_s = time.perf_counter() - started
    try:
        tag = uuid.uuid4().hex[:4]
        pipelines_at_once(env, [f"warmup-{tag}"])  # untimed: cold disk cache, first use of each server
        one_s = pipelines_at_once(env, [f"solo-{tag}"])
        three_s = pipelines_at_once(env, [f"trio-{tag}-{i}" for i in range(CLIENTS)])
        uri = env["MLFLOW_TRACKING_URI"]
        source = model_source(uri, f"solo-{tag}")
        registry_ops_per_second(uri, source, 1, 3)  # untimed warm-up of the server's code paths
        ops_one = registry_ops_per_second(uri, source, 1, args.cycles)
        ops_three = registry_ops_per_second(uri, source, CLIENTS, args.cycles)
    finally:
        pmf({k: v for k, v in env.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")}, "team", "down", "--drop")
    print_table(up_s, one_s, three_s, ops_one, ops_three, os.cpu_count() or 1)


def print_table(up_s: float, one_s: float, three_s: float, ops_one: float, ops_three: float, cores: int) -> None:
    one_rate, three_rate = 60 / one_s, 60 * CLIENTS / three_s
    print(f"team mode on PostgreSQL, {cores} cores (`pmf team up`: {up_s:.0f} s to healthy)\n")
    print("| measure | 1 at a time | 3 at once | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| lean `pmf run` pipelines per minute | {one_rate:.2f} ({one_s:.0f} s) | {three_rate:.2f} ({three_s:.0f} s) | {three_rate / one_rate:.2f} |"
    )
    print(f"| registry operations per second (HTTP) | {ops_one:.1f} | {ops_three:.1f} | {ops_three / ops_one:.2f} |")
    print(
        json.dumps(
            {
                "team_concurrency": {
                    "team_up_s": up_s,
                    "one_pipeline_s": one_s,
                    "three_pipelines_s": three_s,
                    "pipelines_per_min": [one_rate, three_rate],
                    "registry_ops_per_s": [ops_one, ops_three],
                    "cores": cores,
                }
            }
        )
    )


if __name__ == "__main__":
    main()
