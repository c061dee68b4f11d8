"""The `pmf` command line: one module per command group, wired here.

`run` (run, validate) · `models` (models, promote, rollback) · `serve`. Exit codes: `common`.
However a command ends it ends here in one line and a documented exit code: an unexpected error
(its traceback goes to PMF_HOME/logs), a workspace that refuses writes, or an interruption (Ctrl-C,
SIGTERM, SIGHUP: the command's open MLflow runs are KILLED, its embedded server stopped; exit 1).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flows.cli import alerts, models, monitor, retrain, run, schedule, serve, server, status, team
from flows.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
    Parser,
    emit,
    failure,
    finish_command,
    help_epilog,
    interrupted,
)

Handler = Callable[[argparse.Namespace], int]


DESCRIPTION = """\
Product-Model Fit: keep a TensorFlow model fitting its product. Every batch is
validated, a model trained, gated, compressed, registered with its lineage,
and only a model proven better, smaller and servable reaches production.
`pmf COMMAND --help` says more about each command."""


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = Parser(
        prog="pmf",
        description=DESCRIPTION,
        epilog=help_epilog(
            ["PMF_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"],
            {
                EXIT_OK: "the command completed (a run that ends not promoted has completed)",
                EXIT_FAILED: "",
                EXIT_USAGE: "",
                EXIT_REJECTED: "",
            },
            ["pmf run", "pmf run --data sales.csv --target churned", "pmf models penguins", "pmf serve penguins"],
        ),
    )
    parser.add_argument("--version", action="version", version=f"pmf {package_version()}", help="print pmf's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser, title="commands", metavar="COMMAND")
    handlers: dict[str, Handler] = {}
    for group in (run, models, serve, server, schedule, retrain, monitor, alerts, status, team):
        handlers.update(group.add_commands(commands))
    return parser, handlers


def package_version() -> str:
    """The installed `pmf` distribution's version (its package metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pmf")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed: pip install -e .)"


def main(argv: list[str] | None = None) -> int:
    from tasks import processes
    from tasks.workspace import WorkspaceError

    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    as_json = bool(getattr(args, "json", False))
    with _signals_as_interruptions():
        try:
            return handlers[args.command](args)
        except KeyboardInterrupt as exc:
            with _signals_ignored():
                return interrupted(exc, as_json)
        except WorkspaceError as exc:
            return emit({"status": "failed", "error": str(exc)}, as_json, EXIT_FAILED)
        except Exception as exc:  # noqa: BLE001  (the last line of defence: one line and exit 1, never a traceback)
            if processes.INTERRUPTED.is_set():  # a library turned the interruption into an error of its own
                with _signals_ignored():
                    return interrupted(KeyboardInterrupt(), as_json)
            return failure(exc, as_json)
        except BaseException as exc:  # Prefect turns SIGTERM into its own TerminationSignal during a flow
            if isinstance(exc, SystemExit):
                raise
            with _signals_ignored():
                return interrupted(KeyboardInterrupt(), as_json)
        finally:
            with _signals_ignored():  # cleanup runs to its end
                finish_command()


INTERRUPTING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _signals_as_interruptions() -> Iterator[None]:
    """SIGTERM and SIGHUP raise in the main thread as Ctrl-C does, so `finally` blocks and `main`'s
    cleanup run instead of the process vanishing with its server and runs left behind."""
    from tasks import processes

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread; a caller in another thread keeps its own
        return

    def interrupt(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        processes.note_interruption(name)
        raise processes.Interrupted(name)

    previous = {sig: signal.signal(sig, interrupt) for sig in INTERRUPTING_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        processes.INTERRUPTED.clear()


@contextmanager
def _signals_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in INTERRUPTING_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
