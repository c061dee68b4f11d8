"""The model registry's lifecycle: aliases `candidate` → `staging` → `production`, every move recorded.

Each alias move is written into the registry itself, as a registered-model tag
`pmf.history.<seq>` holding JSON {time, actor, reason, alias, from_version, to_version, metrics,
forced, kind}, so the history survives processes, is shared by everyone using the same store and
shows in the MLflow UI.

A record is never cut: its free-text fields (reason, actor) are bounded instead, with a visible
marker, so a record stays far below MLflow's 100,000-character tag limit and always parses. A record
that does not parse (edited by hand) is shown as unreadable and skipped by rollback; it breaks
nothing else.

Every move verifies the version's package first (every file against its manifest, the manifest
against the registry's digest; tasks.registry.fetch): a tampered version is refused, the alias does
not move and no record is written.

MLflow cannot move two things atomically, so a move is two writes with compensation: the history
record first, then the alias; if the alias write fails the record is deleted again, and the
registry is left as it was. Moves of one model are serialised by a lock that works on any store,
local or a team's tracking server: a registered model named `<NAME>~pmf-lock` is created to take
the lock (the store's unique-name constraint makes creation a compare-and-set) and deleted to
release it. Only a model carrying the tag `pmf.lock.for = <NAME>` counts as the lock: a model of
that name that pmf did not create is skipped (the lock moves to the next name, `<NAME>~pmf-lock~2`)
and never blocks a promotion. A holder whose process is gone (same host, pid not running) is taken
over at once; any other holder's lock expires after its lease. `pmf models NAME --unlock` clears it.
"""

from __future__ import annotations

import getpass
import json
import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from tasks.registry import tracking

CANDIDATE, STAGING, PRODUCTION = "candidate", "staging", "production"
LIFECYCLE = (CANDIDATE, STAGING, PRODUCTION)
HISTORY_PREFIX = "pmf.history."
LOCK_SUFFIX = "~pmf-lock"  # '~' is outside pmf's name allow-list: `pmf run` can never register a model of this name
LOCK_FOR_TAG = "pmf.lock.for"  # what makes a registered model pmf's lock (a model without it is a user's)
LOCK_SLOTS = 3  # lock names tried in order when a user's model already holds one
MAX_REASON_CHARS = 2000
MAX_ACTOR_CHARS = 200
KEY_METRICS = ("accuracy", "f1_macro", "roc_auc", "r2", "mae", "mse")


class RegistryError(RuntimeError):
    """A registry operation that cannot be done as asked (unknown version, nothing to roll back to)."""


class LockTimeout(RegistryError):
    """Another promotion of the same model held the lock for longer than we were willing to wait."""


def current_actor() -> str:
    """Who moves an alias: $PMF_ACTOR (CI jobs, services), else the login name."""
    try:
        return os.environ.get("PMF_ACTOR") or getpass.getuser()
    except (KeyError, OSError):  # no login name for this uid in some containers
        return "unknown"


def alias_version(name: str, alias: str) -> str | None:
    """The version an alias points to, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        version = tracking.client().get_registered_model(name).aliases.get(alias)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise
    return None if version is None else str(version)


def aliases(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in tracking.client().get_registered_model(name).aliases.items()}


def _not_found(exc: Exception) -> bool:
    """MLflow's "no such model / version / run" (the same code from a local store and over REST)."""
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def store_unreachable(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is a failed connection to the tracking server, not an answer from it."""
    return tracking.store_unreachable(exc)


def bounded(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with a visible marker saying how long it was."""
    if len(text) <= limit:
        return text
    marker = f" … [cut: {len(text)} characters in all]"
    return text[: limit - len(marker)] + marker


# ---- history --------------------------------------------------------------------------------------


def history(name: str) -> list[dict[str, Any]]:
    """Every recorded alias move of a model, oldest first.

    A record that does not parse (or lacks its alias / target version) comes back as
    {seq, key, unreadable: True, error, raw}: shown to people, skipped by rollback."""
    tags = tracking.client().get_registered_model(name).tags
    records = [parse_record(key, value) for key, value in tags.items() if key.startswith(HISTORY_PREFIX)]
    return sorted(records, key=lambda r: (r["seq"] is None, r["seq"] or 0, r["key"]))


def recorded_history(name: str) -> list[dict[str, Any]]:
    """`history(name)`, or [] when no model of that name is registered yet."""
    from mlflow.exceptions import MlflowException

    try:
        return history(name)
    except MlflowException as exc:
        if _not_found(exc):
            return []
        raise


def parse_record(key: str, value: str) -> dict[str, Any]:
    suffix = key[len(HISTORY_PREFIX) :]
    seq = int(suffix) if suffix.isdigit() else None
    try:
        record = json.loads(value)
        problem = None if isinstance(record, dict) else "not a JSON object"
    except ValueError as exc:
        record, problem = None, f"not JSON ({exc})"
    if problem is None and (not isinstance(record.get("alias"), str) or record.get("to_version") is None):
        problem = "no alias or target version"
    if problem is not None or seq is None:
        return {
            "seq": seq,
            "key": key,
            "unreadable": True,
            "error": problem or "the key has no sequence number",
            "raw": bounded(value, 200),
        }
    return {**record, "seq": seq, "key": key}


def readable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if not r.get("unreadable")]


