"""What the terminal shows while a flow runs: stage lines and training progress, on stderr.

stdout stays clean for `--json`. On a terminal the epoch line is rewritten in place; in a log
file every tenth epoch (and the last) gets a line, so long trainings do not flood it.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator


class Console:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.durations: dict[str, float] = {}

    @property
    def stream(self):  # looked up on each write: tests and tools swap sys.stderr
        return sys.stderr

    @property
    def tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.line(f"▸ {name} …")
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self.durations[name] = time.perf_counter() - start
            self.line(f"✗ {name} failed after {self.durations[name]:.1f}s")
            raise
        self.durations[name] = time.perf_counter() - start
        self.line(f"✓ {name} {self.durations[name]:.1f}s")

    def epoch(self, epoch: int, total: int, logs: dict[str, float]) -> None:
        if not self.enabled:
            return
        shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k in ("loss", "val_loss", "val_accuracy", "val_mae"))
        text = f"  epoch {epoch:>3}/{total}  {shown}"
        if self.tty:
            print("\r" + text, end="", file=self.stream, flush=True)
        elif epoch == 1 or epoch % 10 == 0 or epoch == total:
            self.line(text)

    def end_epochs(self) -> None:
        if self.enabled and self.tty:
            print(file=self.stream, flush=True)


CONSOLE = Console()
