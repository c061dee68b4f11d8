"""Run the real `pmf` command line in-process and read back what a user would look at."""

from __future__ import annotations

import contextlib
import io
import json
import os

from flows.cli import main

PER_COMMAND_VARIABLES = ("PMF_DASK_ADDRESS", "PMF_VERBOSE")


def pmf(*args: str) -> tuple[int, dict]:
    """`pmf ARGS --json` in this process; returns (exit code, the JSON object printed on stdout).

    stdout is collected with redirect_stdout, not pytest's capsys: TensorFlow's and absl's log
    handlers keep the stream they first saw, and capsys closes its streams after each test.
    """
    buffer = io.StringIO()
    # Flags a command turns into variables of its process (--dask-address, --verbose) must not outlive it here.
    saved = {key: os.environ.get(key) for key in PER_COMMAND_VARIABLES}
    try:
        with contextlib.redirect_stdout(buffer):
            code = main([*args, "--json"])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    out = buffer.getvalue().strip().splitlines()
    return code, json.loads(out[-1]) if out else {}


def child_runs(client, result: dict) -> dict:
    runs = client.search_runs(
        [result["mlflow_experiment_id"]], filter_string=f"tags.`mlflow.parentRunId` = '{result['mlflow_run_id']}'"
    )
    return {r.data.tags["pmf.stage"]: r for r in runs}


def registry_state(client) -> dict:
    """Every registered model with its versions and aliases: what must not change on a rejection."""
    state = {}
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{model.name}'")
        state[model.name] = {"versions": sorted(v.version for v in versions), "aliases": dict(model.aliases)}
    return state
