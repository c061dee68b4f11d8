"""`pmf serve`: the REST server for `models:/NAME@alias` (the server itself: tasks.serving.server)."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from flows.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, prepare_environment
from flows.cli.models import check_model


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    from tasks.serving.server import add_serve_options

    serve = commands.add_parser("serve", help="REST server for models:/NAME@alias that follows the alias")
    serve.add_argument("name", nargs="?", help="default: the only registered model")
    add_serve_options(serve)
    return {"serve": cmd_serve}


def cmd_serve(args: argparse.Namespace) -> int:
    prepare_environment(args)
    from tasks.registry.lifecycle import list_models
    from tasks.serving.package import IntegrityError
    from tasks.serving.server import serve

    name = args.name
    if name is None:
        names = [m["name"] for m in list_models()]
        if len(names) != 1:
            print(f"pmf: usage_error: name the model to serve (registered: {', '.join(names) or 'none'})", file=sys.stderr)
            return EXIT_USAGE
        name = names[0]
    if problem := check_model(name, args.version):
        print(f"pmf: usage_error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        serve(name, args.alias, args.version, args.host, args.port, args.watch_interval, args.max_rows, not args.no_prediction_log)
    except (IntegrityError, LookupError) as exc:
        print(f"pmf serve: refused: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, LookupError) else EXIT_FAILED
    return EXIT_OK
