"""Register: package the shipped model (preprocessor + TFLite) as an MLflow pyfunc and register it.

Nothing here runs unless the evaluation gate passed. What the registry then holds:
- the logged model (`models:/m-...`), owned by the pipeline's parent run (the version's "source run"
  in the MLflow UI is the pipeline run, not the register stage), with the training params, the
  lineage tags and the shipped variant's measured metrics (quality through LiteRT, size, latency);
- the raw test split `heldout/test.parquet` in the same run (champion/challenger comparisons);
- the version, with its lineage tags (every one `pmf.*`: data hash and path, suite version, Prefect
  flow run id, git commit, config), the digests of its package (`pmf.manifest_sha256`: the manifest
  listing every file with its SHA-256; `pmf.sha256`: model.tflite), its model card as description
  (also the parent run's artifact `model_card.md`, uncut) and the `candidate` alias — or nothing at all;
- the registered model's description: what it predicts, from which columns, the promotion history.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.data.preprocess import Preprocessor
from tasks.data.schema import Schema
from tasks.monitoring.profile import PROFILE_TAG
from tasks.registry import lifecycle, model_card, tracking
from tasks.registry.fetch import MANIFEST_TAG, MODEL_SHA_TAG
from tasks.registry.model_card import ModelCardFacts
from tasks.run_result import RunResult
from tasks.serving.package import PACKAGE_DIR, PackagedModel, write_package

CANDIDATE_ALIAS = "candidate"
HELDOUT_DIR = "heldout"
HELDOUT_FILE = "test.parquet"  # the raw test split (target included), for champion/challenger comparisons
HELDOUT_ARTIFACT = f"{HELDOUT_DIR}/{HELDOUT_FILE}"
MODEL_CARD_FILE = "model_card.md"
WHOLE = 10_000_000  # the artifact is the uncut card
# Tags MLflow itself fills in another field: the version's run_id is the pipeline run.
DROPPED_LINEAGE = frozenset({"mlflow.parent_run_id"})
SHIPPED_MEASURES = ("bytes", "gzip_bytes", "latency_ms_p50", "latency_ms_p99", "throughput_rows_s")


def input_example(frame: pd.DataFrame, preprocessor: Preprocessor, rows: int = 3) -> pd.DataFrame:
    """Raw rows as a caller sends them: the feature columns as in the CSV, no target.

    Column types are those pandas gave the whole file (an integer column with gaps is already
    float64), so the signature matches how the same CSV reads later. Declaring every integer as
    double instead would break: MLflow refuses to convert int64 to float64.
    """
    return frame[list(preprocessor.schema.features)].head(rows).reset_index(drop=True)


def pmf_tags(tags: dict[str, str]) -> dict[str, str]:
    """Tags in one naming scheme, `pmf.<name>`: `git_commit` -> `pmf.git_commit`,
    `prefect.flow_run_id` -> `pmf.prefect_flow_run_id`; a tag MLflow keeps in its own field is dropped."""
    named = {}
    for key, value in tags.items():
        if key in DROPPED_LINEAGE:
            continue
        named[key if key.startswith("pmf.") else "pmf." + key.replace(".", "_")] = value
    return named


def card_facts(
    name: str,
    schema: Schema,
    rows: dict[str, int],
    train_settings: dict[str, Any],
    lineage: dict[str, str],
    meta: dict[str, Any],
    run: RunResult | None,
    pipeline_run_id: str,
    pipeline_run_url: str,
) -> ModelCardFacts:
    """The card's facts from what the pipeline knows at registration (`run`: the flow's result so far;
    without it the card says metrics, gates, slices and compression were not recorded)."""
    tags = pmf_tags(lineage)
    suite = run.suite_version if run and run.suite_version is not None else tags.get("pmf.suite_version")
    return ModelCardFacts(
        name=name,
        version="",
        task=schema.task,
        target=schema.target,
        input_columns=tuple(schema.features),
        classes=tuple(schema.classes),
        data_path=tags.get("pmf.data_path", ""),
        data_sha256=tags.get("pmf.data_sha256", ""),
        rows=rows,
        suite_version=int(suite) if suite not in (None, "") else None,
        training={**train_settings, **((run.training or {}) if run else {})},
        primary_metric=meta["primary_metric"],
        metrics=dict(run.metrics) if run else {},
        gates=list(run.gates) if run else [],
        slices=list(run.slices) if run else [],
        compression=list(run.compression) if run else [],
        shipped_variant=meta["variant"],
        shipped_metrics=dict(meta["metrics"]),
        pipeline_run_id=pipeline_run_id,
        pipeline_run_url=pipeline_run_url,
        prefect_flow_run_id=tags.get("pmf.prefect_flow_run_id", ""),
        git_commit=tags.get("pmf.git_commit", ""),
    )


def example_row(example: pd.DataFrame) -> dict[str, Any]:
    """The first example row as JSON types (gaps as null), for the card's request example."""
    return json.loads(example.head(1).to_json(orient="records"))[0] if len(example) else {}


