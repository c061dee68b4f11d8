"""What the Prefect and MLflow UIs show about a pmf flow run: its name and tags, its final state, links both ways.

Links are built from the URLs in use (see `links`): the MLflow UI of the tracking server (or of
`mlflow ui` on the store on disk), the Prefect UI of the API this run reported to (or, for Prefect's
embedded server, which stops with the command, the UI `prefect server start` serves on the same data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.states import Completed, Failed, State

# Prefect state (type, name) per outcome: DECISIONS.md "Outcomes of a flow run, everywhere at once".
STATES = {
    "promoted": (Completed, "Promoted"),
    "not_promoted": (Completed, "NotPromoted"),
    "no_new_data": (Completed, "NoNewData"),
    "valid": (Completed, "Valid"),
    "drift": (Completed, "Drift"),  # a drift check (pmf-monitor) completes whatever its verdict
    "no_drift": (Completed, "NoDrift"),
    "not_enough_data": (Completed, "NotEnoughData"),
    "data_rejected": (Failed, "Rejected"),
    "usage_error": (Failed, "ConfigError"),
    "failed": (Failed, "Failed"),
}


def final_state(outcome: str, message: str, data: Any) -> State:
    """The flow run's final state: a flow returns it and Prefect records it as given (`return_value_to_state`)."""
    make, name = STATES[outcome]
    return make(name=name, message=message, data=data)


def run_tags(model: str, trigger: str) -> list[str]:
    """Tags a pmf flow run starts with; `outcome:<outcome>` is added when it ends (`add_tags`)."""
    return ["pmf", f"model:{model}", f"trigger:{trigger}"]


def add_tags(flow_run_id: str | None, tags: list[str]) -> None:
    """Add `tags` to a flow run (a flow cannot set its own tags after it started, the API can)."""
    if not flow_run_id:
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        run_id = UUID(str(flow_run_id))
        current = prefect.read_flow_run(run_id).tags
        prefect.update_flow_run(run_id, tags=[*current, *(t for t in tags if t not in current)])


@dataclass(frozen=True)
class PrefectUI:
    base: str
    live: bool  # False: Prefect's embedded server, gone once the command ends


def prefect_ui() -> PrefectUI:
    """PREFECT_UI_URL, else PREFECT_API_URL without /api (Prefect derives one from the other); with neither,
    the flow ran on the embedded server: its data stays under PREFECT_HOME, and `prefect server start`
    serves it at PREFECT_SERVER_API_HOST:PORT (127.0.0.1:4200 by default)."""
    from prefect.settings import PREFECT_SERVER_API_HOST, PREFECT_SERVER_API_PORT, PREFECT_UI_URL

    configured = PREFECT_UI_URL.value()
    if configured:
        return PrefectUI(configured.rstrip("/"), True)
    host = PREFECT_SERVER_API_HOST.value()
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 (a server on every interface answers on loopback)
    return PrefectUI(f"http://{host}:{PREFECT_SERVER_API_PORT.value()}", False)


def links(
    flow_run_id: str | None, experiment_id: str, run_id: str, model: str | None = None, version: str | None = None
) -> dict[str, str | None]:
    """`{mlflow_run, prefect_flow_run, model_version}`: URLs to the run in both UIs and to the registered version."""
    from tasks.registry import tracking

    return {
        "mlflow_run": tracking.run_url(experiment_id, run_id),
        "prefect_flow_run": f"{prefect_ui().base}/runs/flow-run/{flow_run_id}" if flow_run_id else None,
        "model_version": tracking.model_version_url(model, version) if model and version else None,
    }


def how_to_open() -> dict[str, str]:
    """`{"mlflow": ..., "prefect": ...}`: what a link needs when nothing serves it now (a store on disk, the
    embedded Prefect server); a UI that serves its links itself has no entry."""
    from tasks.registry import tracking
    from tasks.workspace import tracking_uri

    notes = {}
    base, server = tracking.ui_base()
    if not server:
        notes["mlflow"] = (
            f"MLflow links need `mlflow ui --backend-store-uri {tracking_uri()}` running (at {base}; "
            "set PMF_MLFLOW_UI_URL if it listens elsewhere)."
        )
    if not prefect_ui().live:
        notes["prefect"] = (
            "Prefect's embedded server stopped with the command: `prefect server start` "
            f"(same PREFECT_HOME) serves this run at {prefect_ui().base}."
        )
    return notes


def outcome_markdown(title: str, message: str, run_links: dict[str, str | None], details: list[str]) -> str:
    """The markdown both UIs show: MLflow's run description and Prefect's summary artifact."""
    labels = {"mlflow_run": "MLflow run", "prefect_flow_run": "Prefect flow run", "model_version": "registered model version"}
    lines = [f"# {title}", "", f"**{message}**", ""]
    lines += [f"- {labels[k]}: [{url}]({url})" for k, url in run_links.items() if url]
    lines += [f"- {note}" for note in how_to_open().values()]
    return "\n".join([*lines, "", *details]).rstrip() + "\n"


def failed_expectations_table(errors: list[dict[str, Any]]) -> list[str]:
    """The failed expectations of a rejected batch as a markdown table (one row each, cells kept short)."""
    lines = ["## failed expectations", "", "| column | expectation | expected | observed |", "|---|---|---|---|"]
    lines += [
        f"| {_cell(e.get('column') or '(table)')} | {_cell(e.get('expectation'))} | {_cell(e.get('expected'))} | "
        f"{_cell(_observed(e.get('observed')))} |"
        for e in errors
    ]
    return lines


def gate_table(gates: list[dict[str, Any]]) -> list[str]:
    """The evaluation gate, failed rules first; ! marks a warn-only rule that failed."""
    ordered = sorted(gates, key=lambda g: g["passed"])
    lines = ["## evaluation gate (test split)", "", "| rule | value | threshold | verdict |", "|---|---|---|---|"]
    lines += [
        f"| {g['name']} | {_number(g['value'])} | {g['op']} {_number(g['threshold'])} | "
        f"{'✓ passed' if g['passed'] else '! warning' if g.get('severity') == 'warn' else '✗ failed'} |"
        for g in ordered
    ]
    return lines


def _observed(observed: Any) -> Any:
    if isinstance(observed, dict) and "unexpected_count" in observed:
        examples = observed.get("partial_unexpected_list", [])[:5]
        return f"{observed['unexpected_count']} rows ({observed.get('unexpected_percent', 0):.1f}%), e.g. {examples}"
    return observed


def _number(value: Any) -> str:
    return "missing" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _cell(value: Any, limit: int = 160) -> str:
    text = "" if value is None else str(value)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|").replace("\n", " ")
