"""Compression fan-out on 1 vs 2 Dask workers: wall time of the compress stage's builds and of the
whole stage (builds, then every variant measured one at a time in this process, as the flow does).

The builds go out exactly as `pmf run --dask-address` sends them (flows.compress_stage.build_on_dask:
`compress-<variant>` Prefect task runs on a DaskTaskRunner, the teacher as bytes, each .tflite back
as bytes and landed here). Each worker is one process with one thread, TensorFlow's thread pools
included, so the two clusters differ only in how many builds run at once. Model: the digits CNN of
bench_compression (>100k parameters), every variant, fine-tuning epochs cut so a run takes minutes.

    python benchmarks/bench_dask_fanout.py [--repeats 2] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
ONE_THREAD = {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
for _key, _value in {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "TF_USE_LEGACY_KERAS": "1",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    **ONE_THREAD,
}.items():
    os.environ.setdefault(_key, _value)

SEED = 42
from tasks.compression.settings import ALL_VARIANTS  # after the environment above

VARIANTS = ALL_VARIANTS  # every variant, in build order


def digits_case(quick: bool) -> tuple[Any, Any, Any, Any]:
    """(teacher, arrays, train config, score) for the digits CNN, trained once here."""
    import numpy as np
    from sklearn.datasets import load_digits

    from tasks.compression.common import CompressionData
    from tasks.config import TrainConfig
    from tasks.model.tf_env import import_keras
    from tasks.model.train import build_model

    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    train, val, test = np.split(order, [int(0.6 * len(x)), int(0.8 * len(x))])
    arrays = CompressionData(x[train], y[train], x[val], y[val], x[test], y[test])
    cfg = TrainConfig(model="cnn", image_shape=(8, 8, 1), conv_filters=(32, 64), hidden_units=(512,), dropout=0.2)
    keras = import_keras()
    keras.utils.set_random_seed(SEED)
    teacher = build_model(cfg, 64, 10, "classification")
    teacher.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    teacher.fit(arrays.x_train, arrays.y_train, epochs=4 if quick else 10, batch_size=32, verbose=0)

    def score(probabilities: Any) -> dict[str, float]:
        return {"accuracy": float(np.mean(probabilities.argmax(axis=1) == arrays.y_test))}

    return teacher, arrays, cfg, score


def settings(quick: bool) -> Any:
    from tasks.compression.settings import CompressionSettings

    return CompressionSettings(
        variants=VARIANTS,
        pruning={"epochs": 2 if quick else 4},
        qat={"epochs": 1 if quick else 2},
        distillation={"epochs": 4 if quick else 10},
        latency={"warmup": 20, "repeats": 100 if quick else 300},
    )


def compress_stage(cluster: Any, case: tuple, compression: Any, workdir: Path) -> tuple[float, float, dict[str, float]]:
    """The stage's two halves as the flow runs them: (build seconds on the cluster, measure seconds here,
    each variant's own build seconds on its worker)."""
    from flows.compress_stage import build_on_dask
    from tasks.compression.variants import measure_built

    teacher, arrays, cfg, score = case
    start = time.perf_counter()
    built = build_on_dask(cluster, VARIANTS, teacher, arrays, "classification", compression, workdir, cfg, 10)
    built_s = time.perf_counter() - start
    reports = [measure_built(built[v], arrays, score, compression) for v in VARIANTS]
    failed = [r.variant for r in reports if not r.ok]
    if failed:
        raise SystemExit(f"variants failed on the cluster: {failed}: {[r.error for r in reports if not r.ok]}")
    return built_s, time.perf_counter() - start - built_s, {v: built[v].extra["build_seconds"] for v in VARIANTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per cluster size; the best counts")
    parser.add_argument("--quick", action="store_true", help="fewer fine-tuning epochs and latency repeats")
    args = parser.parse_args()

    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from flows.console import CONSOLE
    from flows.task_runners import check_dask_cluster
    from tests.support.dask_cluster import dask_cluster

    CONSOLE.enabled = False
    folder = Path(tempfile.mkdtemp(prefix="pmf-bench-dask-fanout-"))
    os.environ["PREFECT_HOME"] = str(folder / "prefect")
    case = digits_case(args.quick)
    compression = settings(args.quick)
    parameters = case[0].count_params()
    timings: dict[int, tuple[float, float, dict[str, float]]] = {}
    with prefect_test_harness(server_startup_timeout=120):
        env = {**ONE_THREAD, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
        for workers in (1, 2):
            with dask_cluster(folder / f"dask-{workers}", workers, env) as running:
                os.environ["PMF_DASK_ADDRESS"] = running.address
                cluster = check_dask_cluster()
                assert cluster is not None
                assert cluster.workers == workers
                workdir = folder / f"work-{workers}"
                compress_stage(cluster, case, compression, workdir)  # warm-up: TensorFlow imported on each worker, untimed
                runs = [compress_stage(cluster, case, compression, workdir) for _ in range(args.repeats)]
                timings[workers] = min(runs, key=lambda r: r[0] + r[1])  # best of N: the run least disturbed by the rest
    (build1, measure1, each1), (build2, measure2, each2) = timings[1], timings[2]
    print(
        f"\ncompression fan-out, digits CNN ({parameters:,} parameters), {len(VARIANTS)} variants, "
        f"best of {args.repeats}, each worker 1 thread (machine: {os.cpu_count()} cores)\n"
    )
    print("| | 1 worker (s) | 2 workers (s) | speed-up |")
    print("|---|---|---|---|")
    print(f"| builds (on the cluster) | {build1:.1f} | {build2:.1f} | {build1 / build2:.2f}× |")
    print(f"| measuring (here, one at a time) | {measure1:.1f} | {measure2:.1f} | {measure1 / measure2:.2f}× |")
    total1, total2 = build1 + measure1, build2 + measure2
    print(f"| compress stage | {total1:.1f} | {total2:.1f} | {total1 / total2:.2f}× |")
    print(f"| sum of the builds' own times | {sum(each1.values()):.1f} | {sum(each2.values()):.1f} | |")
    longest = max(each2, key=lambda v: each2[v])
    print(f"| longest single build ({longest}) | {each1[longest]:.1f} | {each2[longest]:.1f} | |")
    print(
        "\nper-variant build seconds (1 worker / 2 workers): " + ", ".join(f"{v} {each1[v]:.1f}/{each2[v]:.1f}" for v in VARIANTS)
    )


if __name__ == "__main__":
    main()