def _history_key(seq: int) -> str:
    return f"{HISTORY_PREFIX}{seq:06d}"


def _next_seq(name: str) -> int:
    seqs = [r["seq"] for r in history(name) if r["seq"] is not None]  # unreadable ones too: never overwrite a key
    return max(seqs, default=0) + 1


def key_metrics(name: str, version: str) -> dict[str, float]:
    """Test metrics of the pipeline run that produced a version (its MLflow parent run); {} when that run is gone."""
    from mlflow.exceptions import MlflowException

    mlflow_client = tracking.client()
    model_version = mlflow_client.get_model_version(name, version)
    run_id = model_version.tags.get("mlflow.parent_run_id") or model_version.run_id
    if not run_id:
        return {}
    try:
        metrics = mlflow_client.get_run(run_id).data.metrics
    except MlflowException as exc:
        if _not_found(exc):  # the run was deleted: the version stays, its metrics are gone
            return {}
        raise
    return {k: round(float(v), 6) for k, v in metrics.items() if k in KEY_METRICS}


# ---- the lock -------------------------------------------------------------------------------------


@contextmanager
def registry_lock(name: str, timeout_s: float = 120.0, lease_s: float = 300.0) -> Iterator[str]:
    """Hold the promotion lock of one model: at most one alias move of `name` at a time, store-wide.

    Waits up to `timeout_s` (LockTimeout saying who holds it, since when, until when, and how to clear it);
    takes over at once from a holder on this host whose process is gone, and from any holder past its lease."""
    owner = f"{current_actor()}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        lock_name, holder = _try_acquire(name, owner, lease_s)
        if holder is None:
            break
        if _holder_is_gone(holder):
            _release(holder["lock_name"], holder["owner"])
            continue
        if time.monotonic() > deadline:
            raise LockTimeout(lock_message(name, holder, timeout_s))
        time.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311  (jitter between waiters, not security)
        delay = min(delay * 1.5, 1.0)
    try:
        yield owner
    finally:
        _release(lock_name, owner)


def lock_names(name: str) -> list[str]:
    base = name + LOCK_SUFFIX
    return [base] + [f"{base}~{slot}" for slot in range(2, LOCK_SLOTS + 1)]


def is_lock(model: Any) -> bool:
    """A registered model pmf created as a promotion lock (this version's or an older pmf's), not a user's model."""
    return LOCK_FOR_TAG in model.tags or ("pmf.lock.owner" in model.tags and model.name.endswith(".pmf-lock"))


def current_lock(name: str) -> dict[str, Any] | None:
    """The live holder of `name`'s lock ({lock_name, owner, actor, host, pid, since, expires}) or None."""
    held = [state for state in (_slot(name, n) for n in lock_names(name)) if isinstance(state, dict)]
    return held[0] if held else None


