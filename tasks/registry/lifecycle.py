"""The model registry's lifecycle: aliases `candidate` → `staging` → `production`, every move recorded.

Each alias move is written into the registry itself, as a registered-model tag
`pmf.history.<seq>` holding JSON {time, actor, reason, alias, from_version, to_version, metrics,
forced, kind}, so the history survives processes, is shared by everyone using the same store and
shows in the MLflow UI.

MLflow cannot move two things atomically, so a move is two writes with compensation: the history
record first, then the alias; if the alias write fails the record is deleted again, and the
registry is left as it was. Moves of one model are serialised by a lock that works on any store,
local or a team's tracking server: a registered model named `<NAME>.pmf-lock` is created to take
the lock (the store's unique-name constraint makes creation a compare-and-set) and deleted to
release it. A crashed holder's lock expires after its lease.
"""
from __future__ import annotations

import getpass
import json
import os
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

from tasks.registry import tracking

CANDIDATE, STAGING, PRODUCTION = "candidate", "staging", "production"
LIFECYCLE = (CANDIDATE, STAGING, PRODUCTION)
HISTORY_PREFIX = "pmf.history."
LOCK_SUFFIX = ".pmf-lock"
KEY_METRICS = ("accuracy", "f1_macro", "roc_auc", "r2", "mae", "mse")


class RegistryError(RuntimeError):
    """A registry operation that cannot be done as asked (unknown version, nothing to roll back to)."""


class LockTimeout(RegistryError):
    """Another promotion of the same model held the lock for longer than we were willing to wait."""


def current_actor() -> str:
    """Who moves an alias: $PMF_ACTOR (CI jobs, services), else the login name."""
    try:
        return os.environ.get("PMF_ACTOR") or getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def alias_version(name: str, alias: str) -> str | None:
    """The version an alias points to, or None when the alias (or the model) does not exist."""
    try:
        version = tracking.client().get_registered_model(name).aliases.get(alias)
    except Exception as exc:
        if _not_found(exc):
            return None
        raise
    return None if version is None else str(version)


def aliases(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in tracking.client().get_registered_model(name).aliases.items()}


def _not_found(exc: Exception) -> bool:
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower()


# ---- history --------------------------------------------------------------------------------------

def history(name: str) -> list[dict[str, Any]]:
    """Every recorded alias move of a model, oldest first."""
    tags = tracking.client().get_registered_model(name).tags
    records = []
    for key, value in tags.items():
        if key.startswith(HISTORY_PREFIX):
            record = json.loads(value)
            record["seq"] = int(key[len(HISTORY_PREFIX):])
            records.append(record)
    return sorted(records, key=lambda r: r["seq"])


def _history_key(seq: int) -> str:
    return f"{HISTORY_PREFIX}{seq:06d}"


def _next_seq(name: str) -> int:
    seqs = [r["seq"] for r in history(name)]
    return max(seqs, default=0) + 1


def key_metrics(name: str, version: str) -> dict[str, float]:
    """Test metrics of the pipeline run that produced a version (its MLflow parent run)."""
    mlflow_client = tracking.client()
    model_version = mlflow_client.get_model_version(name, version)
    run_id = model_version.tags.get("mlflow.parent_run_id") or model_version.run_id
    try:
        metrics = mlflow_client.get_run(run_id).data.metrics if run_id else {}
    except Exception:
        return {}
    return {k: round(float(v), 6) for k, v in metrics.items() if k in KEY_METRICS}


# ---- the lock -------------------------------------------------------------------------------------

@contextmanager
def registry_lock(name: str, timeout_s: float = 120.0, lease_s: float = 300.0) -> Iterator[str]:
    """Hold the promotion lock of one model: at most one alias move of `name` at a time, store-wide."""
    lock_name = name + LOCK_SUFFIX
    owner = f"{current_actor()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while not _try_acquire(lock_name, owner, lease_s):
        if time.monotonic() > deadline:
            raise LockTimeout(f"{name}: another promotion holds the registry lock {lock_name!r} (waited {timeout_s:.0f} s)")
        _break_if_expired(lock_name)
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    try:
        yield owner
    finally:
        _release(lock_name, owner)


def _try_acquire(lock_name: str, owner: str, lease_s: float) -> bool:
    expires = str(time.time() + lease_s)
    try:
        tracking.client().create_registered_model(lock_name, tags={"pmf.lock.owner": owner, "pmf.lock.expires": expires},
                                                  description="pmf promotion lock: held while an alias of the model moves")
        return True
    except Exception as exc:  # already exists (someone holds it) or a busy SQLite store: retry
        if "RESOURCE_ALREADY_EXISTS" in str(getattr(exc, "error_code", "")) or "already exists" in str(exc).lower():
            return False
        if "locked" in str(exc).lower():
            return False
        raise


