"""Promotion: infra check → `staging` → champion/challenger gate → `production`.

- Infra check: the candidate's package is verified (every file against its manifest, the manifest
  against the version's `pmf.manifest_sha256` tag; tasks.registry.fetch), served by the
  real server (`python -m tasks.serving.server`) in a fresh process on a free port, warmed up and sent
  canary rows from the held-out split; the answers must equal the pipeline's own predictions.
- Champion gate: candidate and current production are scored on the same held-out rows (the
  candidate's `heldout/test.parquet`); the candidate may not be worse than production by more than
  the margin on the primary metric, overall and on every slice. The first model has no champion.

Every check is reported (value, threshold, passed) like the evaluation gate; a failed check moves
no further alias. `force=True` moves the alias past failed gates (never past a SHA-256 mismatch)
and records that it did.

One promotion downloads and verifies each version once (candidate, champion, held-out rows) and
hands the verified digest to the alias moves, which check it against the registry again.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.config import DEFAULT_PRIMARY
from tasks.model.evaluate import HIGHER_IS_BETTER, slice_metrics, task_metrics
from tasks.model.gates import GateResult
from tasks.registry import lifecycle, tracking
from tasks.registry.fetch import fetch_verified, load_verified
from tasks.registry.promotion_settings import PromotionSettings
from tasks.registry.register import HELDOUT_ARTIFACT
from tasks.serving.package import IntegrityError, PackagedModel

COMPARISON_ARTIFACT = "promotion/comparison.json"


@dataclass(frozen=True)
class CheckReport:
    """The outcome of one promotion check: every rule with its value and threshold, plus errors."""

    name: str
    results: tuple[GateResult, ...] = ()
    errors: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.errors and all(r.passed for r in self.results if r.severity == "fail")

    @property
    def reasons(self) -> list[str]:
        return [*self.errors, *(f"{self.name}: {r.reason()}" for r in self.results if not r.passed and r.severity == "fail")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "reasons": self.reasons,
            "results": [r.to_dict() for r in self.results],
            "errors": list(self.errors),
            **self.details,
        }


# ---- fetching a version -------------------------------------------------------------------------


def load_heldout(name: str, version: str, folder: Path) -> pd.DataFrame:
    """The raw test split (target included) kept with the run that registered `version`."""
    run_id = tracking.client().get_model_version(name, version).run_id
    return pd.read_parquet(tracking.client().download_artifacts(run_id, HELDOUT_ARTIFACT, str(folder)))


# ---- infra check --------------------------------------------------------------------------------


def infra_check(
    name: str, version: str, settings: PromotionSettings, heldout: pd.DataFrame | None = None, model: PackagedModel | None = None
) -> CheckReport:
    """Serve `version` in a fresh process and check it answers the canaries as the pipeline does.

    `model`: the version already loaded through `load_verified` by the caller (not downloaded again)."""
    with tempfile.TemporaryDirectory(prefix="pmf-infra-") as tmp:
        if model is None:
            try:
                model = load_verified(name, version, Path(tmp))
            except IntegrityError as exc:
                return integrity_failure(exc)
        if heldout is None:
            heldout = load_heldout(name, version, Path(tmp))
        canary = heldout[model.input_columns].head(settings.canary_rows).reset_index(drop=True)
        expected = model.predict(canary)
        try:
            with served_version(name, version, settings.infra_timeout_s) as (base_url, ready_s):
                answers, served_version_header = _canary_answers(base_url, canary, settings.infra_timeout_s)
        except InfraError as exc:
            return CheckReport("infra_check", (GateResult("sha256_match", 1.0, 1.0, ">=", True),), (f"infra_check: {exc}",))
    agreement = canary_agreement(expected, answers, model.meta["task"], settings.canary_tolerance)
    results = (
        GateResult("sha256_match", 1.0, 1.0, ">=", True),
        GateResult("ready_seconds", ready_s, settings.infra_timeout_s, "<=", ready_s <= settings.infra_timeout_s),
        GateResult("canary_agreement", agreement, 1.0, ">=", agreement >= 1.0),
    )
    errors = (
        ()
        if served_version_header == str(version)
        else (f"infra_check: the server answered as version {served_version_header!r}, expected {version}",)
    )
    return CheckReport("infra_check", results, errors, {"canary_rows": len(canary), "ready_seconds": round(ready_s, 3)})


def integrity_failure(exc: IntegrityError) -> CheckReport:
    return CheckReport("infra_check", (GateResult("sha256_match", 0.0, 1.0, ">=", False),), (f"infra_check: {exc}",))


class InfraError(RuntimeError):
    """The served candidate did not start, did not become ready, or did not answer."""


def canary_agreement(expected: np.ndarray, answers: list, task: str, tolerance: float) -> float:
    """Share of canary rows where the server's answer equals the offline prediction."""
    if len(answers) != len(expected):
        return 0.0
    if task == "classification":
        same = [str(a) == str(e) for a, e in zip(answers, expected, strict=True)]
    else:
        served = np.asarray(answers, dtype=np.float64)
        same = list(np.isclose(served, np.asarray(expected, dtype=np.float64), rtol=tolerance, atol=tolerance))
    return float(np.mean(same)) if same else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served_version(name: str, version: str, timeout_s: float) -> Iterator[tuple[str, float]]:
    """`python -m tasks.serving.server NAME --version V` on a free port; yields (base URL, seconds to ready)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "tasks.serving.server",
        name,
        "--version",
        str(version),
        "--port",
        str(port),
        "--no-prediction-log",
    ]
    with tempfile.TemporaryFile() as stderr:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=os.environ.copy())
        try:
            base_url = f"http://127.0.0.1:{port}"
            _wait_ready(process, base_url, started + timeout_s, stderr)
            yield base_url, time.monotonic() - started
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_ready(process: subprocess.Popen, base_url: str, deadline: float, stderr: Any) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").strip().splitlines()[-3:]
            raise InfraError(f"the server exited with code {process.returncode}: {' / '.join(tail) or 'no output'}")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=1) as response:  # noqa: S310  (our own http:// server)
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise InfraError("the server did not answer /health before the infra check's timeout (infra_timeout_s)")


def _canary_answers(base_url: str, canary: pd.DataFrame, timeout_s: float, warmup: int = 5) -> tuple[list, str]:
    body = ('{"dataframe_split": ' + canary.to_json(orient="split", index=False) + "}").encode()
    first = ('{"dataframe_split": ' + canary.head(1).to_json(orient="split", index=False) + "}").encode()
    for _ in range(warmup):
        _post(base_url, first, timeout_s)
    payload, version = _post(base_url, body, timeout_s)
    return payload["predictions"], version


def _post(base_url: str, body: bytes, timeout_s: float) -> tuple[dict, str]:
    import json

    request = urllib.request.Request(f"{base_url}/invocations", data=body, headers={"Content-Type": "application/json"})  # noqa: S310  (our own http:// server)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310  (our own http:// server)
            return json.loads(response.read()), response.headers.get("X-Model-Version", "")
    except urllib.error.HTTPError as exc:
        raise InfraError(f"canary request answered {exc.code}: {exc.read()[:300].decode(errors='replace')}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise InfraError(f"canary request failed: {exc}") from None


# ---- champion / challenger ----------------------------------------------------------------------


def primary_metric(model: PackagedModel, settings: PromotionSettings) -> str:
    return settings.primary_metric or model.meta.get("primary_metric") or DEFAULT_PRIMARY[model.meta["task"]]


def score(model: PackagedModel, frame: pd.DataFrame, slice_columns: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Metrics of a model on raw labelled rows: {"overall": {...}, "island=Biscoe": {... "rows": n}, ...}."""
    task, target = model.meta["task"], model.meta["target"]
    frame = frame[frame[target].notna()].reset_index(drop=True)
    if task == "classification":
        y_true = model.preprocessor.encode_target(frame[target])
        known = y_true >= 0  # a label this model never saw cannot be scored by it
        frame, y_true = frame[known].reset_index(drop=True), y_true[known]
        outputs = model.outputs(frame)
    else:
        y_true = pd.to_numeric(frame[target]).to_numpy(dtype=np.float64)
        outputs = model.predict(frame)
    scores = {"overall": {**task_metrics(task, y_true, outputs), "rows": len(frame)}}
    present = tuple(c for c in slice_columns if c in frame.columns)
    for row in slice_metrics(task, frame, present, y_true, outputs):
        scores[f"{row.pop('column')}={row.pop('value')}"] = row
    return scores


