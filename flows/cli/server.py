"""`pmf server start | status | stop`: the local server on the workspace (tasks.local_server does the work).

While it is up, every other pmf command records its flow runs there (see tasks.workspace) instead of
starting Prefect's embedded server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, emit, help_epilog, prepare_environment, usage_failure
from flows.console import fit
from tasks.local_server.state import DEFAULT_MLFLOW_PORT, DEFAULT_PREFECT_PORT, ServerState, read_state, remove_state
from tasks.serving.options import port_number

if TYPE_CHECKING:
    from tasks.local_server.launch import Ports, StartFailed

START_COMMAND = "pmf server start"

DESCRIPTION = """\
The local server on the workspace in PMF_HOME, detached from the shell (it
survives it): a Prefect server (SQLite database, scheduler, automations, UI),
an MLflow tracking server on the workspace's store, and the runner, a Prefect
process worker on work pool `pmf-local` that runs scheduled and triggered
retrains. While it is up, every pmf command records its runs there (unless
PREFECT_API_URL or MLFLOW_TRACKING_URI is set) and so skips the embedded
server's start. Logs: PMF_HOME/logs/server-*.log; pids and URLs:
PMF_HOME/server/state.json."""


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    server = commands.add_parser(
        "server",
        help="the local Prefect + MLflow server and runner: start, status, stop",
        description=DESCRIPTION,
        epilog=help_epilog(
            ["PMF_HOME"],
            {EXIT_OK: "done (also: already running, not running)", EXIT_FAILED: "", EXIT_USAGE: "a bad flag, a port in use"},
            [
                "pmf server start",
                "pmf server start --port 4300 --mlflow-port 5050",
                "pmf server status --json",
                "pmf server stop",
            ],
        ),
    )
    actions = server.add_subparsers(
        dest="server_command", required=True, title="commands", metavar="COMMAND", help="start, status or stop"
    )
    start = actions.add_parser(
        "start",
        help="start the three processes; returns once all answer",
        description="Start the Prefect server, the MLflow server and the runner, detached; return\n"
        "once all three answer their health checks, and print both UI URLs.",
        epilog=help_epilog(
            ["PMF_HOME"],
            {
                EXIT_OK: "up (or already running: the URLs are printed)",
                EXIT_FAILED: "a part did not start (the line names it and its log)",
                EXIT_USAGE: "a port in use (nothing was started)",
            },
            ["pmf server start", "pmf server start --port 4300 --mlflow-port 5050"],
        ),
    )
    start.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PREFECT_PORT,
        metavar="N",
        help="the Prefect server's port (default: %(default)s)",
    )
    start.add_argument(
        "--mlflow-port",
        type=port_number,
        default=DEFAULT_MLFLOW_PORT,
        metavar="N",
        help="the MLflow server's port (default: %(default)s)",
    )
    status = actions.add_parser(
        "status",
        help="each process up or down, with pid and URL",
        description="Whether each process is up (its pid alive and, for the servers, answering)\n"
        "and the runner's last heartbeat. Exit 0 whether up or down.",
        epilog=help_epilog(["PMF_HOME"], {EXIT_OK: "up or down (the output says which)"}, ["pmf server status --json"]),
    )
    status.add_argument(
        "--json", action="store_true", help="print one JSON object: {up, runner_up, prefect_url, mlflow_url, processes}"
    )
    actions.add_parser(
        "stop",
        help="stop every process the start started, nothing else",
        description="Stop the runner (and the flow runs it started), the MLflow server and the\n"
        "Prefect server: SIGTERM, then SIGKILL after 15 s. Exit 0 also when not running.",
        epilog=help_epilog(
            ["PMF_HOME"],
            {EXIT_OK: "stopped, or not running", EXIT_FAILED: "a process survived SIGKILL (its pid is printed)"},
            ["pmf server stop"],
        ),
    )
    return {"server": cmd_server}


def cmd_server(args: argparse.Namespace) -> int:
    from tasks.workspace import pmf_home

    args.user_servers = [name for name in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI") if os.environ.get(name)]
    prepare_environment(args)
    home = pmf_home()
    state = read_state(home)
    if state is not None and state.is_stale():
        remove_state(home)
        note(f"the server started {state.started_at} is gone (a crash, kill -9 or reboot): removed its state file")
        state = None
    commands: dict[str, Callable[[Path, ServerState | None, argparse.Namespace], int]] = {
        "start": start,
        "status": status,
        "stop": stop,
    }
    return commands[args.server_command](home, state, args)


def note(text: str) -> None:
    print(f"pmf server: {text}", file=sys.stderr)


# ---- start --------------------------------------------------------------------------------------


def start(home: Path, state: ServerState | None, args: argparse.Namespace) -> int:
    from tasks.local_server.launch import PortInUse, Ports, StartFailed, check_ports

    if state is not None and all(state.up().values()) and len(state.up()) == 3:
        print("\n".join(fit([f"pmf server · already running · {home}", *url_lines(state)])))
        return EXIT_OK
    if state is not None:
        down = ", ".join(name for name, up in state.up().items() if not up)
        note(f"{down} of the server started {state.started_at} is down: stopping the rest to start afresh")
        stop_all(home, state)
    ports = Ports(args.port, args.mlflow_port)
    try:
        check_ports(ports)
    except PortInUse as exc:
        return usage_failure(str(exc), False)
    print(f"pmf server · starting on {home} (first start: ~30 s, migrating the stores)", file=sys.stderr)
    started = launch(home, ports)
    if isinstance(started, StartFailed):
        stop_all(home)
        error = f"{started.part} {started.reason}; everything started was stopped. Its log: {started.log}"
        return emit({"status": "failed", "error": error}, False, EXIT_FAILED)
    logs = [
        f"  logs        {home / 'logs'}/server-*.log",
        "Every pmf command now records its runs here. Stop it: pmf server stop",
    ]
    print("\n".join(fit([f"pmf server · up · {home}", *url_lines(started), *logs])))
    if args.user_servers:
        note(f"{' and '.join(args.user_servers)} set in this shell: pmf commands here keep using it; unset it to use this server")
    return EXIT_OK


def launch(home: Path, ports: Ports) -> ServerState | StartFailed:
    """The started server, or the part that failed: returned, not raised, so it is said in one line with
    its log (no traceback file of an expected failure). An interruption stops what was started."""
    from tasks.local_server.launch import StartFailed, start_server

    try:
        return start_server(home, ports, before_runner=skip_missed_runs)
    except StartFailed as exc:
        return exc
    except BaseException:  # interrupted (Ctrl-C, SIGTERM, SIGHUP) or a bug: leave nothing half-started
        stop_all(home)
        raise


def url_lines(state: ServerState) -> list[str]:
    return [
        f"  Prefect UI  {state.prefect_ui_url}  (API {state.prefect_api_url})",
        f"  MLflow UI   {state.mlflow_url}",
        f"  runner      work pool {state.work_pool}, pid {state.processes['runner'].pid}",
    ]


def skip_missed_runs(prefect_api_url: str) -> None:
    """Runs the schedules missed while the server was down are skipped before the runner starts, so they
    do not run in a burst (DESIGN: missed runs do not pile up)."""
    os.environ["PREFECT_API_URL"] = prefect_api_url
    try:
        from flows.deployments import skip_missed_runs as skip  # wired by the integrator
    except ImportError:  # the schedules module is not there yet: nothing was scheduled to miss
        return
    try:
        skipped = skip()
    except Exception as exc:  # noqa: BLE001 (the server is up and usable; only the clean-up of old runs failed)
        note(f"could not skip the runs missed while the server was down ({type(exc).__name__}: {exc}); they may all run now")
        return
    if skipped:
        note(f"skipped {skipped} scheduled run(s) missed while the server was down")


def stop_all(home: Path, state: ServerState | None = None) -> list[int]:
    """Stop everything `state` (default: the state file) started and remove the state file; returns the
    pids of the server's processes still running after SIGKILL (none, unless something refused to die)."""
    from tasks.local_server.stop import server_processes, stop_server

    state = state or read_state(home)
    if state is None:
        return []
    stop_server(state)
    left = server_processes(state.server_id)
    if not left:
        remove_state(home)
    return left


