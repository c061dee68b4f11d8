"""What the terminal shows while a command runs: stage lines and training progress on stderr, and the
helpers every terminal text uses to fit 80 columns and to show numbers to people.

stdout stays clean for `--json` (which keeps every value unrounded). On a terminal the epoch line is
rewritten in place; in a log file every tenth epoch (and the last) gets a line, so long trainings do
not flood it. Lines longer than `WIDTH` are wrapped under their own indentation, never cut.
"""

from __future__ import annotations

import math
import re
import shlex
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

# Every terminal text is laid out for 80 columns: the width of a default terminal, a split pane, a CI log.
WIDTH = 80


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
        """Print `text` on stderr, wrapped to `WIDTH` columns (see `fit`), even while a TensorFlow
        conversion in another thread has the process's stderr muted."""
        if self.enabled:
            from tasks.model.tf_env import print_past_silence

            print_past_silence("\n".join(fit([text])), self.stream)

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
        shown = "  ".join(f"{k} {metric(v)}" for k, v in logs.items() if k in ("loss", "val_loss", "val_accuracy", "val_mae"))
        text = f"  epoch {epoch:>3}/{total}  {shown}"
        if self.tty:
            print("\r" + text[: WIDTH - 1], end="", file=self.stream, flush=True)  # one rewritten line: never wrap it
        elif epoch == 1 or epoch % 10 == 0 or epoch == total:
            self.line(text)

    def end_epochs(self) -> None:
        if self.enabled and self.tty:
            print(file=self.stream, flush=True)


CONSOLE = Console()


# ---- 80 columns ---------------------------------------------------------------------------------


def fit(lines: Iterable[str], width: int = WIDTH) -> list[str]:
    """Every line of `lines` (each may hold newlines) in `width` columns: a longer line is wrapped at
    spaces, its continuation indented two more than the line itself. A word longer than the width (a
    URL, a path) is kept whole on a line of its own, so it can still be copied."""
    out: list[str] = []
    for text in lines:
        for line in str(text).split("\n"):
            out += wrap(line.lstrip(" "), len(line) - len(line.lstrip(" ")), width=width) if len(line) > width else [line]
    return out


def wrap(text: str, indent: int, hanging: int | None = None, width: int = WIDTH) -> list[str]:
    """`text` wrapped to `width` columns: the first line indented by `indent` spaces, the others by
    `hanging` (default: indent + 2)."""
    hanging = indent + 2 if hanging is None else hanging
    return textwrap.wrap(
        text, width, initial_indent=" " * indent, subsequent_indent=" " * hanging, break_long_words=False, break_on_hyphens=False
    ) or [" " * indent]


def pack(label: str, items: Iterable[str], width: int = WIDTH) -> list[str]:
    """`label` then `items` two spaces apart, each item kept whole, continuation lines aligned under
    the first item: `stages   load 0.0s  validate 2.9s ...`."""
    lines, current = [], label
    for item in items:
        if current != label and len(current) + 2 + len(item) > width:
            lines.append(current)
            current = " " * len(label) + item
        else:
            current = f"{current}  {item}" if current != label else label + item
    return [*lines, current]


def command_lines(words: Iterable[str], indent: int, width: int = WIDTH) -> list[str]:
    """A shell command a user can copy: its words quoted, packed to `width` columns, each line but the
    last ending in ` \\` (the shell joins them); a long word is indented less to fit, and one longer
    than a line stays whole."""
    lines, current = [], " " * indent
    for word in map(shlex.quote, words):
        if current.strip() and len(current) + 1 + len(word) + 2 > width:
            lines.append(current + " \\")
            current = " " * min(indent + 4, max(0, width - 2 - len(word))) + word  # a long path moves left
        else:
            current = f"{current} {word}" if current.strip() else current + word
    return [*lines, current]


def path_lines(path: str, indent: int, width: int = WIDTH) -> list[str]:
    """A path (or URL) a user can copy into a shell: on one line when it fits, else cut after a `/`
    with a `\\` ending each line but the last and the next line starting at column 0, so the shell joins
    the pieces into the one path (a continuation inside a word adds no space)."""
    if indent + len(path) <= width:
        return [" " * indent + path]
    lines, current = [], " " * indent
    for piece in re.findall(r"[^/]*/|[^/]+$", path):
        if current.strip() and len(current) + len(piece) + 1 > width:
            lines.append(current + "\\")
            current = ""
        current += piece
    return [*lines, current]


# ---- numbers for people ---------------------------------------------------------------------------


def number(value: Any, grouping: bool = True) -> str:
    """A number as a person reads it: at most 6 significant digits, whole numbers from 100,000 up,
    thousands separated (`grouping=False` where commas would be read as list separators, as in
    `min_value=1800, max_value=7200`). 4097899.9999999995 -> `4,097,900`, 1800.0000000001 -> `1,800`,
    0.123456789 -> `0.123457`. Anything that is not a number is shown as text."""
    comma = "," if grouping else ""
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and not hasattr(value, "__float__")):
        return str(value)
    if isinstance(value, int):
        return f"{value:{comma}}"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e5:
        return f"{value:{comma}.0f}"
    text = f"{value:{comma}.6g}"
    return "0" if text == "-0" else text


def metric(value: Any) -> str:
    """A metric: 4 decimals below 1,000 (0.9855, -12.3457), else as `number` (4,097,900); `missing` for None."""
    if value is None:
        return "missing"
    if isinstance(value, (int, float)) and math.isfinite(value) and abs(value) < 1000:
        return f"{value:.4f}"
    return number(value)


def seconds(value: float) -> str:
    """A duration: `0.4s`, `25.5s`, `2m 05s`."""
    return f"{value:.1f}s" if value < 60 else f"{int(value // 60)}m {int(value % 60):02d}s"
