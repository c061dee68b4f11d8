"""Manual approval: the promotion pauses in Prefect with an input form; `pmf promote --approve/--reject` answers it."""

from __future__ import annotations

import threading
import time

import pytest

from tasks.registry import lifecycle
from tasks.registry.promotion_settings import PromotionSettings
from tests.flows.helpers import pmf
from tests.registry.store import NAME

pytestmark = pytest.mark.slow

SETTINGS = PromotionSettings(slice_columns=("island", "sex"), champion_margin=0.01, manual_approval=True, approval_timeout_s=120)


def start_waiting_promotion(version: str) -> tuple[threading.Thread, dict]:
    from flows.promote_flow import promote_flow, waiting_approvals

    outcome: dict = {}

    def run() -> None:
        outcome.update(promote_flow(NAME, version, "production", SETTINGS, reason="needs a human"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not waiting_approvals(NAME, version):
        assert time.monotonic() < deadline, f"the promotion never paused: {outcome}"
        assert thread.is_alive(), f"the promotion never paused: {outcome}"
        time.sleep(0.5)
    return thread, outcome


@pytest.mark.usefixtures("prefect_harness")
def test_approve_and_reject_from_the_command_line(store):
    thread, outcome = start_waiting_promotion("1")
    assert lifecycle.alias_version(NAME, lifecycle.STAGING) == "1"  # infra check done, waiting before production
    assert lifecycle.alias_version(NAME, lifecycle.PRODUCTION) is None
    code, answer = pmf("promote", NAME, "--version", "1", "--to", "production", "--approve", "--reason", "looks good")
    assert code == 0
    assert answer["status"] == "approved"
    assert len(answer["flow_runs"]) == 1
    thread.join(120)
    assert outcome["promoted"]
    assert lifecycle.alias_version(NAME, lifecycle.PRODUCTION) == "1"

    thread, outcome = start_waiting_promotion("3")
    code, answer = pmf("promote", NAME, "--version", "3", "--to", "production", "--reject")
    assert code == 0
    assert answer["status"] == "rejected"
    thread.join(120)
    assert not outcome["promoted"]
    assert lifecycle.alias_version(NAME, lifecycle.PRODUCTION) == "1"
    assert any("reject" in reason for reason in outcome["reasons"]), outcome["reasons"]

    code, answer = pmf("promote", NAME, "--version", "3", "--to", "production", "--approve")
    assert code == 2
    assert "waiting for approval" in answer["error"]
