"""Fixtures of the registry tests: a registry copy whose artifacts a test may tamper with."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def own_store(built_store, store) -> Path:
    """`store` with its own copy of the artifacts (the shared ones stay untouched for other tests)."""
    from tests.registry.store import private_artifacts

    private_artifacts(built_store, store)
    return store
