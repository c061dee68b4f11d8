"""Fetch a registered version's package from the store and verify it before anyone uses it.

The one path by which the server, the infra check, the champion gate and rollback load a version.
"""
from __future__ import annotations

from pathlib import Path

from tasks.serving.package import MODEL_FILE, IntegrityError, PackagedModel


def download_package(name: str, version: str, destination: Path) -> Path:
    """The version's `package` folder (model.tflite, preprocessor.json, model_meta.json), via MLflow's artifact API."""
    import mlflow

    from tasks.workspace import tracking_uri

    root = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(destination),
                                                    tracking_uri=tracking_uri()))
    found = sorted(root.rglob(MODEL_FILE))
    if not found:
        raise IntegrityError(f"models:/{name}/{version} has no {MODEL_FILE}")
    return found[0].parent


def recorded_sha256(name: str, version: str) -> str:
    from tasks.registry import tracking

    digest = tracking.client().get_model_version(name, version).tags.get("pmf.sha256")
    if not digest:
        raise IntegrityError(f"{name} v{version} has no pmf.sha256 tag: refusing to serve an unverifiable model")
    return digest


def load_verified(name: str, version: str, folder: Path) -> PackagedModel:
    """Download a version's package and load it; IntegrityError unless its SHA-256 matches the tag."""
    return PackagedModel.load(download_package(name, version, folder), expected_sha256=recorded_sha256(name, version))
