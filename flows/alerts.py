"""Alerts: a webhook that pmf posts to when a pipeline fails, a batch is rejected, drift is found or
production moves, as Prefect sees it: one notification block (`pmf-alert-ID`, the URL kept as a
secret) and one automation per kind (`pmf-alert-ID-KIND`), both on the Prefect UI's pages.

Each alert POSTs one JSON object: `{source: "pmf", kind, model, message, occurred, links, ...}`
(`flow`, `flow_run`, `state` for a flow run; `drift` or `version`/`previous` for pmf's own events).
Only pmf's flows count (flow names `pmf-*`): another team's failing flow on a shared server does not alert.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from flows.events import DRIFT_EVENT, PRODUCTION_EVENT

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.client.orchestration import SyncPrefectClient

KINDS = ("failure", "data_rejected", "drift", "promotion")
PREFIX = "pmf-alert-"

# Prefect's flow-run events are named after the state: a rejection (Failed/Rejected) is its own kind,
# and a usage error inside a run (Failed/ConfigError) is a failure (DECISIONS: outcomes table).
FLOW_RUN_EVENTS = {
    "failure": {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.ConfigError"},
    "data_rejected": {"prefect.flow-run.Rejected"},
}
PMF_EVENTS = {"drift": DRIFT_EVENT, "promotion": PRODUCTION_EVENT}

# Jinja rendered by Prefect's SendNotification action into the webhook's JSON body (`| tojson` keeps it valid).
_MODEL_FROM_TAGS = (
    '{% set ns = namespace(model=none) %}{% for tag in flow_run.tags %}{% if tag.startswith("model:") %}'
    "{% set ns.model = tag[6:] %}{% endif %}{% endfor %}"
)
FLOW_RUN_BODY = (
    _MODEL_FROM_TAGS + '{"source": "pmf", "kind": "KIND", "model": {{ ns.model | tojson }}, '
    '"message": {{ (flow.name ~ " " ~ flow_run.name ~ " ended " ~ event.payload.validated_state.name ~ ": " '
    "~ (event.payload.validated_state.message or '')) | tojson }}, "
    '"flow": {{ flow.name | tojson }}, "flow_run": {{ flow_run.name | tojson }}, '
    '"state": {{ event.payload.validated_state.name | tojson }}, "occurred": {{ event.occurred.isoformat() | tojson }}, '
    '"links": {"prefect_flow_run": "UI/runs/flow-run/{{ flow_run.id }}"}}'
)
DRIFT_BODY = (
    '{"source": "pmf", "kind": "drift", "model": {{ event.resource["pmf.model"] | tojson }}, '
    '"message": {{ ("drift detected on " ~ event.resource["pmf.model"] ~ " v" ~ event.payload.version) | tojson }}, '
    '"drift": {{ event.payload | tojson }}, "occurred": {{ event.occurred.isoformat() | tojson }}, '
    '"links": {"prefect_events": "UI/events?resource={{ event.resource.id }}"}}'
)
PROMOTION_BODY = (
    '{"source": "pmf", "kind": "promotion", "model": {{ event.resource["pmf.model"] | tojson }}, '
    '"message": {{ (event.resource["pmf.model"] ~ "@production: v" ~ (event.payload.previous or "-") ~ " -> v" '
    '~ event.payload.version ~ " by " ~ event.payload.actor ~ " (" ~ event.payload.reason ~ ")") | tojson }}, '
    '"version": {{ event.payload.version | tojson }}, "previous": {{ event.payload.previous | tojson }}, '
    '"occurred": {{ event.occurred.isoformat() | tojson }}, '
    '"links": {"prefect_events": "UI/events?resource={{ event.resource.id }}"}}'
)


def prefect_ui_base() -> str:
    """The Prefect UI of the server the alert is created on (PREFECT_UI_URL, else the API URL without /api)."""
    from flows.ui import prefect_ui

    return prefect_ui().base


def check_webhook(url: str) -> str:
    """The URL when it is http(s) with a host; ValueError saying what is expected otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{mask_url(url)!r} is not a webhook URL: expected http:// or https:// and a host")
    return url


