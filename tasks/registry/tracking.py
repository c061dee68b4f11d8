"""Everything MLflow goes through this module: runs, params, metrics, artifacts, suites, registry.

Every call names its run id explicitly (MlflowClient, not the fluent API's thread-local active
run), so stages submitted to other threads log into the right run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tasks import processes
from tasks.workspace import artifact_root, sqlite_path, tracking_uri, workspace_lock

PARENT_RUN_TAG = "mlflow.parentRunId"

_prepared_stores: set[str] = set()


def client() -> Any:
    from mlflow import MlflowClient

    uri = tracking_uri()
    if uri not in _prepared_stores:
        _prepare_store(uri)
        _prepared_stores.add(uri)
    return MlflowClient(tracking_uri=uri)


def _prepare_store(uri: str) -> None:
    """Create a SQLite store's tables once, under a workspace lock, with its default artifact root under PMF_HOME.

    Two commands opening a fresh store at once would both run MLflow's migrations and one would
    fail; MLflow would also record ./mlruns of the current folder as the Default experiment's home.
    """
    database = sqlite_path(uri)
    if database is None:
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    database.parent.mkdir(parents=True, exist_ok=True)
    with workspace_lock("mlflow-store"):
        store = SqlAlchemyStore(uri, artifact_root() or database.parent.joinpath("artifacts").as_uri())
        store.engine.dispose()


def ensure_experiment(name: str) -> str:
    """The experiment for a dataset name; a database-backed store keeps its artifacts under PMF_HOME."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    root = artifact_root()
    try:
        return mlflow_client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
    except MlflowException as exc:  # created concurrently by another run: use theirs
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is None:
            raise exc from None
        return experiment.experiment_id


def start_run(experiment_id: str, run_name: str, parent_run_id: str | None = None, tags: dict[str, str] | None = None) -> str:
    """Open a run; the command's process record lists it, so a kill -9 leaves nothing RUNNING for good."""
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags[PARENT_RUN_TAG] = parent_run_id
    run = client().create_run(experiment_id, run_name=run_name, tags=all_tags)
    processes.note_run(run.info.run_id)
    return run.info.run_id


def end_run(run_id: str, status: str = "FINISHED") -> None:
    client().set_terminated(run_id, status=status)


@contextmanager
def stage_run(experiment_id: str, parent_run_id: str, stage: str) -> Iterator[str]:
    """A child run for one stage: FINISHED when the block ends, FAILED if it raises, KILLED if the
    command was interrupted (also a stage in another thread that finishes after the interruption)."""
    run_id = start_run(experiment_id, stage, parent_run_id, {"pmf.stage": stage})
    try:
        yield run_id
    except BaseException as exc:
        end_run(run_id, "KILLED" if processes.is_interruption(exc) else "FAILED")
        raise
    end_run(run_id, "KILLED" if processes.INTERRUPTED.is_set() else "FINISHED")


def close_open_runs(run_ids: list[str], status: str = "KILLED", uri: str | None = None) -> dict[str, str]:
    """End the runs among `run_ids` that are still RUNNING with `status`.

    Returns each run's status afterwards, with `+` in front where this call set it (e.g. "+KILLED").
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    mlflow_client = MlflowClient(tracking_uri=uri) if uri else client()
    statuses = {}
    for run_id in run_ids:
        try:
            statuses[run_id] = mlflow_client.get_run(run_id).info.status
            if statuses[run_id] == "RUNNING":
                mlflow_client.set_terminated(run_id, status=status)
                statuses[run_id] = f"+{status}"
        except MlflowException as exc:
            if store_unreachable(exc):
                break  # a server that does not answer: each further run would wait out its retries too
            continue  # deleted since: nothing to close
    return statuses


# ---- a tracking server that does not answer ------------------------------------------------------


class TrackingServerUnreachable(RuntimeError):
    """The MLflow tracking server did not answer within pmf's retries; the message is one line naming it."""


