"""`pmf retrain`: train a named dataset on its new batches, warm-started from production, through the same gates."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
    dask_option,
    emit,
    help_epilog,
    json_option,
    usage_failure,
)

DESCRIPTION = """\
Retrain NAME on the batches it was not trained on yet (by content hash): the
files in its incoming folder, or the one --data file. Each is validated
against the name's suite; a rejected one is recorded as rejected (not tried
again until its content changes) and the others go on. They are combined with
the data trained on before per the config's `retrain.window` (all, or the
newest `retrain.size` rows or batches) and trained, starting from the
production version's weights when its inputs and network still fit (else from
scratch, and the summary says why), then gated, compressed, registered and
promoted as `pmf run` does. Runs in this process; no server needed."""


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    retrain = commands.add_parser(
        "retrain",
        help="train NAME on its new batches, warm-started from production",
        description=DESCRIPTION,
        epilog=help_epilog(
            ["PMF_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PMF_DASK_ADDRESS"],
            {
                EXIT_OK: "the retrain completed, promoted or not, or there was no new data",
                EXIT_FAILED: "",
                EXIT_USAGE: "",
                EXIT_REJECTED: "every new batch was rejected by validation",
            },
            [
                "pmf retrain penguins                     # $PMF_HOME/incoming/penguins/",
                "pmf retrain penguins --incoming data/incoming/penguins",
                "pmf retrain penguins --data new.csv --json",
            ],
        ),
    )
    retrain.add_argument("name", metavar="NAME", help="the dataset and registered model name (trained by `pmf run` first)")
    source = retrain.add_mutually_exclusive_group()
    source.add_argument(
        "--data",
        type=Path,
        metavar="PATH",
        help="one batch file, CSV or Parquet (default: the batch files in the incoming folder)",
    )
    source.add_argument(
        "--incoming", type=Path, metavar="DIR", help="the folder new batches arrive in (default: $PMF_HOME/incoming/NAME/)"
    )
    dask_option(retrain)
    json_option(retrain)
    return {"retrain": cmd_retrain}


def cmd_retrain(args: argparse.Namespace) -> int:
    from flows.cli.run import flow_result, start_command
    from flows.console import CONSOLE
    from tasks.config import ConfigError, check_name
    from tasks.retraining.request import incoming_folder

    CONSOLE.enabled = True
    try:
        check_name(args.name, "NAME")
        _check_paths(args)
    except ConfigError as exc:
        return usage_failure(str(exc), args.json)
    start_command(args, args.name, args.data or args.incoming or incoming_folder(args.name))
    from flows.retrain_flow import retrain_flow

    try:
        result = flow_result(
            retrain_flow(
                args.name,
                data=str(args.data.resolve()) if args.data else None,
                incoming=str(args.incoming.resolve()) if args.incoming else None,
                return_state=True,
            )
        )
    except Exception as exc:  # noqa: BLE001  (any crash of the flow: one line, exit 1; the flow recorded it)
        return emit({"status": "failed", "error": f"{type(exc).__name__}: {exc}"}, args.json, EXIT_FAILED)
    if result["status"] == "usage_error":
        return usage_failure(result["error"], args.json)
    code = {"completed": EXIT_OK, "no_new_data": EXIT_OK, "data_rejected": EXIT_REJECTED}.get(result["status"], EXIT_FAILED)
    return emit(result, args.json, code, render_retrain)


def _check_paths(args: argparse.Namespace) -> None:
    """The paths given exist, before anything starts (exit 2 with the flag's name)."""
    from tasks.config import ConfigError

    if args.data is not None and not args.data.is_file():
        raise ConfigError(f"--data {args.data}: no such file (expected a CSV or Parquet batch)")
    if args.incoming is not None and not args.incoming.is_dir():
        raise ConfigError(f"--incoming {args.incoming}: no such folder (expected the folder new batches arrive in)")


def render_retrain(result: dict[str, Any]) -> str:
    """The summary of `pmf retrain` in 80 columns: what started it, the batches (new, rejected with what
    failed, seen before), the window and the warm start; then `pmf run`'s summary of the training."""
    from flows.console import fit, wrap
    from flows.summary import link_lines, render_run

    lines = [f"pmf retrain · {result['registered_model']} · {result['status']}", ""]
    lines += wrap(f"trigger  {result.get('trigger', 'manual')}{_drift_words(result.get('drift'))}", 0, 9)
    lines += batch_lines(result.get("batches") or {})
    if result.get("warm_start_reason"):
        lines += wrap(
            f"training {'warm start' if result.get('warm_start') else 'from scratch'}: {result['warm_start_reason']}", 0, 9
        )
    if result["status"] == "completed":
        lines += render_run(result).splitlines()[1:]  # pmf run's summary without its title line
    else:
        lines += ["", *link_lines(result)]
    return "\n".join(fit(lines))


def batch_lines(batches: dict[str, Any]) -> list[str]:
    """`batches  from DIR`, then a line per batch: ✓ new (rows), ✗ rejected (each failed expectation under
    it), · seen before; then the window."""
    from flows.console import path_lines, wrap
    from flows.summary import failure_lines

    if not batches:
        return []
    lines = ["batches  from", *path_lines(batches.get("source", ""), 2)]
    lines += [f"  ✓ {b['file']}  {b['rows']:,} rows, new" for b in batches.get("new", [])]
    for rejected in batches.get("rejected", []):
        lines.append(f"  ✗ {rejected['file']}  rejected, set aside (not tried again unless it changes)")
        lines += [f"  {line}" for e in rejected["errors"] for line in failure_lines(e)]
    lines += [f"  · {b['file']}  {b.get('seen', 'trained')} before" for b in batches.get("skipped", [])]
    if not (batches.get("new") or batches.get("rejected")):
        lines.append("  no new batch: nothing to train on")
    window = batches.get("window")
    if window:
        older = f"{window['older_batches']} older batch(es), {window['older_rows']:,} rows"
        lines += wrap(f"window   {window['description']}: {older}; {window['rows']:,} rows in all", 0, 9)
    return lines


def _drift_words(drift: dict[str, Any] | None) -> str:
    if not drift:
        return ""
    top = ", ".join(str(c) for c in (drift.get("top_features") or [])[:3])
    return f" (drift_share {drift.get('drift_share')}{f'; {top}' if top else ''})"
