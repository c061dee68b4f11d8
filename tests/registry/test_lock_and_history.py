"""The promotion lock (never a user's model, a dead holder taken over, a message with a way out), a history that
survives any record, and stored promotion settings that fail loudly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tasks.registry import lifecycle, tracking
from tasks.registry.promotion import StoredConfigError, settings_for_version
from tests.registry.store import NAME

pytestmark = pytest.mark.slow


def pmf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=300, env=os.environ.copy()
    )


def hold_lock(pid: int, host: str | None = None, expires_in_s: float = 3600) -> str:
    """A lock as a promotion in process `pid` on `host` leaves it (crashed or still running)."""
    lock_name = lifecycle.lock_names(NAME)[0]
    tracking.client().create_registered_model(
        lock_name,
        tags={
            lifecycle.LOCK_FOR_TAG: NAME,
            "pmf.lock.owner": f"alice:{host or socket.gethostname()}:{pid}:abcd1234",
            "pmf.lock.actor": "alice",
            "pmf.lock.host": host or socket.gethostname(),
            "pmf.lock.pid": str(pid),
            "pmf.lock.since": "2026-11-02T10:00:00Z",
            "pmf.lock.expires": str(time.time() + expires_in_s),
        },
    )
    return lock_name


def finished_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(30)
    return process.pid


# ---- the lock ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("user_model", [NAME + ".pmf-lock", NAME + "~pmf-lock"])
def test_a_user_model_with_a_lock_name_never_blocks_a_promotion_and_is_listed(store, user_model):
    tracking.client().create_registered_model(user_model, description="a real model of the user's")
    started = time.monotonic()
    with lifecycle.registry_lock(NAME, timeout_s=5):
        assert lifecycle.current_lock(NAME)["lock_name"] not in (user_model,)
    assert time.monotonic() - started < 5
    record = lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "with a user's model named like a lock")
    assert record["to_version"] == "1"
    assert {m["name"] for m in lifecycle.list_models()} == {NAME, user_model}  # the user's model is listed, no lock is
    assert lifecycle.current_lock(NAME) is None


def test_a_lock_left_by_a_dead_process_is_taken_over_at_once(store):
    hold_lock(finished_pid())
    started = time.monotonic()
    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "after a crash", verified=None)
    assert time.monotonic() - started < 10  # not the 120 s wait nor the 1 h lease
    assert lifecycle.alias_version(NAME, lifecycle.PRODUCTION) == "1"
    assert lifecycle.current_lock(NAME) is None


def test_a_live_or_remote_holder_is_waited_for_and_the_message_says_who_and_how_to_clear_it(store):
    for host, pid in ((None, os.getpid()), ("build-agent-7", finished_pid())):  # alive here; another host: cannot tell
        lock_name = hold_lock(pid, host)
        with pytest.raises(lifecycle.LockTimeout) as raised, lifecycle.registry_lock(NAME, timeout_s=0.3):
            pass
        message = str(raised.value)
        assert f"held by alice, pid {pid} on {host or socket.gethostname()}" in message
        assert "since 2026-11-02T10:00:00Z" in message
        assert "expires at 20" in message
        assert f"`pmf models {NAME} --unlock`" in message
        assert repr(lock_name) in message
        done = pmf("models", NAME, "--unlock")
        assert done.returncode == 0, done
        assert "removed the promotion lock held by alice" in done.stdout, done
        assert lifecycle.current_lock(NAME) is None
    assert pmf("models", NAME, "--unlock").stdout.strip() == f"{NAME}: no promotion lock is held"


def test_an_expired_lock_from_another_host_is_taken_over(store):
    hold_lock(12345, "build-agent-7", expires_in_s=-1)
    with lifecycle.registry_lock(NAME, timeout_s=5) as owner:
        assert lifecycle.current_lock(NAME)["owner"] == owner


# ---- history --------------------------------------------------------------------------------------


def test_a_huge_reason_is_bounded_not_cut_and_every_command_keeps_working(store):
    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "first")
    done = pmf("rollback", NAME, "--to", "3", "--reason", "x" * 20_000, "--json")
    assert done.returncode == 0, done.stderr
    stored = tracking.client().get_registered_model(NAME).tags[lifecycle._history_key(2)]
    record = json.loads(stored)  # the whole record parses
    assert len(record["reason"]) == lifecycle.MAX_REASON_CHARS
    assert record["reason"].endswith("[cut: 20000 characters in all]")
    assert record["to_version"] == "3"
    done = pmf("models", NAME)
    assert done.returncode == 0
    assert "[cut: 20000 characters in all]" in done.stdout
    assert lifecycle.rollback(NAME)["to_version"] == "1"


def test_an_unreadable_history_record_breaks_nothing_else(store):
    for version in ("1", "2"):
        lifecycle.move_alias(NAME, lifecycle.PRODUCTION, version, f"promote {version}")
    client = tracking.client()
    client.set_registered_model_tag(NAME, "pmf.history.000003", '{"alias": "production", "to_version": "3", "rea')
    client.set_registered_model_tag(NAME, "pmf.history.000004", '["not", "a", "record"]')
    client.set_registered_model_tag(NAME, "pmf.history.latest", '{"alias": "production", "to_version": "1"}')

    records = lifecycle.history(NAME)
    assert [r.get("unreadable", False) for r in records] == [False, False, True, True, True]
    done = pmf("models", NAME)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("unreadable record") == 3
    assert "promote 2" in done.stdout
    record = lifecycle.rollback(NAME, reason="skips what it cannot read")
    assert (record["from_version"], record["to_version"], record["seq"]) == ("2", "1", 5)
    assert pmf("models", NAME, "--json").returncode == 0


# ---- stored promotion settings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ('{"promotion": {"champion_margin": 0.01', "is not valid JSON"),
        ('["a list"]', "is not a pmf config"),
        ('{"promotion": {"champion_margin": -1}}', "promotion.champion_margin: Input should be greater than or equal to 0"),
    ],
)
def test_a_stored_config_that_cannot_be_read_fails_loudly(store, stored, expected):
    tracking.client().set_model_version_tag(NAME, "3", "pmf.config", stored)
    with pytest.raises(StoredConfigError, match=r"penguins v3: the stored config \(version tag pmf\.config\)"):
        settings_for_version(NAME, "3")
    done = pmf("promote", NAME, "--version", "3", "--to", "staging")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert "v3" in lines[0]
    assert "pmf.config" in lines[0]
    assert expected in lines[0]
    assert lifecycle.aliases(NAME) == {"candidate": "3"}


def test_a_version_without_a_stored_config_uses_the_defaults_and_a_bad_flag_is_named(store):
    tracking.client().delete_model_version_tag(NAME, "3", "pmf.config")
    assert settings_for_version(NAME, "3").champion_margin == 0.0
    done = pmf("promote", NAME, "--version", "3", "--to", "staging", "--margin", "-2")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().startswith("pmf: usage_error: --margin:"), done.stderr


@pytest.mark.usefixtures("prefect_harness")
def test_the_promote_flow_run_by_a_deployment_reads_the_versions_stored_settings(store):
    """A deployment passes no settings: the flow must use the version's own (as `pmf promote` does), not defaults."""
    from flows.promote_flow import promote_flow

    tracking.client().set_model_version_tag(NAME, "3", "pmf.config", '["a list"]')
    with pytest.raises(StoredConfigError, match="is not a pmf config"):
        promote_flow(NAME, "3", "staging")
    assert lifecycle.aliases(NAME) == {"candidate": "3"}  # nothing moved on the defaults