def champion_gate(
    candidate: PackagedModel, champion: PackagedModel | None, heldout: pd.DataFrame, settings: PromotionSettings
) -> CheckReport:
    """Candidate vs production on the same rows; not worse than production by more than the margin."""
    metric = primary_metric(candidate, settings)
    new = score(candidate, heldout, settings.slice_columns)
    if champion is None:
        table = [
            {"scope": s, "metric": k, "candidate": v, "champion": None, "delta": None}
            for s, m in new.items()
            for k, v in m.items()
            if k != "rows"
        ]
        return CheckReport(
            "champion_gate",
            (),
            (),
            {
                "primary_metric": metric,
                "champion": None,
                "table": table,
                "note": "no production version yet: the first model passes",
            },
        )
    old = score(champion, heldout, settings.slice_columns)
    results = [_compare(metric, scope, new[scope], old.get(scope), settings) for scope in new]
    table = [
        {
            "scope": scope,
            "rows": new[scope]["rows"],
            "metric": k,
            "candidate": v,
            "champion": old.get(scope, {}).get(k),
            "delta": _delta(v, old.get(scope, {}).get(k)),
        }
        for scope in new
        for k, v in new[scope].items()
        if k != "rows"
    ]
    return CheckReport(
        "champion_gate",
        tuple(r for r in results if r is not None),
        (),
        {"primary_metric": metric, "margin": settings.champion_margin, "table": table},
    )


