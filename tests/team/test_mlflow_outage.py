"""The team's MLflow server stops in the middle of a `pmf run`: the run fails after pmf's bounded retries
with one line naming the server, registers nothing and moves no alias; once the server is back the same
command succeeds."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

import pytest

from tests.conftest import DATA, REPO
from tests.support.pmf_process import read_stderr_until

pytestmark = pytest.mark.slow

# Training long enough (small batches, no early stop) that the server is down before it ends.
SLOW_TRAINING = [
    "--set", "train.epochs=40", "--set", "train.batch_size=4", "--set", "train.early_stopping_patience=40",
    "--set", "compression.variants=[float32]",
]  # fmt: skip


def registry(team_servers, name: str) -> dict[str, Any]:
    listed = team_servers.pmf("models", name, "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    (model,) = json.loads(listed.stdout.strip().splitlines()[-1])["models"]
    return {"versions": [v["version"] for v in model["versions"]], "aliases": model["aliases"], "history": model["history"]}


def test_a_run_fails_in_one_line_when_mlflow_stops_and_succeeds_once_it_is_back(team_servers):
    name = f"outage-{uuid.uuid4().hex[:6]}"
    command = ["run", "--config", str(DATA / "penguins.yaml"), "--name", name, *SLOW_TRAINING]
    first = team_servers.pmf(*command, "--json")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    before = registry(team_servers, name)
    assert (before["versions"], before["aliases"]["production"]) == (["1"], "1"), before

    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *command],
        cwd=REPO,
        env=team_servers.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    mlflow_url = team_servers.state.mlflow_url.rstrip("/")
    try:
        progress = read_stderr_until(process, "▸ train", 300)  # the run's first stages have logged to MLflow
        team_servers.stop_part("mlflow")
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
        team_servers.start_part("mlflow")
    shown = stdout + progress + stderr
    assert process.returncode == 1, shown[-3000:]
    failure = [line for line in shown.splitlines() if "did not answer" in line]
    assert len(failure) == 1, shown[-3000:]
    assert mlflow_url in failure[0], failure
    assert "Traceback" not in shown, shown[-3000:]

    # Nothing of the failed run reached the registry: no version, no alias moved, no history record.
    assert registry(team_servers, name) == before

    again = team_servers.pmf(*command, "--json")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    result = json.loads(again.stdout.strip().splitlines()[-1])
    assert (result["status"], result["version"]) == ("completed", "2")
    assert registry(team_servers, name)["versions"] == ["1", "2"]
