"""`pmf status [NAME]`: is the server up, what is scheduled, how the last runs went, what each alias serves,
the last drift verdict and how long runs take, in 80 columns (or one JSON object).

Exit codes: 0 the report was made (a Prefect that does not answer is a line in it); 1 the registry could not
be read; 2 an unknown NAME. Collecting: flows/status.py; summarising: tasks/status/.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from flows.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, emit, help_epilog, json_option

SHOWN_RUNS = 10  # a screenful; `--json` lists more
MIN_CUT_WIDTH = 12  # a name cut to fit a table keeps at least this much
VERDICTS = {"drift": "drift", "no_drift": "no drift", "not_enough_data": "not enough data"}


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    status = commands.add_parser(
        "status",
        help="server and runner, schedules, last runs, what each alias serves, drift",
        description="How the pipelines are doing: whether the local server and its runner are up,\n"
        "every schedule with its next run, the last runs (trigger, duration, outcome),\n"
        "the version behind each alias with its primary metric, the last drift check\n"
        "and how long runs take. Without the server, runs are read from the\n"
        "workspace's Prefect database (schedules need `pmf server start`).",
        epilog=help_epilog(
            ["PMF_HOME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"],
            {
                EXIT_OK: "the report was made (a Prefect server that does not answer is a line in it)",
                EXIT_FAILED: "the registry could not be read (the line says why)",
                EXIT_USAGE: "no model or dataset of that NAME",
            },
            ["pmf status", "pmf status penguins", "pmf status --json"],
        ),
    )
    status.add_argument("name", nargs="?", help="one model (default: all)")
    json_option(status)
    return {"status": run_status}


def run_status(args: argparse.Namespace) -> int:
    from flows.cli.models import registry_command

    # The user's own PREFECT_API_URL (a team server), read before pmf points it at its local server.
    args.user_prefect_api_url = os.environ.get("PREFECT_API_URL") or None
    return registry_command(cmd_status)(args)


def cmd_status(args: argparse.Namespace) -> int:
    from flows.status import collect_status, known_name

    now = datetime.now(UTC)
    if args.name and not known_name(args.name):
        problem = f"no model or dataset named {args.name!r} in this workspace (see `pmf models`)"
        return emit({"status": "usage_error", "error": problem}, args.json, EXIT_USAGE, str)
    result = collect_status(args.name, args.user_prefect_api_url, now)
    return emit(result, args.json, EXIT_OK, lambda r: render_status(r, now))


# ---- 80 columns ---------------------------------------------------------------------------------


def render_status(result: Mapping[str, Any], now: datetime) -> str:
    """The report as terminal text: server, problems, schedules, last runs, models, drift, durations."""
    from flows.console import fit

    sections = [
        server_lines(result["server"]) + [f"! {problem}" for problem in result["problems"]],
        schedule_lines(result["schedules"], result["server"], now),
        run_lines(result["runs"], now),
        model_lines(result["models"]),
        drift_lines(result["drift"], now),
        trend_lines(result["trends"]),
    ]
    return "\n".join(fit(line for section in sections if section for line in [*section, ""])).rstrip("\n")


def server_lines(server: Mapping[str, Any]) -> list[str]:
    runner = "runner up" if server["runner_up"] else "runner down"
    if server["mode"] == "embedded":
        return [
            "server    not running: `pmf server start` runs schedules and drift retrains",
            "          (runs below: the workspace's Prefect database)",
        ]
    where = "local" if server["mode"] == "local" else "PREFECT_API_URL"
    lines = [f"server    {'up' if server['up'] else 'down'} ({where}) · {runner if server['up'] else 'runner unknown'}"]
    lines += [
        f"          {label} {url}"
        for label, url in (("Prefect", server["prefect_url"]), ("MLflow ", server["mlflow_url"]))
        if url
    ]
    return lines


def schedule_lines(schedules: list[Mapping[str, Any]], server: Mapping[str, Any], now: datetime) -> list[str]:
    if not schedules:
        needs = "" if server["up"] else ": they need the server (`pmf server start`)"
        return [f"schedules none{needs}" if needs else "schedules none (`pmf schedule NAME --cron EXPR` adds one)"]
    rows = [
        [s["model"], s["kind"], s["schedule"], "paused" if s["paused"] else _minute(s["next_run"]), _relative(s["next_run"], now)]
        for s in schedules
    ]
    return ["schedules (next run, UTC)", *table(["model", "kind", "schedule", "next run", ""], rows, shrink=(0, 2))]


def run_lines(runs: list[Mapping[str, Any]], now: datetime) -> list[str]:
    from flows.console import seconds

    if not runs:
        return ["runs      none yet (`pmf run` makes one)"]
    rows = [
        [
            _minute(run["started"], year=False),
            run["flow"].removeprefix("pmf-"),
            run["model"] or "-",
            run["trigger"],
            "-" if run["duration_s"] is None else seconds(run["duration_s"]),
            outcome_text(run),
        ]
        for run in runs[:SHOWN_RUNS]
    ]
    shown = f"last {min(len(runs), SHOWN_RUNS)} runs" if len(runs) > 1 else "last run"
    return [
        f"{shown} (newest first, UTC)",
        *table(["started", "flow", "model", "trigger", "took", "outcome"], rows, right=frozenset({4}), shrink=(2,)),
    ]


def outcome_text(run: Mapping[str, Any]) -> str:
    """The outcome in words (`not promoted`); the state where it says more (`failed (crashed)`, `scheduled`)."""
    from tasks.status.runs import ENDED

    if run["outcome"] == "running" and run["state"] not in ENDED:
        return run["state"]
    words = str(run["outcome"]).replace("_", " ")
    return f"{words} ({run['state']})" if run["state"] in ("crashed", "cancelled") and run["state"] != run["outcome"] else words


def model_lines(models: list[Mapping[str, Any]]) -> list[str]:
    from flows.console import metric

    if not models:
        return ["models    none registered yet"]
    lines = ["models (what each alias points to)"]
    for model in models:
        lines.append(f"  {model['name']}" + ("" if model["aliases"] else "  (no aliases)"))
        rows = [
            [
                f"@{alias}",
                f"v{entry['version']}",
                f"{entry['primary_metric']} {metric(entry['value'])}" if entry["primary_metric"] else "-",
                f"registered {_age(entry['age_s'])} ago" if entry["age_s"] is not None else "",
            ]
            for alias, entry in model["aliases"].items()
        ]
        lines += table(None, rows, indent=4)
    return lines


def drift_lines(drift: list[Mapping[str, Any]], now: datetime) -> list[str]:
    if not drift:
        return []
    lines = ["drift (last check)"]
    for check in drift:
        version = f" v{check['version']}" if check.get("version") else ""
        verdict = VERDICTS.get(str(check.get("verdict")), "drift" if check["drifted"] else "no drift")
        share = f"  {check['drift_share']:.0%} of features" if isinstance(check.get("drift_share"), (int, float)) else ""
        when = f"{_minute(check['checked_at'])} ({_relative(check['checked_at'], now)})"
        lines.append(f"  {check['model']}{version}  {verdict}  {when}{share}")
        if check["top_features"]:
            lines.append(f"    most drifted: {', '.join(check['top_features'])}")
    return lines


def trend_lines(trends: list[Mapping[str, Any]]) -> list[str]:
    from flows.console import seconds

    if not trends:
        return []
    rows = [
        [
            t["flow"].removeprefix("pmf-"),
            t["model"] or "-",
            f"{t['runs']} run{'s' if t['runs'] != 1 else ''}",
            f"median {seconds(t['median_s'])}",
            f"last {seconds(t['last_s'])}",
            "" if t["change"] is None else f"{t['change']:+.0%} vs before",
        ]
        for t in trends
    ]
    return ["durations (completed runs)", *table(None, rows, shrink=(1,))]


def table(
    header: list[str] | None,
    rows: list[list[str]],
    indent: int = 2,
    right: frozenset[int] = frozenset(),
    shrink: tuple[int, ...] = (),
) -> list[str]:
    """Rows as columns two spaces apart, each as wide as its widest cell (columns in `right` right-aligned;
    the last one not padded). When that is wider than 80 columns, the columns in `shrink` (names, schedules)
    give up the difference, widest first, their longer cells cut with `…` (`--json` has them whole)."""
    from flows.console import WIDTH

    everything = [header, *rows] if header else rows
    if not everything:
        return []
    widths = [max(len(str(cells[i])) for cells in everything) for i in range(len(everything[0]))]
    excess = indent + sum(widths) + 2 * (len(widths) - 1) - WIDTH
    while excess > 0 and (cuttable := [i for i in shrink if widths[i] > MIN_CUT_WIDTH]):
        widest = max(cuttable, key=lambda i: widths[i])
        cut = min(excess, widths[widest] - MIN_CUT_WIDTH)
        widths[widest] -= cut
        excess -= cut
    out = []
    for cells in everything:
        texts = [_cut(str(cell), width) for cell, width in zip(cells, widths, strict=True)]
        padded = [
            t.rjust(w) if i in right else t.ljust(w) if i < len(texts) - 1 else t
            for i, (t, w) in enumerate(zip(texts, widths, strict=True))
        ]
        out.append((" " * indent + "  ".join(padded)).rstrip())
    return out


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---- times for people ---------------------------------------------------------------------------


def _parse(iso_time: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(iso_time) if iso_time else None
    except ValueError:
        return None


def _minute(iso_time: str | None, year: bool = True) -> str:
    """`2026-11-29 14:35` (UTC), `11-29 14:35` without the year; `-` for none."""
    moment = _parse(iso_time)
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M" if year else "%m-%d %H:%M")


def _relative(iso_time: str | None, now: datetime) -> str:
    """`in 12m`, `3h ago`, `now`; empty for none."""
    moment = _parse(iso_time)
    if moment is None:
        return ""
    delta = (moment - now).total_seconds()
    if abs(delta) < 60:
        return "now"
    return f"in {_age(delta)}" if delta > 0 else f"{_age(-delta)} ago"


def _age(seconds: float) -> str:
    """A rough span in its largest unit: `45s`, `12m`, `5h`, `3d`."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
