"""The `pmf` command line: one module per command group, wired here.

`run` (run, validate) · `models` (models, promote, rollback) · `serve`. Exit codes: `common`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from flows.cli import models, run, serve
from flows.cli.common import Parser

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = Parser(prog="pmf", description="Product-Model Fit: validate, train, gate, compress, register, promote.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    handlers: dict[str, Handler] = {}
    for group in (run, models, serve):
        handlers.update(group.add_commands(commands))
    return parser, handlers


def main(argv: list[str] | None = None) -> int:
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
