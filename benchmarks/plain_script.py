"""The baseline: the same loading, preprocessing, training and evaluation as `pmf run`, as a plain
script — no Prefect, no MLflow, no Great Expectations, no registration.

    python benchmarks/plain_script.py DATA.csv TARGET [KEY=VALUE ...]   (train config overrides)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from tasks.config import load_config
from tasks.data.load import read_table
from tasks.data.preprocess import fit_preprocessor, split_frame
from tasks.data.schema import infer_schema
from tasks.model.evaluate import task_metrics
from tasks.model.train import train_model


def main(path: str, target: str, *overrides: str) -> dict:
    started = time.perf_counter()
    cfg = load_config(None, [f"train.{o}" for o in overrides])
    frame = read_table(Path(path))
    schema = infer_schema(frame, target, None)
    split = split_frame(frame, schema, cfg.split.test_size, cfg.split.validation_size, cfg.split.seed)
    pre = fit_preprocessor(split.train, schema)
    x = {k: pre.transform(getattr(split, k)) for k in ("train", "validation", "test")}
    y = {k: pre.encode_target(getattr(split, k)[target]) for k in ("train", "validation", "test")}
    with tempfile.TemporaryDirectory() as folder:
        result = train_model(
            x["train"],
            y["train"],
            x["validation"],
            y["validation"],
            schema.task,
            len(schema.classes),
            cfg.train,
            Path(folder) / "ckpt",
        )
    outputs = result.model.predict(x["test"], verbose=0, batch_size=4096)
    metrics = task_metrics(schema.task, y["test"], outputs)
    return {"seconds": time.perf_counter() - started, "metrics": metrics, "epochs_run": result.epochs_run}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
