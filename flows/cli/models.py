"""Registry subcommands: `pmf models`, `pmf promote`, `pmf rollback`.

Exit codes: 0 done; 1 refused by a check (the reasons are printed), a tracking server that cannot
be reached, or anything else; 2 usage or configuration error (unknown model or version, bad flag,
a stored config that does not parse). Every failure is one line, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from typing import Any, cast

from flows.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, emit, help_epilog, json_option, prepare_environment

# A registry command against a tracking server that is down must fail in seconds, not after MLflow's
# default 7 retries with exponential back-off (~4 minutes). The user's own settings win.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
PROBE_TIMEOUT_S = 5.0


REGISTRY_ENV = ["PMF_HOME", "MLFLOW_TRACKING_URI"]


def add_commands(commands: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    models = commands.add_parser(
        "models",
        help="registered models: versions, aliases, key metrics, promotion history",
        description="Registered models: what each alias points to, every version with its key\n"
        "metrics, and the promotion history (who moved which alias, when, why), newest\n"
        "first.",
        epilog=help_epilog(
            REGISTRY_ENV,
            {
                EXIT_OK: "",
                EXIT_FAILED: "the registry could not be read (the line says why)",
                EXIT_USAGE: "no such model, or --unlock without NAME",
            },
            ["pmf models", "pmf models penguins", "pmf models penguins --json", "pmf models penguins --unlock"],
        ),
    )
    models.add_argument("name", nargs="?", help="one registered model (default: all)")
    models.add_argument(
        "--unlock", action="store_true", help="remove NAME's promotion lock (left by a promotion whose process is gone)"
    )
    json_option(models)

    promote = commands.add_parser(
        "promote",
        help="gated alias move: infra check (staging), + champion gate (production)",
        description="Move an alias to a version through its gates: to @staging after the infra\n"
        "check (the version, served in a fresh process, answers canary rows as the\n"
        "pipeline predicts); to @production after the infra check and the champion\n"
        "gate (no worse than the current production by more than the margin, overall\n"
        "and per slice). Every move is recorded.",
        epilog=help_epilog(
            [*REGISTRY_ENV, "PREFECT_API_URL", "PMF_ACTOR"],
            {
                EXIT_OK: "promoted (or a waiting promotion approved or rejected)",
                EXIT_FAILED: "refused by a gate (every reason is printed), the lock held, a server down",
                EXIT_USAGE: "no such model or version, a bad flag",
            },
            [
                "pmf promote penguins --version 3 --to staging",
                "pmf promote penguins --version 3 --to production --reason 'Q4 data'",
                "pmf promote penguins --version 3 --to production --force --reason 'hotfix'",
            ],
        ),
    )
    promote.add_argument("name", help="registered model name")
    promote.add_argument("--version", required=True, help="the version to move the alias to (required)")
    promote.add_argument("--to", required=True, choices=["staging", "production"], help="the alias to move (required)")
    promote.add_argument("--reason", default="", help="recorded in the promotion history (default: none)")
    promote.add_argument(
        "--force", action="store_true", help="move past failed gates (never past a SHA-256 mismatch); recorded as forced"
    )
    promote.add_argument("--margin", type=float, help="champion margin on the primary metric (default: the run's config, else 0)")
    answer = promote.add_mutually_exclusive_group()
    answer.add_argument(
        "--approve", action="store_true", help="approve a promotion of this version that waits for manual approval"
    )
    answer.add_argument("--reject", action="store_true", help="reject a promotion of this version that waits for manual approval")
    json_option(promote)

    rollback = commands.add_parser(
        "rollback",
        help="put the previous production version back, in one step",
        description="Point @production back at the version it pointed to before (or at --to), in\n"
        "one recorded move; the target's package is verified first.",
        epilog=help_epilog(
            [*REGISTRY_ENV, "PMF_ACTOR"],
            {
                EXIT_OK: "rolled back",
                EXIT_FAILED: "nothing to roll back to, the lock held, a package that fails its check, a server down",
                EXIT_USAGE: "no such model or version",
            },
            ["pmf rollback penguins", "pmf rollback penguins --to 2 --reason 'v3 drifts on Biscoe'"],
        ),
    )
    rollback.add_argument("name", help="registered model name")
    rollback.add_argument(
        "--to",
        dest="to_version",
        metavar="VERSION",
        help="this version instead (default: the production version before the current one)",
    )
    rollback.add_argument("--reason", default="rollback", help="recorded in the promotion history (default: %(default)s)")
    json_option(rollback)

    return {
        "models": registry_command(cmd_models),
        "promote": registry_command(cmd_promote),
        "rollback": registry_command(cmd_rollback),
    }


def registry_command(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a registry command with short HTTP retries; a tracking server that cannot be reached, and any
    error MLflow reports, end in one line and exit 1."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from tasks.workspace import WorkspaceError

        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        try:
            prepare_environment(args)
        except WorkspaceError as exc:
            return emit({"status": "failed", "error": str(exc)}, args.json, EXIT_FAILED, str)
        if problem := unreachable_server():
            return emit({"status": "failed", "error": problem}, args.json, EXIT_FAILED, str)
        from mlflow.exceptions import MlflowException

        try:
            return command(args)
        except (MlflowException, OSError) as exc:  # OSError covers requests' connection errors
            return emit({"status": "failed", "error": failure_line(exc)}, args.json, EXIT_FAILED, str)

    return run


def unreachable_server() -> str | None:
    """Why the tracking server cannot be reached (connection refused, timed out), or None: any HTTP answer,
    even an error, means it is up. Stores that are not servers (SQLite, PostgreSQL) are not probed."""
    import urllib.error
    import urllib.request

    from tasks.workspace import tracking_uri

    uri = tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S):  # noqa: S310 (http(s) only, checked above)
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return server_down_line(uri, str(reason))


def server_down_line(uri: str, reason: str) -> str:
    return (
        f"the MLflow tracking server at {uri} is not reachable ({reason}): start it (`pmf server start`) "
        "or point MLFLOW_TRACKING_URI at a running one"
    )


def failure_line(exc: BaseException) -> str:
    from tasks.registry.lifecycle import store_unreachable
    from tasks.workspace import tracking_uri

    if store_unreachable(exc):
        return server_down_line(tracking_uri(), "the connection failed during the command")
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"


def check_model(name: str, version: str | None = None) -> str | None:
    """A usage error message when the model (or version) does not exist; any other store error is raised."""
    from mlflow.exceptions import MlflowException

    from tasks.registry import lifecycle, tracking

    try:
        model = tracking.client().get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return f"no registered model named {name!r} (see `pmf models`)"
        raise
    if lifecycle.is_lock(model):
        return f"{name!r} is a promotion lock, not a model (see `pmf models`)"
    if version is not None:
        try:
            tracking.client().get_model_version(name, version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return f"{name} has no version {version!r}"
            raise
    return None


# ---- models -------------------------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    from tasks.registry.lifecycle import list_models

    if args.unlock and not args.name:
        return emit({"status": "usage_error", "error": "--unlock needs the model's NAME"}, args.json, EXIT_USAGE, str)
    if args.name and (problem := check_model(args.name)):
        return emit({"status": "usage_error", "error": problem}, args.json, EXIT_USAGE, str)
    if args.unlock:
        return _unlock(args)
    models = list_models(args.name)
    return emit({"status": "ok", "models": models}, args.json, EXIT_OK, render_models)


def _unlock(args: argparse.Namespace) -> int:
    from tasks.registry.lifecycle import break_lock

    holder = break_lock(args.name)
    if holder is None:
        return emit(
            {"status": "not_locked", "name": args.name, "lock": None},
            args.json,
            EXIT_OK,
            lambda r: f"{args.name}: no promotion lock is held",
        )
    return emit(
        {"status": "unlocked", "name": args.name, "lock": holder},
        args.json,
        EXIT_OK,
        lambda r: (
            f"{args.name}: removed the promotion lock held by {holder['actor']} (pid {holder['pid']} on "
            f"{holder['host']}) since {holder['since']}"
        ),
    )


def render_models(result: dict[str, Any]) -> str:
    """Each model in 80 columns: its aliases, a row per version (metrics wrapped under their column) and
    the promotion history, newest first, each move's reason wrapped under it. `--json` has it all unrounded."""
    from flows.console import fit

    if not result["models"]:
        return "no registered models yet: `pmf run` registers one"
    return "\n\n".join("\n".join(fit(_model_lines(model))) for model in result["models"])


