"""Shared fixtures: one Prefect test harness per session, a fresh MLflow store and workspace per test."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Before Prefect, MLflow or TensorFlow are imported by any test module.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="pmf-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_HOME / "prefect")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["TF_USE_LEGACY_KERAS"] = "1"
for key, value in {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}.items():
    os.environ[key] = value
os.environ["PMF_NO_WARMUP"] = "1"  # in-process runs: a background import thread would outlive each test
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("PREFECT_API_URL", None)

# Prefect configures logging on its first full import and closes every existing handler, absl's too;
# once TensorFlow is imported under pytest's capture, absl's handler writes to pytest's capture file
# and closing it breaks the session. Importing Prefect here, before any test imports TensorFlow,
# makes that close harmless whatever order the tests run in.
import prefect.main  # noqa: E402, F401

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"

# One real `pmf server start` per session, shared by every slow test that asks for `local_server`
# (registered once here: imported into several conftests, each would start its own server).
pytest_plugins = ["tests.support.local_server", "tests.support.team"]


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A fresh PMF_HOME with its own SQLite MLflow store and artifact folder."""
    home = tmp_path / "pmf-home"
    home.mkdir()
    monkeypatch.setenv("PMF_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    monkeypatch.setenv("PMF_ARTIFACT_ROOT", (home / "artifacts").as_uri())
    return home


@pytest.fixture
def mlflow_client(workspace):
    from tasks.registry.tracking import client

    return client()


@pytest.fixture(scope="session")
def built_store(tmp_path_factory) -> Path:
    """The three-version `penguins` registry, built once per session (tests/registry/store.py)."""
    from tests.registry.store import build

    return build(tmp_path_factory.getbasetemp() / "pmf-models")


@pytest.fixture
def store(built_store, tmp_path, monkeypatch) -> Path:
    """A private copy of the three-version registry (candidate -> v3, no other alias yet)."""
    from tests.registry.store import fresh_copy

    return fresh_copy(built_store, tmp_path / "home", monkeypatch)
