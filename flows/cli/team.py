"""`pmf team up | status | down`: team mode's servers as local processes (tasks.team does the work).

`up` prints only the `export` lines on stdout (what it says about itself goes to stderr), so
`eval "$(pmf team up --postgres URL)"` points the shell at the team.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, emit, help_epilog, prepare_environment, usage_failure
from flows.console import fit
from tasks.serving.options import port_number
from tasks.team.state import (
    DEFAULT_DASK_PORT,
    DEFAULT_DASK_WORKERS,
    DEFAULT_MLFLOW_PORT,
    DEFAULT_PREFECT_PORT,
    DEFAULT_PREFIX,
    TeamState,
    read_team_state,
    remove_team_state,
)

if TYPE_CHECKING:
    from tasks.team.databases import PostgresServer

DESCRIPTION = f"""\
Team mode on this machine, without Docker: the servers a team runs, started as
local processes on an existing PostgreSQL. `up` creates (if missing) the
databases PREFIX_prefect, PREFIX_mlflow and PREFIX_pmf, then starts a Prefect
server on PostgreSQL, an MLflow server on PostgreSQL with proxied artifacts,
a Prefect process worker on work pool `pmf`, a Dask scheduler and its workers;
once all answer it prints the `export` lines that point pmf at them. Default
ports {DEFAULT_PREFECT_PORT} (Prefect), {DEFAULT_MLFLOW_PORT} (MLflow), {DEFAULT_DASK_PORT} (Dask) stay clear of
`pmf server start`'s 4200 and 5000. Logs: PMF_HOME/logs/team-*.log; state:
PMF_HOME/team/state.json; artifacts: PMF_HOME/team/artifacts."""

EXAMPLES = [
    'eval "$(pmf team up --postgres postgresql://postgres@127.0.0.1:5432/postgres)"',
    "pmf team up --postgres postgresql://pmf:secret@db:5432/postgres --prefix demo",
    "pmf team status --json",
    "pmf team down --drop",
]


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    team = commands.add_parser(
        "team",
        help="team mode's servers (PostgreSQL, Prefect, MLflow, Dask) as local processes: up, status, down",
        description=DESCRIPTION,
        epilog=help_epilog(
            ["PMF_HOME"],
            {
                EXIT_OK: "done (also: already running, not running)",
                EXIT_FAILED: "PostgreSQL did not answer, a part did not start (the line names it and its log)",
                EXIT_USAGE: "a bad flag or PostgreSQL URL, a port in use",
            },
            EXAMPLES,
        ),
    )
    actions = team.add_subparsers(
        dest="team_command", required=True, title="commands", metavar="COMMAND", help="up, status or down"
    )
    add_up(actions)
    status = actions.add_parser(
        "status",
        help="each part up or down, with pid, URL and log",
        description="Whether each part is up: its process alive and answering (Prefect and MLflow\n"
        "health, the worker's heartbeat, the Dask scheduler and its workers). Exit 0 whether up or down.",
        epilog=help_epilog(["PMF_HOME"], {EXIT_OK: "up or down (the output says which)"}, ["pmf team status --json"]),
    )
    status.add_argument("--json", action="store_true", help="print one JSON object: {up, prefix, databases, exports, processes}")
    down = actions.add_parser(
        "down",
        help="stop every process `up` started, nothing else; --drop also drops its databases",
        description="Stop the worker (and the flow runs it started), the Dask workers and scheduler,\n"
        "the MLflow server and the Prefect server: SIGTERM, then SIGKILL after 15 s. Only\n"
        "processes carrying this start's id are touched. Exit 0 also when not running.",
        epilog=help_epilog(
            ["PMF_HOME"],
            {
                EXIT_OK: "stopped (and dropped), or not running",
                EXIT_FAILED: "a process survived SIGKILL, or PostgreSQL refused the drop",
            },
            ["pmf team down", "pmf team down --drop"],
        ),
    )
    down.add_argument(
        "--drop",
        action="store_true",
        help="also drop PREFIX_prefect, PREFIX_mlflow and PREFIX_pmf (their connections are closed first)",
    )
    return {"team": cmd_team}


def add_up(actions: argparse._SubParsersAction) -> None:
    up = actions.add_parser(
        "up",
        help="create the databases, start every part, print the export lines",
        description="Create the databases if missing, start every part detached and return once all\n"
        "answer. Prints the `export` lines on stdout (all else on stderr): paste them, or\n"
        'eval "$(pmf team up ...)". Already running: prints them again.',
        epilog=help_epilog(
            ["PMF_HOME"],
            {
                EXIT_OK: "up (or already running: the exports are printed again)",
                EXIT_FAILED: "PostgreSQL did not answer, or a part did not start (everything started is stopped)",
                EXIT_USAGE: "a malformed --postgres URL or --prefix, a port in use (nothing was started)",
            },
            EXAMPLES[:2],
        ),
    )
    up.add_argument(
        "--postgres",
        required=True,
        metavar="URL",
        help="the PostgreSQL server: postgresql://USER[:PASSWORD]@HOST[:PORT][/DATABASE] (also postgres://, "
        "postgresql+psycopg://); DATABASE (default postgres) is the one connected to while creating the others",
    )
    up.add_argument("--prefix", default=DEFAULT_PREFIX, help="the databases' prefix (default: %(default)s)")
    ports = [
        ("--port", DEFAULT_PREFECT_PORT, "the Prefect server's port"),
        ("--mlflow-port", DEFAULT_MLFLOW_PORT, "the MLflow server's port"),
        ("--dask-port", DEFAULT_DASK_PORT, "the Dask scheduler's port"),
    ]
    for flag, default, text in ports:
        up.add_argument(flag, type=port_number, default=default, metavar="N", help=f"{text} (default: %(default)s)")
    up.add_argument(
        "--dask-workers",
        "--workers",
        type=worker_count,
        default=DEFAULT_DASK_WORKERS,
        metavar="N",
        help="how many Dask workers, one thread each (default: %(default)s)",
    )


def worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of workers from 1 to 64")
    return count


def cmd_team(args: argparse.Namespace) -> int:
    from tasks.workspace import pmf_home

    prepare_environment(args)
    home = pmf_home()
    state = read_team_state(home)
    # A stale file still names the databases `down --drop` drops (one whose drop failed keeps it).
    if state is not None and state.is_stale() and args.team_command != "down":
        remove_team_state(home)
        note(f"team mode started {state.started_at} is gone (a crash, kill -9 or reboot): removed its state file")
        state = None
    commands: dict[str, Callable[[Path, TeamState | None, argparse.Namespace], int]] = {"up": up, "status": status, "down": down}
    return commands[args.team_command](home, state, args)


def note(text: str) -> None:
    print(f"pmf team: {text}", file=sys.stderr)


# ---- up -----------------------------------------------------------------------------------------


def up(home: Path, state: TeamState | None, args: argparse.Namespace) -> int:
    from tasks.team.databases import BadPostgresUrl, check_prefix, parse_postgres_url
    from tasks.team.launch import PortInUse, TeamPorts, check_ports

    try:
        postgres = parse_postgres_url(args.postgres)
        prefix = check_prefix(args.prefix)
    except BadPostgresUrl as exc:
        return usage_failure(str(exc), False)
    if state is not None and all(state.up().values()) and set(state.up()) == set(state.parts):
        return already_running(home, state, postgres, prefix)
    if state is not None:
        down_parts = ", ".join(part for part, alive in state.up().items() if not alive) or "a part"
        note(f"{down_parts} of team mode started {state.started_at} is down: stopping the rest to start afresh")
        stop_all(home, state)
    ports = TeamPorts(args.port, args.mlflow_port, args.dask_port)
    try:
        check_ports(ports)
    except PortInUse as exc:
        return usage_failure(str(exc), False)
    return start(home, postgres, prefix, ports, args.dask_workers)


def already_running(home: Path, state: TeamState, postgres: PostgresServer, prefix: str) -> int:
    from tasks.team.databases import parse_postgres_url

    if (parse_postgres_url(state.postgres_url), state.prefix) != (postgres, prefix):
        running = f"{parse_postgres_url(state.postgres_url).shown()} with prefix {state.prefix}"
        return usage_failure(f"team mode already runs on {home} against {running}: pmf team down first to change it", False)
    print("\n".join(fit([f"pmf team · already running · {home}", *summary_lines(state)])), file=sys.stderr)
    print_exports(state)
    return EXIT_OK


def start(home: Path, postgres: PostgresServer, prefix: str, ports: Any, dask_workers: int) -> int:
    from tasks.team.databases import PostgresUnreachable, create_databases
    from tasks.team.launch import StartFailed

    try:
        created = create_databases(postgres, prefix)
    except PostgresUnreachable as exc:
        return emit({"status": "failed", "error": str(exc)}, False, EXIT_FAILED)
    if created:
        note(f"created database(s) {', '.join(created)} on {postgres.shown()}")
    print(f"pmf team · starting on {home} (first start on fresh databases: ~30-60 s, migrating them)", file=sys.stderr)
    started = launch(home, postgres, prefix, ports, dask_workers)
    if isinstance(started, StartFailed):
        stop_all(home)
        undone = drop_created(postgres, created)
        error = f"{started.part} {started.reason}; everything started was stopped{undone}. Its log: {started.log}"
        return emit({"status": "failed", "error": error}, False, EXIT_FAILED)
    print("\n".join(fit([f"pmf team · up · {home}", *summary_lines(started)])), file=sys.stderr)
    print_exports(started)
    return EXIT_OK


def drop_created(postgres: PostgresServer, created: list[str]) -> str:
    """Drop the databases this failed start created (nothing half-done is left); says so for the error line."""
    from tasks.team.databases import PostgresUnreachable, drop_databases

    if not created:
        return ""
    try:
        return f" and the databases it created dropped ({', '.join(drop_databases(postgres, created))})"
    except PostgresUnreachable as exc:
        return f"; the databases it created are left ({exc})"


def launch(home: Path, postgres: PostgresServer, prefix: str, ports: Any, dask_workers: int) -> TeamState | Any:
    """The started team, or the StartFailed of the part that did not come up (said in one line with its
    log, no traceback). An interruption or a bug stops what was started."""
    from tasks.team.launch import StartFailed, start_team

    try:
        return start_team(home, postgres, prefix, ports, dask_workers)
    except StartFailed as exc:
        return exc
    except BaseException:
        stop_all(home)
        raise


def summary_lines(state: TeamState) -> list[str]:
    workers = [part for part in state.parts if part.startswith("dask-worker-")]
    return [
        f"  Prefect UI  {state.prefect_ui_url}  (API {state.prefect_api_url}; worker on pool {state.work_pool})",
        f"  MLflow UI   {state.mlflow_url}  (artifacts {Path(state.home) / 'team' / 'artifacts'})",
        f"  Dask        {state.dask_address}  ({len(workers)} workers)",
        f"  databases   {', '.join(state.databases)}",
        f"  logs        {Path(state.home) / 'logs'}/team-*.log",
        "Point pmf at the team with these lines (stdout); stop it: pmf team down [--drop]",
    ]


def print_exports(state: TeamState) -> None:
    import shlex

    for name, value in state.exports().items():
        print(f"export {name}={shlex.quote(value)}")


def stop_all(home: Path, state: TeamState | None = None) -> list[int]:
    """Stop what `state` (default: the state file) started and remove the state file unless something
    survived; returns the pids that did."""
    from tasks.team.launch import stop_team

    state = state or read_team_state(home)
    if state is None:
        return []
    left = stop_team(state)
    if not left:
        remove_team_state(home)
    return left


# ---- status and down ----------------------------------------------------------------------------


def status(home: Path, state: TeamState | None, args: argparse.Namespace) -> int:
    from tasks.team.health import report

    result = report(state)
    if args.json:
        print(json.dumps(result))
    else:
        print("\n".join(status_lines(home, state, result)))
    return EXIT_OK


def status_lines(home: Path, state: TeamState | None, result: dict[str, Any]) -> list[str]:
    if state is None:
        return [f"pmf team · not running on {home}", "  start it with: pmf team up --postgres URL"]
    lines = [f"pmf team · {'up' if result['up'] else 'DOWN'} · since {state.started_at} · {home}"]
    for part, process in result["processes"].items():
        where = process["url"] or ""
        if part == "worker":
            where = f"work pool {process['work_pool']}"
            if process.get("heartbeat_age_s") is not None:
                where += f", heartbeat {process['heartbeat_age_s']:.0f}s ago"
        lines.append(f"  {part:<15} {'up  ' if process['up'] else 'DOWN'}  pid {process['pid']:<7}  {where}".rstrip())
    lines.append(f"  databases       {', '.join(state.databases)}")
    if not result["up"]:
        lines.append(f"  logs: {home / 'logs'}/team-*.log; restart: pmf team down && pmf team up --postgres URL")
    return fit(lines)


def down(home: Path, state: TeamState | None, args: argparse.Namespace) -> int:
    if state is None:
        print(f"pmf team: not running on {home}" + (" (nothing to drop: its state file is gone)" if args.drop else ""))
        return EXIT_OK
    pids = {part: process.pid for part, process in state.processes.items()}
    from tasks.team.launch import stop_team

    left = stop_team(state)
    if left:
        error = f"processes {', '.join(map(str, left))} of team mode survived SIGKILL; the state file is kept"
        return emit({"status": "failed", "error": error}, False, EXIT_FAILED)
    stopped = f"stopped ({', '.join(f'{part} pid {pid}' for part, pid in pids.items())})"
    if args.drop:
        from tasks.team.databases import PostgresUnreachable, drop_databases, parse_postgres_url

        try:
            dropped = drop_databases(parse_postgres_url(state.postgres_url), state.databases)
        except PostgresUnreachable as exc:
            return emit({"status": "failed", "error": f"{stopped}, but not dropped: {exc}"}, False, EXIT_FAILED)
        stopped += f"; dropped {', '.join(dropped) or 'no database (none was left)'}"
    remove_team_state(home)
    print(f"pmf team: {stopped}")
    return EXIT_OK
