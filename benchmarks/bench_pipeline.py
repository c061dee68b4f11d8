"""Orchestration overhead: `pmf run` (Prefect + GX + MLflow + registration) against the plain script
doing the same loading, preprocessing, training and evaluation, at growing row counts, in one run.

Both are timed as whole commands (process start, imports and all), with identical training settings.
Also times `pmf run` on the bundled penguins data and reports its test accuracy.

    python benchmarks/bench_pipeline.py [--rows 1000 100000 1000000] [--quick]
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

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import write_tabular

REPO = Path(__file__).resolve().parent.parent
TRAIN = ["epochs=3", "batch_size=512", "early_stopping_patience=50", "hidden_units=[64,32]"]


def timed(command: list[str], env: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def pipeline_command(data: Path, name: str) -> list[str]:
    sets = [arg for item in TRAIN for arg in ("--set", f"train.{item}")]
    # Only the float32 variant: the plain script does no compression either, so none is timed on either side.
    # No absolute gates, so every size registers and promotes: the same work at every row count.
    return [
        sys.executable,
        "-m",
        "flows.cli",
        "run",
        "--data",
        str(data),
        "--target",
        "label",
        "--name",
        name,
        *sets,
        "--set",
        "compression.variants=[float32]",
        "--set",
        "gates=[]",
        "--json",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="1k and 100k rows only")
    args = parser.parse_args()
    rows_list = [1_000, 100_000] if args.quick else args.rows
    folder = Path(tempfile.mkdtemp(prefix="pmf-bench-"))
    env = {**os.environ, "PMF_HOME": str(folder / "home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PREFECT_API_URL", None)
    table = []
    for rows in rows_list:
        data = write_tabular(rows, folder)
        plain_s, plain = timed([sys.executable, "benchmarks/plain_script.py", str(data), "label", *TRAIN], env)
        flow_s, flow = timed(pipeline_command(data, f"bench-{rows}"), env)
        table.append(
            {
                "rows": rows,
                "plain_s": plain_s,
                "pmf_s": flow_s,
                "ratio": flow_s / plain_s,
                "plain_acc": plain["metrics"]["accuracy"],
                "pmf_acc": flow["metrics"]["accuracy"],
                "validate_s": flow["stage_seconds"].get("validate", 0.0),
                "train_s": flow["stage_seconds"].get("train", 0.0),
                "stages": flow["stage_seconds"],
                "flow_s": flow["wall_seconds"],
            }
        )
    penguins_s, penguins = timed([sys.executable, "-m", "flows.cli", "run", "--json"], env)
    print("| rows | plain script s | pmf run s | ratio | of which validate s | train s | accuracy plain / pmf |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for r in table:
        print(
            f"| {r['rows']:,} | {r['plain_s']:.1f} | {r['pmf_s']:.1f} | {r['ratio']:.2f} | {r['validate_s']:.1f} | "
            f"{r['train_s']:.1f} | {r['plain_acc']:.3f} / {r['pmf_acc']:.3f} |"
        )
    print("\nwhere pmf's time goes (seconds; 'outside' = process start, imports, Prefect's embedded server):")
    for r in table:
        stages = "  ".join(f"{k} {v:.1f}" for k, v in r["stages"].items())
        print(f"  {r['rows']:>9,} rows: {stages}  outside {r['pmf_s'] - r['flow_s']:.1f}")
    if len(table) >= 2:
        first, last = table[0], table[-1]
        growth = (last["pmf_s"] - first["pmf_s"]) / (last["rows"] - first["rows"]) * 1e6
        print(
            f"\npmf marginal cost: {growth:.1f} s per million rows; plain: "
            f"{(last['plain_s'] - first['plain_s']) / (last['rows'] - first['rows']) * 1e6:.1f} s per million rows"
        )
        print(f"overhead ratio at {last['rows']:,} rows: {last['ratio']:.2f} (goal ≤ 1.10)")
    print(
        f"\n`pmf run` on bundled penguins: {penguins_s:.1f} s wall, test accuracy {penguins['metrics']['accuracy']:.3f} "
        f"(goal ≥ 0.95), stages {penguins['stage_seconds']}"
    )


if __name__ == "__main__":
    main()