def _break_if_expired(lock_name: str) -> None:
    try:
        tags = tracking.client().get_registered_model(lock_name).tags
    except Exception:
        return
    if time.time() > float(tags.get("pmf.lock.expires", "inf")):
        _release(lock_name, tags.get("pmf.lock.owner", ""))


def _release(lock_name: str, owner: str) -> None:
    mlflow_client = tracking.client()
    try:
        if mlflow_client.get_registered_model(lock_name).tags.get("pmf.lock.owner") == owner:
            mlflow_client.delete_registered_model(lock_name)
    except Exception:
        pass  # already gone (expired and broken by someone else)


# ---- moves ----------------------------------------------------------------------------------------

def move_alias(name: str, alias: str, version: str, reason: str, actor: str | None = None,
               metrics: dict[str, float] | None = None, forced: bool = False, kind: str = "promote") -> dict[str, Any]:
    """Point `alias` at `version` and record the move; under the model's lock. Returns the record."""
    with registry_lock(name):
        return _move_locked(name, alias, str(version), reason, actor, metrics, forced, kind)


def move_alias_unlocked(name: str, alias: str, version: str, reason: str, actor: str | None = None,
                        metrics: dict[str, float] | None = None, forced: bool = False, kind: str = "promote") -> dict[str, Any]:
    """`move_alias` for a caller that already holds `registry_lock(name)` (check and move under one lock)."""
    return _move_locked(name, alias, str(version), reason, actor, metrics, forced, kind)


def _move_locked(name: str, alias: str, version: str, reason: str, actor: str | None,
                 metrics: dict[str, float] | None, forced: bool, kind: str) -> dict[str, Any]:
    mlflow_client = tracking.client()
    mlflow_client.get_model_version(name, version)  # raises if the version does not exist
    record = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "actor": actor or current_actor(),
              "reason": reason, "alias": alias, "from_version": alias_version(name, alias), "to_version": version,
              "metrics": metrics if metrics is not None else key_metrics(name, version), "forced": forced, "kind": kind}
    seq = _next_seq(name)
    key = _history_key(seq)
    _write_history(name, key, record)
    try:
        _write_alias(name, alias, version)
    except BaseException:
        _compensate(name, key, alias, record["from_version"])
        raise
    return {**record, "seq": seq}


def _write_history(name: str, key: str, record: dict[str, Any]) -> None:
    tracking.client().set_registered_model_tag(name, key, json.dumps(record, sort_keys=True)[:5000])


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
    for record in records:
        if record["alias"] != alias:
            continue
        target = str(record["to_version"])
        if record.get("kind") == "rollback" and target in stack:
            del stack[stack.index(target) + 1:]
        elif not stack or stack[-1] != target:
            stack.append(target)
    return stack


def rollback(name: str, to_version: str | None = None, reason: str = "rollback", actor: str | None = None,
             alias: str = PRODUCTION) -> dict[str, Any]:
    """Put the previous production version back (or `to_version`), recorded like any move."""
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
        return _move_locked(name, alias, str(to_version), reason, actor, None, False, "rollback")


# ---- listing --------------------------------------------------------------------------------------

def list_models(name: str | None = None) -> list[dict[str, Any]]:
    """Registered models (one, or all): versions with aliases and key metrics, plus the promotion history."""
    mlflow_client = tracking.client()
    if name is not None:
        models = [mlflow_client.get_registered_model(name)]
    else:
        models = [m for m in _all_registered_models() if not m.name.endswith(LOCK_SUFFIX)]
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
    rows = [{"version": str(v.version), "aliases": sorted(by_version.get(str(v.version), []), key=_alias_order),
             "created": datetime.fromtimestamp(v.creation_timestamp / 1000, timezone.utc).isoformat(timespec="seconds"),
             "metrics": key_metrics(model.name, str(v.version)), "sha256": v.tags.get("pmf.sha256", ""),
             "run_id": v.run_id}
            for v in sorted(versions, key=lambda v: int(v.version))]
    return {"name": model.name, "aliases": {k: str(v) for k, v in model.aliases.items()}, "versions": rows,
            "history": history(model.name)}


def _alias_order(alias: str) -> int:
    return LIFECYCLE.index(alias) if alias in LIFECYCLE else len(LIFECYCLE)
