"""`pmf status` against real stores: after a real (lean) run in the session's Prefect harness, and in a
workspace where nothing ran yet, as a user's shell runs it."""

from __future__ import annotations

import contextlib
import io
import json
import socket
from datetime import UTC, datetime

import pytest

from flows.cli import main
from flows.console import seconds
from tests.conftest import DATA
from tests.flows.helpers import pmf
from tests.support.local_server import pmf as pmf_command
from tests.support.pmf_process import pmf_env, pmf_process

pytestmark = pytest.mark.slow

LEAN = ["--set", "train.epochs=5", "--set", "compression.variants=[float32]"]


def terminal(*args: str) -> tuple[int, str]:
    """`pmf ARGS` in this process as a terminal shows it: (exit code, stdout)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(list(args))
    return code, buffer.getvalue()


def test_after_a_run_status_shows_it_manual_and_promoted_and_production_with_its_metric(prefect_harness, mlflow_client):
    # A primary metric beyond the ones `pmf models` lists: status reads it from the version's run.
    primary = ["--set", "primary_metric=recall_macro"]
    code, result = pmf("run", "--data", str(DATA / "penguins.csv"), "--config", str(DATA / "penguins.yaml"), *LEAN, *primary)
    assert code == 0, result
    assert result["promoted"] is True

    code, status = pmf("status", "penguins")
    assert code == 0, status
    run = next(r for r in status["runs"] if r["id"] == result["prefect_flow_run_id"])
    assert run["flow"] == "pmf-train"
    assert run["model"] == "penguins"
    assert run["trigger"] == "manual"
    assert run["outcome"] == "promoted"
    assert run["state"] == "completed"
    assert 0 < run["duration_s"] < 600
    assert run["started"].endswith("Z")  # UTC
    assert datetime.fromisoformat(run["started"]) <= datetime.now(UTC)

    production = status["models"][0]["aliases"]["production"]
    assert status["models"][0]["name"] == "penguins"
    assert production["version"] == str(result["version"])
    assert production["primary_metric"] == "recall_macro"
    assert production["value"] == pytest.approx(mlflow_client.get_run(result["mlflow_run_id"]).data.metrics["recall_macro"])
    assert 0 <= production["age_s"] < 600

    # The harness is Prefect's ephemeral server: no local server, so no schedules.
    assert status["server"] == {"up": False, "runner_up": False, "prefect_url": None, "mlflow_url": None, "mode": "embedded"}
    assert status["schedules"] == []
    assert status["problems"] == []
    trend = next(t for t in status["trends"] if (t["flow"], t["model"]) == ("pmf-train", "penguins"))
    assert trend["last_s"] == run["duration_s"]  # the newest completed run is this one

    code, text = terminal("status", "penguins")
    assert code == 0
    assert [line for line in text.splitlines() if len(line) > 80] == []
    assert f"@production  v{result['version']}  recall_macro {production['value']:.4f}" in text
    assert "pmf server start" in text.splitlines()[0]
    row = next(line for line in text.splitlines() if " train " in line)  # the newest: this run
    assert row.split()[2:] == ["train", "penguins", "manual", seconds(run["duration_s"]), "promoted"]


def test_an_unknown_name_is_exit_2_naming_it(workspace):
    code, out = pmf("status", "no-such-model")
    assert code == 2
    assert "'no-such-model'" in out["error"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_fresh_workspace_reports_at_once_without_starting_prefect_and_a_dead_team_server_is_one_line(tmp_path):
    home = tmp_path / "home"
    fresh = pmf_process(home, "status", "--json")
    out, err = fresh.communicate(timeout=300)
    assert fresh.returncode == 0, err
    status = json.loads(out)
    assert status["runs"] == []
    assert status["models"] == []
    assert status["server"]["up"] is False
    assert not (home / "prefect" / "prefect.db").exists()  # no embedded server was started to find nothing

    url = f"http://127.0.0.1:{closed_port()}/api"
    team = pmf_command({**pmf_env(home), "PREFECT_API_URL": url}, "status", timeout=300)
    assert team.returncode == 0, team.stderr
    assert f"! the Prefect server at {url} (PREFECT_API_URL) does not answer" in " ".join(team.stdout.split())
    assert "Traceback" not in team.stdout + team.stderr