def _model_lines(model: dict[str, Any]) -> list[str]:
    from flows.console import metric, pack, wrap

    aliases = "  ".join(f"@{a}=v{v}" for a, v in sorted(model["aliases"].items()))
    lines = wrap(f"{model['name']}  {aliases or '(no aliases)'}", 0, 2)
    width = min(max([7, *(len(",".join(row["aliases"])) for row in model["versions"])]), 30)
    lines.append(f"  {'version':<8} {'aliases':<{width}}  metrics")
    for row in reversed(model["versions"]):
        label = f"  v{row['version']:<7} {','.join(row['aliases']) or '-':<{width}}  "
        metrics = [f"{k} {metric(v)}" for k, v in row["metrics"].items()] or ["-"]
        lines += pack(label, metrics)
    if model["history"]:
        lines.append("  history (newest first):")
    for move in reversed(model["history"]):
        lines += _history_lines(move)
    return lines


def _history_lines(move: dict[str, Any]) -> list[str]:
    """`  #3   2026-11-29 12:00 UTC  alice  @production  v1 -> v3  promote [forced]`, the reason under it."""
    from flows.console import wrap

    seq = f"#{move['seq'] if move.get('seq') is not None else '?'}"
    if move.get("unreadable"):
        return wrap(f"{seq:<4} unreadable record {move['key']} ({move['error']}): {move['raw'][:80]!r}", 2, 7)
    arrow = f"v{move['from_version']} -> v{move['to_version']}" if move["from_version"] else f"-> v{move['to_version']}"
    flags = " [forced]" if move.get("forced") else ""
    head = f"{seq:<4} {_when(move['time'])}  {move['actor']}  @{move['alias']}  {arrow}  {move.get('kind', 'promote')}{flags}"
    return [*wrap(head, 2, 7), *wrap(move["reason"] or "(no reason given)", 7, 7)]


