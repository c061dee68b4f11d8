"""`pmf promote`: infra check → staging → champion gate → (approval) → production, as one Prefect flow run.

The logic lives in `tasks.registry.promotion`; this flow adds what Prefect is for: a run in the UI with a
markdown report of every check, and, when `manual_approval` is on, a pause that waits for a
person to approve or refuse the production move from the Prefect UI (an input form).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.states import Completed, State

from flows import ui
from flows.alerts import announce_production_moves
from tasks.registry.promotion import promote_version
from tasks.registry.promotion_settings import PromotionSettings


class ProductionApproval(RunInput):
    """The form shown in the Prefect UI when a promotion to production waits for approval."""

    approve: bool = False
    note: str = ""


@flow(name="pmf-promote", flow_run_name="{name} v{version} → {to}", log_prints=False)
def promote_flow(
    name: str,
    version: str,
    to: str = "production",
    settings: PromotionSettings | None = None,
    reason: str = "",
    force: bool = False,
    actor: str | None = None,
    trigger: str = "manual",
) -> State:
    """Ends Completed/`Promoted` or Completed/`NotPromoted` with every reason in the message; calling it
    returns the result dict (Prefect returns a Completed state's data). `trigger`: what started the
    pipeline that promotes (a drift-triggered retrain's promotion is tagged `trigger:drift`)."""
    if settings is None:  # a deployment run or a bare call: the version's own stored settings, as `pmf promote` uses
        from tasks.registry.promotion import settings_for_version

        settings = settings_for_version(name, str(version))
    ui.add_tags(str(flow_run.id) if flow_run.id else None, ui.run_tags(name, trigger))
    result = promote_version(
        name,
        str(version),
        to,
        settings,
        reason,
        force,
        actor,
        approve=_ask_in_prefect_ui(settings) if settings.manual_approval else None,
    )
    announce_production_moves(name, result["moves"])  # alerts and automations on `pmf.production.moved`
    create_markdown_artifact(
        key="pmf-promotion", markdown=promotion_markdown(result), description=f"promotion of {name} v{version}"
    )
    verdict = "promoted" if result["promoted"] else "not_promoted"
    message = (
        f"promoted: {name} v{version} is @{to}"
        if result["promoted"]
        else f"not promoted to @{to}: {'; '.join(result['reasons']) or 'refused'}"
    )
    get_run_logger().info("%s", message)
    ui.add_tags(str(flow_run.id) if flow_run.id else None, [f"outcome:{verdict}"])
    return Completed(name=ui.STATES[verdict][1], message=message, data=result)


def _ask_in_prefect_ui(settings: PromotionSettings):
    def approve(summary: dict[str, Any]) -> tuple[bool, str]:
        from prefect.flow_runs import pause_flow_run

        get_run_logger().warning(
            "%s v%s passed every check and waits for approval in the Prefect UI (%d s)",
            summary["name"],
            summary["version"],
            settings.approval_timeout_s,
        )
        answer = pause_flow_run(wait_for_input=ProductionApproval, timeout=settings.approval_timeout_s)
        return answer.approve, answer.note or "no note"

    return approve


def waiting_approvals(name: str, version: str | None = None) -> list[Any]:
    """Paused `pmf-promote` flow runs of this model (and version) that wait for an answer."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["pmf-promote"])), flow_run_filter=paused)
    return [
        r
        for r in runs
        if r.parameters.get("name") == name and (version is None or str(r.parameters.get("version")) == str(version))
    ]


def answer_approval(name: str, version: str, approve: bool, note: str) -> list[str]:
    """Resume every paused promotion of `name` v`version` with the answer; returns their flow run ids.

    The same form the Prefect UI shows, filled from the command line (`pmf promote --approve/--reject`)."""
    from prefect.flow_runs import resume_flow_run

    answered = []
    for run in waiting_approvals(name, version):
        resume_flow_run(run.id, run_input={"approve": approve, "note": note})
        answered.append(str(run.id))
    return answered


def promotion_markdown(result: dict[str, Any]) -> str:
    verdict = "promoted" if result["promoted"] else "not promoted"
    lines = [f"# {result['name']} v{result['version']} → {result['target']}: {verdict}", ""]
    lines += [f"- {reason}" for reason in result["reasons"]] + [""]
    for check in (result.get("infra_check"), result.get("champion_gate")):
        if check:
            lines += [
                f"## {check['name']}: {'passed' if check['passed'] else 'failed'}",
                "",
                "| rule | value | threshold | passed |",
                "|---|---|---|---|",
            ]
            lines += [
                f"| {r['name']} | {_fmt(r['value'])} | {r['op']} {_fmt(r['threshold'])} | {r['passed']} |"
                for r in check["results"]
            ]
            lines.append("")
    if result.get("comparison"):
        lines += [
            "## comparison (held-out split)",
            "",
            "| scope | metric | candidate | champion | delta |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['scope']} | {r['metric']} | {_fmt(r['candidate'])} | {_fmt(r['champion'])} | {_fmt(r['delta'])} |"
            for r in result["comparison"]
        ]
    lines += ["", f"aliases: {result.get('aliases')}"]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
