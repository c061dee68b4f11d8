"""`pmf run` and `pmf validate`: the main flow, or validation only, on one batch of a named dataset."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from flows.cli.common import EXIT_FAILED, EXIT_OK, EXIT_REJECTED, emit, json_option, prepare_environment, usage_failure

BUNDLED_DATA = Path(__file__).resolve().parents[2] / "data"
DEFAULT_CONFIG = BUNDLED_DATA / "penguins.yaml"


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    data_options(commands.add_parser("run", help="the main flow (no arguments: the bundled penguins data)"))
    data_options(commands.add_parser("validate", help="validate a batch against its dataset's suite, nothing else"))
    return {"run": cmd_run, "validate": cmd_validate}


def data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, help="CSV or Parquet file (default: the config's data.path, else the bundled penguins)")
    parser.add_argument("--target", help="target column (required the first time a dataset name is seen)")
    parser.add_argument("--name", help="dataset and registered model name (default: config name, else the file's stem)")
    parser.add_argument("--task", choices=["classification", "regression"], help="default: inferred from the target")
    parser.add_argument("--config", type=Path, help="YAML config (see data/*.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    parser.add_argument("--update-suite", action="store_true", help="re-infer this name's expectation suite from this batch")
    json_option(parser)


def _request(args: argparse.Namespace) -> Any:
    """Resolve config, data path, name and target from the flags; raises ConfigError on bad usage."""
    from tasks.config import ConfigError, RunRequest, load_config

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
    prepare_environment(args)
    from flows.console import CONSOLE
    from tasks.config import ConfigError

    CONSOLE.enabled = True
    try:
        request = _request(args)
    except ConfigError as exc:
        return usage_failure(str(exc), args.json)
    from flows.train_flow import train_flow
    from flows.warmup import start_warmup

    start_warmup()
    try:
        result = train_flow(request)
    except ConfigError as exc:
        return usage_failure(str(exc), args.json)
    except Exception as exc:  # the flow recorded the failure in MLflow and Prefect; say what broke
        return emit({"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, args.json, EXIT_FAILED)
    from flows.summary import render_run

    code = {"completed": EXIT_OK, "data_rejected": EXIT_REJECTED}.get(result["status"], EXIT_FAILED)
    return emit(result, args.json, code, render_run)


def cmd_validate(args: argparse.Namespace) -> int:
    prepare_environment(args)
    from tasks.config import ConfigError

    try:
        request = _request(args)
    except ConfigError as exc:
        return usage_failure(str(exc), args.json)
    from flows.summary import render_validation
    from flows.validate_flow import validate_flow

    try:
        result = validate_flow(request)
    except ConfigError as exc:
        return usage_failure(str(exc), args.json)
    except Exception as exc:
        return emit({"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, args.json, EXIT_FAILED)
    code = EXIT_OK if result["status"] == "valid" else EXIT_REJECTED
    return emit(result, args.json, code, render_validation)
