"""A workspace keeps all its state under PMF_HOME, whatever folder the user stands in, and its first
use is safe when two commands start at once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import DATA
from tests.support.pmf_process import pmf_process

pytestmark = pytest.mark.slow

PENGUINS = str(DATA / "penguins.csv")


def validate(home: Path, cwd: Path, **env: str) -> dict:
    process = pmf_process(home, "validate", "--data", PENGUINS, "--target", "species", "--json", cwd=cwd, **env)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_a_users_sqlite_store_keeps_artifacts_under_pmf_home_from_any_folder(tmp_path):
    home, first_folder, second_folder = tmp_path / "home", tmp_path / "first", tmp_path / "second"
    first_folder.mkdir()
    second_folder.mkdir()
    uri = f"sqlite:///{tmp_path / 'team-store' / 'mlflow.db'}"
    (tmp_path / "team-store").mkdir()

    first = validate(home, first_folder, MLFLOW_TRACKING_URI=uri)
    assert list(first_folder.iterdir()) == []  # no ./mlruns, nothing at all
    shutil.rmtree(first_folder)  # the folder the user stood in is gone: the suite must not go with it
    second = validate(home, second_folder, MLFLOW_TRACKING_URI=uri)

    assert list(second_folder.iterdir()) == []
    assert (first["suite_version"], second["suite_version"]) == (1, 1)
    assert second["status"] == "valid"
    client = MlflowClient(uri)
    artifacts = (home / "artifacts").as_uri()
    assert client.get_experiment_by_name("penguins").artifact_location == f"{artifacts}/penguins"
    assert client.get_experiment("0").artifact_location.startswith(artifacts)  # MLflow's Default experiment too
    suites = client.search_runs([client.get_experiment_by_name("penguins.pmf-store").experiment_id], "tags.`pmf.kind` = 'suite'")
    assert len(suites) == 1


def test_two_commands_on_a_fresh_workspace_both_succeed(tmp_path):
    home = tmp_path / "home"
    first = pmf_process(home, "validate", "--data", PENGUINS, "--target", "species", "--json", cwd=tmp_path)
    second = pmf_process(home, "validate", "--data", PENGUINS, "--target", "species", "--json", cwd=tmp_path)
    outcomes = [process.communicate(timeout=300) for process in (first, second)]

    assert [first.returncode, second.returncode] == [0, 0], [err[-2000:] for _, err in outcomes]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outcomes]
    assert [r["status"] for r in results] == ["valid", "valid"]
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    runs = {r["mlflow_run_id"]: client.get_run(r["mlflow_run_id"]).info.status for r in results}
    assert list(runs.values()) == ["FINISHED", "FINISHED"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
