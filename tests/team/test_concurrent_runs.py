"""Three `pmf run` of one new model at once against the team's PostgreSQL-backed servers: all complete,
each registers its own version, the aliases and the promotion history tell one consistent story, and
nothing anywhere says "database is locked" or reports a duplicate key."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import DATA, REPO

pytestmark = pytest.mark.slow

RUNS = 3
LEAN = ["--set", "train.epochs=2", "--set", "compression.variants=[float32]"]
# What a race on a shared store looks like, in a command's output or a server's log.
RACE_SIGNS = ("database is locked", "IntegrityError", "UniqueViolation", "duplicate key", "Giving up after")


@dataclass
class Outcome:
    name: str
    runs: list[subprocess.CompletedProcess]
    results: list[dict[str, Any]]


def last_json(text: str) -> dict[str, Any]:
    lines = text.strip().splitlines()
    assert lines, "no output on stdout"
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def outcome(team_servers) -> Outcome:
    """Three lean `pmf run`s of one model name no run has used before, started together."""
    name = f"together-{uuid.uuid4().hex[:6]}"
    command = [sys.executable, "-m", "flows.cli", "run", "--config", str(DATA / "penguins.yaml"), "--name", name, *LEAN]
    processes = [
        subprocess.Popen(
            [*command, "--json"], cwd=REPO, env=team_servers.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(RUNS)
    ]
    runs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=900)
        runs.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    for run in runs:
        assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return Outcome(name, runs, [last_json(run.stdout) for run in runs])


def test_all_three_complete_each_with_its_own_version(outcome):
    assert [r["status"] for r in outcome.results] == ["completed"] * RUNS
    assert sorted(int(r["version"]) for r in outcome.results) == [1, 2, 3]
    # One expectation suite and one recorded config for the name, whoever inferred it first.
    assert {r["suite_version"] for r in outcome.results} == {1}


def test_aliases_and_promotion_history_agree(team_servers, outcome):
    listed = team_servers.pmf("models", outcome.name, "--json")
    assert listed.returncode == 0, listed.stderr
    (model,) = last_json(listed.stdout)["models"]
    assert [v["version"] for v in model["versions"]] == ["1", "2", "3"]
    history = model["history"]
    assert not [r for r in history if r.get("unreadable")], history
    assert [r["seq"] for r in history] == list(range(1, len(history) + 1))
    # Each alias's records form one chain: every move starts where the previous move of that alias ended
    # (two moves interleaved without the lock would both start from the same version).
    for alias in ("staging", "production"):
        moves = [r for r in history if r["alias"] == alias]
        assert moves, f"no {alias} move recorded: {history}"
        assert [m["from_version"] for m in moves] == [None, *[m["to_version"] for m in moves[:-1]]], moves
        assert model["aliases"][alias] == moves[-1]["to_version"]
    assert model["aliases"]["candidate"] in {"1", "2", "3"}
    # What each run said it promoted is in the history, attributed to its pipeline run.
    for result in outcome.results:
        if result["promoted"]:
            assert any(
                r["alias"] == "production" and r["to_version"] == result["version"] and result["mlflow_run_id"] in r["reason"]
                for r in history
            ), (result["version"], history)
    assert any(r["promoted"] for r in outcome.results)


def test_no_lock_model_is_left_behind(team_servers, outcome):
    listed = team_servers.pmf("models", "--json")
    assert listed.returncode == 0, listed.stderr
    names = [m["name"] for m in last_json(listed.stdout)["models"]]
    assert outcome.name in names
    assert not [n for n in names if "pmf-lock" in n], names
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=team_servers.state.mlflow_url)
    assert client.search_registered_models(filter_string=f"name LIKE '{outcome.name}~pmf-lock%'") == []


def test_nothing_reports_a_lock_or_a_duplicate_key(team_servers, outcome):
    outputs = "\n".join(run.stdout + run.stderr for run in outcome.runs)
    logs = "\n".join(log.read_text(errors="replace") for log in sorted(team_servers.home.glob("logs/team-*.log")))
    for sign in RACE_SIGNS:
        assert sign not in outputs, sign
        assert sign not in logs, sign
    assert "Traceback" not in outputs
