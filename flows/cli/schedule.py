"""`pmf schedule`: scheduled retraining and drift checks of a model, as Prefect deployments.

`pmf schedule NAME --cron EXPR | --interval DURATION` creates or updates `pmf-retrain/NAME` and the drift
automation that runs it when `pmf monitor` reports drift; `--monitor-every DURATION` adds
`pmf-monitor/NAME`. `--list` shows every schedule; `--pause`, `--resume`, `--delete` act on one name.
Schedules live on a Prefect server (`pmf server start`, or PREFECT_API_URL): without one, exit 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from flows.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, emit, help_epilog, json_option

DESCRIPTION = """\
Retrain NAME on a schedule (cron in a time zone, or every DURATION), check its
prediction log for drift every DURATION (--monitor-every), and retrain it when
that check finds drift (one retrain per burst of drift events). Two retrains
of one name never overlap: a second one waits (one at most). Runs go to the
runner of `pmf server start` (or a team server's `pmf` work pool) and show in
the Prefect UI as deployments `pmf-retrain/NAME` and `pmf-monitor/NAME`.
DURATION is a number and a unit: 30s, 15m, 6h, 1d, 7d."""

NEEDS_SERVER = "needs the server: run `pmf server start`"


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    from flows.cli.models import registry_command

    parser = commands.add_parser(
        "schedule",
        help="scheduled and drift-triggered retraining, scheduled drift checks",
        description=DESCRIPTION,
        epilog=help_epilog(
            ["PMF_HOME", "PREFECT_API_URL", "MLFLOW_TRACKING_URI"],
            {
                EXIT_OK: "",
                EXIT_FAILED: "",
                EXIT_USAGE: "bad flag, cron, duration or time zone; unknown name; no server running",
            },
            [
                "pmf schedule penguins --cron '0 3 * * *' --timezone Europe/Paris",
                "pmf schedule penguins --interval 6h --monitor-every 15m",
                "pmf schedule penguins --monitor-every 1h",
                "pmf schedule --list",
                "pmf schedule penguins --pause",
                "pmf schedule penguins --delete",
            ],
        ),
    )
    parser.add_argument("name", nargs="?", help="registered model name (default: none; all but --list need it)")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--cron", metavar="EXPR", help="retrain on this cron schedule, 5 fields (default: none)")
    when.add_argument("--interval", metavar="DURATION", help="retrain every DURATION: 6h, 1d, 7d (default: none)")
    parser.add_argument("--timezone", metavar="TZ", default="UTC", help="IANA time zone of --cron (default: UTC)")
    parser.add_argument("--incoming", metavar="DIR", help="folder of new batches (default: $PMF_HOME/incoming/NAME)")
    parser.add_argument(
        "--monitor-every", metavar="DURATION", help="check NAME's prediction log for drift every DURATION (default: never)"
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="show every schedule with its next run")
    action.add_argument("--pause", action="store_true", help="pause NAME's schedules and drift retraining")
    action.add_argument("--resume", action="store_true", help="resume what --pause paused")
    action.add_argument("--delete", action="store_true", help="delete NAME's deployments and drift automation")
    json_option(parser)
    return {"schedule": registry_command(cmd_schedule)}


def cmd_schedule(args: argparse.Namespace) -> int:
    if problem := usage_problem(args):
        return emit({"status": "usage_error", "error": problem}, args.json, EXIT_USAGE)
    if problem := server_problem():
        return emit({"status": "usage_error", "error": problem}, args.json, EXIT_USAGE)
    if args.list:
        return list_command(args)
    if args.pause or args.resume or args.delete:  # also for a model deleted since it was scheduled
        return change_command(args)
    from flows.cli.models import check_model

    if problem := check_model(args.name):
        return emit({"status": "usage_error", "error": problem}, args.json, EXIT_USAGE)
    return create_command(args)


def usage_problem(args: argparse.Namespace) -> str | None:
    """The flag that is wrong and what it expects, checked before any server is asked."""
    from flows import deployments

    timing = args.cron is not None or args.interval is not None
    acts = args.pause or args.resume or args.delete
    if args.list:
        return "--list takes no NAME" if args.name else None
    if not args.name:
        return "NAME is required (or --list): pmf schedule NAME --cron EXPR | --interval DURATION"
    if acts and (timing or args.monitor_every):
        return "--pause, --resume and --delete take no --cron, --interval or --monitor-every"
    if not acts and not timing and not args.monitor_every:
        return "give --cron EXPR or --interval DURATION (and/or --monitor-every DURATION), or --pause/--resume/--delete"
    checks: list[tuple[str, Any, Callable[[str], Any]]] = [
        ("--cron", args.cron, deployments.check_cron),
        ("--interval", args.interval, deployments.parse_duration),
        ("--monitor-every", args.monitor_every, deployments.parse_duration),
        ("--timezone", args.timezone, deployments.check_timezone),
    ]
    for flag, value, check in checks:
        try:
            if value is not None:
                check(value)
        except ValueError as exc:
            return f"{flag}: {exc}"
    return None


def server_problem() -> str | None:
    """None when a Prefect server answers: the one PREFECT_API_URL names, else `pmf server start`'s
    (PREFECT_API_URL is then pointed at it); otherwise the line that says how to start one."""
    import urllib.error
    import urllib.request

    from tasks.local_server import running_server

    url = os.environ.get("PREFECT_API_URL")
    if not url:
        state = running_server()
        if state is None:
            return NEEDS_SERVER
        url = os.environ["PREFECT_API_URL"] = state.prefect_api_url
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=5):  # noqa: S310 (the user's own API URL)
            return None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"the Prefect server at {url} does not answer ({reason}): run `pmf server start` or fix PREFECT_API_URL"


def create_command(args: argparse.Namespace) -> int:
    from flows import deployments

    timing = None
    if args.cron or args.interval:
        interval = deployments.parse_duration(args.interval) if args.interval else None
        timing = deployments.Timing(cron=args.cron, interval=interval, timezone=args.timezone)
    incoming = os.path.abspath(args.incoming) if args.incoming else None
    created = []
    if timing is not None or deployments.read_deployment("retrain", args.name) is None:
        # --monitor-every alone still needs the retrain deployment (unscheduled) for drift to start.
        retrain_id = deployments.deploy("retrain", args.name, timing, {"incoming": incoming})
        created.append(deployments.deployment_name("retrain", args.name))
    else:
        retrain_id = _existing_id(args.name)
    if args.monitor_every:
        every = deployments.Timing(interval=deployments.parse_duration(args.monitor_every))
        deployments.deploy("monitor", args.name, every, {})
        created.append(deployments.deployment_name("monitor", args.name))
    deployments.replace_drift_automation(args.name, retrain_id)
    created.append(deployments.drift_automation_name(args.name))
    schedules = [s for s in deployments.list_schedules() if s["model"] == args.name]
    result = {"status": "scheduled", "model": args.name, "created": created, "schedules": schedules}
    return emit(result, args.json, EXIT_OK, render_created)


def _existing_id(name: str) -> Any:
    from flows import deployments

    deployment = deployments.read_deployment("retrain", name)
    assert deployment is not None  # create_command read it a moment ago
    return deployment.id


def change_command(args: argparse.Namespace) -> int:
    from flows import deployments

    if args.delete:
        changed, verb = deployments.delete_schedules(args.name), "deleted"
    else:
        changed, verb = deployments.set_paused(args.name, bool(args.pause)), "paused" if args.pause else "resumed"
    if not changed:
        return emit(
            {"status": "usage_error", "error": f"{args.name} has no schedule (see `pmf schedule --list`)"}, args.json, EXIT_USAGE
        )
    result = {"status": verb, "model": args.name, verb: changed}
    return emit(result, args.json, EXIT_OK, lambda r: f"{args.name}: {verb} " + ", ".join(changed))


def list_command(args: argparse.Namespace) -> int:
    from flows import deployments

    try:
        schedules = deployments.list_schedules()
    except Exception as exc:  # noqa: BLE001 (the server answered /health but not this: one line, exit 1)
        return emit({"status": "failed", "error": f"could not read the schedules: {exc}"}, args.json, EXIT_FAILED)
    return emit({"status": "ok", "schedules": schedules}, args.json, EXIT_OK, render_list)


def render_created(result: dict[str, Any]) -> str:
    from flows.console import fit, wrap

    lines = wrap(f"{result['model']}: created or updated " + ", ".join(result["created"]), 0, 2)
    return "\n".join(fit([*lines, "", *schedule_table(result["schedules"])]))


def render_list(result: dict[str, Any]) -> str:
    if not result["schedules"]:
        return "no schedules (pmf schedule NAME --cron EXPR | --interval DURATION)"
    return "\n".join(schedule_table(result["schedules"]))


def schedule_table(schedules: list[dict[str, Any]]) -> list[str]:
    """`model  kind  schedule  next run (UTC)` in 80 columns; a paused schedule says so instead of a time."""
    lines = [f"{'model':<16} {'kind':<8} {'schedule':<32} next run (UTC)"]
    for row in schedules:
        when = "paused" if row["paused"] else (row["next_run"] or "-")[:16].replace("T", " ")
        lines.append(f"{row['model'][:16]:<16} {row['kind']:<8} {row['schedule'][:32]:<32} {when}")
    return lines
