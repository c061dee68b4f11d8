"""What a user does from a shell: interrupt a run and start it again; load the registered model elsewhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.pmf_process import pmf_process

pytestmark = pytest.mark.slow

SLOW_TRAINING = ["--set", "train.epochs=40", "--set", "train.batch_size=4", "--set", "train.early_stopping_patience=40"]


def test_a_run_killed_during_training_resumes_from_its_checkpoint(workspace):
    first = pmf_process(workspace, "run", *SLOW_TRAINING)
    deadline = time.monotonic() + 240
    for line in first.stderr:  # the epoch-1 line is printed after that epoch's checkpoint is written
        if "epoch   1/40" in line or time.monotonic() > deadline:
            break
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert any((workspace / "checkpoints" / "penguins").rglob("checkpoint")), "no checkpoint left by the killed run"

    second = pmf_process(workspace, "run", *SLOW_TRAINING, "--json")
    out, err = second.communicate(timeout=400)
    assert second.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["training"]["resumed_from_epoch"] >= 1
    assert "resumed from the checkpoint at epoch" in err
    assert not any((workspace / "checkpoints" / "penguins").rglob("checkpoint")), "checkpoint not cleaned after success"


LOAD_WITHOUT_TENSORFLOW = """
import json, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model("models:/penguins@candidate")
version = mlflow.MlflowClient().get_model_version_by_alias("penguins", "candidate")
heldout = pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="heldout/test.parquet"))
predictions = model.predict(heldout.drop(columns=["species"]))
accuracy = float((pd.Series(predictions) == heldout["species"].reset_index(drop=True)).mean())
print(json.dumps({"tensorflow_imported": "tensorflow" in sys.modules, "accuracy": accuracy, "rows": len(heldout)}))
"""


def test_registered_model_predicts_raw_csv_rows_in_a_fresh_process_without_tensorflow(workspace):
    run = pmf_process(
        workspace,
        "run",
        "--set",
        "train.epochs=15",
        "--set",
        "train.dropout=0.3",
        "--set",
        "compression.variants=[float32, int8, distilled_int8, student_scratch_int8]",
        "--json",
    )
    out, err = run.communicate(timeout=400)
    assert run.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    shipped = next(row for row in result["compression"] if row["shipped"])
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workspace / 'mlflow.db'}"}
    loaded = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_TENSORFLOW], env=env, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    answer = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert answer["tensorflow_imported"] is False
    assert answer["rows"] == 69
    # The same rows, the same shipped variant: exactly the accuracy the pipeline measured through LiteRT.
    assert answer["accuracy"] == pytest.approx(shipped["metrics"]["accuracy"], abs=1e-12)