def store_unreachable(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is a failed connection to the tracking server, not an answer from it."""
    return _connection_failure(exc) is not None


def _connection_failure(exc: BaseException, http_only: bool = False) -> BaseException | None:
    """The failed connection in `exc`'s chain; `http_only`: only one of `requests` (MLflow's HTTP client), not
    another client's refused socket (Dask's, Prefect's), which must not be blamed on the MLflow server."""
    import requests

    kinds: tuple[type[BaseException], ...] = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds if http_only else (*kinds, ConnectionError)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def unreachable_message(exc: BaseException) -> str | None:
    """One line for a tracking server that did not answer (None when `exc` is something else): which server,
    what happened to the connection, how often it was tried, what to do."""
    import requests

    uri = tracking_uri()
    failure = _connection_failure(exc, http_only=True)
    if failure is None or not uri.startswith(("http://", "https://")):
        return None
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    text = str(failure).lower()
    if isinstance(failure, requests.exceptions.Timeout) or "timed out" in text or "timeout" in text:
        why = f"no answer within {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT', '120')} s"
    elif "refused" in text:
        why = "connection refused"
    else:
        why = "the connection failed"
    return (
        f"the MLflow tracking server at {uri} did not answer ({why}; {_tries(int(retries) + 1)}): "
        "check that it is running (`pmf team up`, `pmf server start`), then run the command again"
    )


def log_params(run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, _short(v)) for k, v in params.items()]
    for start in range(0, len(items), 100):
        client().log_batch(run_id, params=items[start : start + 100])


def log_metrics(run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None and v == v]
    if items:
        client().log_batch(run_id, metrics=items)


def log_batch(run_id: str, params: dict[str, Any], metrics: list[Any]) -> None:
    """Params and `mlflow.entities.Metric`s (each with its own step) in one request (at most 100 params)."""
    from mlflow.entities import Param

    client().log_batch(run_id, params=[Param(k, _short(v)) for k, v in params.items()], metrics=metrics)


def set_tags(run_id: str, tags: dict[str, Any]) -> None:
    from mlflow.entities import RunTag

    client().log_batch(run_id, tags=[RunTag(k, _short(v, 5000)) for k, v in tags.items()])


def log_artifact(run_id: str, path: Path, artifact_path: str | None = None) -> None:
    if path.is_dir():
        client().log_artifacts(run_id, str(path), artifact_path)
    else:
        client().log_artifact(run_id, str(path), artifact_path)


def log_dict(run_id: str, payload: Any, artifact_file: str) -> None:
    client().log_dict(run_id, payload, artifact_file)


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    client().log_text(run_id, text, artifact_file)


def _short(value: Any, limit: int = 6000) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:limit]


# ---- registry ----------------------------------------------------------------------------------


def register_version(
    model_uri: str,
    name: str,
    run_id: str,
    tags: dict[str, str],
    alias: str,
    describe: Callable[[str], None] | None = None,
    model_id: str | None = None,
) -> str:
    """Create a model version with its tags and alias, or nothing: a failure deletes the half-made version.

    `model_id`: the logged model behind `model_uri`; the version links to it (the UI shows its metrics
    on the version's page) and it lists the version, as `mlflow.register_model` does.
    `describe(version)` runs once the version exists, before its alias is set (its card: the
    description and artifact need the version number); if it fails, the version is deleted too."""
    mlflow_client = client()
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # only "already registered" is expected here
            raise
    version = _create_version(mlflow_client, name, model_uri, run_id, tags, model_id)
    try:
        _wait_ready(name, version.version)
        if model_id is not None:
            listed = json.loads(mlflow_client.get_logged_model(model_id).tags.get("mlflow.modelVersions") or "[]")
            mlflow_client.set_logged_model_tags(
                model_id, {"mlflow.modelVersions": json.dumps([*listed, {"name": name, "version": str(version.version)}])}
            )
        if describe is not None:
            describe(str(version.version))
        from tasks.registry.lifecycle import registry_lock

        # Under the model's lock like every alias move: a tracking server on PostgreSQL answers two
        # first-time writes of one alias at once with a duplicate-key error (UniqueViolation) for one of them.
        with registry_lock(name):
            mlflow_client.set_registered_model_alias(name, alias, version.version)
    except BaseException:
        mlflow_client.delete_model_version(name, version.version)
        raise
    return str(version.version)


