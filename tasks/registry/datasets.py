"""What the store keeps about a named dataset: its expectation suite and its config, each versioned.

Both live in the tracking store, so every machine sharing the store finds them: a run tagged
`pmf.kind=suite` or `pmf.kind=config` with the document as an artifact, in the experiment
`NAME.pmf-store` beside the dataset's own experiment `NAME` (so these records do not crowd the
pipeline runs in the MLflow UI). Records an older pmf wrote into `NAME` itself are still read.

Creating a version is compare-and-set: a writer publishes its candidate for version N, then looks
at every live candidate for N; the earliest created wins, the others delete theirs and use the
winner's document. Two first runs of a new name therefore agree on one suite v1. Readers apply the
same rule, so what a later run reads is what the race's winner wrote.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.config import RESERVED_SUFFIX
from tasks.registry.tracking import client, end_run, ensure_experiment, log_dict, start_run
from tasks.workspace import pmf_home

STORE_SUFFIX = RESERVED_SUFFIX  # the experiment of a dataset's records: NAME + this (refused as a dataset name)
SUITE_KIND = "suite"
CONFIG_KIND = "config"
# A candidate still RUNNING after this long was left by a killed writer (writing takes well under a second).
STALE_WRITER_S = 60.0
POLL_S = 0.2
MAX_UPDATE_ATTEMPTS = 5


@dataclass(frozen=True)
class Record:
    """One stored version of a dataset's suite or config."""

    version: int
    document: dict[str, Any]
    run_id: str


def latest_suite(experiment_id: str) -> tuple[int, dict] | None:
    """(version, suite document) of the newest stored suite for this dataset, or None."""
    record = latest(experiment_id, SUITE_KIND)
    return (record.version, record.document) if record else None


def save_suite(experiment_id: str, name: str, document: dict, replace: bool = False) -> tuple[int, dict]:
    """Store `document` as the dataset's suite; returns the (version, document) now in force.

    `replace=False` (a first batch): version 1 is created once; if another run created it first,
    its suite is returned instead of ours. `replace=True` (--update-suite): a new version after the
    newest one. A local copy goes under PMF_HOME/suites/NAME.
    """
    record, _ = publish(experiment_id, SUITE_KIND, document, replace)
    local = pmf_home() / "suites" / _folder_name(name) / f"v{record.version}.json"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(json.dumps(record.document, indent=1), encoding="utf-8")
    return record.version, record.document


def recorded_config(name: str) -> Record | None:
    """The config recorded with dataset `name` (newest version), or None when the name has none yet."""
    experiment = client().get_experiment_by_name(name)
    if experiment is None or experiment.lifecycle_stage != "active":
        return None
    return latest(experiment.experiment_id, CONFIG_KIND)


def record_config(experiment_id: str, document: dict, replace: bool, source: str) -> tuple[Record, bool]:
    """Record a dataset's config; returns (the record in force, whether it is this call's document)."""
    return publish(experiment_id, CONFIG_KIND, document, replace, {"pmf.config_source": source})


def latest(experiment_id: str, kind: str) -> Record | None:
    """The newest version of `kind`, as the compare-and-set decided it; None when there is none."""
    runs = _live_runs(experiment_id, kind)
    if not runs:
        return None
    newest = max(_version(r) for r in runs)
    return _settled(experiment_id, kind, newest)


def publish(
    experiment_id: str, kind: str, document: dict, replace: bool, tags: dict[str, str] | None = None
) -> tuple[Record, bool]:
    """Compare-and-set a new version of `kind` (see the module docstring).

    Returns the record in force and whether it is the one this call wrote.

    Writers of one dataset take turns under its registry lock (tasks.registry.lifecycle): a candidate's
    start time is the writer's clock, so without the lock a writer whose create call was still on its way
    to a tracking server could come out earliest after a rival had already read itself the winner.
    """
    from tasks.registry.lifecycle import registry_lock

    with registry_lock(client().get_experiment(experiment_id).name):
        return _publish(experiment_id, kind, document, replace, tags)


def _publish(experiment_id: str, kind: str, document: dict, replace: bool, tags: dict[str, str] | None) -> tuple[Record, bool]:
    for _ in range(MAX_UPDATE_ATTEMPTS):
        current = latest(experiment_id, kind)
        if current is not None and not replace:
            return current, False  # created meanwhile by another run: theirs is the one
        version = (current.version if current else 0) + 1
        store = _store_experiment(experiment_id, create=True)
        assert store is not None  # create=True always returns the experiment
        run_id = start_run(
            store,
            f"{kind}-v{version}",
            tags={"pmf.kind": kind, f"pmf.{kind}_version": str(version), **(tags or {})},
        )
        log_dict(run_id, document, f"{kind}/{kind}.json")
        end_run(run_id)
        winner = _settled(experiment_id, kind, version)
        if winner.run_id == run_id:
            return winner, True
        client().delete_run(run_id)  # lost the race: our candidate must not linger as a second vN
        if not replace:
            return winner, False
    raise RuntimeError(f"could not store a new {kind} version: {MAX_UPDATE_ATTEMPTS} concurrent updates won before this one")


def _settled(experiment_id: str, kind: str, version: int) -> Record:
    """The winner among the live candidates for `version`, once its document is fully written."""
    while True:
        candidates = sorted(
            (r for r in _live_runs(experiment_id, kind) if _version(r) == version),
            key=lambda r: (r.info.start_time, r.info.run_id),
        )
        if not candidates:
            raise RuntimeError(f"{kind} v{version} disappeared while it was being read")
        winner = candidates[0]
        if winner.info.status == "FINISHED":
            return Record(version, _document(winner.info.run_id, kind), winner.info.run_id)
        time.sleep(POLL_S)  # the winner is still writing its document (a fraction of a second)


def _live_runs(experiment_id: str, kind: str) -> list[Any]:
    """Candidates that count: finished ones, and ones still being written (not those a killed writer left)."""
    experiments = [e for e in (_store_experiment(experiment_id, create=False), experiment_id) if e is not None]
    runs = client().search_runs(experiments, filter_string=f"tags.`pmf.kind` = '{kind}'", max_results=1000)
    now_ms = time.time() * 1000
    return [
        r
        for r in runs
        if r.info.status == "FINISHED" or (r.info.status == "RUNNING" and now_ms - r.info.start_time < STALE_WRITER_S * 1000)
    ]


def _store_experiment(experiment_id: str, create: bool) -> str | None:
    """The id of the experiment holding the records of the dataset whose experiment is `experiment_id`
    (None when it does not exist yet and `create` is False: readers never create it)."""
    name = client().get_experiment(experiment_id).name + STORE_SUFFIX
    if create:
        return ensure_experiment(name)
    experiment = client().get_experiment_by_name(name)
    return experiment.experiment_id if experiment is not None and experiment.lifecycle_stage == "active" else None


def _version(run: Any) -> int:
    return int(run.data.tags.get(f"pmf.{run.data.tags['pmf.kind']}_version", "0"))


def _document(run_id: str, kind: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = client().download_artifacts(run_id, f"{kind}/{kind}.json", folder)
        return json.loads(Path(path).read_text(encoding="utf-8"))


def _folder_name(name: str) -> str:
    """The suites folder of `name`; names are checked at the CLI, this guards every other caller."""
    from tasks.config import check_name

    return check_name(name, "dataset name")
