"""Stopping the local server: every process it started, and nothing else.

A process belongs to the server when its environment holds the server's id (`PMF_LOCAL_SERVER_ID`,
random per start): the three processes and everything they spawned (MLflow's uvicorn, the flow runs
the runner starts in sessions of their own) inherit it, and a pid the system has reused cannot hold
it. Each part gets SIGTERM, then SIGKILL after a deadline; the runner goes first (its flow runs with it),
then MLflow, then Prefect, so nothing reports to a server already gone.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tasks.local_server.state import PROCESS_NAMES, SERVER_ID_VARIABLE, ServerState

TERM_TIMEOUT_S = 15.0


def server_processes(server_id: str, variable: str = SERVER_ID_VARIABLE) -> list[int]:
    """Pids of the running processes (zombies aside) whose environment carries `variable=server_id`."""
    if not server_id:
        return []
    mark = f"{variable}={server_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()  # another user's process: PermissionError
        except OSError:
            continue
        if mark in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def part_processes(state: ServerState, name: str) -> list[int]:
    """The processes of one part: its own and the ones it spawned (they share its session or descend from it)."""
    process = state.processes.get(name)
    if process is None:
        return []
    return process_tree(process.pid, server_processes(state.server_id))


def process_tree(pid: int, ours: list[int]) -> list[int]:
    """Of the pids `ours`, `pid` itself and those that descend from it or share its session."""
    return [each for each in ours if each == pid or _descends_from(each, pid)]


def _descends_from(pid: int, ancestor: int) -> bool:
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return False
        session, parent = int(fields[3]), int(fields[1])
        if ancestor in (session, parent):
            return True
        pid = parent
    return False


def stop_server(state: ServerState, timeout_s: float = TERM_TIMEOUT_S) -> dict[str, int]:
    """Stop every process of `state`, runner first; returns how many processes of each part were running.

    Processes of the server that belong to no part (their parent died and they were adopted) go last.
    """
    stopped = {}
    for name in reversed(PROCESS_NAMES):
        pids = part_processes(state, name)
        terminate(pids, state.server_id, timeout_s)
        stopped[name] = len(pids)
    terminate(server_processes(state.server_id), state.server_id, timeout_s)
    return stopped


def terminate(pids: list[int], server_id: str, timeout_s: float, variable: str = SERVER_ID_VARIABLE) -> None:
    """SIGTERM each, wait until they are gone or `timeout_s` passed, then SIGKILL what is left and still
    ours (its environment still holds `variable=server_id`)."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + wait_s
        while (pids := [pid for pid in pids if _running(pid)]) and time.monotonic() < deadline:
            time.sleep(0.1)  # other processes exiting: nothing to be notified by
        if not pids:
            return
        pids = [pid for pid in pids if pid in server_processes(server_id, variable)]  # a pid reused meanwhile is not ours


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; its parent (not us) reaps it
