"""The `pmf` command line. Exit codes: 0 completed (promoted or not), 2 usage/config error,
3 data rejected by validation, 1 anything else.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3
BUNDLED_DATA = Path(__file__).resolve().parent.parent / "data"
DEFAULT_CONFIG = BUNDLED_DATA / "penguins.yaml"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits with 2 too; keep its message format
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"pmf: error: {message}\n")


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, help="CSV or Parquet file (default: the config's data.path, else the bundled penguins)")
    parser.add_argument("--target", help="target column (required the first time a dataset name is seen)")
    parser.add_argument("--name", help="dataset and registered model name (default: config name, else the file's stem)")
    parser.add_argument("--task", choices=["classification", "regression"], help="default: inferred from the target")
    parser.add_argument("--config", type=Path, help="YAML config (see data/*.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    parser.add_argument("--update-suite", action="store_true", help="re-infer this name's expectation suite from this batch")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow, GX and Prefect logs")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pmf", description="Product-Model Fit: validate, train, gate, compress, register, promote.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _data_options(commands.add_parser("run", help="the main flow (no arguments: the bundled penguins data)"))
    _data_options(commands.add_parser("validate", help="validate a batch against its dataset's suite, nothing else"))
    for module in EXTRA_COMMANDS:
        HANDLERS.update(__import__(module, fromlist=["add_commands"]).add_commands(commands))
    return parser


# Modules contributing subcommands: each has add_commands(subparsers) -> {command: handler(args) -> exit code}.
EXTRA_COMMANDS = ("flows.cli_registry",)
HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {}


def main(argv: list[str] | None = None) -> int:
    HANDLERS.update(run=cmd_run, validate=cmd_validate)
    args = build_parser().parse_args(argv)
    return HANDLERS[args.command](args)


def _environment(args: argparse.Namespace) -> None:
    from tasks.workspace import configure_environment

    if args.verbose:
        os.environ["PMF_VERBOSE"] = "1"
    configure_environment(verbose=args.verbose)


def _request(args: argparse.Namespace) -> Any:
    """Resolve config, data path, name and target from the flags; raises ConfigError on bad usage."""
    from flows.train_flow import RunRequest
    from tasks.config import ConfigError, load_config

    config_path = args.config or (DEFAULT_CONFIG if args.data is None else None)
    overrides = list(args.overrides)
    if args.task:
        overrides.append(f"data.task={args.task}")
    cfg = load_config(config_path, overrides)
    data = args.data or (Path(cfg.data.path) if cfg.data.path else None)
    if data is None:
        raise ConfigError("no data: pass --data PATH or a --config with data.path")
    if not data.exists():
        raise ConfigError(f"data file {data} does not exist")
    name = args.name or cfg.name or data.stem
    return RunRequest(data=data.resolve(), name=_safe_name(name), cfg=cfg, target=args.target, update_suite=args.update_suite)


def _safe_name(name: str) -> str:
    from tasks.config import ConfigError

    if not name or any(c in name for c in "/\\:@ ") or len(name) > 100:
        raise ConfigError(f"invalid name {name!r}: use letters, digits, '-', '_' or '.' (no '/', ':', '@' or spaces)")
    return name


def cmd_run(args: argparse.Namespace) -> int:
    _environment(args)
    from flows.console import CONSOLE
    from tasks.config import ConfigError

    CONSOLE.enabled = True
    try:
        request = _request(args)
    except ConfigError as exc:
        return _usage_failure(str(exc), args.json)
    from flows.train_flow import train_flow
    from flows.warmup import start_warmup

    start_warmup()
    try:
        result = train_flow(request)
    except ConfigError as exc:
        return _usage_failure(str(exc), args.json)
    except Exception as exc:  # the flow recorded the failure in MLflow and Prefect; say what broke
        return _emit({"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, args.json, EXIT_FAILED)
    from flows.summary import render_run

    code = {"completed": EXIT_OK, "data_rejected": EXIT_REJECTED}.get(result["status"], EXIT_FAILED)
    return _emit(result, args.json, code, render_run)


def cmd_validate(args: argparse.Namespace) -> int:
    _environment(args)
    from tasks.config import ConfigError

    try:
        request = _request(args)
    except ConfigError as exc:
        return _usage_failure(str(exc), args.json)
    from flows.summary import render_validation
    from flows.validate_flow import validate_flow

    try:
        result = validate_flow(request)
    except ConfigError as exc:
        return _usage_failure(str(exc), args.json)
    except Exception as exc:
        return _emit({"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, args.json, EXIT_FAILED)
    code = EXIT_OK if result["status"] == "valid" else EXIT_REJECTED
    return _emit(result, args.json, code, render_validation)


def _usage_failure(message: str, as_json: bool) -> int:
    return _emit({"status": "usage_error", "error": message}, as_json, EXIT_USAGE)


def _emit(result: dict[str, Any], as_json: bool, code: int, render: Callable[[dict], str] | None = None) -> int:
    if as_json:
        print(json.dumps(result, default=str))
    elif render is not None and "mlflow_run_id" in result:
        print(render(result))
    else:
        print(f"pmf: {result['status']}: {result.get('error', '')}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
