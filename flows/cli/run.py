"""`pmf run` and `pmf validate`: the main flow, or validation only, on one batch of a named dataset."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from flows.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
    dask_option,
    emit,
    help_epilog,
    json_option,
    prepare_environment,
    usage_failure,
)

BUNDLED_DATA = Path(__file__).resolve().parents[2] / "data"
DEFAULT_CONFIG = BUNDLED_DATA / "penguins.yaml"


RUN_DESCRIPTION = """\
The main flow on one batch of a named dataset: load, validate (against the
name's expectation suite, inferred from its first batch), preprocess, train,
evaluate and gate, compress, register and promote. One Prefect flow run, one
MLflow parent run with a child run per stage. With no arguments: the bundled
penguins data. Progress goes to stderr, the summary (or --json) to stdout."""

VALIDATE_DESCRIPTION = """\
Validate one batch against its dataset's expectation suite and nothing else:
the same suite, report and exit codes as `pmf run`, nothing trained or
registered. A name seen for the first time gets its suite inferred from it."""


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    environment = ["PMF_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PMF_MLFLOW_UI_URL"]
    run = commands.add_parser(
        "run",
        help="the main flow (no arguments: the bundled penguins data)",
        description=RUN_DESCRIPTION,
        epilog=help_epilog(
            [*environment, "PMF_DASK_ADDRESS"],
            {
                EXIT_OK: "the flow completed, promoted or not (the summary says why not)",
                EXIT_FAILED: "",
                EXIT_USAGE: "",
                EXIT_REJECTED: "",
            },
            [
                "pmf run",
                "pmf run --data sales.csv --target churned      # first batch of `sales`",
                "pmf run --data sales_2026_12.csv --name sales  # a later batch",
                "pmf run --config data/diabetes.yaml --set train.epochs=5 --json",
                "pmf run --data 'postgresql://me@db/shop?table=sales' --target churned",
                "pmf run --tune --set tune.trials=8   # search hyper-parameters first",
            ],
        ),
    )
    data_options(run)
    dask_option(run)
    run.add_argument(
        "--tune",
        action="store_true",
        help="search hyper-parameters before training (the config's tune: section; same as --set tune.enabled=true)",
    )
    validate = commands.add_parser(
        "validate",
        help="validate a batch against its dataset's suite, nothing else",
        description=VALIDATE_DESCRIPTION,
        epilog=help_epilog(
            environment,
            {EXIT_OK: "the batch passed every expectation", EXIT_FAILED: "", EXIT_USAGE: "", EXIT_REJECTED: ""},
            [
                "pmf validate --data data/batches/penguins_new.csv --name penguins",
                "pmf validate --data 'postgresql://me@db/shop?table=sales_2026_12' --name sales",
            ],
        ),
    )
    data_options(validate)
    return {"run": cmd_run, "validate": cmd_validate}


def data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="PATH|URL",
        help="CSV or Parquet file, or a PostgreSQL table or query: postgresql+psycopg://USER@HOST:PORT/DB"
        "?table=[SCHEMA.]NAME or ?query=SELECT... URL-encoded; validated inside the database "
        "(default: the config's data.path, else the bundled penguins)",
    )
    parser.add_argument(
        "--target",
        metavar="COLUMN",
        help="target column (default: the config's data.target; required the first time a name is seen)",
    )
    parser.add_argument(
        "--name",
        help="dataset and registered model name (default: the config's name, else the data file's stem or the "
        "table's name; a query needs one)",
    )
    parser.add_argument("--task", choices=["classification", "regression"], help="(default: inferred from the target)")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML config, see data/*.yaml (default: the config recorded with "
        "the name, else built-in defaults; no --data: the penguins one)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value for this run, repeatable, e.g. --set train.epochs=5 (default: none)",
    )
    parser.add_argument(
        "--update-suite",
        action="store_true",
        help="accept this batch as the name's new reference: infer its expectation suite again from it",
    )
    parser.add_argument(
        "--update-config",
        action="store_true",
        help="record this run's config (--config/--set) as the name's config for later batches",
    )
    json_option(parser)


def _request(args: argparse.Namespace, before_store: Callable[[str, Path], None] | None = None) -> Any:
    """Resolve the name, data, config and target from the flags; raises ConfigError on bad usage.

    The name is checked before anything else. Its config, in order: `--config FILE` (without
    `--data`, the bundled penguins config); else the config recorded with the name by its first run;
    else the defaults. `--set` and `--task` apply on top, for this run only unless `--update-config`.
    `before_store(name, data)` is called once both are known, before the tracking store is first read.
    """
    from tasks.config import ConfigError, RunRequest, load_config

    config_file = args.config or (DEFAULT_CONFIG if args.data is None else None)
    overrides = [
        *args.overrides,
        *([f"data.task={args.task}"] if args.task else []),
        *(["tune.enabled=true"] if getattr(args, "tune", False) else []),
    ]
    file_cfg = load_config(config_file, overrides) if config_file is not None else None
    # A recorded config never names the data: the batch is --data, else the config file's data.path.
    data = _data(args.data or (file_cfg.data.path if file_cfg is not None and file_cfg.data.path else None))
    if data is None:
        raise ConfigError("no data: pass --data PATH (or a PostgreSQL URL) or a --config with data.path")
    name = _name(args, file_cfg, overrides, data)
    _check_exists(data)
    if before_store is not None:
        before_store(name, data)
    recorded = _recorded_config(name)
    if file_cfg is not None and config_file is not None:  # --config, or the bundled example's
        cfg = file_cfg
        source = f"--config {config_file}" if args.config else f"bundled {config_file.relative_to(BUNDLED_DATA.parent)}"
    elif recorded is not None:
        cfg = load_config(
            None, overrides, base=recorded.document, origin=f"the config recorded with {name!r} (v{recorded.version})"
        )
        source = f"recorded v{recorded.version}"
    else:
        cfg, source = load_config(None, overrides), "defaults"
    from tasks.data.validate import check_declared_rules  # declared GX rules are config: checked before any data is read

    check_declared_rules(cfg.validation)
    record: Literal["first", "update"] | None = "update" if args.update_config else ("first" if recorded is None else None)
    return RunRequest(
        data=data.resolve() if isinstance(data, Path) else data,
        name=name,
        cfg=cfg,
        target=args.target,
        update_suite=args.update_suite,
        config_source=source,
        overrides=tuple(overrides),
        record_config=record,
    )


def _data(given: str | None) -> Any:
    """The batch to read: a file Path, or a `SqlSource` for a database URL (ConfigError naming the URL, its
    password masked, when it is not one pmf reads). Nothing is imported for a file."""
    if given is None:
        return None
    from tasks.data.sql_source import looks_like_url, parse_sql_source

    return parse_sql_source(given) if looks_like_url(given) else Path(given)


def _check_exists(data: Any) -> None:
    """A missing file, or a table (query, database, login) PostgreSQL does not have, is a usage error;
    a database server that does not answer raises SqlSourceUnreachable (exit 1, like any server down)."""
    from tasks.config import ConfigError

    if not isinstance(data, Path):
        from tasks.data.sql_source import check_sql_source

        check_sql_source(data)
    elif not data.exists():
        raise ConfigError(f"data file {data} does not exist")


def _name(args: argparse.Namespace, file_cfg: Any, overrides: list[str], data: Any) -> str:
    """--name, else the config's `name` (file or --set), else the data file's stem or the table's name; all
    on one allow-list. A query has no name of its own: it needs one of the first two.

    A stem that fails it is not cleaned up into some other name: the user is asked for --name.
    """
    from tasks.config import ConfigError, apply_overrides, check_name

    if args.name is not None:
        return check_name(args.name, "--name")
    configured = file_cfg.name if file_cfg is not None else apply_overrides({}, overrides).get("name")
    if configured is not None:  # a config file's name was checked when the file was validated
        return check_name(str(configured), "--set name")
    if not isinstance(data, Path) and data.table is None:
        raise ConfigError(f"--data {data}: a query has no name of its own: pass --name NAME (or set name: in the config)")
    stem, origin = (
        (data.stem, f"the data file {data.name!r}") if isinstance(data, Path) else (data.table, f"the table name {data.table!r}")
    )
    try:
        return check_name(stem, origin)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; pass --name NAME") from None


def _recorded_config(name: str) -> Any:
    """The config recorded with the name in the tracking store (None if it has none): MLflow is imported here."""
    from tasks.registry.datasets import recorded_config

    return recorded_config(name)


def start_command(args: argparse.Namespace, name: str, data: Any) -> None:
    """Say what runs within a second of the command starting, before the seconds of imports (Prefect,
    MLflow, GX, TensorFlow), the MLflow store's first use and Prefect's server start; then prepare the
    workspace (which imports Prefect)."""
    from flows.console import CONSOLE
    from tasks.workspace import check_workspace, configure_environment

    CONSOLE.line(f"pmf {args.command} · {name} · {data}")
    # A read-only or full workspace is one line now, before anything is promised or imported.
    check_workspace(configure_environment(verbose=bool(getattr(args, "verbose", False))))
    CONSOLE.line("  starting MLflow, Great Expectations and Prefect …")
    prepare_environment(args)


def cmd_run(args: argparse.Namespace) -> int:
    from flows.console import CONSOLE
    from tasks.config import ConfigError

    CONSOLE.enabled = True
    try:
        request = _request(args, before_store=functools.partial(start_command, args))
    except ConfigError as exc:
        return usage_failure(str(exc), args.json)
    from flows.train_flow import train_flow
    from flows.warmup import start_warmup

    start_warmup()
    try:
        result = flow_result(train_flow(request, return_state=True))
    except ConfigError as exc:
        return usage_failure(str(exc), args.json)
    except Exception as exc:  # noqa: BLE001  (any crash of the flow: one line, exit 1; the flow recorded it)
        return emit({"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, args.json, EXIT_FAILED)
    from flows.summary import render_run

    if result["status"] == "usage_error":  # a config problem found once the data was read
        return usage_failure(result["error"], args.json)
    code = {"completed": EXIT_OK, "data_rejected": EXIT_REJECTED}.get(result["status"], EXIT_FAILED)
    return emit(result, args.json, code, functools.partial(render_run, data=_shown(args, request)))


def cmd_validate(args: argparse.Namespace) -> int:
    from tasks.config import ConfigError

    try:
        request = _request(args, before_store=functools.partial(start_command, args))
    except ConfigError as exc:
        return usage_failure(str(exc), args.json)
    from flows.summary import render_validation
    from flows.validate_flow import validate_flow

    try:
        result = flow_result(validate_flow(request, return_state=True))
    except ConfigError as exc:
        return usage_failure(str(exc), args.json)
    except Exception as exc:  # noqa: BLE001  (any crash of the flow: one line, exit 1; the flow recorded it)
        return emit({"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, args.json, EXIT_FAILED)
    if result["status"] == "usage_error":
        return usage_failure(result["error"], args.json)
    code = EXIT_OK if result["status"] == "valid" else EXIT_REJECTED
    return emit(result, args.json, code, functools.partial(render_validation, data=_shown(args, request)))


def _shown(args: argparse.Namespace, request: Any) -> str:
    """The data as the summary names it: the path as typed, or the URL with its password masked."""
    return str(args.data) if args.data and isinstance(request.data, Path) else str(request.data)


def flow_result(state: Any) -> dict[str, Any]:
    """The result a flow's final state carries (Completed or Failed alike: a rejection is a Failed state
    holding the result's JSON); raises the exception of a flow that crashed, for the caller to report."""
    value = state.result(raise_on_failure=False)
    if isinstance(value, BaseException):
        raise value
    return value
