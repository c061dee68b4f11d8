"""`pmf alerts add | list | remove`: webhooks pmf posts to, as Prefect notification blocks and automations.

They live on a Prefect server (`pmf server start`, or PREFECT_API_URL) and show on its UI's
Automations and Blocks pages; without a server, exit 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from flows.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, emit, help_epilog, json_option

DESCRIPTION = """\
Post a JSON object to a webhook when something needs a person: a pmf flow run
failed or crashed (failure), a batch was rejected by validation
(data_rejected), `pmf monitor` found drift (drift), or a model's production
alias moved (promotion). The body: {source, kind, model, message, occurred,
links, ...}. Each alert is a Prefect notification block (the URL kept as a
secret) and one automation per kind, visible in the Prefect UI."""


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    parser = commands.add_parser(
        "alerts",
        help="webhook alerts on failure, rejected data, drift, promotion",
        description=DESCRIPTION,
        epilog=help_epilog(
            ["PMF_HOME", "PREFECT_API_URL"],
            {EXIT_OK: "", EXIT_FAILED: "", EXIT_USAGE: "bad URL or kind, unknown alert ID, no server running"},
            [
                "pmf alerts add --webhook https://hooks.example.com/pmf",
                "pmf alerts add --webhook https://hooks.example.com/pmf --on failure,drift",
                "pmf alerts list",
                "pmf alerts remove 3f9a0c1e",
            ],
        ),
    )
    actions = parser.add_subparsers(
        dest="alerts_action", required=True, metavar="ACTION", title="actions", help="add, list or remove (one is required)"
    )
    add = actions.add_parser("add", help="alert a webhook", description="Alert a webhook on some or all kinds.")
    add.add_argument("--webhook", required=True, metavar="URL", help="http(s) URL the alert is POSTed to (required)")
    add.add_argument("--on", metavar="KINDS", help="comma-separated: failure,data_rejected,drift,promotion (default: all four)")
    json_option(add)
    listing = actions.add_parser("list", help="every alert: ID, URL (secret parts masked), kinds")
    json_option(listing)
    remove = actions.add_parser("remove", help="remove an alert (its block and automations)")
    remove.add_argument("id", metavar="ID", help="the alert's ID (see `pmf alerts list`)")
    json_option(remove)
    return {"alerts": cmd_alerts}


def cmd_alerts(args: argparse.Namespace) -> int:
    from flows.cli.common import prepare_environment
    from flows.cli.schedule import server_problem

    prepare_environment(args)
    problem = usage_problem(args) or server_problem()
    if problem:
        return emit({"status": "usage_error", "error": problem}, args.json, EXIT_USAGE)
    from flows import alerts

    if args.alerts_action == "add":
        result = {"status": "added", **alerts.add_alert(args.webhook, alerts.parse_kinds(args.on))}
        return emit(result, args.json, EXIT_OK, lambda r: f"alert {r['id']}: {r['url']} on {','.join(r['kinds'])}")
    if args.alerts_action == "list":
        return emit({"status": "ok", "alerts": alerts.list_alerts()}, args.json, EXIT_OK, render_list)
    removed = alerts.remove_alert(args.id)
    if removed is None:
        return emit({"status": "usage_error", "error": f"no alert {args.id!r} (see `pmf alerts list`)"}, args.json, EXIT_USAGE)
    return emit({"status": "removed", **removed}, args.json, EXIT_OK, lambda r: f"alert {r['id']}: removed")


def usage_problem(args: argparse.Namespace) -> str | None:
    from flows import alerts

    if args.alerts_action != "add":
        return None
    for flag, check, value in (("--webhook", alerts.check_webhook, args.webhook), ("--on", alerts.parse_kinds, args.on)):
        try:
            check(value)
        except ValueError as exc:
            return f"{flag}: {exc}"
    return None


def render_list(result: dict[str, Any]) -> str:
    if not result["alerts"]:
        return "no alerts (pmf alerts add --webhook URL)"
    from flows.console import fit

    lines = ["id        kinds / webhook"]
    for alert in result["alerts"]:
        lines += [f"{alert['id']:<9} {','.join(alert['kinds'])}", f"{'':<9} {alert['url']}"]
    return "\n".join(fit(lines))
