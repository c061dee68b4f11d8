"""Fixtures of the server tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def own_store(built_store, store) -> Path:
    """`store` with its own copy of the artifacts, so a test may tamper with a package (the shared ones stay intact)."""
    from tests.registry.store import private_artifacts

    private_artifacts(built_store, store)
    return store


@pytest.fixture
def private_tmp(tmp_path) -> Path:
    """A TMPDIR of the test's own, to count what a server leaves in it."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    return folder
