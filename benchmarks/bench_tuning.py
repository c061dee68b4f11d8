"""Tuning: the same seeded 16-trial search on 1 vs 2 Dask workers (one thread each, TensorFlow's thread
pools included), the per-trial orchestration overhead against the same trials run directly, and, with
`--quality`, tuned against default configuration on digits and diabetes (test metric side by side).

Trials run as pmf's flow runs them: `tune_trial` Prefect task runs on a DaskTaskRunner, Optuna ask/tell
in the flow, a nested MLflow run per trial. Pruning is off so both runs do the same work.

    python benchmarks/bench_tuning.py [--trials 16] [--rows 6000] [--quality]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).parent))
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ONE_THREAD = {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


def arrays(rows: int):
    import numpy as np

    from tasks.tuning.trial import TrialData

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 20)).astype(np.float32)
    y = (np.tanh(x[:, :5].sum(axis=1)) + 0.3 * rng.normal(size=rows) > 0).astype(np.int64) + (x[:, 5] > 1).astype(np.int64)
    cut = int(rows * 0.8)
    return TrialData(x[:cut], y[:cut], x[cut:], y[cut:], "classification", 3)


def search(address: str, trials: int, rows: int, experiment_id: str) -> tuple[float, list]:
    """The seeded search on the cluster at `address`; (wall seconds, outcomes)."""
    from prefect_dask import DaskTaskRunner

    from flows.tune_stage import TrialRecorder, tune_trial
    from tasks.config import TrainConfig
    from tasks.registry import tracking
    from tasks.tuning.search import run_search
    from tasks.tuning.settings import TuneSettings
    from tasks.tuning.space import apply_params, search_space

    # batches of 2, two in flight, on 1 or 2 workers: the same trials either way (batch b knows batches 0 … b - 2)
    settings = TuneSettings(trials=trials, parallelism=2, pruning=False, seed=3, epochs=4)
    space = search_space(settings, "mlp")
    data = arrays(rows)
    base = TrainConfig(early_stopping_patience=50)
    parent = tracking.start_run(experiment_id, f"search-{address}")
    ctx = SimpleNamespace(experiment_id=experiment_id)
    start = time.perf_counter()
    with DaskTaskRunner(address=address) as runner, TrialRecorder(ctx, parent, "accuracy", "trial") as record:  # type: ignore[arg-type]

        def submit(asked):
            n, p, r = asked
            call = {"number": n, "params": p, "cfg": apply_params(base, p, 4), "data": data, "metric": "accuracy", "prune": r}
            return runner.submit(tune_trial, call)

        result = run_search(settings, space, "accuracy", True, submit, on_outcome=record)
    wall = time.perf_counter() - start
    tracking.end_run(parent)
    return wall, result.outcomes


DIRECT = """
import json, os, sys, time
sys.path.insert(0, {repo!r}); sys.path.insert(0, {bench!r})
from bench_tuning import arrays
from tasks.config import TrainConfig
from tasks.tuning.space import apply_params
from tasks.tuning.trial import run_trial
data = arrays({rows})
params = json.loads({params!r})
run_trial(-1, params[0], apply_params(TrainConfig(early_stopping_patience=50), params[0], 4), data, "accuracy")  # imports, graph
folder = {folder!r}
open(os.path.join(folder, f"ready-{{os.getpid()}}"), "w").close()
while len([f for f in os.listdir(folder) if f.startswith("ready-")]) < {parties}:
    time.sleep(0.005)
