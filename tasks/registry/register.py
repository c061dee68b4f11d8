"""Register: package the shipped model (preprocessor + TFLite) as an MLflow pyfunc and register it.

Nothing here runs unless the evaluation gate passed. The version gets the lineage tags (data
hash, Prefect flow run id, git commit, config), the digests of its package (`pmf.manifest_sha256`:
the manifest listing every file with its SHA-256; `pmf.sha256`: model.tflite) and the `candidate`
alias, or is not created at all.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tasks.registry import tracking
from tasks.data.preprocess import Preprocessor
from tasks.registry.fetch import MANIFEST_TAG, MODEL_SHA_TAG
from tasks.serving.package import PACKAGE_DIR, PackagedModel, write_package

CANDIDATE_ALIAS = "candidate"
HELDOUT_DIR = "heldout"
HELDOUT_FILE = "test.parquet"  # the raw test split (target included), for champion/challenger comparisons


def input_example(frame: pd.DataFrame, preprocessor: Preprocessor, rows: int = 3) -> pd.DataFrame:
    """Raw rows as a caller sends them: the feature columns as in the CSV, no target.

    Column types are those pandas gave the whole file (an integer column with gaps is already
    float64), so the signature matches how the same CSV reads later. Declaring every integer as
    double instead would break: MLflow refuses to convert int64 to float64.
    """
    return frame[list(preprocessor.schema.features)].head(rows).reset_index(drop=True)


def package_and_register(
    run_id: str,
    name: str,
    model_bytes: bytes,
    preprocessor: Preprocessor,
    meta: dict,
    sample: pd.DataFrame,
    workdir: Path,
    tags: dict[str, str],
) -> dict[str, Any]:
    package_dir = workdir / PACKAGE_DIR
    meta, manifest_sha256 = write_package(package_dir, model_bytes, preprocessor, meta)
    example = input_example(sample, preprocessor)
    predictions = PackagedModel.load(package_dir, manifest_sha256).predict(example)
    model_uri = tracking.log_pyfunc_model(run_id, package_dir, example, pd.Series(predictions, name="prediction"))
    heldout = workdir / HELDOUT_FILE
    sample.reset_index(drop=True).to_parquet(heldout)
    tracking.log_artifact(run_id, heldout, HELDOUT_DIR)
    # The version is created with its digests in one call: there is never a version without them.
    version = tracking.register_version(model_uri, name, run_id,
                                        {**tags, MODEL_SHA_TAG: meta["sha256"], MANIFEST_TAG: manifest_sha256}, CANDIDATE_ALIAS)
    return {"model_uri": model_uri, "version": version, "sha256": meta["sha256"], "manifest_sha256": manifest_sha256,
            "aliases": tracking.aliases_of(name, version)}
