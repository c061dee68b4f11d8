"""`pmf monitor NAME [--data PATH]`: one drift check of NAME's production version (the `pmf-monitor` flow).

Exit codes: 0 the check completed, drifted or not (the verdict says which); 2 an unknown name, no
@production, a version without a reference profile, a --data file that is missing or lacks an input
column; 3 a batch that cannot be read as a table; 1 anything else.
"""

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
    emit,
    help_epilog,
    json_option,
    prepare_environment,
    usage_failure,
)

DESCRIPTION = """\
Check NAME's production version for drift: the last predictions its server
logged (monitoring.window, default 5,000) or a batch file, against the
reference profile stored with the version at training time. Per feature the
statistic Evidently defaults to (reference <= 1,000 rows: KS and chi-squared
p-values; larger: normalised Wasserstein and Jensen-Shannon distances), PSI,
missing and unknown-category rates; the dataset drifts when half its features
drift or its predictions do. Recorded in MLflow (a run with a plot), Prefect (a
table artifact) and $PMF_HOME/monitoring/NAME.jsonl; a drift emits the event
`pmf.drift.detected`, which starts NAME's retrain where one is scheduled."""


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    monitor = commands.add_parser(
        "monitor",
        help="drift of the served predictions (or a batch) against the reference",
        description=DESCRIPTION,
        epilog=help_epilog(
            ["PMF_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"],
            {
                EXIT_OK: "the check completed, drift or not (the verdict line says which)",
                EXIT_FAILED: "",
                EXIT_USAGE: "unknown name, no @production, no reference profile, bad --data",
                EXIT_REJECTED: "the --data file is not a readable table",
            },
            [
                "pmf monitor penguins",
                "pmf monitor penguins --data data/incoming/penguins/drifted.csv",
                "pmf monitor penguins --json",
            ],
        ),
    )
    monitor.add_argument("name", help="registered model name")
    monitor.add_argument(
        "--data", type=Path, metavar="PATH", help="a CSV or Parquet batch to check (default: the served prediction log)"
    )
    json_option(monitor)
    return {"monitor": cmd_monitor}


def cmd_monitor(args: argparse.Namespace) -> int:
    from tasks.config import ConfigError, check_name

    try:
        check_name(args.name, "NAME")
    except ConfigError as exc:
        return usage_failure(str(exc), args.json)
    if args.data is not None and not args.data.is_file():
        return usage_failure(f"--data {args.data}: no such file (expected a CSV or Parquet batch)", args.json)
    import sys

    print(f"pmf monitor · {args.name} · {args.data or 'prediction log'}", file=sys.stderr, flush=True)
    prepare_environment(args)
    from tasks.monitoring.check import production_version

    try:
        production_version(args.name)  # before a flow run is opened: a typo is one line, no run
    except ConfigError as exc:
        return usage_failure(str(exc), args.json)
    from flows.cli.run import flow_result
    from flows.monitor_flow import monitor_flow

    data = str(args.data.resolve()) if args.data is not None else None
    result = flow_result(monitor_flow(args.name, data, "manual", return_state=True))
    if result.get("status") == "usage_error":
        return usage_failure(result["error"], args.json)
    if result.get("status") == "data_rejected":
        return emit(result, args.json, EXIT_REJECTED)
    if result.get("status") != "completed":
        return emit({**result, "status": "failed"}, args.json, EXIT_FAILED)
    return emit(result, args.json, EXIT_OK, render_check)


def render_check(result: dict[str, Any]) -> str:
    """The check in 80 columns: what was checked, the verdict line, a row per feature (most drifted first)
    with the predictions last, then whether the drift event went out and where the records are."""
    from flows.console import fit, path_lines
    from tasks.monitoring.verdict import verdict_sentence

    where = Path(result["source"]["path"]).name if result["source"]["kind"] == "batch" else "prediction log"
    lines = [
        f"{result['model']} v{result['version']} · {where}: {result['rows']:,} rows vs a reference of "
        f"{result['reference_rows']:,}",
        verdict_sentence(result),
    ]
    if result["features"]:
        lines += ["", _row("column", "statistic", "value", "thresh", "drift", "psi", "missing", "unknown")]
        lines += [_feature_row(f) for f in result["features"]]
        lines.append(_feature_row({"column": "(predictions)", **result["prediction_drift"]}))
    if result["drifted"]:
        lines += ["", f"event pmf.drift.detected {'emitted' if result['event_emitted'] else 'NOT emitted'}"]
    from tasks.monitoring.history import history_path

    lines += ["", "history:", *path_lines(str(history_path(result["model"])), 2)]
    if result.get("links", {}).get("mlflow_run"):
        lines += ["MLflow run:", *path_lines(result["links"]["mlflow_run"], 2)]
    return "\n".join(fit(lines))


def _row(*cells: str) -> str:
    column, statistic, value, threshold, drift, psi, missing, unknown = cells
    return f"  {column[:17]:<17} {statistic:<13} {value:>9} {threshold:>6} {drift:>5} {psi:>7} {missing:>7} {unknown:>7}".rstrip()


def _feature_row(f: dict[str, Any]) -> str:
    def g(value: Any) -> str:
        return "-" if value is None else f"{value:.3g}"

    def rate(value: Any) -> str:
        return "-" if value is None else f"{value:.1%}"

    return _row(
        f["column"],
        f["statistic"] or "-",
        g(f["value"]),
        g(f["threshold"]),
        "yes" if f["drifted"] else "no",
        g(f.get("psi")),
        rate(f.get("missing_rate")),
        rate(f.get("unknown_rate")),
    )