def _compare(metric: str, scope: str, new: dict, old: dict | None, settings: PromotionSettings) -> GateResult | None:
    value, reference = new.get(metric), (old or {}).get(metric)
    if value is None or reference is None or math.isnan(value) or math.isnan(reference):
        return None  # not comparable on this slice (e.g. ROC AUC with one class): shown in the table only
    severity = "fail" if scope == "overall" or new["rows"] >= settings.min_slice_rows else "warn"
    if HIGHER_IS_BETTER.get(metric, True):
        threshold = reference - settings.champion_margin
        return GateResult(f"{metric} [{scope}]", value, threshold, ">=", value >= threshold - 1e-12, severity)
    threshold = reference + settings.champion_margin
    return GateResult(f"{metric} [{scope}]", value, threshold, "<=", value <= threshold + 1e-12, severity)


def _delta(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or math.isnan(new) or math.isnan(old):
        return None
    return new - old


class VersionCache:
    """Versions of one model downloaded and verified once per promotion, with the candidate's held-out rows."""

    def __init__(self, name: str, folder: Path):
        self.name, self.folder = name, folder
        self.models: dict[str, tuple[PackagedModel, str]] = {}
        self.heldouts: dict[str, pd.DataFrame] = {}

    def model(self, version: str) -> PackagedModel:
        """The verified package of `version` (IntegrityError when it is not the registered one)."""
        if version not in self.models:
            self.models[version] = fetch_verified(self.name, version, self.folder / f"v{version}")
        return self.models[version][0]

    def digest(self, version: str) -> str:
        """The manifest digest `version` was verified against."""
        self.model(version)
        return self.models[version][1]

    def heldout(self, version: str) -> pd.DataFrame:
        if version not in self.heldouts:
            self.heldouts[version] = load_heldout(self.name, version, self.folder / f"heldout-v{version}")
        return self.heldouts[version]


def run_champion_gate(
    name: str, version: str, settings: PromotionSettings, cache: VersionCache | None = None
) -> tuple[CheckReport, str | None]:
    """Fetch candidate, current production and held-out rows (from `cache` when given), and compare.
    Returns (report, champion version). IntegrityError when the champion's package is not the registered one."""
    version = str(version)
    champion_version = lifecycle.alias_version(name, lifecycle.PRODUCTION)
    with tempfile.TemporaryDirectory(prefix="pmf-champion-") as tmp:
        cache = cache or VersionCache(name, Path(tmp))
        candidate = cache.model(version)
        champion = None
        if champion_version is not None and champion_version != version:
            champion = cache.model(champion_version)
        report = champion_gate(candidate, champion, cache.heldout(version), settings)
    report.details["champion"] = champion_version if champion is not None else None
    report.details["candidate"] = version
    return report, champion_version


# ---- the whole path -----------------------------------------------------------------------------

Approver = Callable[[dict[str, Any]], tuple[bool, str]]


def promote_version(
    name: str,
    version: str,
    to: str,
    settings: PromotionSettings,
    reason: str = "",
    force: bool = False,
    actor: str | None = None,
    approve: Approver | None = None,
) -> dict[str, Any]:
    """Move `version` to `staging` (infra check) or on to `production` (infra check + champion gate).

    Returns {promoted, target, aliases, reasons, infra_check, champion_gate, comparison, moves, forced}.
    """
    version = str(version)
    if to not in (lifecycle.STAGING, lifecycle.PRODUCTION):
        raise ValueError(f"--to must be staging or production, not {to!r}")
    result: dict[str, Any] = {
        "name": name,
        "version": version,
        "target": to,
        "promoted": False,
        "forced": False,
        "reasons": [],
        "moves": [],
        "infra_check": None,
        "champion_gate": None,
        "comparison": [],
    }
    with tempfile.TemporaryDirectory(prefix="pmf-promote-") as tmp:
        cache = VersionCache(name, Path(tmp))
        try:
            candidate = cache.model(version)
        except IntegrityError as exc:  # never forced past: a tampered package moves no alias
            result["infra_check"] = integrity_failure(exc).to_dict()
            result["reasons"].extend(result["infra_check"]["reasons"])
            return _finish(name, result)
        _promote_verified(
            name, version, to, settings, reason, force, actor, approve, cache, candidate, cache.digest(version), result
        )
    return _finish(name, result)


def _promote_verified(
    name: str,
    version: str,
    to: str,
    settings: PromotionSettings,
    reason: str,
    force: bool,
    actor: str | None,
    approve: Approver | None,
    cache: VersionCache,
    candidate: PackagedModel,
    verified: str,
    result: dict[str, Any],
) -> None:
    infra = infra_check(name, version, settings, cache.heldout(version), candidate)
    result["infra_check"] = infra.to_dict()
    if not _may_pass(infra, force, result):
        return
    result["moves"].append(
        lifecycle.move_alias(
            name,
            lifecycle.STAGING,
            version,
            _reason(reason, infra, "infra check passed"),
            actor,
            forced=not infra.passed,
            verified=verified,
        )
    )
    if to == lifecycle.STAGING:
        result["promoted"] = True
        return
    gate, champion_version = _champion_step(name, version, settings, result, cache)
    if gate is None:
        return
    if champion_version == version:
        result["reasons"].append(f"version {version} is already @production")
        return
    if not _may_pass(gate, force, result):
        return
    if settings.manual_approval:  # asked outside the lock: a person may take minutes, the lock's lease does not
        approved, note = approve(result) if approve is not None else (False, "no approver: use `pmf promote` or the Prefect UI")
        if not approved:
            result["reasons"].append(f"manual approval refused: {note}")
            return
        reason = f"{reason or 'champion gate passed'} (approved: {note})"
    with lifecycle.registry_lock(name):
        if lifecycle.alias_version(name, lifecycle.PRODUCTION) != champion_version:  # production moved meanwhile: judge again
            gate, champion_version = _champion_step(name, version, settings, result, cache)
            if gate is None or champion_version == version or not _may_pass(gate, force, result):
                return
        result["moves"].append(
            lifecycle.move_alias_unlocked(
                name,
                lifecycle.PRODUCTION,
                version,
                _reason(reason, gate, "champion gate passed"),
                actor,
                forced=not (gate.passed and infra.passed),
                verified=verified,
            )
        )
    result["promoted"] = True


def _champion_step(
    name: str, version: str, settings: PromotionSettings, result: dict[str, Any], cache: VersionCache
) -> tuple[CheckReport | None, str | None]:
    """The champion gate; (None, champion) when the champion's own package fails verification (reported, never forced past)."""
    try:
        gate, champion_version = run_champion_gate(name, version, settings, cache)
    except IntegrityError as exc:
        result["reasons"].append(f"champion_gate: the production version cannot be compared: {exc}")
        return None, None
    result["champion_gate"] = gate.to_dict()
    result["comparison"] = gate.details["table"]
    _log_comparison(name, version, gate)
    return gate, champion_version


def promote_candidate(
    name: str,
    version: str,
    settings: PromotionSettings,
    reason: str = "",
    actor: str | None = None,
    approve: Approver | None = None,
) -> dict[str, Any]:
    """The pipeline's promotion path for a freshly registered candidate: all the way to production if it earns it."""
    return promote_version(name, version, lifecycle.PRODUCTION, settings, reason or "pipeline candidate", False, actor, approve)


def settings_for_config(config: Any, task: str) -> PromotionSettings:
    """Settings for a pipeline run: the config's `promotion:` section (when PmfConfig has one) over
    the dataset's slice columns and primary metric."""
    from tasks.config import primary_metric_for

    section = getattr(config, "promotion", None)
    given = section.model_dump(exclude_unset=True) if isinstance(section, PromotionSettings) else dict(section or {})
    return PromotionSettings.model_validate(
        {"slice_columns": tuple(config.data.slice_columns), "primary_metric": primary_metric_for(config, task), **given}
    )


class StoredConfigError(ValueError):
    """The config recorded with a version (its `pmf.config` tag) cannot be read: never replaced by defaults."""


def settings_for_version(name: str, version: str, **overrides: Any) -> PromotionSettings:
    """Promotion settings as the run that produced `version` configured them (its `pmf.config` tag):
    the `promotion:` section if the config has one, its slice columns and primary metric; then `overrides`.

    A version without the tag gets the defaults; a tag that does not parse, or whose settings are
    invalid, raises StoredConfigError (one line naming the version and the tag) instead."""
    import json

    from pydantic import ValidationError

    where = f"{name} v{version}: the stored config (version tag pmf.config)"
    text = tracking.client().get_model_version(name, version).tags.get("pmf.config")
    try:
        config = json.loads(text) if text is not None else {}
    except ValueError as exc:
        raise StoredConfigError(f"{where} is not valid JSON ({exc}); fix the tag or re-run `pmf run` for it") from None
    data = config.get("data") if isinstance(config, dict) else None
    promotion = config.get("promotion") if isinstance(config, dict) else None
    if not isinstance(config, dict) or not isinstance(data or {}, dict) or not isinstance(promotion or {}, dict):
        raise StoredConfigError(f"{where} is not a pmf config (expected an object with `data` and `promotion` objects)")
    raw: dict[str, Any] = dict(promotion or {})
    raw.setdefault("slice_columns", tuple((data or {}).get("slice_columns") or ()))
    if config.get("primary_metric"):
        raw.setdefault("primary_metric", config["primary_metric"])
    try:
        stored = PromotionSettings.model_validate(raw)
    except ValidationError as exc:
        raise StoredConfigError(f"{where} has invalid promotion settings: {settings_problems(exc)}") from None
    # The caller's overrides (command-line flags) are validated on their own: a bad flag is not a bad stored config.
    return PromotionSettings.model_validate({**stored.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})


def settings_problems(exc: Any) -> str:
    """A pydantic ValidationError as one line: `promotion.<field>: <message>; ...`."""
    return "; ".join(f"promotion.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def _may_pass(report: CheckReport, force: bool, result: dict[str, Any]) -> bool:
    if report.passed:
        return True
    result["reasons"].extend(report.reasons)
    if force:
        result["forced"] = True
        return True
    return False


def _reason(given: str, report: CheckReport, default: str) -> str:
    text = given or default
    if not report.passed:
        text += " — forced past: " + "; ".join(report.reasons)
    return text


def _finish(name: str, result: dict[str, Any]) -> dict[str, Any]:
    result["aliases"] = lifecycle.aliases(name)
    return result


def _log_comparison(name: str, version: str, gate: CheckReport) -> None:
    """The full comparison table next to the version, in the run that registered it."""
    from mlflow.exceptions import MlflowException

    run_id = tracking.client().get_model_version(name, version).run_id
    try:
        tracking.log_dict(run_id, gate.to_dict(), COMPARISON_ARTIFACT)
    except (OSError, MlflowException) as exc:  # a read-only or full artifact store must not block a promotion
        import logging

        logging.getLogger("pmf.promote").warning(
            "comparison table of %s v%s not stored (%s); the result still carries it", name, version, exc
        )
