"""`pmf models`, `pmf promote`, `pmf rollback` as a user types them, against a real registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.registry.store import NAME

pytestmark = pytest.mark.slow


def pmf(*args: str) -> tuple[int, dict | str]:
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=300, env=os.environ.copy()
    )
    if "--json" in args:
        return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])
    return done.returncode, done.stdout + done.stderr


def test_promote_rollback_and_models_from_the_command_line(store):
    code, result = pmf("promote", NAME, "--version", "1", "--to", "production", "--reason", "first", "--json")
    assert code == 0
    assert result["status"] == "promoted"
    assert result["aliases"]["production"] == "1"
    assert result["champion_gate"]["champion"] is None

    code, result = pmf("promote", NAME, "--version", "2", "--to", "staging", "--json")
    assert code == 0
    assert result["aliases"]["staging"] == "2"
    assert result["champion_gate"] is None

    code, result = pmf("rollback", NAME, "--json")
    assert code == 1
    assert "no previous production" in result["error"]

    code, text = pmf("models", NAME)
    assert code == 0
    assert "@production=v1" in text
    assert "first" in text

    code, result = pmf("models", NAME, "--json")
    history = result["models"][0]["history"]
    assert [(h["alias"], h["to_version"], h["actor"]) for h in history] == [
        ("staging", "1", "pytest"),
        ("production", "1", "pytest"),
        ("staging", "2", "pytest"),
    ]
    assert pmf("models", "no-such-model")[0] == 2
    assert pmf("promote", NAME, "--version", "99", "--to", "staging")[0] == 2
