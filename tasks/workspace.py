"""Where local state lives: one workspace folder (PMF_HOME, default ~/.pmf).

The standard variables win: MLFLOW_TRACKING_URI and PREFECT_API_URL point pmf at a team's servers;
the embedded defaults below apply only when they are unset. Call `configure_environment` before
Prefect, MLflow or Great Expectations are imported: they read these variables at import.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

DEFAULT_HOME = Path("~/.pmf")

OFFLINE_VARIABLES = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def pmf_home() -> Path:
    return Path(os.environ.get("PMF_HOME") or DEFAULT_HOME).expanduser().resolve()


def default_tracking_uri(home: Path) -> str:
    return f"sqlite:///{home / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(pmf_home())


def configure_environment(verbose: bool = False) -> Path:
    """Set the embedded defaults and quiet library chatter; returns the workspace folder."""
    home = pmf_home()
    home.mkdir(parents=True, exist_ok=True)
    for key, value in OFFLINE_VARIABLES.items():
        os.environ.setdefault(key, value)
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = default_tracking_uri(home)
        # Artifacts of the embedded store go next to it, not into ./mlruns of the current folder.
        os.environ.setdefault("PMF_ARTIFACT_ROOT", (home / "artifacts").as_uri())
    if not os.environ.get("PREFECT_API_URL"):
        os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    if not verbose:
        # Run logs still reach the Prefect API (and UI); only the terminal copy is muted.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    return home
