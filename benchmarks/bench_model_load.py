"""What a serving process pays to load the shipped model: `mlflow.pyfunc.load_model` of the
registered pmf model (LiteRT + preprocessor, no TensorFlow) against loading the float Keras model
with tf_keras, each in a fresh process, in one run. Reports load seconds, first-prediction
seconds and peak resident memory.

    python benchmarks/bench_model_load.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PYFUNC = """
import json, resource, sys, time
start = time.perf_counter()
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model("models:/penguins@candidate")
loaded = time.perf_counter()
rows = pd.read_csv(sys.argv[1]).drop(columns=["species"]).head(1)
model.predict(rows)
print(json.dumps({"load_s": loaded - start, "first_predict_s": time.perf_counter() - loaded,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "tensorflow": "tensorflow" in sys.modules}))
"""

KERAS = """
import json, resource, sys, time
start = time.perf_counter()
from tasks.model.tf_env import import_keras
keras = import_keras()
model = keras.models.load_model(sys.argv[2])
loaded = time.perf_counter()
import numpy as np
model(np.zeros((1, model.input_shape[1]), dtype="float32"), training=False)
print(json.dumps({"load_s": loaded - start, "first_predict_s": time.perf_counter() - loaded,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "tensorflow": "tensorflow" in sys.modules}))
"""


def measure(code: str, env: dict, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="pmf-bench-load-"))
    env = {**os.environ, "PMF_HOME": str(home), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    run = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--json"], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    from mlflow import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    train_run = client.search_runs([result["mlflow_experiment_id"]], filter_string="tags.`pmf.stage` = 'train'")[0]
    keras_file = client.download_artifacts(train_run.info.run_id, "float_model/float_model.keras", str(home))
    data = str(REPO / "data" / "batches" / "penguins_new.csv")
    rows = {
        "pmf pyfunc (LiteRT, shipped " + result["shipped_variant"] + ")": min(
            (measure(PYFUNC, env, data) for _ in range(3)), key=lambda r: r["load_s"]
        ),
        "tf_keras float model": min((measure(KERAS, env, data, keras_file) for _ in range(3)), key=lambda r: r["load_s"]),
    }
    print("| process | load s | first predict s | peak RSS MB | imports TensorFlow |")
    print("|---|---:|---:|---:|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['load_s']:.2f} | {r['first_predict_s']:.3f} | {r['rss_mb']:.0f} | {r['tensorflow']} |")
    pyfunc, keras = rows.values()
    print(
        f"\nload time ratio keras/pyfunc: {keras['load_s'] / pyfunc['load_s']:.1f}×; memory ratio: {keras['rss_mb'] / pyfunc['rss_mb']:.1f}×"
    )


if __name__ == "__main__":
    main()
