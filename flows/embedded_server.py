"""Prefect's embedded (ephemeral) server as pmf starts it: recorded, logged to a file, stopped on exit.

Prefect starts the server on the first API call of a process without PREFECT_API_URL, as a child
process of ~200 MB. pmf wraps that start (lazily: commands that never reach Prefect never pay it):
- under a workspace lock on first use, so two commands on a fresh workspace do not both migrate
  Prefect's SQLite database;
- with the server's stderr going to PMF_HOME/logs, so its tracebacks never reach the terminal;
- with its pid in the command's process record, so a later command stops a server a kill -9 orphaned.
Prefect's own exit hook stops it when the command ends (also on Ctrl-C and SIGTERM, see flows.cli).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tasks import processes
from tasks.workspace import log_path, workspace_lock

# What the embedded server's command line holds: `stop_orphans` stops only processes that match.
SERVER_COMMAND_MARK = "prefect.server.api.server:create_app"


def track_embedded_server() -> None:
    """Arrange for this process's embedded Prefect server (if it gets one) to start as described above."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return  # a real server (or the test harness): nothing is started here
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the instance Prefect's own clients get (one per process and port)
    if getattr(server, "_pmf_tracked", False):
        return
    prefect_start = server.start
    # Prefect marks the server running before it answers: a second caller (the API log worker, the
    # flow engine) would go on to a server not yet up. Callers wait here until the first start ends.
    starting = threading.Lock()

    def start(timeout: int | None = None) -> None:
        with starting:
            if server.running:
                return
            with _first_use_lock(), _stderr_to(log_path("prefect-server", per_command=False)):
                prefect_start(timeout)
            if server.server_process is not None:
                processes.note_server(server.server_process.pid)

    server.start = start  # type: ignore[method-assign]
    server._pmf_tracked = True  # type: ignore[attr-defined]


def stop_orphans(servers: list[dict[str, Any]]) -> int:
    """Stop embedded servers a dead pmf command left behind; returns how many were still running."""
    return sum(processes.stop_process(s["pid"], s["started"], SERVER_COMMAND_MARK) for s in servers)


@contextmanager
def _first_use_lock() -> Iterator[None]:
    """Hold the workspace lock while Prefect's database is created; later starts need no lock."""
    from prefect import __version__
    from prefect.settings import PREFECT_HOME

    ready = Path(PREFECT_HOME.value()) / f".pmf-database-ready-{__version__}"
    if ready.exists():
        yield
        return
    with workspace_lock("prefect-database"):
        yield
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.touch()


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Point file descriptor 2 at `path` while the server process is spawned (it inherits it)."""
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
