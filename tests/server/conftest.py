from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def built_store(tmp_path_factory) -> Path:
    from tests.registry.store import build

    return build(tmp_path_factory.getbasetemp() / "pmf-models")


@pytest.fixture
def store(built_store, tmp_path, monkeypatch) -> Path:
    """A private copy of the three-version registry (candidate -> v3, no other alias yet)."""
    from tests.registry.store import fresh_copy

    return fresh_copy(built_store, tmp_path / "home", monkeypatch)
