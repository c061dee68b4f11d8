"""Interrupting `pmf run` leaves nothing behind: runs KILLED, the embedded Prefect server stopped,
scratch folders removed; after a kill -9 the next command cleans up."""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.support.pmf_process import children_of, is_running, pmf_process, read_stderr_until, wait_for

pytestmark = pytest.mark.slow

SLOW_TRAINING = [
    "--set",
    "train.epochs=40",
    "--set",
    "train.batch_size=4",
    "--set",
    "train.early_stopping_patience=40",
    "--set",
    "compression.variants=[float32]",
]


def runs_by_status(home: Path) -> dict[str, list[str]]:
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("penguins").experiment_id])
    statuses: dict[str, list[str]] = {}
    for run in runs:
        statuses.setdefault(run.info.status, []).append(run.info.run_name)
    return statuses


def start_training(home: Path, cwd: Path):
    """A `pmf run` that has just finished its first epoch, and its child processes (the Prefect server)."""
    process = pmf_process(home, "run", *SLOW_TRAINING, cwd=cwd)
    read_stderr_until(process, "epoch   1/40", timeout_s=300)
    children = children_of(process.pid)
    assert children, "pmf run has no embedded Prefect server process"
    return process, children


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_closes_its_runs_as_killed_and_leaves_no_process_or_folder(tmp_path, sig):
    home = tmp_path / "home"
    leftovers_before = set(Path(tempfile.gettempdir()).glob("pmf-penguins-*"))
    process, children = start_training(home, tmp_path)

    process.send_signal(sig)
    _, err = process.communicate(timeout=120)

    assert process.returncode == 1  # DECISIONS.md: an interruption is "anything else"
    # The parent run and the stage it was in (train): the earlier stages had finished.
    assert err.strip().splitlines()[-1] == f"pmf: failed: interrupted by {sig.name}: 2 MLflow run(s) of this command KILLED"
    assert "Traceback" not in err
    wait_for(lambda: not any(is_running(pid) for pid in children), 30, "the embedded Prefect server to end")
    statuses = runs_by_status(home)
    assert "RUNNING" not in statuses
    assert sorted(name.split("-")[0] for name in statuses["KILLED"]) == ["penguins", "train"]
    assert list((home / "tmp").iterdir()) == []
    assert list((home / "processes").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
    assert set(Path(tempfile.gettempdir()).glob("pmf-penguins-*")) == leftovers_before


def test_the_next_command_cleans_up_what_a_kill_9_left(tmp_path):
    home = tmp_path / "home"
    process, children = start_training(home, tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    assert all(is_running(pid) for pid in children)  # orphaned: nothing stopped them
    assert "RUNNING" in runs_by_status(home)
    assert list((home / "tmp").iterdir())

    later = pmf_process(
        home, "validate", "--data", str(Path(__file__).resolve().parents[2] / "data" / "penguins.csv"), cwd=tmp_path
    )
    _, err = later.communicate(timeout=300)

    assert later.returncode == 0, err[-3000:]
    assert f"cleaned up after `pmf run` (pid {process.pid}, no longer running)" in err
    wait_for(lambda: not any(is_running(pid) for pid in children), 30, "the orphaned Prefect server to be stopped")
    statuses = runs_by_status(home)
    assert "RUNNING" not in statuses
    assert {"train", "penguins"} <= {name.split("-")[0] for name in statuses["KILLED"]}
    assert list((home / "tmp").iterdir()) == []
    assert list((home / "processes").iterdir()) == []
