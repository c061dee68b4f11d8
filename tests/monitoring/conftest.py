"""Fixtures of the monitoring tests: the session's penguins registry with v3 in production."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def monitored(built_store, store) -> Path:
    """A private copy of the three-version registry (artifacts too: each check logs a run) with
    @production on v3, the version whose reference profile the checks compare with."""
    from tasks.registry import tracking
    from tests.registry.store import NAME, private_artifacts

    private_artifacts(built_store, store)
    tracking.client().set_registered_model_alias(NAME, "production", "3")
    return store
