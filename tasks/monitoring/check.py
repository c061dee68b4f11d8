"""One drift check of a model, as plain functions the `pmf-monitor` flow wires together: which version
is checked, the window it is checked on, its settings, and the result every record is made from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.config import ConfigError
from tasks.monitoring.settings import MonitoringSettings

PRODUCTION = "production"


@dataclass
class Current:
    """What a check compares with the reference: raw rows, the model's predictions on them, where they came from."""

    frame: pd.DataFrame
    predictions: np.ndarray
    source: dict[str, Any]


def production_version(name: str) -> str:
    """NAME's production version; ConfigError (exit 2) for an unknown name or one without @production."""
    from tasks.registry.lifecycle import alias_version, aliases

    version = alias_version(name, PRODUCTION)
    if version is not None:
        return version
    from mlflow.exceptions import MlflowException

    from tasks.registry import tracking

    try:
        tracking.client().get_registered_model(name)
    except MlflowException:
        raise ConfigError(f"no registered model named {name!r} (see `pmf models`)") from None
    others = ", ".join(f"@{a}=v{v}" for a, v in sorted(aliases(name).items())) or "no aliases"
    raise ConfigError(
        f"{name} has no production version to monitor ({others}): promote one first "
        f"(`pmf promote {name} --version V --to production`)"
    )


def monitoring_settings(name: str) -> MonitoringSettings:
    """The `monitoring:` section of the config recorded with NAME (defaults when it has none)."""
    from tasks.config import load_config
    from tasks.registry.datasets import recorded_config

    recorded = recorded_config(name)
    if recorded is None:
        return MonitoringSettings()
    return load_config(None, [], base=recorded.document, origin=f"the config recorded with {name!r}").monitoring


def batch_window(name: str, version: str, path: Path, workdir: Path) -> Current:
    """A batch file's rows and the production package's predictions on them (the package loaded once,
    verified against the registry). ConfigError when the file lacks an input column."""
    from tasks.data.load import read_table
    from tasks.registry.fetch import load_verified

    frame = read_table(path)
    model = load_verified(name, version, workdir / "package")
    missing = [c for c in model.input_columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path} lacks the input column(s) {', '.join(missing)} of {name} v{version}")
    predictions = model.predict(frame[model.input_columns]) if len(frame) else np.array([], dtype=object)
    return Current(frame, predictions, {"kind": "batch", "path": str(path)})


def log_window(name: str, window: int) -> Current:
    """The last `window` predictions of NAME's served prediction log (an empty window if there is none)."""
    from tasks.monitoring.window import prediction_log, read_window

    path = prediction_log(name)
    read = read_window(path, window)
    source = {
        "kind": "prediction_log",
        "path": str(path),
        "window": window,
        "versions": read.versions,
        "truncated_rows": read.truncated,
        "unreadable_lines": read.unreadable,
    }
    return Current(read.frame, read.predictions, source)
