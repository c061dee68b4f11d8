"""infra/ run for real, without Docker: the compose file's own migration commands and MLflow server
command (as `docker-compose config` resolves them), on the real PostgreSQL, with the compose host
names mapped to this machine; and infra/prefect.yaml deployed with `prefect deploy --all` to the
session's real Prefect server, one deployment run by a real process worker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import REPO
from tests.infra.files import (
    AUTH_INI,
    PREFECT_YAML,
    TEST_SECRETS,
    drop_databases,
    resolved_compose,
    run_init_sql,
)
from tests.support.local_server import free_ports, prefect_deploy_all

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
MODEL = "infra-check"  # not penguins: the shared server's other tests own that name


def to_this_machine(text: str, prefix: str, artifacts: Path, port: int) -> str:
    """A compose command or value, pointed at this machine: role pmf@postgres -> postgres@127.0.0.1 and
    the database names prefixed, /mlartifacts -> a temporary folder, MLflow's port -> a free one."""
    for database in ("prefect", "mlflow", "pmf"):
        text = text.replace(f"pmf@postgres:5432/{database}", f"postgres@127.0.0.1:5432/{prefix}{database}")
    return (
        text.replace("/mlartifacts", str(artifacts))
        .replace("--port=5000", f"--port={port}")
        .replace("--workers=2", "--workers=1")
    )


def run_env(extra: dict[str, str], tmp: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")}
    return {**keep, "PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(tmp), "PREFECT_HOME": str(tmp / "prefect"), **extra}


def test_compose_migration_and_mlflow_server_work_as_configured(tmp_path, monkeypatch):
    services = resolved_compose(tmp_path)["services"]
    prefix = f"infra_{uuid.uuid4().hex[:8]}_"
    artifacts, workdir = tmp_path / "mlartifacts", tmp_path / "cwd"
    artifacts.mkdir()
    workdir.mkdir()
    (port,) = free_ports(1)
    server = None
    try:
        run_init_sql(prefix, tmp_path)
        # the one-shot job's own command (Prefect's migration job runs on PostgreSQL in `pmf team up`'s tests)
        job = services["mlflow-migrate"]
        command = [to_this_machine(part, prefix, artifacts, port) for part in job["command"]]
        env = {k: to_this_machine(str(v), prefix, artifacts, port) for k, v in job["environment"].items()}
        done = subprocess.run(command, env=run_env(env, tmp_path), cwd=workdir, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"mlflow-migrate: {done.stdout[-2000:]}{done.stderr[-3000:]}"

        mlflow = services["mlflow"]
        ini = tmp_path / "basic_auth.ini"
        ini.write_text(to_this_machine(AUTH_INI.read_text(), prefix, artifacts, port))
        env = {k: to_this_machine(str(v), prefix, artifacts, port) for k, v in mlflow["environment"].items()}
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
        command = [to_this_machine(part, prefix, artifacts, port) for part in mlflow["command"]]
        log = (tmp_path / "mlflow.log").open("w")
        server = subprocess.Popen(
            command, env=run_env(env, tmp_path), cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, server, tmp_path / "mlflow.log")

        admin = (env["MLFLOW_AUTH_ADMIN_USERNAME"], TEST_SECRETS["MLFLOW_AUTH_ADMIN_PASSWORD"])
        search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
        assert requests.get(search, timeout=30).status_code == 401  # basic auth is on
        assert requests.get(search, auth=(admin[0], "wrong"), timeout=30).status_code == 401
        assert requests.get(search, auth=admin, timeout=30).status_code == 200
        # pmf's containers call it as http://mlflow:5000: that Host header passes, another does not
        assert requests.get(search, auth=admin, headers={"Host": "mlflow:5000"}, timeout=30).status_code == 200
        assert requests.get(search, auth=admin, headers={"Host": "evil.example.com"}, timeout=30).status_code in (400, 403)

        # A client as pmf's services are configured: an artifact goes through the server to the volume
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", admin[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin[1])
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=url)
        run = client.create_run(client.create_experiment(f"infra-check-{prefix}"))
        client.log_text(run.info.run_id, "proxied", "check/hello.txt")
        client.set_terminated(run.info.run_id)
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
        stored = list(artifacts.rglob("hello.txt"))
        assert [p.read_text() for p in stored] == ["proxied"]
        assert list(workdir.iterdir()) == []  # nothing in the current folder (no mlruns/, no basic_auth.db)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=30)
        drop_databases(prefix)


def wait_for_health(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the MLflow server exited: {log.read_text()[-3000:]}"
        try:
            if requests.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the MLflow server did not answer within {timeout} s: {log.read_text()[-3000:]}")


# ---- infra/prefect.yaml on a real Prefect server ---------------------------------------------------------------


@pytest.fixture
def prefect(local_server):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: local_server.prefect_api_url}), get_client(sync_client=True) as client:
        yield client


def test_prefect_deploy_all_creates_the_team_deployments_and_a_process_worker_runs_one(local_server, prefect, tmp_path):
    """A copy on a pool of its own (creating `pmf` would turn the shared server into a team server for
    `pmf schedule`), for a model of its own, paused, its pull step entering this checkout instead of /app."""
    from prefect.client.schemas.actions import WorkPoolCreate

    pool = f"infra-{uuid.uuid4().hex[:8]}"
    text = re.sub(r"penguins(?!\.csv)", MODEL, PREFECT_YAML.read_text()).replace("directory: /app", f"directory: {REPO}")
    config = yaml.safe_load(text)
    config["definitions"]["work_pools"]["pmf"]["name"] = pool
    for deployment in config["deployments"]:
        deployment["work_pool"] = {"name": pool}
        deployment["paused"] = True  # nothing of this copy runs on a schedule on the shared server
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**local_server.env, "PREFECT_API_URL": local_server.prefect_api_url}
    prefect.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    created: list[Any] = []
    try:
        prefect_deploy_all(tmp_path, env)
        for kind in ("train", "retrain", "monitor", "promote"):
            created.append(prefect.read_deployment_by_name(f"pmf-{kind}/{MODEL}"))
        train, retrain, monitor, promote = created
        assert {d.work_pool_name for d in created} == {pool}
        assert [d.entrypoint for d in created] == [f"flows.{k}_flow:{k}_flow" for k in ("train", "retrain", "monitor", "promote")]
        assert all(
            d.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}] for d in created
        )
        for limited in (train, retrain):
            assert limited.global_concurrency_limit.limit == 1
            assert limited.concurrency_options.collision_strategy.value == "ENQUEUE"
        assert monitor.global_concurrency_limit is None
        assert train.parameters["request"]["data"] == "/app/data/penguins.csv"
        assert promote.parameter_openapi_schema["required"] == ["name", "version"]  # version: given per run
        (trigger,) = prefect.read_resource_related_automations(f"prefect.deployment.{retrain.id}")
        assert trigger.name == f"pmf-drift-retrain-{MODEL}"

        # A real process worker of the pool runs the monitor deployment: the pull step, the entrypoint
        # and the parameters work; the flow itself answers (no such model in this workspace).
        run = prefect.create_flow_run_from_deployment(monitor.id, parameters={"name": f"{MODEL}-absent"})
        worker = subprocess.run(
            [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process", "--run-once"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        state = prefect.read_flow_run(run.id).state
        assert state.name == "ConfigError", worker.stdout[-3000:] + worker.stderr[-3000:]
        assert f"no registered model named '{MODEL}-absent'" in state.message
    finally:
        for deployment in created:
            prefect.delete_resource_owned_automations(f"prefect.deployment.{deployment.id}")
            prefect.delete_deployment(deployment.id)
        prefect.delete_work_pool(pool)