VERSION_ATTEMPTS = 5


def _create_version(
    mlflow_client: Any, name: str, model_uri: str, run_id: str, tags: dict[str, str], model_id: str | None
) -> Any:
    """A new version of `name`. A tracking server numbers versions max + 1 and tries 3 times when a concurrent
    registration took the number; more registrations at once can exhaust that: try again, with a pause."""
    import random

    from mlflow.exceptions import MlflowException

    for attempt in range(1, VERSION_ATTEMPTS + 1):
        try:
            return mlflow_client.create_model_version(name, model_uri, run_id=run_id, tags=tags, model_id=model_id)
        except MlflowException as exc:
            if "Model Version creation error" not in str(exc) or attempt == VERSION_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.1, 0.5) * attempt)  # noqa: S311  (jitter between registrations, not security)
    raise AssertionError("unreachable")


def describe_version(name: str, version: str, description: str) -> None:
    client().update_model_version(name, version, description=description)


def describe_model(name: str, description: str) -> None:
    """Set a registered model's description, creating the model if it is not there yet."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client()
    try:
        mlflow_client.create_registered_model(name, description=description)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        mlflow_client.update_registered_model(name, description=description)


def _wait_ready(name: str, version: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        status = client().get_model_version(name, version).status
        if status == "READY":
            return
        if status == "FAILED_REGISTRATION" or time.monotonic() > deadline:
            raise RuntimeError(f"model version {name} v{version} did not become ready (status {status})")
        time.sleep(0.2)


def aliases_of(name: str, version: str) -> list[str]:
    return list(client().get_model_version(name, version).aliases)


def git_commit(folder: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder or Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# Where `mlflow ui --backend-store-uri <the store>` listens by default; PMF_MLFLOW_UI_URL says otherwise.
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"


def ui_base() -> tuple[str, bool]:
    """(base URL of the MLflow UI for this store, whether it is the tracking server itself).

    A tracking server (`http(s)://` MLFLOW_TRACKING_URI) serves its own UI. A store on disk has no
    UI until someone runs `mlflow ui` on it: PMF_MLFLOW_UI_URL if set, else `mlflow ui`'s default address;
    while `pmf server start`'s MLflow server serves this store at that address, that is its UI."""
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/"), True
    base = os.environ.get("PMF_MLFLOW_UI_URL", DEFAULT_MLFLOW_UI).rstrip("/")
    return base, base == _local_server_mlflow_url(uri)


def _local_server_mlflow_url(uri: str) -> str | None:
    """The MLflow server `pmf server start` runs while it is up, if `uri` is the store it serves (the workspace's)."""
    from tasks.local_server import running_server
    from tasks.workspace import default_tracking_uri, pmf_home

    server = running_server() if uri == default_tracking_uri(pmf_home()) else None
    return server.mlflow_url.rstrip("/") if server is not None else None


def run_url(experiment_id: str, run_id: str) -> str:
    """A link to a run in the MLflow UI (see `ui_base`)."""
    return f"{ui_base()[0]}/#/experiments/{experiment_id}/runs/{run_id}"


def model_version_url(name: str, version: str) -> str:
    """A link to a registered model version in the MLflow UI (see `ui_base`)."""
    from urllib.parse import quote

    return f"{ui_base()[0]}/#/models/{quote(name, safe='')}/versions/{version}"


def source_tags(entry_point: str) -> dict[str, str]:
    """MLflow's own source fields (the runs table's Source and Version columns, the User column)."""
    import getpass

    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": entry_point}
    with contextlib.suppress(KeyError, OSError):  # no user name in a bare container: leave the column empty
        tags["mlflow.user"] = getpass.getuser()
    commit = git_commit()
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit
    return tags