def _when(iso_time: str) -> str:
    """An ISO 8601 time as `2026-11-29 12:00 UTC` (the record keeps the seconds)."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(iso_time)
    except (TypeError, ValueError):
        return str(iso_time)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M") + (" UTC" if moment.tzinfo is not None else "")


# ---- promote ------------------------------------------------------------------------------------


def cmd_promote(args: argparse.Namespace) -> int:
    if problem := check_model(args.name, args.version):
        return emit({"status": "usage_error", "error": problem}, args.json, EXIT_USAGE, str)
    if args.approve or args.reject:
        return _answer_approval(args)
    from pydantic import ValidationError

    from tasks.registry.lifecycle import RegistryError
    from tasks.registry.promotion import StoredConfigError, settings_for_version, settings_problems
    from tasks.serving.package import IntegrityError

    try:
        settings = settings_for_version(args.name, args.version, champion_margin=args.margin)
    except StoredConfigError as exc:
        return emit({"status": "usage_error", "error": str(exc)}, args.json, EXIT_USAGE, str)
    except ValidationError as exc:  # only the flags are checked here: the stored settings were valid
        return emit(
            {"status": "usage_error", "error": settings_problems(exc).replace("promotion.champion_margin", "--margin")},
            args.json,
            EXIT_USAGE,
            str,
        )
    from flows.promote_flow import promote_flow

    try:
        # Called directly, a flow returns its final state's data: the result dict.
        result = cast(dict[str, Any], promote_flow(args.name, args.version, args.to, settings, args.reason, args.force))
    except (RegistryError, IntegrityError) as exc:  # lock not obtained, production's package tampered with
        return emit({"status": "failed", "error": str(exc)}, args.json, EXIT_FAILED, str)
    result["status"] = "promoted" if result["promoted"] else "not_promoted"
    return emit(result, args.json, EXIT_OK if result["promoted"] else EXIT_FAILED, render_promotion)


def _answer_approval(args: argparse.Namespace) -> int:
    from flows.promote_flow import answer_approval

    note = args.reason or ("approved" if args.approve else "rejected") + " from the command line"
    answered = answer_approval(args.name, args.version, bool(args.approve), note)
    if not answered:
        return emit(
            {"status": "usage_error", "error": f"no promotion of {args.name} v{args.version} is waiting for approval"},
            args.json,
            EXIT_USAGE,
            str,
        )
    verdict = "approved" if args.approve else "rejected"
    return emit(
        {"status": verdict, "flow_runs": answered},
        args.json,
        EXIT_OK,
        lambda r: f"{args.name} v{args.version}: {verdict} ({len(answered)} waiting promotion(s) resumed)",
    )


def render_promotion(result: dict[str, Any]) -> str:
    """The verdict, every reason, each check with its first rules and the aliases after, in 80 columns."""
    from flows.console import fit, wrap

    head = f"{result['name']} v{result['version']} -> @{result['target']}: " + (
        "promoted" if result["promoted"] else "not promoted"
    )
    if result.get("forced") and result["promoted"]:
        head += " (forced)"
    lines = [head, *(line for reason in result["reasons"] for line in wrap(f"- {reason}", 2, 4))]
    for check in (result.get("infra_check"), result.get("champion_gate")):
        if check:
            rules = ", ".join(_rule(r) for r in check["results"][:4])
            lines += wrap(
                f"{check['name']}: {'passed' if check['passed'] else 'failed'}" + (f" ({rules})" if rules else ""), 2, 4
            )
    lines += wrap("aliases: " + "  ".join(f"@{a}=v{v}" for a, v in sorted(result["aliases"].items())), 2, 4)
    return "\n".join(fit(lines))


def _rule(result: dict[str, Any]) -> str:
    from flows.console import metric, number

    relation = result["op"] if result["passed"] else {">=": "<", "<=": ">"}[result["op"]]
    return f"{result['name']} {metric(result['value'])} {relation} {number(result['threshold'])}"


# ---- rollback -----------------------------------------------------------------------------------


def cmd_rollback(args: argparse.Namespace) -> int:
    if problem := check_model(args.name, args.to_version):
        return emit({"status": "usage_error", "error": problem}, args.json, EXIT_USAGE, str)
    from tasks.registry.lifecycle import RegistryError, aliases, rollback
    from tasks.serving.package import IntegrityError

    try:
        record = rollback(args.name, args.to_version, args.reason)
    except (RegistryError, IntegrityError) as exc:  # nothing to roll back to, the lock, a tampered target
        return emit({"status": "refused", "error": str(exc)}, args.json, EXIT_FAILED, str)
    from flows.alerts import announce_production_moves

    announce_production_moves(args.name, [record])  # alerts and automations on `pmf.production.moved`
    result = {"status": "rolled_back", "name": args.name, "move": record, "aliases": aliases(args.name)}
    return emit(
        result,
        args.json,
        EXIT_OK,
        lambda r: (
            f"{r['name']} @production: v{r['move']['from_version']} -> v{r['move']['to_version']} (rollback recorded as #{r['move']['seq']})"
        ),
    )
