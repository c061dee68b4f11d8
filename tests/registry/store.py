"""A real registry with three versions of `penguins`, built once per test session by the real flow.

v1: a fair model (2 epochs), v2: a much worse one (1 epoch, 2 hidden units, tiny learning rate),
v3: a better one (8 epochs). Each test gets its own copy of the MLflow database (artifacts are
shared read-only), so alias moves and history never leak from one test into another.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

NAME = "penguins"
RUNS = {
    "1": ["--set", "train.epochs=2", "--set", "train.hidden_units=[8]", "--set", "gates=[]"],
    "2": [
        "--set",
        "train.epochs=1",
        "--set",
        "train.hidden_units=[2]",
        "--set",
        "train.learning_rate=0.0001",
        "--set",
        "gates=[]",
    ],
    "3": ["--set", "train.epochs=8"],
}

# Compression has its own tests; here only the registry matters. The versions stay at @candidate:
# the tests promote them themselves.
FAST = ["--set", "compression.variants=[float32]", "--set", "promotion.auto_promote=false"]


def build(root: Path) -> Path:
    """Run `pmf run` three times into `root`, in one child process (one TensorFlow import, one Prefect
    start-up; the test process itself stays free of both). Done once per session: a marker says so."""
    marker = root / "built.json"
    if marker.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PMF_HOME": str(root),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "PMF_ARTIFACT_ROOT": (root / "artifacts").as_uri(),
        "PREFECT_HOME": str(root / "prefect"),
    }
    env.pop("PREFECT_API_URL", None)
    script = (
        "import json, sys\nfrom flows.cli import main\n"
        f"FAST = {json.dumps(FAST)}\n"
        f"runs = {json.dumps(list(RUNS.values()))}\n"
        "codes = [main(['run', '--json', *FAST, *overrides]) for overrides in runs]\n"
        "sys.exit(max(codes))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"building the test registry failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    marker.write_text(json.dumps(sorted(RUNS)))
    return root


def fresh_copy(source: Path, destination: Path, monkeypatch) -> Path:
    """A private copy of the built registry for one test, with PMF_HOME and the tracking URI pointing at it."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "mlflow.db", destination / "mlflow.db")
    monkeypatch.setenv("PMF_HOME", str(destination))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{destination / 'mlflow.db'}")
    monkeypatch.setenv("PMF_ACTOR", "pytest")
    return destination


# Where the database records artifact locations (absolute file URIs into the built store).
ARTIFACT_COLUMNS = (
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("experiments", "artifact_location"),
    ("model_versions", "storage_location"),
)


def private_artifacts(source: Path, home: Path) -> Path:
    """Give one test its own copy of the artifacts (to tamper with) and point its database copy at them."""
    shutil.copytree(source / "artifacts", home / "artifacts")
    old, new = (source / "artifacts").as_uri(), (home / "artifacts").as_uri()
    with closing(sqlite3.connect(home / "mlflow.db")) as db, db:
        for table, column in ARTIFACT_COLUMNS:
            db.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (old, new))
    return home / "artifacts"


def model_folder(home: Path, version: str) -> Path:
    """The MLflow model folder of a version in the test's private artifacts (MLmodel, artifacts/package/...)."""
    with closing(sqlite3.connect(home / "mlflow.db")) as db:
        (location,) = db.execute(
            "SELECT storage_location FROM model_versions WHERE name = ? AND version = ?", (NAME, int(version))
        ).fetchone()
    from urllib.parse import unquote, urlparse

    folder = Path(unquote(urlparse(location).path))
    assert folder.is_relative_to(home), f"{folder} is not in this test's private copy {home}"
    return folder