def _slot(name: str, lock_name: str) -> dict[str, Any] | str | None:
    """None: the name is free; "foreign": a model pmf did not create as this lock; else the holder's record."""
    from mlflow.exceptions import MlflowException

    try:
        model = tracking.client().get_registered_model(lock_name)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise
    tags = model.tags
    if tags.get(LOCK_FOR_TAG) != name:
        return "foreign"
    return {
        "lock_name": lock_name,
        "owner": tags.get("pmf.lock.owner", ""),
        "actor": tags.get("pmf.lock.actor", "?"),
        "host": tags.get("pmf.lock.host", "?"),
        "pid": int(tags.get("pmf.lock.pid") or 0) or None,
        "since": tags.get("pmf.lock.since", "?"),
        "expires": float(tags.get("pmf.lock.expires") or 0.0),
    }


def _try_acquire(name: str, owner: str, lease_s: float) -> tuple[str, dict[str, Any] | None]:
    """One attempt: (lock name, None) when we now hold it, else (lock name, the holder to wait for)."""
    from mlflow.exceptions import MlflowException

    states = {lock_name: _slot(name, lock_name) for lock_name in lock_names(name)}
    held = [state for state in states.values() if isinstance(state, dict)]
    if held:
        return held[0]["lock_name"], held[0]
    free = [lock_name for lock_name, state in states.items() if state is None]
    if not free:
        raise RegistryError(
            f"{name}: every promotion lock name ({', '.join(states)}) is taken by a model pmf did not "
            "create; rename or delete one of them"
        )
    lock_name = free[0]
    now = time.time()
    tags = {
        LOCK_FOR_TAG: name,
        "pmf.lock.owner": owner,
        "pmf.lock.actor": bounded(current_actor(), MAX_ACTOR_CHARS),
        "pmf.lock.host": socket.gethostname(),
        "pmf.lock.pid": str(os.getpid()),
        "pmf.lock.since": _iso(now),
        "pmf.lock.expires": str(now + lease_s),
    }
    try:
        tracking.client().create_registered_model(
            lock_name,
            tags=tags,
            description=(
                f"pmf promotion lock of {name!r}: held while one of its aliases moves. Not a model; "
                f"`pmf models {name} --unlock` removes it if its holder is gone."
            ),
        )
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_ALREADY_EXISTS", "TEMPORARILY_UNAVAILABLE"):  # taken meanwhile / SQLite busy
            holder = _slot(name, lock_name)
            return lock_name, holder if isinstance(holder, dict) else {"lock_name": lock_name, "owner": "", "busy": True}
        raise
    # A user's model at a lower name may have been deleted while someone else took that slot: one holder only.
    rivals = [h for h in (_slot(name, n) for n in lock_names(name)) if isinstance(h, dict) and h["owner"] != owner]
    if rivals:
        _release(lock_name, owner)
        return rivals[0]["lock_name"], rivals[0]
    return lock_name, None


def _holder_is_gone(holder: dict[str, Any]) -> bool:
    """Past its lease, or its process no longer runs on this host (a crash or kill -9): take over now."""
    if holder.get("busy"):
        return False
    if time.time() > holder["expires"]:
        return True
    return holder["host"] == socket.gethostname() and holder["pid"] is not None and not _pid_running(holder["pid"])


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # runs, as another user
        return True
    return True


def lock_message(name: str, holder: dict[str, Any], waited_s: float) -> str:
    if holder.get("busy"):
        return f"{name}: the registry stayed busy for {waited_s:.0f} s; try again"
    left = holder["expires"] - time.time()
    return (
        f"{name}: another promotion holds the lock (held by {holder['actor']}, pid {holder['pid']} on {holder['host']}, "
        f"since {holder['since']}; it expires at {_iso(holder['expires'])}, in {max(left, 0):.0f} s; waited "
        f"{waited_s:.0f} s). If that process is gone, clear it with `pmf models {name} --unlock` "
        f"(or delete the registered model {holder['lock_name']!r} in the MLflow UI)"
    )


def break_lock(name: str) -> dict[str, Any] | None:
    """Remove `name`'s promotion lock whoever holds it (`pmf models NAME --unlock`); returns the holder it removed."""
    holder = current_lock(name)
    if holder is not None:
        _release(holder["lock_name"], holder["owner"])
    return holder


