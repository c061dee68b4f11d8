"""What a retrain runs on and why it runs: the name's request (config, batches) and its trigger."""

from __future__ import annotations

from pathlib import Path

from tasks.config import ConfigError, RunRequest, check_name, load_config
from tasks.workspace import pmf_home

TRIGGERS = ("manual", "schedule", "drift")


def incoming_folder(name: str) -> Path:
    """Where a name's new batches arrive by default: `$PMF_HOME/incoming/NAME/`."""
    return pmf_home() / "incoming" / name


def retrain_request(name: str, data: str | None, incoming: str | None) -> RunRequest:
    """The request a retrain of `name` runs: its recorded config (else the defaults) and, as `data`, the one
    batch file (`data`) or the folder its new batches are in. ConfigError (exit 2) for a name never
    trained, both `data` and `incoming`, or a path that is not there."""
    from tasks.registry import tracking
    from tasks.registry.datasets import latest_suite, recorded_config

    check_name(name, "NAME")
    if data and incoming:
        raise ConfigError("pass --data PATH or --incoming DIR, not both")
    experiment = tracking.client().get_experiment_by_name(name)
    if experiment is None or latest_suite(experiment.experiment_id) is None:
        raise ConfigError(f"no dataset named {name!r}: train its first batch with `pmf run --data FILE --name {name}`")
    source = _source(name, data, incoming)
    recorded = recorded_config(name)
    if recorded is None:
        return RunRequest(data=source, name=name, cfg=load_config(), config_source="defaults")
    cfg = load_config(None, [], base=recorded.document, origin=f"the config recorded with {name!r} (v{recorded.version})")
    return RunRequest(data=source, name=name, cfg=cfg, config_source=f"recorded v{recorded.version}")


def _source(name: str, data: str | None, incoming: str | None) -> Path:
    if data:
        path = Path(data).expanduser()
        if not path.is_file():
            raise ConfigError(f"--data {data}: no such file (expected a CSV or Parquet batch)")
        return path.resolve()
    if incoming:
        folder = Path(incoming).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"--incoming {incoming}: no such folder (expected the folder new batches arrive in)")
        return folder.resolve()
    return incoming_folder(name)  # may not exist yet: nothing has arrived, no new data


def run_trigger(requested: str, drift: dict | None, auto_scheduled: bool) -> str:
    """`drift` when a drift summary came with the run, `schedule` when a schedule created it, else what the
    caller said (`manual` by default). ConfigError for a trigger pmf does not know."""
    if requested not in TRIGGERS:
        raise ConfigError(f"trigger {requested!r}: expected one of {', '.join(TRIGGERS)}")
    if drift:
        return "drift"
    return "schedule" if auto_scheduled else requested