# ---- status and stop ------------------------------------------------------------------------------


def status(home: Path, state: ServerState | None, args: argparse.Namespace) -> int:
    from tasks.local_server.health import report

    result = report(state)
    if args.json:
        print(json.dumps(result))
    else:
        print("\n".join(status_lines(home, state, result)))
    return EXIT_OK


def status_lines(home: Path, state: ServerState | None, result: dict[str, Any]) -> list[str]:
    if state is None:
        return [f"pmf server · not running on {home}", f"  start it with: {START_COMMAND}"]
    lines = [f"pmf server · {'up' if result['up'] else 'DOWN'} · since {state.started_at} · {home}"]
    labels = {"prefect": "Prefect", "mlflow": "MLflow", "runner": "runner"}
    for name, process in result["processes"].items():
        where = process["url"] or f"work pool {process.get('work_pool')}"
        if name == "runner" and process.get("heartbeat_age_s") is not None:
            where += f", heartbeat {process['heartbeat_age_s']:.0f}s ago"
        lines.append(f"  {labels[name]:<8} {'up  ' if process['up'] else 'DOWN'}  pid {process['pid']:<7}  {where}")
    if not (result["up"] and result["runner_up"]):
        lines.append(f"  logs: {home / 'logs'}/server-*.log; restart: pmf server stop && {START_COMMAND}")
    return fit(lines)


def stop(home: Path, state: ServerState | None, args: argparse.Namespace) -> int:
    if state is None:
        print(f"pmf server: not running on {home}")
        return EXIT_OK
    pids = {name: process.pid for name, process in state.processes.items()}
    left = stop_all(home, state)
    if left:
        error = f"processes {', '.join(map(str, left))} of the server survived SIGKILL; the state file is kept"
        return emit({"status": "failed", "error": error}, False, EXIT_FAILED)
    print(f"pmf server: stopped ({', '.join(f'{name} pid {pid}' for name, pid in pids.items())})")
    return EXIT_OK