def log_dataset(run_id: str, frame: Any, path: Any, sha256: str, context: str, target: str | None = None) -> None:
    """Record a batch as the run's MLflow dataset input (the runs table's Dataset column).

    The digest is the file's SHA-256 cut to MLflow's digest length (the full hash is in `pmf.data_sha256`).
    MLflow infers the schema from the first rows (a column's dtype is the same in every row; inferring it
    from a million rows took 5 s) and the profile (rows, cells) is the whole frame's. `path` is the file, or
    a source that is not one (tasks.data.sql_source.SqlSource: its `source_type` and `describe()` facts,
    the URL's password masked, are the dataset's source)."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ii]nferred schema.*")
        warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways.*")  # a local path: either reader
        sample = from_pandas(
            frame.head(SCHEMA_SAMPLE_ROWS),
            source=str(path) if isinstance(path, Path) else CodeDatasetSource({}),  # replaced below: no MLflow reader
            name=path.name,
            digest=sha256[:DATASET_DIGEST_CHARS],
            targets=target if target in frame.columns else None,
        )
        described = sample._to_mlflow_entity()  # MLflow's own route from a dataset to the entity log_inputs takes
    source_type, source = (
        (described.source_type, described.source)
        if isinstance(path, Path)
        else (path.source_type, json.dumps(path.describe(len(frame), sha256)))
    )
    entity = Dataset(
        described.name,
        described.digest,
        source_type,
        source,
        described.schema,
        json.dumps({"num_rows": len(frame), "num_elements": int(frame.size)}),
    )
    client().log_inputs(run_id, datasets=[DatasetInput(entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])])


DATASET_DIGEST_CHARS = 16  # MLflow keeps at most 36 characters of a digest
SCHEMA_SAMPLE_ROWS = 1000


PYFUNC_REQUIREMENTS = ["mlflow==3.17.2", "pandas==3.1.1", "numpy==2.4.6", "ai-edge-litert==2.3.0"]


def log_pyfunc_model(
    run_id: str,
    package_dir: Path,
    input_example: Any,
    output_example: Any,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Log the shipped model (preprocessor + TFLite) as a pyfunc owned by run `run_id`; (model URI, model id).

    The logged model is created first with its source run, params and tags, then filled without a
    fluent active run: `mlflow.start_run(run_id=...)` would end the run on exit, and `run_id` is the
    pipeline's parent run, which must stay RUNNING until the flow closes it."""
    import mlflow
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import infer_signature

    import tasks.serving.pyfunc as pyfunc_source

    mlflow_client = client()
    experiment_id = mlflow_client.get_run(run_id).info.experiment_id
    logged = mlflow_client.create_logged_model(
        experiment_id,
        name="model",
        source_run_id=run_id,
        model_type="pmf-litert",
        params={k: _short(v) for k, v in (params or {}).items()},
        tags=tags,
    )
    # The fluent API below reads MLFLOW_TRACKING_URI; never mlflow.set_tracking_uri, a process-wide
    # setting that would outlive this call and point later calls at another store.
    os.environ.setdefault("MLFLOW_TRACKING_URI", tracking_uri())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*type hints to the `predict` method.*")
        # Integer columns are kept as the CSV reads them (see tasks.registry.register.input_example).
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column.*")
        signature = infer_signature(input_example, output_example)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=pyfunc_source.__file__,
            artifacts={"package": str(package_dir)},
            signature=signature,
            input_example=input_example,
            pip_requirements=PYFUNC_REQUIREMENTS,
            model_id=logged.model_id,
        )
    mlflow_client.finalize_logged_model(logged.model_id, "READY")
    mlflow_client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])  # the run's "Logged models" tab
    return info.model_uri, logged.model_id


def log_model_metrics(run_id: str, model_id: str, metrics: dict[str, float]) -> None:
    """Metrics of a logged model (shown on its page and the version's), recorded by run `run_id`."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, 0, model_id=model_id) for k, v in metrics.items() if v is not None and v == v]
    if items:
        client().log_batch(run_id, metrics=items)


def _tries(count: int) -> str:
    return "tried once" if count == 1 else f"tried {count} times"