start = time.perf_counter()
for i, p in enumerate(params):
    try:  # the next trial no process has claimed: as a free worker takes the next queued one
        os.close(os.open(os.path.join(folder, f"claim-{{i}}"), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        continue
    run_trial(i, p, apply_params(TrainConfig(early_stopping_patience=50), p, 4), data, "accuracy")
print(time.perf_counter() - start)
"""


def direct(params: list[dict], rows: int, processes: int = 1) -> float:
    """The same trials in `processes` plain one-thread processes that take the next unclaimed trial, started
    together once each has imported and warmed up (untimed); the wall time of the slowest. With 2 processes
    this is the machine's own ceiling for 2 workers: no Prefect, no Dask, no MLflow."""
    folder = tempfile.mkdtemp(prefix="pmf-bench-direct-")
    code = DIRECT.format(
        repo=str(REPO), bench=str(Path(__file__).parent), rows=rows, params=json.dumps(params), folder=folder, parties=processes
    )
    running = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env={**os.environ, **ONE_THREAD},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    walls = []
    for process in running:
        out, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"a direct run failed:\n{err[-2000:]}")
        walls.append(float(out.strip().splitlines()[-1]))
    return max(walls)


def speed_up(trials: int, rows: int) -> list[tuple[str, str]]:
    from prefect.testing.utilities import prefect_test_harness

    from tasks.registry import tracking
    from tests.support.dask_cluster import dask_cluster

    folder = Path(tempfile.mkdtemp(prefix="pmf-bench-tuning-"))
    os.environ["PMF_HOME"] = str(folder / "home")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder / 'home' / 'mlflow.db'}"
    (folder / "home").mkdir(parents=True)
    rows_out = []
    with prefect_test_harness(server_startup_timeout=120):
        from prefect.settings import PREFECT_API_URL

        env = {**ONE_THREAD, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
        experiment = tracking.ensure_experiment("bench-tuning")
        walls, asked, timed = {}, {}, {}
        for workers in (1, 2):
            with dask_cluster(folder / f"dask-{workers}", workers, env) as cluster:
                search(cluster.address, 2, rows, experiment)  # warm-up: imports on each worker, untimed
                walls[workers], outcomes = search(cluster.address, trials, rows, experiment)
                asked[workers] = [o.params for o in outcomes]
                timed[workers] = outcomes
    if asked[1] != asked[2]:
        raise SystemExit("the seeded search asked different trials on 1 and 2 workers: the speed-up compares unlike work")
    params = asked[1]
    baseline = direct(params, rows)
    ceiling = direct(params, rows, processes=2)
    overhead = (walls[1] - baseline) / trials
    # the same run's own account: a single worker always has a trial queued, so what its wall time holds
    # beyond the trials' own seconds (timed inside run_trial, on the worker) is orchestration
    gaps = (walls[1] - sum(o.seconds for o in timed[1])) / trials
    rows_out += [
        (f"{trials} trials, 1 Dask worker (s)", f"{walls[1]:.1f}"),
        (f"{trials} trials, 2 Dask workers (s)", f"{walls[2]:.1f}"),
        ("speed-up 2 vs 1 worker (goal ≥ 1.7)", f"{walls[1] / walls[2]:.2f}×"),
        (f"the same {trials} trials run directly, one process (s)", f"{baseline:.1f}"),
        (f"the same {trials} trials run directly, two processes (s)", f"{ceiling:.1f}"),
        ("the machine's ceiling: 2 vs 1 plain process", f"{baseline / ceiling:.2f}×"),
        ("orchestration per trial against the direct run (goal ≤ 0.5 s)", f"{overhead:.2f} s"),
        ("orchestration per trial, same run: 1 worker's wall time minus its trials' own seconds", f"{gaps:.2f} s"),
    ]
    return rows_out


def quality() -> list[tuple[str, str]]:
    """`pmf run` with and without --tune on digits (CNN) and diabetes (regression): test metric side by side."""
    out = []
    for config, trials in (("digits", 8), ("diabetes", 12)):
        results = {}
        for label, extra in (("default", []), ("tuned", ["--tune", "--set", f"tune.trials={trials}"])):
            home = tempfile.mkdtemp(prefix=f"pmf-bench-tune-{config}-")
            env = {**os.environ, "PMF_HOME": home}
            for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
                env.pop(key, None)
            done = subprocess.run(
                [sys.executable, "-m", "flows.cli", "run", "--config", f"data/{config}.yaml", *extra, "--json"],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
            )
            results[label] = json.loads(done.stdout.strip().splitlines()[-1])
        metric = results["default"]["primary_metric"]
        out.append(
            (
                f"{config}: test {metric}, default → tuned",
                f"{results['default']['metrics'][metric]:.4f} → {results['tuned']['metrics'][metric]:.4f}",
            )
        )
        for label in ("default", "tuned"):
            rows = {r["variant"]: r for r in results[label].get("compression", [])}
            if "distilled_int8" in rows and "student_scratch_int8" in rows:
                d, s = rows["distilled_int8"]["metrics"].get(metric), rows["student_scratch_int8"]["metrics"].get(metric)
                out.append((f"{config} ({label}): distilled_int8 vs student_scratch_int8 {metric}", f"{d:.4f} vs {s:.4f}"))
        best = results["tuned"].get("tuning", {}).get("best") or {}
        out.append((f"{config}: the tuned model's values came from trial", str(best.get("trial"))))
        out.append((f"{config}: tuning seconds", f"{results['tuned'].get('tuning', {}).get('seconds', float('nan')):.0f}"))
    return out


def distillation_seeds(seeds: int) -> list[tuple[str, str]]:
    """Untuned `pmf run` on digits with seeds 1 … N (training and compression): distilled_int8 against
    student_scratch_int8 on the test split, seed by seed and on average; two runs at a time."""
    from concurrent.futures import ThreadPoolExecutor

    def one(seed: int) -> tuple[float, float]:
        home = tempfile.mkdtemp(prefix=f"pmf-bench-distil-{seed}-")
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")} | {"PMF_HOME": home}
        variants = "compression.variants=[float32,distilled_int8,student_scratch_int8]"
        seeded = ["--set", f"train.seed={seed}", "--set", f"compression.seed={seed}"]
        done = subprocess.run(
            [sys.executable, "-m", "flows.cli", "run", "--config", "data/digits.yaml", "--set", variants, *seeded, "--json"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        rows = {r["variant"]: r["metrics"]["accuracy"] for r in json.loads(done.stdout.strip().splitlines()[-1])["compression"]}
        return rows["distilled_int8"], rows["student_scratch_int8"]

    with ThreadPoolExecutor(2) as pool:
        pairs = list(pool.map(one, range(1, seeds + 1)))
    out = [
        (f"digits seed {i}: distilled_int8 vs student_scratch_int8 accuracy", f"{d:.4f} vs {s:.4f}")
        for i, (d, s) in enumerate(pairs, 1)
    ]
    mean_d, mean_s = sum(d for d, _ in pairs) / seeds, sum(s for _, s in pairs) / seeds
    wins = sum(d > s for d, s in pairs)
    out.append(
        (
            f"digits, mean of {seeds} seeds (distilled ahead in {wins})",
            f"{mean_d:.4f} vs {mean_s:.4f} ({100 * (mean_d - mean_s):+.2f} pp)",
        )
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--quality", action="store_true", help="also tuned vs default on digits and diabetes (slow)")
    parser.add_argument("--quick", action="store_true", help="8 trials")
    parser.add_argument("--no-speed", action="store_true", help="skip the 1 vs 2 worker runs (with --quality)")
    parser.add_argument("--distillation-seeds", type=int, default=0, help="untuned digits: distilled vs scratch over N seeds")
    args = parser.parse_args()
    rows = [] if args.no_speed else speed_up(8 if args.quick else args.trials, args.rows)
    if args.quality:
        rows += quality()
    if args.distillation_seeds:
        rows += distillation_seeds(args.distillation_seeds)
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
