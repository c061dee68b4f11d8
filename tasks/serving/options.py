"""The options of `pmf serve` (and of `python -m tasks.serving.server`, the infra check's server), kept
apart from the server so building pmf's command line imports nothing heavy (no pandas, no LiteRT)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

DEFAULT_WATCH_INTERVAL_S = 5.0
DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_BODY_MB = 10.0
TOKEN_ENV = "PMF_SERVE_TOKEN"  # noqa: S105  (the variable's name, not a secret)


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range (1-65535)")
    return port


def positive_number(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text} must be a finite number above 0")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """The server's options, shared by `pmf serve` and `python -m tasks.serving.server` (the infra check).

    Settings stored with the model default to None here, so a flag that was not given lets the model's
    promotion settings apply."""
    parser.add_argument("--alias", default="production", help="follow this alias (default: %(default)s)")
    parser.add_argument("--version", help="serve this version, pinned: no alias watching (default: the alias's version)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help=f"address to bind (default: %(default)s; any other than loopback needs {TOKEN_ENV} or --insecure)",
    )
    parser.add_argument("--port", type=port_number, default=8080, help="port to bind, 1-65535 (default: %(default)s)")
    parser.add_argument(
        "--watch-interval",
        type=positive_number(float),
        default=None,
        metavar="SECONDS",
        help=f"seconds between alias polls (default: the model's watch_interval_s, else {DEFAULT_WATCH_INTERVAL_S:g})",
    )
    parser.add_argument(
        "--max-rows",
        type=positive_number(int),
        default=None,
        metavar="ROWS",
        help=f"larger requests get 413 (default: the model's max_batch_rows, else {DEFAULT_MAX_ROWS})",
    )
    parser.add_argument(
        "--max-body-mb",
        type=positive_number(float),
        default=None,
        metavar="MB",
        help=f"larger request bodies get 413 before they are read (default: {DEFAULT_MAX_BODY_MB:g})",
    )
    parser.add_argument(
        "--insecure", action="store_true", help=f"allow a non-loopback --host without {TOKEN_ENV} (default: refused)"
    )
    parser.add_argument(
        "--no-prediction-log",
        action="store_true",
        help="do not write PMF_HOME/predictions/NAME.jsonl (default: every prediction is logged)",
    )
    parser.add_argument("--verbose", action="store_true", help="show library logs (default: only pmf's lines)")