def _release(lock_name: str, owner: str) -> None:
    """Delete the lock if `owner` still holds it (someone may have taken over an expired lease meanwhile)."""
    from mlflow.exceptions import MlflowException

    mlflow_client = tracking.client()
    try:
        if mlflow_client.get_registered_model(lock_name).tags.get("pmf.lock.owner") == owner:
            mlflow_client.delete_registered_model(lock_name)
    except MlflowException as exc:
        if not _not_found(exc):  # already gone: broken by someone else after its lease
            raise


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---- moves ----------------------------------------------------------------------------------------


def move_alias(
    name: str,
    alias: str,
    version: str,
    reason: str,
    actor: str | None = None,
    metrics: dict[str, float] | None = None,
    forced: bool = False,
    kind: str = "promote",
    verified: str | None = None,
) -> dict[str, Any]:
    """Point `alias` at `version` and record the move; under the model's lock. Returns the record.

    The version's package is verified first (downloaded outside the lock) unless the caller passes
    `verified`, the manifest digest it checked itself in this operation. IntegrityError: nothing moved."""
    verified = verified or verify_version(name, str(version))
    with registry_lock(name):
        return _move_locked(name, alias, str(version), reason, actor, metrics, forced, kind, verified)


def move_alias_unlocked(
    name: str,
    alias: str,
    version: str,
    reason: str,
    actor: str | None = None,
    metrics: dict[str, float] | None = None,
    forced: bool = False,
    kind: str = "promote",
    verified: str | None = None,
) -> dict[str, Any]:
    """`move_alias` for a caller that already holds `registry_lock(name)` (check and move under one lock)."""
    return _move_locked(name, alias, str(version), reason, actor, metrics, forced, kind, verified)


def verify_version(name: str, version: str) -> str:
    """Download and check a version's whole package; its manifest digest, or IntegrityError."""
    from tasks.registry.fetch import verify_version as verify

    return verify(name, version)


def _move_locked(
    name: str,
    alias: str,
    version: str,
    reason: str,
    actor: str | None,
    metrics: dict[str, float] | None,
    forced: bool,
    kind: str,
    verified: str | None,
) -> dict[str, Any]:
    from tasks.registry.fetch import MANIFEST_TAG
    from tasks.serving.package import IntegrityError

    model_version = tracking.client().get_model_version(name, version)  # raises if the version does not exist
    if verified is None:
        verified = verify_version(name, version)
    elif model_version.tags.get(MANIFEST_TAG) != verified:
        raise IntegrityError(f"{name} v{version}: its {MANIFEST_TAG} tag changed since its package was verified; nothing moved")
    record: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "actor": bounded(actor or current_actor(), MAX_ACTOR_CHARS),
        "reason": bounded(reason, MAX_REASON_CHARS),
        "alias": alias,
        "from_version": alias_version(name, alias),
        "to_version": version,
        "metrics": metrics if metrics is not None else key_metrics(name, version),
        "forced": forced,
        "kind": kind,
    }
    seq = _next_seq(name)
    key = _history_key(seq)
    _write_history(name, key, record)
    try:
        _write_alias(name, alias, version)
    except BaseException:
        _compensate(name, key, alias, record["from_version"])
        raise
    refresh_descriptions(name, [version, record["from_version"]])
    return {**record, "seq": seq, "key": key}


def refresh_descriptions(name: str, versions: list[str | None]) -> None:
    """Render the history tags again for people: the registered model's history table and the promotion
    section of each version's card (tasks.registry.model_card).

    The move is done and recorded when this runs: a store that refuses the description only leaves the
    rendering stale until the next move (a warning), it never undoes or fails the move."""
    import logging

    from mlflow.exceptions import MlflowException

    from tasks.registry import model_card

    mlflow_client = tracking.client()
    try:
        model = mlflow_client.get_registered_model(name)
        records = history(name)
        mlflow_client.update_registered_model(name, description=model_card.with_history(model.description or "", records))
        for version in dict.fromkeys(str(v) for v in versions if v is not None):
            card = mlflow_client.get_model_version(name, version).description or ""
            here = sorted((a for a, v in model.aliases.items() if str(v) == version), key=_alias_order)
            mlflow_client.update_model_version(name, version, description=model_card.with_promotion(card, version, records, here))
    except MlflowException as exc:
        logging.getLogger("pmf.registry").warning(
            "%s: the promotion history is recorded, but its rendering in the descriptions was not updated (%s)", name, exc
        )


