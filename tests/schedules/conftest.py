"""The slow schedule and alert tests share the session's real `pmf server start` and one lean model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import DATA
from tests.support.local_server import LocalServer

# A name of its own: other tests on the shared server schedule or monitor `penguins`, and a drift
# automation of theirs must not add runs to the ones counted here.
NAME = "sched-penguins"
LEAN = ["--set", "train.epochs=12", "--set", "compression.variants=[float32]"]


@pytest.fixture(scope="session")
def scheduled_model(local_server: LocalServer) -> str:
    """NAME registered once on the shared server by a lean `pmf run`, v1 at @production."""
    done = local_server.pmf("run", "--config", str(DATA / "penguins.yaml"), "--name", NAME, *LEAN, "--json")
    assert done.returncode == 0, done.stdout[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["promoted"], done.stdout[-2000:]
    return NAME


@pytest.fixture
def prefect(local_server: LocalServer) -> Iterator[Any]:
    """A Prefect client of the shared server, in this process."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: local_server.prefect_api_url}), get_client(sync_client=True) as client:
        yield client


def pmf_json(server: LocalServer, *args: str) -> tuple[int, dict]:
    """`pmf ARGS --json` as a user's shell runs it: (exit code, the JSON object, {} when none)."""
    done = server.pmf(*args, "--json")
    lines = done.stdout.strip().splitlines()
    return done.returncode, json.loads(lines[-1]) if lines else {"stderr": done.stderr}


def deployment_runs(client: Any, deployment: str) -> list[Any]:
    """The flow runs of deployment `pmf-KIND/NAME` (none when it does not exist)."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.exceptions import ObjectNotFound

    try:
        found = client.read_deployment_by_name(deployment)
    except ObjectNotFound:
        return []
    return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])))
