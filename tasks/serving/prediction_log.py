"""The prediction log: one JSON line per predicted row (inputs, prediction, model version, time).

Requests only append a reference to an in-memory queue (a deque append is atomic and costs well
under a microsecond); a background thread turns them into lines and appends them to
PMF_HOME/predictions/NAME.jsonl. If the writer falls far behind, new entries are dropped and
counted rather than slowing the responses down.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path
from typing import Any

import orjson

LOG = logging.getLogger("pmf.serve")


class PredictionLog:
    def __init__(self, path: Path, model: str, flush_interval_s: float = 0.2, max_pending: int = 200_000):
        self.path = Path(path)
        self.model = model
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.dropped = 0
        self.written = 0
        self._pending: collections.deque = collections.deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pmf-prediction-log", daemon=True)

    def start(self) -> "PredictionLog":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def record(self, version: str, columns: dict[str, list], predictions: list) -> None:
        """Queue one request's rows; never blocks."""
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            return
        self._pending.append((time.time(), version, columns, predictions))

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        with self.path.open("ab") as out:
            while not self._stop.wait(self.flush_interval_s):
                self._drain(out)
            self._drain(out)

    def _drain(self, out: Any) -> None:
        lines = []
        while self._pending:
            stamp, version, columns, predictions = self._pending.popleft()
            lines.extend(self._lines(stamp, version, columns, predictions))
        if lines:
            try:
                out.write(b"".join(lines))
                out.flush()
                self.written += len(lines)
            except OSError as exc:  # a full disk must not take the server down
                LOG.error("prediction log %s: %s", self.path, exc)

    def _lines(self, stamp: float, version: str, columns: dict[str, list], predictions: list) -> list[bytes]:
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1000):03d}Z"
        names = list(columns)
        return [orjson.dumps({"time": when, "model": self.model, "version": version,
                              "inputs": {n: columns[n][i] for n in names}, "prediction": prediction}) + b"\n"
                for i, prediction in enumerate(predictions)]
