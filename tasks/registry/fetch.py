"""Fetch a registered version's package from the store and verify it before anyone uses it.

The one path by which the server, the infra check, the champion gate, promotions and rollback load
a version. A version is trusted when every file of its package matches the package's manifest and
the manifest's SHA-256 matches the version's `pmf.manifest_sha256` tag, written at registration.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tasks.serving.package import MODEL_FILE, PACKAGE_DIR, RERUN_HINT, IntegrityError, PackagedModel, sha256_bytes

MANIFEST_TAG = "pmf.manifest_sha256"  # SHA-256 of the package's manifest.json
MODEL_SHA_TAG = "pmf.sha256"  # SHA-256 of model.tflite alone (shown by `pmf models` and /metadata)


def download_package(name: str, version: str, destination: Path) -> Path:
    """The version's package folder (model.tflite, preprocessor.json, model_meta.json, manifest.json), and only it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from tasks.workspace import tracking_uri

    uri = f"models:/{name}/{version}/artifacts/{PACKAGE_DIR}"
    try:
        root = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination), tracking_uri=tracking_uri()))
    except (MlflowException, OSError) as exc:
        if isinstance(exc, MlflowException) and exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise IntegrityError(f"{name} v{version} has no package at {uri} ({exc}): {RERUN_HINT}") from None
    if not (root / MODEL_FILE).is_file():
        raise IntegrityError(f"{name} v{version}: the package at {uri} has no {MODEL_FILE}")
    return root


def recorded_digests(name: str, version: str) -> tuple[str, str | None]:
    """(manifest SHA-256, model file SHA-256 or None) recorded with the version; IntegrityError without a manifest."""
    from tasks.registry import tracking

    tags = tracking.client().get_model_version(name, version).tags
    manifest = tags.get(MANIFEST_TAG)
    if not manifest:
        raise IntegrityError(
            f"{name} v{version} has no package manifest (tag {MANIFEST_TAG}; registered before pmf "
            f"hashed every file of a package): refusing an unverifiable model; {RERUN_HINT}"
        )
    return manifest, tags.get(MODEL_SHA_TAG)


def load_verified(name: str, version: str, folder: Path) -> PackagedModel:
    """Download a version's package into `folder` and load it; IntegrityError unless every file is the registered
    one (files against the manifest, the manifest against the version's tag, model.tflite against `pmf.sha256`)."""
    return fetch_verified(name, version, folder)[0]


def fetch_verified(name: str, version: str, folder: Path) -> tuple[PackagedModel, str]:
    """`load_verified`, plus the manifest digest it was checked against (for alias moves to check again)."""
    manifest_sha256, model_sha256 = recorded_digests(name, version)
    package = download_package(name, version, folder)
    try:
        model = PackagedModel.load(package, manifest_sha256)
    except IntegrityError as exc:
        raise IntegrityError(f"{name} v{version}: {exc}") from None
    digest = sha256_bytes(model.runner.model_bytes)
    if model_sha256 and digest != model_sha256:
        raise IntegrityError(
            f"{name} v{version}: {MODEL_FILE} SHA-256 {digest} does not match the recorded {MODEL_SHA_TAG} {model_sha256}"
        )
    return model, manifest_sha256


def verify_version(name: str, version: str) -> str:
    """Check a version's package in the store without keeping it; returns its manifest digest. IntegrityError if not."""
    with tempfile.TemporaryDirectory(prefix="pmf-verify-") as tmp:
        return fetch_verified(name, version, Path(tmp))[1]
