"""Scratch folders of `pmf run` / `pmf validate` live under PMF_HOME/tmp and are gone when the command
ends, whichever way it ends; nothing is written to the folder the user stands in."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import DATA
from tests.flows.helpers import pmf

pytestmark = pytest.mark.slow


def pmf_folders_in_system_temp() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("pmf-*") if not p.name.startswith("pmf-tests-")}


@pytest.mark.usefixtures("prefect_harness")
def test_a_rejected_batch_leaves_no_scratch_folder_anywhere(workspace, tmp_path, monkeypatch):
    broken = tmp_path / "broken.csv"
    frame = pd.read_csv(DATA / "penguins.csv")
    frame["bill_length_mm"] = "not a number"
    frame.to_csv(broken, index=False)
    monkeypatch.chdir(tmp_path)
    before = pmf_folders_in_system_temp()

    first, _ = pmf("validate", "--data", str(DATA / "penguins.csv"), "--target", "species", "--name", "penguins")
    rejected, result = pmf("run", "--data", str(broken), "--name", "penguins")

    assert (first, rejected) == (0, 3)
    assert result["status"] == "data_rejected"
    assert list((workspace / "tmp").iterdir()) == []
    assert pmf_folders_in_system_temp() == before
    assert sorted(os.listdir(tmp_path)) == ["broken.csv", "pmf-home"]
