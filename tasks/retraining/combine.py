"""The frame a retrain trains on: the window's older batches (read back from the store) and the new ones."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tasks.config import RetrainSettings
from tasks.data.load import read_table
from tasks.data.schema import Schema
from tasks.retraining.batches import StoredBatch, stored_copy
from tasks.retraining.window import WindowChoice, choose_window


@dataclass
class Window:
    """The training frame and what it is made of."""

    frame: pd.DataFrame
    older: list[StoredBatch]  # older batches in the window, oldest first
    older_rows: int
    skipped: list[str]  # older batches left out because they lack a column the suite needs
    digest: str  # one hash for the window's content (its batches' hashes, in order, and any cut)


def window_frame(
    new: Sequence[tuple[pd.DataFrame, str]],
    history: Sequence[StoredBatch],
    settings: RetrainSettings,
    schema: Schema,
    folder: Path,
) -> Window:
    """The older batches `settings.window` keeps (chosen from `history`, oldest first, by their recorded
    row counts; then read from the store into `folder`) followed by the `new` (frame, sha256) batches.
    A chosen older batch without every column the current suite needs (it predates an `--update-suite`)
    is left out, and named in `skipped`."""
    choice = choose_window([b.rows for b in history], [len(f) for f, _ in new], settings.window, settings.size)
    needed = {*schema.features, schema.target}
    older: list[tuple[StoredBatch, pd.DataFrame]] = []
    skipped: list[str] = []
    for position, index in enumerate(choice.older):
        frame = read_table(stored_copy(history[index], folder))
        if not needed <= set(frame.columns):
            skipped.append(history[index].file)
            continue
        older.append((history[index], frame.iloc[choice.skip_rows :] if position == 0 else frame))
    frame = pd.concat([*(f for _, f in older), *(f for f, _ in new)], ignore_index=True, sort=False)
    shas = [b.sha256 for b, _ in older] + [sha for _, sha in new]
    return Window(frame, [b for b, _ in older], sum(len(f) for _, f in older), skipped, _digest(shas, choice))


def _digest(shas: Sequence[str], choice: WindowChoice) -> str:
    return hashlib.sha256(("\n".join(shas) + f"\nskip={choice.skip_rows}").encode()).hexdigest()
