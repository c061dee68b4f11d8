"""What a running pmf command leaves under PMF_HOME/processes, so the next one can clean up after a kill -9.

One record per command: its pid with the process's start time (a reused pid is not mistaken for
it), the MLflow runs it opened, the embedded Prefect server it started and its scratch folders.
The command deletes its record when it ends, however it ends short of SIGKILL; a record whose owner
is gone is reclaimed by the next command (`stale_records`). Records of other hosts are left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Set once this process has been asked to stop (SIGINT, SIGTERM, SIGHUP): runs that end after it are KILLED.
INTERRUPTED = threading.Event()
_interrupted_by = ""


def note_interruption(signal_name: str) -> None:
    global _interrupted_by
    _interrupted_by = signal_name
    INTERRUPTED.set()


def is_interruption(exc: BaseException) -> bool:
    """Whether `exc` means the process is being stopped rather than the work failing: a signal was
    received, or a BaseException that is no Exception (KeyboardInterrupt, SystemExit, and what
    orchestrators raise for SIGTERM, like Prefect's TerminationSignal) is unwinding the stack."""
    return INTERRUPTED.is_set() or not isinstance(exc, Exception)


def interrupted_by() -> str:
    """The signal that interrupted this command ("" if none did)."""
    return _interrupted_by if INTERRUPTED.is_set() else ""


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM or SIGHUP, so cleanup runs as it does for Ctrl-C."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


@dataclass
class ProcessRecord:
    pid: int
    started: str
    host: str
    command: str
    tracking_uri: str
    runs: list[str] = field(default_factory=list)
    servers: list[dict] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)


_current: ProcessRecord | None = None
_path: Path | None = None
_lock = threading.Lock()  # stages in worker threads open runs too


def start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot) or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc (not Linux): existence only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name before ")" may hold spaces


def is_alive(pid: int, started: str) -> bool:
    now = start_time(pid)
    return now is not None and (now == started or "" in (now, started))


def open_record(home: Path, command: str, tracking_uri: str) -> ProcessRecord:
    """Start this command's record (replacing one left by an earlier command of this same process)."""
    global _current, _path
    record = ProcessRecord(os.getpid(), start_time(os.getpid()) or "", socket.gethostname(), command, tracking_uri)
    with _lock:
        _current, _path = record, home / "processes" / f"{record.pid}.json"
        _save()
    return record


def current() -> ProcessRecord | None:
    return _current


def close_record() -> None:
    """The command ended: nothing of it is left to clean up."""
    global _current, _path
    with _lock:
        if _path is not None:
            _path.unlink(missing_ok=True)
        _current, _path = None, None


def note_run(run_id: str) -> None:
    _append("runs", run_id)


def note_server(pid: int) -> None:
    _append("servers", {"pid": pid, "started": start_time(pid) or ""})


def note_folder(folder: Path) -> None:
    _append("folders", str(folder))


def forget_folder(folder: Path) -> None:
    with _lock:
        if _current is not None and str(folder) in _current.folders:
            _current.folders.remove(str(folder))
            _save()


def _append(kind: str, value: object) -> None:
    with _lock:
        if _current is not None:
            getattr(_current, kind).append(value)
            _save()


def _save() -> None:
    assert _path is not None
    assert _current is not None
    _path.parent.mkdir(parents=True, exist_ok=True)
    partial = _path.with_suffix(".json.partial")
    partial.write_text(json.dumps(asdict(_current)), encoding="utf-8")
    os.replace(partial, _path)  # a reader never sees half a record


def stale_records(home: Path) -> list[tuple[Path, ProcessRecord]]:
    """Records of this host whose command is gone (killed, crashed, or its machine restarted)."""
    stale = []
    host = socket.gethostname()
    for path in sorted((home / "processes").glob("*.json")):
        try:
            record = ProcessRecord(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue  # being written, or not ours
        if record.host == host and record.pid != os.getpid() and not is_alive(record.pid, record.started):
            stale.append((path, record))
    return stale


def stop_process(pid: int, started: str, must_contain: str, timeout_s: float = 10.0) -> bool:
    """Stop `pid` if it is still the process recorded (same start time, command line holding
    `must_contain`): SIGTERM, then SIGKILL after `timeout_s`. Returns whether it was stopped."""
    if not is_alive(pid, started):
        return False
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    if must_contain not in command_line:
        return False
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not is_alive(pid, started):
                return True
            time.sleep(0.05)  # another process's exit: nothing to wait on but its pid
    return not is_alive(pid, started)


def remove_folders(record: ProcessRecord) -> int:
    removed = 0
    for folder in record.folders:
        if Path(folder).exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
