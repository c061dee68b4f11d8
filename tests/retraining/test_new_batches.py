"""Which batches are new: by content hash, whatever their file names; and the trigger a retrain records."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.config import ConfigError
from tasks.retraining.batches import FoundBatch, incoming_files, select_new
from tasks.retraining.request import run_trigger


def found(*pairs: tuple[str, str]) -> list[FoundBatch]:
    return [FoundBatch(Path(name), sha) for name, sha in pairs]


def test_batches_never_seen_are_new_in_their_order():
    new, skipped = select_new(found(("a.csv", "1"), ("b.csv", "2")), trained=[], rejected=[])
    assert [b.path.name for b in new] == ["a.csv", "b.csv"]
    assert skipped == []


def test_content_trained_on_or_rejected_before_is_skipped_even_renamed():
    new, skipped = select_new(found(("renamed.csv", "1"), ("fixed.csv", "3"), ("broken.csv", "2")), trained=["1"], rejected=["2"])
    assert [b.path.name for b in new] == ["fixed.csv"]
    assert [b.path.name for b in skipped] == ["renamed.csv", "broken.csv"]


def test_two_files_with_the_same_content_are_one_batch():
    new, skipped = select_new(found(("a.csv", "1"), ("copy of a.csv", "1")), trained=[], rejected=[])
    assert [b.path.name for b in new] == ["a.csv"]
    assert [b.path.name for b in skipped] == ["copy of a.csv"]


def test_the_incoming_folder_lists_batch_files_oldest_first(tmp_path):
    for age, name in enumerate(["new.csv", "older.parquet", "oldest.tsv"]):
        path = tmp_path / name
        path.write_text("x,y\n1,2\n")
        os.utime(path, (1_000_000 - age * 1000, 1_000_000 - age * 1000))
    (tmp_path / "notes.txt").write_text("not a batch")
    (tmp_path / ".partial.csv").write_text("x,y\n")
    (tmp_path / "rejected").mkdir()
    assert [p.name for p in incoming_files(tmp_path)] == ["oldest.tsv", "older.parquet", "new.csv"]


def test_a_folder_nothing_arrived_in_yet_has_no_batches(tmp_path):
    assert incoming_files(tmp_path / "not-there") == []


def test_the_trigger_is_drift_with_a_drift_summary_and_schedule_when_a_schedule_made_the_run():
    assert run_trigger("manual", None, auto_scheduled=False) == "manual"
    assert run_trigger("manual", None, auto_scheduled=True) == "schedule"
    assert run_trigger("schedule", None, auto_scheduled=False) == "schedule"
    assert run_trigger("manual", {"drift_share": 0.6}, auto_scheduled=True) == "drift"
    with pytest.raises(ConfigError, match="trigger 'nightly': expected one of manual, schedule, drift"):
        run_trigger("nightly", None, auto_scheduled=False)
