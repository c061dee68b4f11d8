"""`pmf serve`: the REST server for `models:/NAME@alias` (the server itself: tasks.serving.server).

Exit codes: 0 after a normal stop (SIGINT/SIGTERM), 2 for usage errors (bad flags, unknown model or
version, port in use, a non-loopback --host without a token or --insecure), 1 for a refused model
(integrity) or a registry that cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from flows.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, help_epilog, prepare_environment

SERVE_DESCRIPTION = """\
Serve a registered model over HTTP: POST /invocations (MLflow's JSON formats,
raw rows as in the CSV), GET /health (liveness) and /ready (readiness). It
follows the alias: when NAME@ALIAS moves, the new version is loaded, checked
and swapped in without dropping requests. Predictions are logged to
PMF_HOME/predictions/NAME.jsonl."""


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    from tasks.serving.options import add_serve_options

    serve = commands.add_parser(
        "serve",
        help="REST server for models:/NAME@alias that follows the alias",
        description=SERVE_DESCRIPTION,
        epilog=help_epilog(
            ["PMF_HOME", "MLFLOW_TRACKING_URI", "PMF_SERVE_TOKEN"],
            {
                EXIT_OK: "stopped normally (Ctrl-C, SIGTERM)",
                EXIT_FAILED: "the model was refused (integrity) or the registry could not be read",
                EXIT_USAGE: "bad flag, unknown model or version, port in use, a non-loopback --host "
                "without PMF_SERVE_TOKEN or --insecure",
            },
            [
                "pmf serve penguins",
                "pmf serve penguins --alias staging --port 8081",
                "PMF_SERVE_TOKEN=s3cret pmf serve penguins --host 0.0.0.0",
                "curl -s localhost:8080/invocations -H 'Content-Type: application/json' \\",
                '     -d \'{"dataframe_records": [{"island": "Biscoe", "bill_length_mm": 45}]}\'',
            ],
        ),
    )
    serve.add_argument("name", nargs="?", help="the registered model (default: the only registered model)")
    add_serve_options(serve)
    return {"serve": cmd_serve}


def cmd_serve(args: argparse.Namespace) -> int:
    prepare_environment(args)
    from tasks.serving.server import ServeRequest, run_serve

    name = args.name
    if name is None:
        from mlflow.exceptions import MlflowException

        from tasks.registry.lifecycle import list_models

        try:
            names = [m["name"] for m in list_models()]
        except MlflowException as exc:
            print(f"pmf serve: failed: cannot read the model registry: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
            return EXIT_FAILED
        if len(names) != 1:
            print(f"pmf: usage_error: name the model to serve (registered: {', '.join(names) or 'none'})", file=sys.stderr)
            return EXIT_USAGE
        name = names[0]
    return run_serve(ServeRequest.from_args(name, args))
