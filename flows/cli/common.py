"""What every `pmf` command shares: exit codes, the argument parser class, the environment and output."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

# The documented exit codes (DESIGN.md): completed, anything else, usage or config error, data rejected.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3


class Parser(argparse.ArgumentParser):
    """argparse with pmf's exit code for usage errors (2, as argparse's own) and its message format."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"pmf: error: {message}\n")


def json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow, GX and Prefect logs")


def prepare_environment(args: argparse.Namespace) -> None:
    """Workspace defaults and quiet libraries; before Prefect, MLflow or GX are imported."""
    import os

    from tasks.workspace import configure_environment

    verbose = bool(getattr(args, "verbose", False))
    if verbose:
        os.environ["PMF_VERBOSE"] = "1"
    configure_environment(verbose=verbose)


def emit(result: dict[str, Any], as_json: bool, code: int, render: Callable[[dict], str] | None = None) -> int:
    """Print a command's result (one JSON object, the rendered summary, or one error line) and return `code`."""
    if as_json:
        print(json.dumps(result, default=str))
    elif render is not None and "error" not in result and code != EXIT_USAGE:
        print(render(result))
    else:
        print(f"pmf: {result['status']}: {result.get('error', '')}", file=sys.stderr)
    return code


def usage_failure(message: str, as_json: bool) -> int:
    return emit({"status": "usage_error", "error": message}, as_json, EXIT_USAGE)
