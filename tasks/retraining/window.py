"""The training window of a retrain: every new batch, whole, plus as much older data as `retrain.window` says.

Pure decisions on row counts, so they are tested without data: the caller reads the batches it names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Window = Literal["all", "rows", "batches"]


@dataclass(frozen=True)
class WindowChoice:
    """The older batches to train on (indexes into the history, oldest first) and, for a `rows` window,
    how many of the oldest kept batch's first rows are left out (the window keeps the newest rows)."""

    older: tuple[int, ...]
    skip_rows: int = 0


def choose_window(older_rows: Sequence[int], new_rows: Sequence[int], window: Window, size: int | None) -> WindowChoice:
    """Which older batches go with the new ones.

    `older_rows`: rows of each batch trained on before, oldest first (the first `pmf run`'s batch first);
    `new_rows`: rows of each new batch. `all`: every older batch. `batches`: the newest `size` batches,
    the new ones counted first (never fewer than the new ones). `rows`: the newest `size` rows, new rows
    counted first (never fewer than the new ones); the oldest batch kept may be cut to its newest rows.
    """
    if window == "all":
        return WindowChoice(tuple(range(len(older_rows))))
    if size is None:
        raise ValueError(f"retrain.window {window!r} needs retrain.size")
    if window == "batches":
        room = max(size - len(new_rows), 0)
        return WindowChoice(tuple(range(len(older_rows) - min(room, len(older_rows)), len(older_rows))))
    room = max(size - sum(new_rows), 0)
    kept: list[int] = []
    for index in reversed(range(len(older_rows))):
        if room <= 0:
            break
        kept.insert(0, index)
        room -= older_rows[index]
    return WindowChoice(tuple(kept), skip_rows=-room if room < 0 else 0)


def describe(window: Window, size: int | None) -> str:
    """`all batches trained on before`, `the newest 5,000 rows`, `the newest 3 batches`."""
    if window == "all":
        return "every batch trained on before"
    return f"the newest {size:,} {window}"