def model_metrics(facts: ModelCardFacts) -> dict[str, float]:
    """What the logged model carries: the shipped variant's test metrics (through LiteRT), size and latency."""
    shipped = next((r for r in facts.compression if r.get("shipped")), {})
    measured = {key: float(shipped[key]) for key in SHIPPED_MEASURES if isinstance(shipped.get(key), (int, float))}
    return {**facts.shipped_metrics, **measured}


def model_params(facts: ModelCardFacts) -> dict[str, Any]:
    """The logged model's params: the training settings of the network it was made from, plus what it is."""
    return {
        **{f"train.{k}": v for k, v in facts.training.items()},
        "task": facts.task,
        "target": facts.target,
        "variant": facts.shipped_variant,
        "primary_metric": facts.primary_metric,
    }


def store_reference_profile(pipeline_run_id: str, packaged: PackagedModel, reference: pd.DataFrame) -> str:
    """Log the reference profile of `reference` (raw rows) and of the package's predictions on them in the
    pipeline run; returns its artifact path (the version's `pmf.reference_profile` tag)."""
    from tasks.monitoring.profile import PROFILE_ARTIFACT, reference_profile

    predictions = packaged.predict(reference[packaged.input_columns])
    tracking.log_dict(pipeline_run_id, reference_profile(reference, packaged.preprocessor.schema, predictions), PROFILE_ARTIFACT)
    return PROFILE_ARTIFACT


def package_and_register(
    pipeline_run_id: str,
    register_run_id: str,
    name: str,
    model_bytes: bytes,
    preprocessor: Preprocessor,
    meta: dict,
    sample: pd.DataFrame,
    workdir: Path,
    tags: dict[str, str],
    facts: ModelCardFacts,
    reference: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Log the pyfunc in the pipeline run, register it with its card; returns {model_uri, model_id, version, ...}.

    `facts`: the card's facts (version and model URI are filled in here). `register_run_id`: the
    register stage's run, which records the logged model's metrics. `reference`: the training split's
    raw rows, whose profile (and the package's predictions on them) is stored for drift checks."""
    package_dir = workdir / PACKAGE_DIR
    meta, manifest_sha256 = write_package(package_dir, model_bytes, preprocessor, meta)
    example = input_example(sample, preprocessor)
    packaged = PackagedModel.load(package_dir, manifest_sha256)
    predictions = packaged.predict(example)
    tags = pmf_tags(tags)
    if reference is not None:
        tags[PROFILE_TAG] = store_reference_profile(pipeline_run_id, packaged, reference)
    lineage = {k: v for k, v in tags.items() if k != "pmf.config"}  # the config is a param of the logged model
    model_uri, model_id = tracking.log_pyfunc_model(
        pipeline_run_id, package_dir, example, pd.Series(predictions, name="prediction"), model_params(facts), lineage
    )
    facts = replace(facts, model_uri=model_uri, example_row=example_row(example))
    tracking.log_model_metrics(register_run_id, model_id, model_metrics(facts))
    heldout = workdir / HELDOUT_FILE
    sample.reset_index(drop=True).to_parquet(heldout)
    tracking.log_artifact(pipeline_run_id, heldout, HELDOUT_DIR)
    tracking.describe_model(
        name,
        model_card.model_description(
            name, facts.task, facts.target, facts.classes, facts.input_columns, lifecycle.recorded_history(name)
        ),
    )

    def describe(version: str) -> None:
        card = replace(facts, version=version)
        tracking.log_text(pipeline_run_id, model_card.version_card(card, limit=WHOLE), MODEL_CARD_FILE)
        tracking.describe_version(name, version, model_card.version_card(card))

    # The version is created with its digests in one call, and its card before its alias: there is
    # never a version without them.
    version = tracking.register_version(
        model_uri,
        name,
        pipeline_run_id,
        {**tags, MODEL_SHA_TAG: meta["sha256"], MANIFEST_TAG: manifest_sha256},
        CANDIDATE_ALIAS,
        describe,
        model_id,
    )
    return {
        "model_uri": model_uri,
        "model_id": model_id,
        "version": version,
        "sha256": meta["sha256"],
        "manifest_sha256": manifest_sha256,
        "aliases": tracking.aliases_of(name, version),
    }
