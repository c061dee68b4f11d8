"""`make bench`: every benchmark, one after the other, each printing its own table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = [
    "bench_pipeline.py",
    "bench_validation.py",
    "bench_compression.py",
    "bench_model_load.py",
    "bench_serving.py",
    "bench_server_overhead.py",
    "bench_drift.py",
    "bench_drift_latency.py",
    "bench_team.py",
    "bench_team_concurrency.py",
    "bench_dask_fanout.py",
    "bench_sql_validation.py",
    "bench_tuning.py",
]

if __name__ == "__main__":
    for script in BENCHMARKS:
        if (HERE / script).exists():
            print(f"\n## {script}\n", flush=True)
            subprocess.run([sys.executable, str(HERE / script), *sys.argv[1:]], check=True)
