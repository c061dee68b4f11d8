"""Import the heavy libraries in the background while Prefect's ephemeral server starts.

Starting the embedded server takes seconds during which the main thread only waits; TensorFlow,
Great Expectations and MLflow's pyfunc loader take about as long to import. Overlapping the two
shortens every `pmf run` by that much. The stages import the same modules normally: if a stage
gets there first, it simply waits on Python's import lock.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading

HEAVY_MODULES = ("great_expectations", "sklearn.model_selection", "mlflow.pyfunc")


def _import_all() -> None:
    try:
        for name in HEAVY_MODULES:
            importlib.import_module(name)
        from tasks.model.tf_env import import_keras

        import_keras()
    except Exception:  # noqa: BLE001, S110  (a warm-up failure only costs time: the stage imports again and reports)
        pass


def start_warmup() -> threading.Thread | None:
    if os.environ.get("PMF_NO_WARMUP") == "1" or "tensorflow" in sys.modules:
        return None  # switched off, or a long-lived process (tests, notebooks) that has them already
    thread = threading.Thread(target=_import_all, name="pmf-warmup", daemon=True)
    thread.start()
    return thread
