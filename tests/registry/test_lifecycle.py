"""The registry lifecycle on a real MLflow store: promotions, the champion gate, rollback, history, failures."""

from __future__ import annotations

import threading

import pytest

from tasks.registry import lifecycle, tracking
from tasks.registry.promotion import canary_agreement, promote_candidate, promote_version
from tasks.registry.promotion_settings import PromotionSettings
from tests.registry.store import NAME

pytestmark = pytest.mark.slow

# 1 pp margin: v3 beats v1 overall but is 0.0003 behind it on one island, which is noise on 26 rows.
SETTINGS = PromotionSettings(slice_columns=("island", "sex"), champion_margin=0.01)


def production() -> str | None:
    return lifecycle.alias_version(NAME, lifecycle.PRODUCTION)


def test_first_model_goes_to_production_worse_stops_better_replaces_rollback_restores(store):
    first = promote_candidate(NAME, "1", SETTINGS, reason="first model")
    assert first["promoted"], first["reasons"]
    assert first["champion_gate"]["champion"] is None
    assert production() == "1"

    worse = promote_candidate(NAME, "2", SETTINGS)
    assert not worse["promoted"]
    assert any(r.startswith("champion_gate: accuracy [overall]") for r in worse["reasons"]), worse["reasons"]
    assert production() == "1"
    assert lifecycle.alias_version(NAME, lifecycle.STAGING) == "2"  # it passed the infra check, not the gate
    overall = [row for row in worse["comparison"] if row["scope"] == "overall" and row["metric"] == "accuracy"]
    assert overall[0]["delta"] < -0.5

    better = promote_candidate(NAME, "3", SETTINGS)
    assert better["promoted"], better["reasons"]
    assert production() == "3"
    assert better["aliases"] == {"candidate": "3", "staging": "3", "production": "3"}

    back = lifecycle.rollback(NAME, reason="bad feedback")
    assert (back["from_version"], back["to_version"], back["kind"]) == ("3", "1", "rollback")
    assert production() == "1"

    moves = [(h["alias"], h["from_version"], h["to_version"], h["kind"]) for h in lifecycle.history(NAME)]
    assert moves == [
        ("staging", None, "1", "promote"),
        ("production", None, "1", "promote"),
        ("staging", "1", "2", "promote"),
        ("staging", "2", "3", "promote"),
        ("production", "1", "3", "promote"),
        ("production", "3", "1", "rollback"),
    ]
    assert all(h["actor"] == "pytest" and h["time"] and h["metrics"] for h in lifecycle.history(NAME))
    run_id = tracking.client().get_model_version(NAME, "3").run_id
    assert "promotion/comparison.json" in {a.path for a in tracking.client().list_artifacts(run_id, "promotion")}


def test_rollback_walks_back_through_promotions_and_needs_a_previous_version(store):
    with pytest.raises(lifecycle.RegistryError, match="no previous production"):
        lifecycle.rollback(NAME)
    for version in ("1", "2", "3"):
        lifecycle.move_alias(NAME, lifecycle.PRODUCTION, version, f"promote {version}")
    assert lifecycle.rollback(NAME)["to_version"] == "2"
    assert lifecycle.rollback(NAME)["to_version"] == "1"
    with pytest.raises(lifecycle.RegistryError):
        lifecycle.rollback(NAME)
    assert lifecycle.rollback(NAME, to_version="3")["to_version"] == "3"


def test_a_move_that_fails_half_way_leaves_aliases_and_history_as_they_were(store, monkeypatch):
    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "first")
    before = (lifecycle.aliases(NAME), lifecycle.history(NAME))

    def broken_alias_write(name, alias, version):
        raise ConnectionError("tracking server went away")

    monkeypatch.setattr(lifecycle, "_write_alias", broken_alias_write)
    with pytest.raises(ConnectionError):
        lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "3", "should not stick")
    assert (lifecycle.aliases(NAME), lifecycle.history(NAME)) == before
    assert lifecycle.current_lock(NAME) is None  # the lock was released


