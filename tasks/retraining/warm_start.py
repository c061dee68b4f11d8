"""Warm start: a retrain starts from the production version's weights when they still fit, else from scratch.

They fit when the refitted preprocessor yields the same model inputs (feature names, in order) and
classes as the production version's, for the same task, and the network built from today's config
has the same weight shapes as the float Keras model the training stage logged behind that version
(`float_model/float_model.keras` on the `train` child run of the version's source run, the pipeline
run). Whichever it is, the reason is one sentence a person reads in the console, MLflow and the JSON.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.registry import tracking

PRODUCTION = "production"
FLOAT_MODEL_ARTIFACT = "float_model/float_model.keras"
PREPROCESSOR_ARTIFACT = "preprocessor/preprocessor.json"


@dataclass(frozen=True)
class ModelInputs:
    """What a model's weights mean: the task, its input columns after preprocessing and its classes."""

    task: str
    features: tuple[str, ...]
    classes: tuple[str, ...]


@dataclass
class WarmStart:
    """The decision: `weights` to start from (None: from scratch), why, and from which version."""

    used: bool
    reason: str
    version: str | None = None
    weights: list[Any] | None = None


def inputs_misfit(production: ModelInputs, candidate: ModelInputs) -> str | None:
    """Why the production model's weights cannot take the candidate's inputs (None when they can)."""
    if production.task != candidate.task:
        return f"the task changed ({production.task} → {candidate.task})"
    if production.features != candidate.features:
        added = [f for f in candidate.features if f not in production.features]
        gone = [f for f in production.features if f not in candidate.features]
        if not added and not gone:
            return "the model inputs are the same but in another order"
        parts = [f"{len(added)} new ({_some(added)})" if added else "", f"{len(gone)} gone ({_some(gone)})" if gone else ""]
        return f"the model inputs changed: {', '.join(p for p in parts if p)}"
    if production.classes != candidate.classes:
        return f"the classes changed ({_some(production.classes)} → {_some(candidate.classes)})"
    return None


def shapes_misfit(production: Sequence[tuple[int, ...]], candidate: Sequence[tuple[int, ...]]) -> str | None:
    """Why the production network's weights do not fit the network built now (None when every shape matches)."""
    if [tuple(s) for s in production] == [tuple(s) for s in candidate]:
        return None
    return f"the network changed (layer widths {_widths(production)} → {_widths(candidate)})"


def fits_sentence(version: str, inputs: ModelInputs) -> str:
    classes = f" and {len(inputs.classes)} classes" if inputs.classes else ""
    return f"from v{version} (@{PRODUCTION}): same {len(inputs.features)} model inputs{classes}, same network"


def production_start(name: str, candidate: ModelInputs, build: Any) -> WarmStart:
    """The warm start for `name`'s retrain. `build()` returns the network today's config builds (only
    called, and the production model only loaded, once the inputs are known to fit)."""
    source = _production_source(name)
    if isinstance(source, str):
        return WarmStart(False, source)
    version, runs = source
    misfit = inputs_misfit(_inputs(runs["preprocess"]), candidate)
    if misfit:
        return WarmStart(False, f"{misfit} since v{version} (@{PRODUCTION})", version)
    weights = _float_weights(runs["train"])
    if weights is None:
        return WarmStart(False, f"v{version} (@{PRODUCTION}) has no float model logged to start from", version)
    target = build()
    misfit = shapes_misfit([w.shape for w in weights], [w.shape for w in target.get_weights()])
    if misfit:
        return WarmStart(False, f"{misfit} since v{version} (@{PRODUCTION})", version)
    return WarmStart(True, fits_sentence(version, candidate), version, weights)


def _production_source(name: str) -> tuple[str, dict[str, str]] | str:
    """(version, {stage: child run id}) behind `name@production`, or why there is nothing to start from."""
    from mlflow.exceptions import MlflowException

    mlflow = tracking.client()
    try:
        version = mlflow.get_model_version_by_alias(name, PRODUCTION)
    except MlflowException:
        return f"{name} has no @{PRODUCTION} version yet"
    run = mlflow.get_run(version.run_id)
    children = mlflow.search_runs(
        [run.info.experiment_id], filter_string=f"tags.`{tracking.PARENT_RUN_TAG}` = '{version.run_id}'", max_results=1000
    )
    runs = {r.data.tags.get("pmf.stage"): r.info.run_id for r in children}
    if "train" not in runs or "preprocess" not in runs:
        return f"v{version.version} (@{PRODUCTION}) has no logged training run to start from"
    return str(version.version), runs


def _inputs(preprocess_run: str) -> ModelInputs:
    from tasks.data.preprocess import Preprocessor

    with tempfile.TemporaryDirectory() as folder:
        path = tracking.client().download_artifacts(preprocess_run, PREPROCESSOR_ARTIFACT, folder)
        preprocessor = Preprocessor.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    return inputs_of(preprocessor)


def inputs_of(preprocessor: Any) -> ModelInputs:
    """The model inputs a fitted preprocessor yields."""
    schema = preprocessor.schema
    return ModelInputs(schema.task, tuple(preprocessor.feature_names), tuple(schema.classes))


def _float_weights(train_run: str) -> list[Any] | None:
    """The weights of the float Keras model the training stage logged (loaded once, not compiled); None
    when the run has none (artifacts removed, a run of an older pmf)."""
    from mlflow.exceptions import MlflowException

    from tasks.model.tf_env import import_keras

    keras = import_keras()
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = tracking.client().download_artifacts(train_run, FLOAT_MODEL_ARTIFACT, folder)
        except (MlflowException, OSError):
            return None
        return list(keras.models.load_model(path, compile=False).get_weights())


def _some(items: Sequence[str], shown: int = 3) -> str:
    head = ", ".join(repr(i) for i in list(items)[:shown])
    return head + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _widths(shapes: Sequence[tuple[int, ...]]) -> str:
    """`10-32-16-3`: the input width, then each layer's output width (from its kernels)."""
    kernels = [s for s in shapes if len(s) >= 2]
    return "-".join([str(kernels[0][-2])] + [str(s[-1]) for s in kernels]) if kernels else "none"
