"""What every `pmf` command shares: exit codes, the argument parser class, the environment and output."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The documented exit codes (DESIGN.md): completed, anything else, usage or config error, data rejected.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3


HELP_WIDTH = 80  # `--help` fits a default terminal, as every pmf text does


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """`--help` in 80 columns whatever the terminal; descriptions and epilogs keep their own lines (their
    examples and tables are laid out by hand)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=26, width=HELP_WIDTH)


class Parser(argparse.ArgumentParser):
    """argparse with pmf's exit code for usage errors (2, as argparse's own), its message format and
    its help layout (`HelpFormatter`, the epilog `help_epilog` writes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"pmf: error: {message}\n")


def json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object on stdout, every value unrounded (progress stays on stderr)"
    )
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow, GX and Prefect logs")


def dask_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dask-address",
        metavar="ADDR",
        help="fan compression variants out on this Dask scheduler, e.g. tcp://10.0.0.5:8786 "
        "(default: $PMF_DASK_ADDRESS, else threads in this process)",
    )


# The environment variables pmf reads, as `--help` explains them.
ENVIRONMENT: dict[str, str] = {
    "PMF_HOME": "the workspace: MLflow store and artifacts, Prefect database, logs, prediction logs (default: ~/.pmf)",
    "MLFLOW_TRACKING_URI": "the MLflow store or tracking server (default: sqlite:///$PMF_HOME/mlflow.db)",
    "PREFECT_API_URL": "the Prefect server that records the flow runs (default: the one `pmf server start` "
    "runs while it is up, else an embedded server that lives as long as the command)",
    "PMF_MLFLOW_UI_URL": "where the printed MLflow links point when the store is on disk "
    "(default: http://127.0.0.1:5000, where `mlflow ui` listens)",
    "PMF_DASK_ADDRESS": "the Dask scheduler compression variants fan out on (default: none: threads in the command's process)",
    "PMF_DATABASE_URL": "pmf's own tables in the team's PostgreSQL, e.g. postgresql+psycopg://pmf@db/pmf (default: none)",
    "PMF_ACTOR": "who is recorded as moving an alias (default: the login name)",
    "PMF_SERVE_TOKEN": "the bearer token every request but /health must carry (default: none; needed "
    "for a --host other than loopback unless --insecure)",
}

# What each exit code means (DESIGN.md); a command lists the ones it can end with.
EXIT_MEANINGS: dict[int, str] = {
    EXIT_OK: "completed",
    EXIT_FAILED: "anything else: a bug, a server down, an interruption (the line says what)",
    EXIT_USAGE: "usage or configuration error (bad flag, unknown name, unreadable config)",
    EXIT_REJECTED: "data rejected by validation (nothing registered, no alias moved)",
}


def help_epilog(environment: list[str], exits: dict[int, str], examples: list[str]) -> str:
    """The end of a command's `--help`: its environment variables (from `ENVIRONMENT`), its exit codes
    (`exits` gives a command's own words for a code, else `EXIT_MEANINGS`) and its examples."""
    import textwrap

    def item(label: str, text: str, column: int) -> list[str]:
        return textwrap.wrap(
            text, HELP_WIDTH, initial_indent=f"  {label:<{column - 2}}", subsequent_indent=" " * column, break_on_hyphens=False
        )

    lines = ["environment:"]
    lines += [line for name in environment for line in item(name, ENVIRONMENT[name], 23)]
    lines += ["", "exit codes:"]
    lines += [line for code, text in exits.items() for line in item(str(code), text or EXIT_MEANINGS[code], 5)]
    lines += ["", "examples:", *(f"  {example}" for example in examples)]
    return "\n".join(lines)


# Commands that run Prefect flows: their embedded server is started the way flows.embedded_server says.
FLOW_COMMANDS = {"run", "validate", "promote", "retrain", "monitor"}


def prepare_environment(args: argparse.Namespace) -> None:
    """Workspace defaults and quiet libraries, before Prefect, MLflow or GX are imported; then make sure
    the workspace can take writes, clean up what killed commands left, and record this one.

    Raises tasks.workspace.WorkspaceError (one line naming the folder; `main` turns it into exit 1).
    """
    import os

    from tasks import processes
    from tasks.workspace import check_workspace, configure_environment, tracking_uri

    verbose = bool(getattr(args, "verbose", False))
    if verbose:
        os.environ["PMF_VERBOSE"] = "1"
    if getattr(args, "dask_address", None):
        os.environ["PMF_DASK_ADDRESS"] = args.dask_address
    home = configure_environment(verbose=verbose)
    check_workspace(home)
    reclaim_workspace(home)
    processes.open_record(home, str(getattr(args, "command", "")), tracking_uri())
    if getattr(args, "command", None) in FLOW_COMMANDS:
        from flows.embedded_server import track_embedded_server

        track_embedded_server()


def reclaim_workspace(home: Path) -> None:
    """Close what pmf commands that died (kill -9, a crash, a reboot) left open: their MLflow runs still
    RUNNING are set KILLED, their embedded Prefect server is stopped, their scratch folders removed."""
    from tasks import processes

    for path, record in processes.stale_records(home):
        killed = stopped = 0
        if record.runs:
            from tasks.registry.tracking import close_open_runs

            killed = list(close_open_runs(record.runs, "KILLED", record.tracking_uri).values()).count("+KILLED")
        if record.servers:
            from flows.embedded_server import stop_orphans

            stopped = stop_orphans(record.servers)
        processes.remove_folders(record)
        path.unlink(missing_ok=True)
        if killed or stopped:
            print(
                f"pmf: cleaned up after `pmf {record.command}` (pid {record.pid}, no longer running): "
                f"{killed} MLflow run(s) marked KILLED, {stopped} embedded Prefect server(s) stopped",
                file=sys.stderr,
            )


def finish_command() -> None:
    """However the command ends (short of SIGKILL): remove its scratch folders and its process record.

    Its embedded Prefect server is stopped by Prefect's own exit hook, after Prefect has sent the
    logs and events it still holds; a server a SIGKILL orphans is stopped by the next command.
    """
    from tasks import processes

    record = processes.current()
    if record is not None:
        processes.remove_folders(record)
        processes.close_record()


def interrupted(exc: KeyboardInterrupt, as_json: bool) -> int:
    """Ctrl-C, SIGTERM or SIGHUP: every run this command opened and left open is KILLED; exit 1 (DECISIONS)."""
    from tasks import processes

    record = processes.current()
    killed = 0
    if record is not None and record.runs:
        from tasks.registry.tracking import close_open_runs

        statuses = close_open_runs(record.runs, "KILLED", record.tracking_uri).values()
        killed = sum(status.endswith("KILLED") for status in statuses)
    name = exc.signal_name if isinstance(exc, processes.Interrupted) else processes.interrupted_by() or "SIGINT"
    return emit(
        {
            "status": "failed",
            "outcome": "killed",
            "error": f"interrupted by {name}: {killed} MLflow run(s) of this command KILLED",
        },
        as_json,
        EXIT_FAILED,
    )


def failure(exc: BaseException, as_json: bool) -> int:
    """An error nobody meant (call it while handling `exc`): runs it left open are FAILED; one line, exit 1
    (see `emit`)."""
    from tasks import processes

    record = processes.current()
    if record is not None and record.runs:
        from mlflow.exceptions import MlflowException

        from tasks.registry.tracking import close_open_runs

        with contextlib.suppress(MlflowException, OSError):  # the store itself failed: the line below says so
            close_open_runs(record.runs, "FAILED", record.tracking_uri)
    from tasks.registry.tracking import unreachable_message  # a tracking server that did not answer: named in one line

    return emit({"status": "failed", "error": unreachable_message(exc) or f"{type(exc).__name__}: {exc}"}, as_json, EXIT_FAILED)


def emit(result: dict[str, Any], as_json: bool, code: int, render: Callable[[dict], str] | None = None) -> int:
    """Print a command's result (one JSON object, the rendered summary, or one error line) and return `code`.

    Called for a failure (status `failed`) while an exception is being handled: a disk that refused a
    write (full, read-only) is said as such, with the folder and its free space; any other error's
    traceback goes to a log file under PMF_HOME/logs that the line (and the JSON's `log`) names.
    The terminal never shows a traceback.
    """
    handling = sys.exc_info()[1]
    if result.get("status") == "failed" and handling is not None:
        result = _explain(result, handling)
    if as_json:
        print(json.dumps(result, default=str))
    elif render is not None and "error" not in result and code != EXIT_USAGE:
        print(render(result))
    else:
        where = f" (details: {result['log']})" if result.get("log") else ""
        print(f"pmf: {result['status']}: {result.get('error', '')}{where}", file=sys.stderr)
    return code


def _explain(result: dict[str, Any], error: BaseException) -> dict[str, Any]:
    from tasks.workspace import WorkspaceError, disk_error, disk_message, log_path, pmf_home

    if isinstance(error, (KeyboardInterrupt, WorkspaceError)) or "log" in result:
        return result  # an interruption, or a workspace problem the message already says in full
    refused = disk_error(error)
    if refused is not None:
        return {**result, "error": disk_message(pmf_home(), refused)}
    # One line: the first 300 characters of the message; the whole of it is in the log.
    result = {**result, "error": " ".join(str(result.get("error", "")).split())[:300]}
    try:
        path = log_path("error")
        path.write_text("".join(traceback.format_exception(error)), encoding="utf-8")
    except OSError:
        return result  # a workspace that refuses writes: the line is all there is
    return {**result, "log": str(path)}


def usage_failure(message: str, as_json: bool) -> int:
    return emit({"status": "usage_error", "error": message}, as_json, EXIT_USAGE)