def parse_kinds(text: str | None) -> list[str]:
    """`failure,drift` as a list of kinds (all four when None); ValueError naming an unknown one."""
    kinds = list(KINDS) if text is None else [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown kind(s) {', '.join(unknown) or '(none)'}: expected some of {','.join(KINDS)}")
    return list(dict.fromkeys(kinds))


def mask_url(url: str) -> str:
    """The URL with what usually holds a secret hidden: credentials, the path after its first part, the query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    segments = [s for s in parts.path.split("/") if s]
    path = "/" + segments[0] + ("/***" if len(segments) > 1 else "") if segments else ""
    return f"{parts.scheme}://{host}{port}{path}" + ("?***" if parts.query else "")


def add_alert(url: str, kinds: list[str]) -> dict[str, Any]:
    """Create the notification block and one automation per kind; returns `{id, url (masked), kinds}`."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client

    alert_id = secrets.token_hex(4)
    block = CustomWebhookNotificationBlock(
        name=f"{PREFIX}{alert_id}",
        url="{{webhook}}",  # the real URL is a secret: masked in the UI and in `pmf alerts list`
        secrets={"webhook": url},
        method="POST",
        form_data="{{body}}",  # the rendered body is the JSON object itself
        headers={"Content-Type": "application/json"},
    )
    block_id = cast("UUID", block.save(f"{PREFIX}{alert_id}"))  # sync call: the id, not a coroutine
    with get_client(sync_client=True) as client:
        for kind in kinds:
            client.create_automation(alert_automation(alert_id, kind, block_id))
    return {"id": alert_id, "url": mask_url(url), "kinds": kinds}


def alert_automation(alert_id: str, kind: str, block_id: UUID) -> Any:
    from prefect.automations import AutomationCore
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    if kind in FLOW_RUN_EVENTS:
        expect = FLOW_RUN_EVENTS[kind]
        match, related = (
            {"prefect.resource.id": "prefect.flow-run.*"},
            {"prefect.resource.role": "flow", "prefect.resource.name": "pmf-*"},
        )
        body = FLOW_RUN_BODY.replace('"kind": "KIND"', f'"kind": "{kind}"')
    else:
        expect, match, related = {PMF_EVENTS[kind]}, {"prefect.resource.id": "pmf.model.*"}, {}
        body = DRIFT_BODY if kind == "drift" else PROMOTION_BODY
    # Links point at the UI pmf talks to (the server may not know its own public URL).
    body = body.replace('"UI/', '"' + prefect_ui_base() + "/")
    return AutomationCore(
        name=f"{PREFIX}{alert_id}-{kind}",
        description=f"pmf alert {alert_id}: {kind.replace('_', ' ')} → webhook (created by `pmf alerts add`)",
        trigger=EventTrigger(
            expect=expect, match=match, match_related=related, posture=Posture.Reactive, threshold=1, within=timedelta(0)
        ),
        actions=[SendNotification(block_document_id=block_id, subject=f"pmf: {kind}", body=body)],
    )


def list_alerts() -> list[dict[str, Any]]:
    """`[{id, url (masked), kinds}]`: every alert `pmf alerts add` created on this server."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        kinds = _kinds_by_alert(client)
        return [
            {"id": alert_id, "url": mask_url(_webhook_url(client, alert_id)), "kinds": found}
            for alert_id, found in sorted(kinds.items())
        ]


def remove_alert(alert_id: str) -> dict[str, Any] | None:
    """Delete the alert's automations and its block; None when there is no such alert."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        automations = [a for a in client.read_automations() if a.name.startswith(f"{PREFIX}{alert_id}-")]
        try:
            block = client.read_block_document_by_name(f"{PREFIX}{alert_id}", "custom-webhook")
        except ObjectNotFound:
            block = None
        if block is None and not automations:
            return None
        for automation in automations:
            client.delete_automation(automation.id)
        if block is not None:
            client.delete_block_document(block.id)
    return {"id": alert_id, "kinds": [a.name.rsplit("-", 1)[-1] for a in automations]}


def _kinds_by_alert(client: SyncPrefectClient) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for automation in client.read_automations():
        if automation.name.startswith(PREFIX):
            alert_id, _, kind = automation.name[len(PREFIX) :].partition("-")
            found.setdefault(alert_id, []).append(kind)
    return {alert_id: sorted(kinds, key=KINDS.index) for alert_id, kinds in found.items()}


def _webhook_url(client: SyncPrefectClient, alert_id: str) -> str:
    from prefect.exceptions import ObjectNotFound

    try:
        block = client.read_block_document_by_name(f"{PREFIX}{alert_id}", "custom-webhook", include_secrets=True)
    except ObjectNotFound:
        return "(block deleted)"
    return str(block.data.get("secrets", {}).get("webhook", block.data.get("url", "")))


def announce_production_moves(name: str, moves: list[dict[str, Any]]) -> int:
    """Emit `pmf.production.moved` for each move of NAME's production alias in `moves` (records as
    tasks.registry.lifecycle writes them); returns how many were announced.

    Never raises: the move is done and recorded, an event that cannot be sent must not undo it in the
    user's eyes. Outside a flow run it needs a real server (PREFECT_API_URL): an embedded server
    started only for the event would cost seconds and reach nobody once the command ends."""
    import logging
    import os

    from prefect.context import FlowRunContext

    from flows.events import emit_production_moved

    if FlowRunContext.get() is None and not os.environ.get("PREFECT_API_URL"):
        return 0
    announced = 0
    for move in moves:
        if move.get("alias") != "production":
            continue
        try:
            version, previous = str(move["to_version"]), move.get("from_version")
            kind = move.get("kind", "promote") + (" (forced)" if move.get("forced") else "")
            reason = f"{kind}: {move.get('reason') or 'no reason given'}"
            announced += emit_production_moved(name, version, str(previous) if previous else None, str(move.get("actor")), reason)
        except Exception:  # see the docstring: a lost event is logged, never raised
            logging.getLogger("pmf").warning("could not announce %s@production's move to Prefect", name, exc_info=True)
    return announced
