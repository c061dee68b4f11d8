"""Reading the tail of the prediction log, and the history of checks (fast: files in tmp_path)."""

from __future__ import annotations

import json

import pytest

from tasks.monitoring import history
from tasks.monitoring.window import read_window, tail_lines
from tasks.serving.prediction_log import PredictionLog


def write_log(path, sizes, weights, version="3", cap=64 * 1024):
    """Rows logged the way `pmf serve` logs them: {ts, version, row, prediction} per line."""
    log = PredictionLog(path, record_cap_bytes=cap).open()
    log.record(version, {"size": sizes, "weight": weights}, [f"class-{s}" for s in sizes])
    log.close()
    return path


@pytest.mark.parametrize("block", [7, 64, 1 << 20])
def test_tail_lines_are_the_last_complete_lines_whatever_the_block_size(tmp_path, block):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(f'{{"n": {i}}}\n'.encode() for i in range(100)))
    assert [json.loads(line)["n"] for line in tail_lines(path, 5, block)] == [95, 96, 97, 98, 99]
    assert len(tail_lines(path, 1000, block)) == 100


def test_a_line_still_being_written_is_left_out(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2}\n{"n": 3, "row": {"si')
    assert [json.loads(line)["n"] for line in tail_lines(path, 5, block=4)] == [1, 2]


def test_no_log_is_an_empty_window(tmp_path):
    window = read_window(tmp_path / "missing.jsonl", 5000)
    assert len(window.frame) == 0
    assert len(window.predictions) == 0


def test_the_window_is_the_last_records_as_rows_and_predictions(tmp_path):
    path = write_log(tmp_path / "p.jsonl", list(range(300)), [0.5] * 300)
    window = read_window(path, 120)
    assert list(window.frame.columns) == ["size", "weight"]
    assert window.frame["size"].tolist() == list(range(180, 300))
    assert window.predictions.tolist() == [f"class-{i}" for i in range(180, 300)]
    assert window.versions == {"3": 120}


def test_truncated_rows_and_damaged_lines_are_counted_not_compared(tmp_path):
    path = write_log(tmp_path / "p.jsonl", [1, 2], ["x" * 500, "y"], cap=300)
    with open(path, "ab") as handle:
        handle.write(b"not json\n")
    write_log(path, [3], ["z"])
    window = read_window(path, 10)
    assert window.frame["size"].tolist() == [2, 3]
    assert (window.truncated, window.unreadable) == (1, 1)


def test_history_appends_one_record_per_check_and_reads_the_last(tmp_path, monkeypatch):
    monkeypatch.setenv("PMF_HOME", str(tmp_path))
    assert history.last_check("penguins") is None
    for verdict in ("drift", "no_drift"):
        history.append_check("penguins", {"model": "penguins", "verdict": verdict, "checked_at": history.now_iso(), "x": 1})
    lines = (tmp_path / "monitoring" / "penguins.jsonl").read_text().splitlines()
    assert [json.loads(line)["verdict"] for line in lines] == ["drift", "no_drift"]
    assert set(json.loads(lines[0])) == set(history.HISTORY_FIELDS)
    assert history.last_check("penguins")["verdict"] == "no_drift"
