"""The batches a name was trained on, kept in the tracking store so every machine sharing it agrees.

Each batch is a run in the experiment `NAME.pmf-store` (beside the suite and config records,
tasks/registry/datasets.py), one per content hash (SHA-256 of the file): `pmf.kind=batch` with a
copy of the file as its artifact (a window can be rebuilt anywhere) and `pmf.batch_state=trained`
once a run trained on it, or `pmf.kind=rejected_batch`
with the failed expectations, so a rejected file is not tried again until its content changes.
Runs are kept in the order they were recorded: the first `pmf run`'s batch first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.config import RESERVED_SUFFIX
from tasks.registry import tracking

TRAINED, REJECTED = "batch", "rejected_batch"
BATCH_ARTIFACT = "batch"
REJECTION_ARTIFACT = "rejection/result.json"
STATE_TAG = "pmf.batch_state"  # a trained-on record counts once `trained` (its copy is made during the training)
# Files `pmf retrain` reads from an incoming folder; anything else there (notes, a rejected/ folder) is left alone.
BATCH_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


@dataclass(frozen=True)
class StoredBatch:
    """A batch the store knows: its content hash, rows, file name, who recorded it and the record's run."""

    sha256: str
    rows: int
    file: str
    source: str  # `pmf run` or `pmf retrain`
    run_id: str


@dataclass(frozen=True)
class FoundBatch:
    """A batch file in the incoming folder (or `--data`) and its content hash."""

    path: Path
    sha256: str


def incoming_files(folder: Path) -> list[Path]:
    """The batch files directly in `folder` (CSV, TSV, Parquet; hidden files skipped), oldest first
    (modification time, then name); none when the folder does not exist."""
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in BATCH_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def select_new(
    found: Sequence[FoundBatch], trained: Iterable[str], rejected: Iterable[str]
) -> tuple[list[FoundBatch], list[FoundBatch]]:
    """(new batches, batches skipped because their content was trained on or rejected before).

    A file whose content another file of `found` already has is skipped too: one content, one batch."""
    known = set(trained) | set(rejected)
    new: list[FoundBatch] = []
    skipped: list[FoundBatch] = []
    for batch in found:
        (skipped if batch.sha256 in known else new).append(batch)
        known.add(batch.sha256)
    return new, skipped


def trained_batches(name: str) -> list[StoredBatch]:
    """Every batch `name` was trained on, oldest first."""
    return [_stored(run) for run in _records(name, TRAINED)]


def rejected_hashes(name: str) -> set[str]:
    """Content hashes of the batches validation rejected for `name`."""
    return {run.data.tags["pmf.batch_sha256"] for run in _records(name, REJECTED)}


@contextmanager
def kept_once_done(name: str, batches: Sequence[tuple[Path, str, int]], source: str, trained_by: str) -> Iterator[None]:
    """Record the (path, sha256, rows) `batches` as trained on by run `trained_by` once the block completes.

    Each file is copied into the store (a file copy, no re-encoding) in a background thread while the
    block runs (the training), so keeping it adds no time to the run; a content the store already has is
    not copied again. A record counts once tagged `pmf.batch_state=trained`, after the block completed;
    if the block raises (a crash, an interruption), the copy is tagged `untrained` and never counts."""
    stored = {run.data.tags.get("pmf.batch_sha256") for run in _records(name, TRAINED)}
    pending = [(path, sha, rows) for path, sha, rows in batches if sha not in stored]
    tags = {"pmf.batch_source": source, "pmf.trained_by": trained_by, STATE_TAG: "copying"}
    runs = [(_open_record(name, TRAINED, path, sha, {**tags, "pmf.batch_rows": str(rows)}), path) for path, sha, rows in pending]
    errors: list[BaseException] = []
    copying = threading.Thread(target=_copy_all, args=(runs, errors), name="pmf-keep-batches", daemon=True)
    copying.start()
    try:
        yield
    except BaseException:
        copying.join()
        for run_id, _ in runs:
            tracking.set_tags(run_id, {STATE_TAG: "untrained"})
        raise
    copying.join()
    if errors:
        raise errors[0]
    for run_id, _ in runs:
        tracking.set_tags(run_id, {STATE_TAG: "trained"})


def _copy_all(runs: Sequence[tuple[str, Path]], errors: list[BaseException]) -> None:
    """Copy each file into its record's artifacts and end the record (so an interrupted command leaves no
    record RUNNING; whether it counts is its state tag)."""
    try:
        for run_id, path in runs:
            tracking.log_artifact(run_id, path, BATCH_ARTIFACT)
            tracking.end_run(run_id)
    except Exception as exc:  # noqa: BLE001  (handed to the caller's thread, which raises it)
        errors.append(exc)


def record_rejected(name: str, path: Path, sha256: str, errors: list[dict[str, Any]], rejected_by: str) -> None:
    """Record a rejected batch (its failed expectations as the artifact `rejection/result.json`)."""
    run_id = _open_record(name, REJECTED, path, sha256, {"pmf.rejected_by": rejected_by})
    tracking.log_dict(run_id, {"file": str(path), "sha256": sha256, "errors": errors}, REJECTION_ARTIFACT)
    tracking.end_run(run_id)


def stored_copy(batch: StoredBatch, folder: Path) -> Path:
    """The store's copy of `batch`, downloaded into `folder` (a local store copies the file)."""
    return Path(tracking.client().download_artifacts(batch.run_id, f"{BATCH_ARTIFACT}/{batch.file}", str(folder)))


def _open_record(name: str, kind: str, path: Path, sha256: str, tags: dict[str, str]) -> str:
    experiment = tracking.ensure_experiment(name + RESERVED_SUFFIX)
    return tracking.start_run(
        experiment,
        f"{kind}-{sha256[:12]}",
        tags={"pmf.kind": kind, "pmf.batch_sha256": sha256, "pmf.batch_file": path.name, **tags},
    )


def _records(name: str, kind: str) -> list[Any]:
    """The finished records of `kind` for `name`, oldest first (every page of them)."""
    mlflow = tracking.client()
    experiment = mlflow.get_experiment_by_name(name + RESERVED_SUFFIX)
    if experiment is None:
        return []
    runs: list[Any] = []
    token = None
    while True:
        page = mlflow.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`pmf.kind` = '{kind}' and attributes.status = 'FINISHED'"
            + (f" and tags.`{STATE_TAG}` = 'trained'" if kind == TRAINED else ""),
            order_by=["attributes.start_time ASC"],
            max_results=1000,
            page_token=token,
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _stored(run: Any) -> StoredBatch:
    tags = run.data.tags
    return StoredBatch(
        tags["pmf.batch_sha256"], int(tags["pmf.batch_rows"]), tags["pmf.batch_file"], tags["pmf.batch_source"], run.info.run_id
    )
