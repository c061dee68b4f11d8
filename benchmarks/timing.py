"""Timing helpers the benchmarks share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_of(repeats: int, action: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of `repeats` calls of `action` in seconds, and the value of the last call."""
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = action()
        times.append(time.perf_counter() - start)
    return min(times), value
