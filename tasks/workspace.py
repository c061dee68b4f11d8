"""Where local state lives: one workspace folder (PMF_HOME, default ~/.pmf).

The standard variables win: MLFLOW_TRACKING_URI and PREFECT_API_URL point pmf at a team's servers;
the embedded defaults below apply only when they are unset. Call `configure_environment` before
Prefect, MLflow or Great Expectations are imported: they read these variables at import.

Everything a workspace writes lives under PMF_HOME, whatever folder the user stands in: the SQLite
stores, artifacts of any database-backed MLflow store (also one the user named in
MLFLOW_TRACKING_URI), scratch folders of running commands (`tmp/`), locks and logs.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_HOME = Path("~/.pmf")

OFFLINE_VARIABLES = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

# MLflow's client against a tracking server (http(s)://), unless the user set them: a server that does not
# answer fails a request after 3 retries (about 6 s of back-off when it refuses connections, at most 30 s
# per attempt when it hangs) instead of MLflow's 7 retries with a 120 s timeout (minutes per request); no
# "🏃 View run" line on stdout each time a run ends (stdout carries the summary or --json's one object).
MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}

# Below this, a run would fail half-way (SQLite journals, checkpoints, packages): refuse up front.
MIN_FREE_BYTES = 64 * 1024 * 1024

# Tracking URIs that are a database opened by this process: MLflow would put their artifacts in
# ./mlruns of the current folder. (An http(s) server decides its own artifact location.)
DATABASE_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql")

# What the operating system says when a folder cannot take a write, and what SQLite says instead.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
SQLITE_DISK_MESSAGES = ("database or disk is full", "readonly database", "disk i/o error", "unable to open database file")


class WorkspaceError(Exception):
    """The workspace cannot be used (read-only, full, not a folder): the message names the folder."""


def pmf_home() -> Path:
    return Path(os.environ.get("PMF_HOME") or DEFAULT_HOME).expanduser().resolve()


def default_tracking_uri(home: Path) -> str:
    return f"sqlite:///{home / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(pmf_home())


def is_database_uri(uri: str) -> bool:
    return uri.startswith(DATABASE_SCHEMES)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URI (relative paths against the current folder), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return Path(path).resolve() if path and path != ":memory:" else None


def artifact_root() -> str | None:
    """Where new experiments keep their artifacts: PMF_ARTIFACT_ROOT if set, else PMF_HOME/artifacts for a
    database-backed store (the embedded default or a user's SQLite file), else None (the server decides)."""
    explicit = os.environ.get("PMF_ARTIFACT_ROOT")
    if explicit:
        return explicit.rstrip("/")
    if is_database_uri(tracking_uri()):
        return (pmf_home() / "artifacts").as_uri()
    return None


def configure_environment(verbose: bool = False) -> Path:
    """Set the embedded defaults and quiet library chatter; returns the workspace folder.

    Raises WorkspaceError when the folder cannot be created.
    """
    home = pmf_home()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(disk_message(home, exc)) from None
    for key, value in {**OFFLINE_VARIABLES, **MLFLOW_CLIENT_DEFAULTS}.items():
        os.environ.setdefault(key, value)
    if not os.environ.get("MLFLOW_TRACKING_URI") and not os.environ.get("PREFECT_API_URL"):
        use_local_server(home)
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = default_tracking_uri(home)
    if not os.environ.get("PREFECT_API_URL"):
        os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    if not verbose:
        # Run logs still reach the Prefect API (and UI); only the terminal copy is muted.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    return home


def use_local_server(home: Path) -> None:
    """While `pmf server start` runs on this workspace: flow runs are recorded on its Prefect server (so
    no embedded server starts) and MLflow links point at its MLflow server. MLflow itself keeps writing
    the SQLite store that server serves: the same data, without an HTTP round trip per call.

    Costs a file read and a /proc read per process (no network): asked by every command.
    """
    from tasks.local_server import running_server

    server = running_server(home)
    if server is not None:
        os.environ["PREFECT_API_URL"] = server.prefect_api_url
        os.environ.setdefault("PMF_MLFLOW_UI_URL", server.mlflow_url)


# ---- can the workspace take writes? -------------------------------------------------------------


def check_workspace(home: Path) -> None:
    """Fail in milliseconds, with the folder named, where a command would otherwise fail half-way.

    A real write probes the folder (so a read-only mount refuses even root, whom chmod does not stop);
    the stores and folders already there are checked with access(2), and the free space against
    MIN_FREE_BYTES. Raises WorkspaceError.
    """
    try:
        descriptor, probe = tempfile.mkstemp(prefix=".pmf-write-check-", dir=home)
        try:
            os.write(descriptor, b"pmf")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
            os.unlink(probe)
    except OSError as exc:  # named after the workspace, not the probe file
        raise WorkspaceError(disk_message(home, OSError(exc.errno, exc.strerror))) from None
    for path in _state_paths(home):
        if path.exists() and not os.access(path, os.W_OK):
            raise WorkspaceError(f"workspace {path} is not writable: make it writable or set PMF_HOME to another folder")
    free = shutil.disk_usage(home).free
    if free < MIN_FREE_BYTES:
        raise WorkspaceError(
            f"no room in workspace {home}: {human_bytes(free)} free, pmf needs at least "
            f"{human_bytes(MIN_FREE_BYTES)}: free some space or set PMF_HOME to another disk"
        )


def _state_paths(home: Path) -> list[Path]:
    paths = [home / name for name in ("mlflow.db", "artifacts", "checkpoints", "suites", "tmp", "logs", "locks", "processes")]
    prefect_home = os.environ.get("PREFECT_HOME")
    if prefect_home and not os.environ.get("PREFECT_API_URL"):
        paths += [Path(prefect_home), Path(prefect_home) / "prefect.db"]
    database = sqlite_path(tracking_uri())
    return paths + ([database] if database else [])


def disk_error(exc: BaseException) -> OSError | Exception | None:
    """The error in `exc`'s chain that says the disk refused a write (full, read-only, no permission), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_ERRNOS:
            return current
        if any(text in str(current).lower() for text in SQLITE_DISK_MESSAGES):
            return current  # type: ignore[return-value]
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return None


def disk_message(folder: Path, exc: BaseException) -> str:
    """One line for a write the disk refused: what happened, where, and (when full) the free space."""
    if isinstance(exc, OSError) and exc.filename:
        where = Path(exc.filename)
    else:  # SQLite names no file: the store it writes is the one MLFLOW_TRACKING_URI names
        where = (sqlite_path(tracking_uri()) if not isinstance(exc, OSError) else None) or folder
    existing = next((p for p in (where, *where.parents) if p.exists()), None)
    free = f" ({human_bytes(shutil.disk_usage(existing).free)} free)" if existing else ""
    text = str(exc).lower()
    if (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or "disk is full" in text:
        return f"no space left on the disk of {where}{free}: free some space or set PMF_HOME to another disk"
    if (isinstance(exc, OSError) and exc.errno == errno.EROFS) or "readonly" in text or "read-only" in text:
        return f"workspace {where} is on a read-only file system: set PMF_HOME to a writable folder"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"workspace {where} is not writable ({reason}): make it writable or set PMF_HOME to another folder"


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


# ---- locks, scratch folders, logs ---------------------------------------------------------------


@contextmanager
def workspace_lock(name: str, timeout_s: float = 180.0) -> Iterator[None]:
    """An inter-process lock (flock on PMF_HOME/locks/NAME.lock), held for the block.

    Used around first initialisation of the workspace's stores, which two commands started at
    once would otherwise both attempt. The kernel releases it when its holder dies, even by kill -9.
    """
    import fcntl

    folder = pmf_home() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WorkspaceError(
                        f"workspace lock {folder / name}.lock held for over {timeout_s:.0f}s by another pmf command"
                    ) from None
                time.sleep(0.05)  # waiting on another process: nothing to be notified by
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def scratch_folder(prefix: str) -> Path:
    """A new private folder under PMF_HOME/tmp (never the current folder), owned by this command.

    The caller removes it; if the command dies first, the next command does (see tasks.processes).
    """
    from tasks import processes

    parent = pmf_home() / "tmp"
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=parent))
    processes.note_folder(folder)
    return folder


def remove_scratch_folder(folder: Path) -> None:
    from tasks import processes

    shutil.rmtree(folder, ignore_errors=True)
    processes.forget_folder(folder)


def log_path(kind: str, per_command: bool = True) -> Path:
    """A log file under PMF_HOME/logs: a new one named by kind, time and pid, or one shared `KIND.log`."""
    folder = pmf_home() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / (f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log" if per_command else f"{kind}.log")
