"""The training window of a retrain: which older batches go with the new ones (pure decisions on row counts)."""

from __future__ import annotations

import pytest

from tasks.config import ConfigError, load_config
from tasks.retraining.window import WindowChoice, choose_window, describe

HISTORY = [344, 120, 200]  # rows of the batches trained on before, oldest (the first `pmf run`'s) first


def test_window_all_keeps_every_older_batch():
    assert choose_window(HISTORY, [50], "all", None) == WindowChoice((0, 1, 2))


def test_window_all_of_no_history_is_the_new_batches_alone():
    assert choose_window([], [50], "all", None) == WindowChoice(())


@pytest.mark.parametrize(
    ("size", "older"),
    [(1, ()), (2, (2,)), (3, (1, 2)), (4, (0, 1, 2)), (10, (0, 1, 2))],
)
def test_window_batches_counts_the_new_batch_first_then_the_newest_older_ones(size, older):
    assert choose_window(HISTORY, [50], "batches", size) == WindowChoice(older)


def test_window_batches_never_drops_a_new_batch():
    assert choose_window(HISTORY, [50, 60, 70], "batches", 2) == WindowChoice(())


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (50, WindowChoice(())),  # the new rows fill the window
        (250, WindowChoice((2,))),  # 200 older rows exactly
        (200, WindowChoice((2,), skip_rows=50)),  # the newest 150 of the last batch
        (300, WindowChoice((1, 2), skip_rows=70)),  # 200 + the newest 50 of the one before
        (10_000, WindowChoice((0, 1, 2))),
    ],
)
def test_window_rows_keeps_the_newest_rows_cutting_the_oldest_batch_kept(size, expected):
    assert choose_window(HISTORY, [50], "rows", size) == expected


def test_window_rows_never_cuts_the_new_batches():
    assert choose_window(HISTORY, [400, 100], "rows", 300) == WindowChoice(())


def test_a_window_with_a_size_needs_it():
    with pytest.raises(ValueError, match=r"retrain\.size"):
        choose_window(HISTORY, [50], "rows", None)


def test_the_config_says_the_window_and_refuses_a_size_without_one():
    assert load_config(None, ["retrain.window=rows", "retrain.size=5000"]).retrain.size == 5000
    assert load_config().retrain.window == "all"
    with pytest.raises(ConfigError, match="retrain"):
        load_config(None, ["retrain.window=batches"])
    with pytest.raises(ConfigError, match="retrain"):
        load_config(None, ["retrain.size=3"])
    with pytest.raises(ConfigError, match=r"retrain\.window"):
        load_config(None, ["retrain.window=weeks", "retrain.size=3"])


def test_the_window_is_described_in_words():
    assert describe("all", None) == "every batch trained on before"
    assert describe("rows", 5000) == "the newest 5,000 rows"
    assert describe("batches", 3) == "the newest 3 batches"