def test_a_corrupted_model_moves_no_alias(store):
    tracking.client().set_model_version_tag(NAME, "3", "pmf.sha256", "0" * 64)
    result = promote_candidate(NAME, "3", SETTINGS)
    assert not result["promoted"]
    assert any("SHA-256" in r for r in result["reasons"]), result["reasons"]
    assert result["aliases"] == {"candidate": "3"}
    forced = promote_version(NAME, "3", "production", SETTINGS, force=True)  # --force never overrides integrity
    assert not forced["promoted"]
    assert forced["aliases"] == {"candidate": "3"}


def test_a_server_that_does_not_become_ready_moves_no_alias(store):
    result = promote_candidate(NAME, "3", SETTINGS.model_copy(update={"infra_timeout_s": 0.05}))
    assert not result["promoted"]
    assert any("infra_check" in r for r in result["reasons"])
    assert result["aliases"] == {"candidate": "3"}
    assert lifecycle.history(NAME) == []


def test_canary_comparison_counts_every_disagreement():
    assert canary_agreement(["a", "b"], ["a", "b"], "classification", 0) == 1.0
    assert canary_agreement(["a", "b"], ["a", "c"], "classification", 0) == 0.5
    assert canary_agreement(["a", "b"], ["a"], "classification", 0) == 0.0
    assert canary_agreement([1.0, 2.0], [1.0, 2.0 + 1e-9], "regression", 1e-6) == 1.0
    assert canary_agreement([1.0, 2.0], [1.0, 2.1], "regression", 1e-6) == 0.5


def test_a_forced_promotion_is_recorded_as_forced(store):
    promote_candidate(NAME, "1", SETTINGS)
    result = promote_version(NAME, "2", "production", SETTINGS, reason="hotfix", force=True)
    assert result["promoted"]
    assert result["forced"]
    assert production() == "2"
    last = lifecycle.history(NAME)[-1]
    assert last["forced"]
    assert last["reason"].startswith("hotfix — forced past: champion_gate: accuracy")


def test_concurrent_promotions_leave_one_production_version_and_a_consistent_history(store):
    results: dict[str, dict] = {}

    def promote(version: str) -> None:
        results[version] = promote_version(NAME, version, "production", SETTINGS, reason=f"race {version}")

    threads = [threading.Thread(target=promote, args=(v,)) for v in ("1", "3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert set(results) == {"1", "3"}
    winner = production()
    assert winner in {"1", "3"}
    moves = [h for h in lifecycle.history(NAME) if h["alias"] == lifecycle.PRODUCTION]
    assert moves
    assert moves[-1]["to_version"] == winner
    for previous, move in zip([None, *[m["to_version"] for m in moves]], moves, strict=False):
        assert move["from_version"] == previous  # each move saw the one before it: no lost update
    seqs = [h["seq"] for h in lifecycle.history(NAME)]
    assert seqs == sorted(set(seqs))
    models = {m["name"] for m in lifecycle.list_models()}
    assert models == {NAME}  # no lock left behind


def test_manual_approval_is_asked_before_production_and_a_refusal_moves_nothing_further(store):
    settings = SETTINGS.model_copy(update={"manual_approval": True})
    asked = []

    def refuse(summary: dict) -> tuple[bool, str]:
        asked.append(summary["champion_gate"]["passed"])
        return False, "not during the sale"

    refused = promote_candidate(NAME, "1", settings, approve=refuse)
    assert asked == [True]
    assert not refused["promoted"]
    assert refused["reasons"] == ["manual approval refused: not during the sale"]
    assert production() is None
    assert lifecycle.alias_version(NAME, lifecycle.STAGING) == "1"

    approved = promote_candidate(NAME, "1", settings, approve=lambda summary: (True, "ok by alice"))
    assert approved["promoted"]
    assert production() == "1"
    assert lifecycle.history(NAME)[-1]["reason"].endswith("(approved: ok by alice)")