def _write_history(name: str, key: str, record: dict[str, Any]) -> None:
    """Never cut: the free text is bounded (bounded()), so the whole record fits the tag limit and parses."""
    tracking.client().set_registered_model_tag(name, key, json.dumps(record, sort_keys=True))


def _write_alias(name: str, alias: str, version: str) -> None:
    tracking.client().set_registered_model_alias(name, alias, version)


def _compensate(name: str, key: str, alias: str, from_version: str | None) -> None:
    """Undo a half-done move: drop its history record and put the alias back where it was."""
    mlflow_client = tracking.client()
    mlflow_client.delete_registered_model_tag(name, key)
    if alias_version(name, alias) != from_version:
        if from_version is None:
            mlflow_client.delete_registered_model_alias(name, alias)
        else:
            mlflow_client.set_registered_model_alias(name, alias, from_version)


# ---- rollback -------------------------------------------------------------------------------------


def production_lineage(records: list[dict[str, Any]], alias: str = PRODUCTION) -> list[str]:
    """The stack of versions that served `alias`: a promotion pushes, a rollback pops back to its target."""
    stack: list[str] = []
    for record in readable(records):
        if record["alias"] != alias:
            continue
        target = str(record["to_version"])
        if record.get("kind") == "rollback" and target in stack:
            del stack[stack.index(target) + 1 :]
        elif not stack or stack[-1] != target:
            stack.append(target)
    return stack


def rollback(
    name: str, to_version: str | None = None, reason: str = "rollback", actor: str | None = None, alias: str = PRODUCTION
) -> dict[str, Any]:
    """Put the previous production version back (or `to_version`), recorded like any move.

    The target's package is verified first: a tampered version is refused (IntegrityError) and nothing moves."""
    verified = verify_version(name, str(to_version)) if to_version is not None else None
    with registry_lock(name):
        current = alias_version(name, alias)
        if to_version is None:
            stack = production_lineage(history(name), alias)
            if current is not None and stack and stack[-1] != current:
                stack.append(current)  # the alias was moved outside pmf: roll back to what pmf last put there
            if len(stack) < 2:
                raise RegistryError(f"{name}: no previous {alias} version to roll back to (history: {stack or 'empty'})")
            to_version = stack[-2]
        if str(to_version) == current:
            raise RegistryError(f"{name}: version {to_version} is already @{alias}")
        return _move_locked(name, alias, str(to_version), reason, actor, None, False, "rollback", verified)


# ---- listing --------------------------------------------------------------------------------------


def list_models(name: str | None = None) -> list[dict[str, Any]]:
    """Registered models (one, or all): versions with aliases and key metrics, plus the promotion history."""
    mlflow_client = tracking.client()
    if name is not None:
        models = [mlflow_client.get_registered_model(name)]
    else:
        models = [m for m in _all_registered_models() if not is_lock(m)]
    return [_describe(m) for m in models]


def _all_registered_models() -> list[Any]:
    mlflow_client = tracking.client()
    found, token = [], None
    while True:
        page = mlflow_client.search_registered_models(max_results=100, page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return sorted(found, key=lambda m: m.name)


def _describe(model: Any) -> dict[str, Any]:
    by_version: dict[str, list[str]] = {}
    for alias, version in model.aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    versions = tracking.client().search_model_versions(f"name = '{model.name}'")
    rows = [
        {
            "version": str(v.version),
            "aliases": sorted(by_version.get(str(v.version), []), key=_alias_order),
            "created": datetime.fromtimestamp(v.creation_timestamp / 1000, UTC).isoformat(timespec="seconds"),
            "metrics": key_metrics(model.name, str(v.version)),
            "sha256": v.tags.get("pmf.sha256", ""),
            "run_id": v.run_id,
        }
        for v in sorted(versions, key=lambda v: int(v.version))
    ]
    return {
        "name": model.name,
        "aliases": {k: str(v) for k, v in model.aliases.items()},
        "versions": rows,
        "history": history(model.name),
    }


def _alias_order(alias: str) -> int:
    return LIFECYCLE.index(alias) if alias in LIFECYCLE else len(LIFECYCLE)
