"""infra/ as a team would use it: the compose file resolved by the real docker-compose (no daemon needed),
the image's Dockerfile, the deployments of infra/prefect.yaml against pmf's real flows, the
PostgreSQL init script run on the real PostgreSQL, and the Kubernetes files."""

from __future__ import annotations

import re
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import DATA, REPO
from tests.infra.files import (
    AUTH_INI,
    COMPOSE,
    INFRA,
    INIT_SQL,
    K8S,
    PREFECT_YAML,
    TEST_SECRETS,
    command_options,
    compose,
    database_of,
    dockerfile_env,
    dockerfile_instructions,
    dockerignored,
    drop_databases,
    env_example,
    host_port,
    mounts,
    psql,
    published,
    resolved_compose,
    run_init_sql,
    write_env,
)

SERVERS = {"prefect-server", "prefect-worker", "mlflow", "dask-scheduler", "dask-worker-1", "dask-worker-2", "pmf-serve"}
ONE_SHOT = {"prefect-migrate", "mlflow-migrate", "pmf"}
TEAM_VARIABLES = {
    "PREFECT_API_URL",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "PMF_DASK_ADDRESS",
    "PMF_DATABASE_URL",
}
PMF_SERVICES = {"prefect-worker", "dask-worker-1", "dask-worker-2", "pmf-serve", "pmf"}
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> dict[str, Any]:
    return resolved_compose(tmp_path_factory.mktemp("compose"))["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


# ---- the compose file, resolved by docker-compose ---------------------------------------------------------


@pytest.mark.component
def test_compose_file_resolves_with_the_variables_of_env_example(services):
    assert set(services) == SERVERS | ONE_SHOT | {"postgres"}


@pytest.mark.component
@pytest.mark.parametrize("secret", sorted(TEST_SECRETS))
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_a_missing_secret_stops_compose_and_is_named(tmp_path, secret, how):
    values = {**env_example(), **TEST_SECRETS}
    if how == "unset":
        del values[secret]
    else:
        values[secret] = ""
    done = compose(write_env(tmp_path / "test.env", values), "config")
    assert done.returncode != 0
    assert secret in done.stderr, done.stderr
    assert "infra/.env" in done.stderr, done.stderr


@pytest.mark.component
def test_env_example_as_shipped_has_no_password_so_compose_refuses_it():
    example = env_example()
    assert {name for name in TEST_SECRETS if example[name] == ""} == set(TEST_SECRETS)
    done = compose(INFRA / ".env.example", "config")
    assert done.returncode != 0
    assert any(name in done.stderr for name in TEST_SECRETS), done.stderr


def test_env_example_lists_exactly_the_variables_the_compose_file_reads():
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    assert used == set(env_example())
    # every secret is required (`:?`), never defaulted (`:-`)
    for name in TEST_SECRETS:
        assert not re.search(rf"\$\{{{name}:-", COMPOSE.read_text()), name
        assert re.search(rf"\$\{{{name}:\?", COMPOSE.read_text()), name


@pytest.mark.component
def test_every_image_is_pinned_to_a_version(services):
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image}"
        assert re.match(r"^\d+(\.\d+)+", tag), f"{name}: {image} is not pinned to a version"
    pmf_image = {s["image"] for s in services.values() if "build" in s}
    assert pmf_image == {f"pmf:{VERSION}"}  # the project's version: the image is rebuilt with it
    assert services["postgres"]["image"].startswith("postgres:15.")


@pytest.mark.component
def test_long_running_services_have_a_healthcheck_and_restart_and_one_shots_do_not_restart(services):
    for name in SERVERS | {"postgres"}:
        service = services[name]
        assert service.get("restart") in ("unless-stopped", "always"), name
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ONE_SHOT:
        assert services[name]["restart"] == "no", name


@pytest.mark.component
def test_healthchecks_ask_the_port_each_service_listens_on(services):
    listens = {
        "prefect-server": env_of(services["prefect-server"])["PREFECT_SERVER_API_PORT"],
        "prefect-worker": env_of(services["prefect-worker"])["PREFECT_WORKER_WEBSERVER_PORT"],
        "mlflow": command_options(services["mlflow"]["command"])["port"],
        "dask-scheduler": command_options(services["dask-scheduler"]["command"])["dashboard-address"].lstrip(":"),
        "dask-worker-1": command_options(services["dask-worker-1"]["command"])["dashboard-address"].lstrip(":"),
        "pmf-serve": command_options(services["pmf-serve"]["command"])["port"],
    }
    for name, port in listens.items():
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"localhost:{port}/" in probe, f"{name} listens on {port}, its healthcheck asks {probe}"
    assert "--with-healthcheck" in services["prefect-worker"]["command"]


@pytest.mark.component
def test_servers_start_after_their_migration_jobs_and_those_after_postgres(services):
    for server, job in (("prefect-server", "prefect-migrate"), ("mlflow", "mlflow-migrate")):
        assert services[server]["depends_on"][job] == {"condition": "service_completed_successfully"}
        assert services[job]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services["prefect-migrate"]["command"] == ["prefect", "server", "database", "upgrade", "-y"]
    assert "mlflow db upgrade" in " ".join(services["mlflow-migrate"]["command"])
    assert env_of(services["prefect-server"])["PREFECT_API_DATABASE_MIGRATE_ON_START"] == "false"


@pytest.mark.component
def test_each_server_has_its_own_database_which_init_sql_creates(services):
    prefect = env_of(services["prefect-server"])["PREFECT_API_DATABASE_CONNECTION_URL"]
    mlflow = command_options(services["mlflow"]["command"])["backend-store-uri"]
    pmf = env_of(services["prefect-worker"])["PMF_DATABASE_URL"]
    assert prefect.startswith("postgresql+asyncpg://")
    assert mlflow.startswith("postgresql")
    assert pmf.startswith("postgresql+psycopg://")
    databases = [database_of(u) for u in (prefect, mlflow, pmf)]
    assert len(set(databases)) == 3, databases
    assert {host_port(u)[0] for u in (prefect, mlflow, pmf)} == {"postgres"}
    # the migration jobs migrate the databases the servers use
    assert env_of(services["prefect-migrate"])["PREFECT_API_DATABASE_CONNECTION_URL"] == prefect
    assert f"mlflow db upgrade {mlflow}" in " ".join(services["mlflow-migrate"]["command"])
    sql = INIT_SQL.read_text()
    assert set(re.findall(r"CREATE DATABASE (\w+);", sql)) == set(databases)
    assert re.search(rf"\\connect {database_of(prefect)}\s+CREATE EXTENSION IF NOT EXISTS pg_trgm;", sql)
    assert any(
        m["source"] == str(INIT_SQL) and m["target"].startswith("/docker-entrypoint-initdb.d/")
        for m in mounts(services["postgres"])
    )
    assert env_of(services["postgres"])["POSTGRES_DB"] not in databases  # else the entrypoint creates it first


@pytest.mark.component
def test_no_url_carries_a_password_the_database_password_travels_as_pgpassword(services):
    for name, service in services.items():
        text = " ".join(map(str, service.get("command") or [])) + " " + " ".join(env_of(service).values())
        assert TEST_SECRETS["POSTGRES_PASSWORD"] not in re.sub(
            r"PGPASSWORD|POSTGRES_PASSWORD", "", " ".join(re.findall(r"\S+://\S+", text))
        ), name
        if any(k in env_of(service) for k in ("PREFECT_API_DATABASE_CONNECTION_URL", "PMF_DATABASE_URL")) or name.startswith(
            "mlflow"
        ):
            assert env_of(service)["PGPASSWORD"] == TEST_SECRETS["POSTGRES_PASSWORD"], name
    assert env_of(services["postgres"])["POSTGRES_PASSWORD"] == TEST_SECRETS["POSTGRES_PASSWORD"]


@pytest.mark.component
def test_mlflow_serves_artifacts_from_a_volume_on_postgresql_with_basic_auth(services):
    mlflow = services["mlflow"]
    options = command_options(mlflow["command"])
    assert "serve-artifacts" in options
    destination = options["artifacts-destination"]
    assert any(m["type"] == "volume" and m["target"] == destination for m in mounts(mlflow)), mlflow["volumes"]
    assert options["backend-store-uri"].startswith("postgresql+psycopg://")
    assert options["app-name"] == "basic-auth"
    env = env_of(mlflow)
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == TEST_SECRETS["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == TEST_SECRETS["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    ini = next(m for m in mounts(mlflow) if m["target"] == env["MLFLOW_AUTH_CONFIG_PATH"])
    assert Path(ini["source"]) == AUTH_INI
    assert ini["read_only"]
    # the auth config MLflow reads: users in the mlflow database, no password in the file
    import configparser

    parser = configparser.ConfigParser()
    parser.read(AUTH_INI)
    assert parser["mlflow"]["database_uri"] == options["backend-store-uri"]
    assert "admin_password" not in parser["mlflow"]


@pytest.mark.component
def test_mlflow_accepts_the_host_header_pmf_services_send_and_no_other(services):
    from mlflow.server.security_utils import is_allowed_host_header

    allowed = command_options(services["mlflow"]["command"])["allowed-hosts"].split(",")
    for name in PMF_SERVICES:
        host, port = host_port(env_of(services[name])["MLFLOW_TRACKING_URI"])
        assert is_allowed_host_header(allowed, f"{host}:{port}"), name
    assert is_allowed_host_header(allowed, "localhost:5000")  # its healthcheck, a browser on this machine
    assert not is_allowed_host_header(allowed, "evil.example.com")


@pytest.mark.component
def test_pmf_services_point_at_the_servers_of_this_file(services):
    prefect_port = int(env_of(services["prefect-server"])["PREFECT_SERVER_API_PORT"])
    mlflow_port = int(command_options(services["mlflow"]["command"])["port"])
    dask_port = int(command_options(services["dask-scheduler"]["command"])["port"])
    for name in PMF_SERVICES:
        env = env_of(services[name])
        assert set(env) >= TEAM_VARIABLES, f"{name} lacks {TEAM_VARIABLES - set(env)}"
        assert host_port(env["PREFECT_API_URL"]) == ("prefect-server", prefect_port)
        assert env["PREFECT_API_URL"].endswith("/api")
        assert host_port(env["MLFLOW_TRACKING_URI"]) == ("mlflow", mlflow_port)
        assert host_port(env["PMF_DASK_ADDRESS"]) == ("dask-scheduler", dask_port)
        assert env["PMF_DASK_ADDRESS"].startswith("tcp://")
        assert env["MLFLOW_TRACKING_USERNAME"] == env_of(services["mlflow"])["MLFLOW_AUTH_ADMIN_USERNAME"]
        assert env["MLFLOW_TRACKING_PASSWORD"] == TEST_SECRETS["MLFLOW_AUTH_ADMIN_PASSWORD"]
    for name in ("dask-worker-1", "dask-worker-2"):
        assert env_of(services[name])["PMF_DASK_ADDRESS"] in services[name]["command"]


@pytest.mark.component
def test_the_worker_polls_the_team_pool_and_shares_the_workspace_with_the_dask_workers_and_serve(services):
    from flows.deployments import TEAM_POOL

    options = command_options(services["prefect-worker"]["command"])
    assert (options["pool"], options["type"]) == (TEAM_POOL, "process")
    home = dockerfile_env()["PMF_HOME"]
    for name in ("prefect-worker", "dask-worker-1", "dask-worker-2", "pmf-serve", "pmf"):
        shared = {(m["type"], m["source"], m["target"]) for m in mounts(services[name])}
        assert ("volume", "pmf-home", home) in shared, name
    assert command_options(services["dask-worker-1"]["command"])["local-directory"].startswith(home + "/")


@pytest.mark.component
def test_pmf_serve_serves_the_production_alias_of_the_model_named_by_a_variable_with_a_token(services):
    serve = services["pmf-serve"]
    assert serve["command"][:3] == ["pmf", "serve", env_example()["PMF_SERVE_MODEL"]]
    assert command_options(serve["command"])["alias"] == "production"
    assert env_of(serve)["PMF_SERVE_TOKEN"] == TEST_SECRETS["PMF_SERVE_TOKEN"]


@pytest.mark.component
def test_published_ports_listen_on_the_loopback_by_default(services):
    for name, service in services.items():
        for port in published(service):
            assert port["host_ip"] == "127.0.0.1", name


def test_every_bind_mount_source_exists():
    raw = yaml.safe_load(COMPOSE.read_text())
    for name, service in raw["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).is_file(), f"{name}: {source}"


# ---- the image ------------------------------------------------------------------------------------------------


def test_the_image_installs_the_lock_then_pmf_and_runs_as_a_user():
    instructions = dockerfile_instructions()
    froms = [args for kind, args in instructions if kind == "FROM"]
    base = next(args.split("=", 1)[1] for kind, args in instructions if kind == "ARG" and args.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base
    assert all(f.startswith("${PYTHON_IMAGE}") for f in froms)
    assert len(froms) == 2
    runs = [args for kind, args in instructions if kind == "RUN"]
    lock = next(i for i, r in enumerate(runs) if "pip install -r /tmp/requirements.lock" in r)
    project = next(i for i, r in enumerate(runs) if "pip install --no-deps" in r)
    assert lock < project
    assert ("COPY", "requirements.lock /tmp/requirements.lock") in instructions
    users = [args for kind, args in instructions if kind == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    assert re.search(rf"useradd .*--uid 1001 .*{users[-1]}", " ".join(runs))  # uid 1001: the Helm charts' runAsUser
    workdir = [args for kind, args in instructions if kind == "WORKDIR"][-1]
    assert workdir == "/app"


def test_every_file_the_image_copies_exists_and_is_in_the_build_context():
    for kind, args in dockerfile_instructions():
        if kind == "COPY" and not args.startswith("--from"):
            *sources, _ = args.split()
            for source in sources:
                assert (REPO / source).exists(), source
                assert not dockerignored(source.rstrip("/")), f"{source} is excluded by .dockerignore"


def test_dockerignore_keeps_environments_history_and_caches_out():
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "flows/__pycache__/x.pyc",
        ".pytest_cache/v",
        ".mypy_cache/x",
        "infra/.env",
        ".ruff_cache/x",
    ):
        assert dockerignored(path), path
    assert not dockerignored("flows/cli/run.py")
    assert not dockerignored("data/penguins.csv")


def test_the_image_sets_the_offline_variables_the_workspace_and_legacy_keras():
    from tasks.workspace import OFFLINE_VARIABLES

    env = dockerfile_env()
    assert {k: env.get(k) for k in OFFLINE_VARIABLES} == OFFLINE_VARIABLES
    assert env["TF_USE_LEGACY_KERAS"] == "1"
    assert env["PMF_HOME"] == "/var/lib/pmf"
    assert env["PREFECT_HOME"].startswith(env["PMF_HOME"] + "/")


# ---- infra/prefect.yaml against pmf's flows ---------------------------------------------------------------


def deployments() -> list[dict[str, Any]]:
    return yaml.safe_load(PREFECT_YAML.read_text())["deployments"]


@pytest.mark.component
def test_each_deployment_names_a_real_flow_and_parameters_it_takes():
    import importlib
    import inspect

    from prefect import Flow

    from flows.deployments import TEAM_POOL

    kinds = set()
    for deployment in deployments():
        module, _, function = deployment["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(module), function)
        assert isinstance(flow, Flow), deployment["entrypoint"]
        assert flow.name == deployment["flow_name"]
        kinds.add(flow.name)
        parameters = deployment["parameters"]
        assert set(parameters) <= set(inspect.signature(flow.fn).parameters), flow.name
        required = {n for n, p in inspect.signature(flow.fn).parameters.items() if p.default is inspect.Parameter.empty}
        run_time = {"version": "3"} if flow.name == "pmf-promote" else {}  # given when a run is started
        assert required <= set(parameters) | set(run_time), flow.name
        flow.validate_parameters({**parameters, **run_time})  # Prefect's own check of a run's parameters
        for schedule in deployment.get("schedules", []):
            flow.validate_parameters({**parameters, **schedule.get("parameters", {})})
        assert deployment["work_pool"]["name"] == TEAM_POOL
    assert kinds == {"pmf-train", "pmf-retrain", "pmf-monitor", "pmf-promote"}


def test_train_and_retrain_run_one_at_a_time_per_model():
    for deployment in deployments():
        if deployment["flow_name"] in ("pmf-train", "pmf-retrain"):
            assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}, deployment["flow_name"]


def test_pull_step_enters_the_images_app_folder_which_holds_this_file():
    config = yaml.safe_load(PREFECT_YAML.read_text())
    workdir = [args for kind, args in dockerfile_instructions() if kind == "WORKDIR"][-1]
    assert config["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": workdir}}]
    assert ("COPY", f"infra/prefect.yaml ./{PREFECT_YAML.name}") in dockerfile_instructions()


@pytest.mark.component
def test_the_train_deployment_trains_the_bundled_penguins_with_their_bundled_config():
    from flows.train_flow import train_flow
    from tasks.config import load_config

    train = next(d for d in deployments() if d["flow_name"] == "pmf-train")
    request = train_flow.validate_parameters(train["parameters"])["request"]
    bundled = load_config(DATA / "penguins.yaml")
    image_data = Path("/app/data") / Path(bundled.data.path).name
    assert request.data == image_data
    assert request.cfg.data.path == str(image_data)
    assert (DATA / image_data.name).is_file()  # the image copies data/ to /app/data
    assert request.cfg.model_dump(exclude={"data": {"path"}}) == bundled.model_dump(exclude={"data": {"path"}})


# ---- the PostgreSQL init script, on the real PostgreSQL -----------------------------------------------------


@pytest.mark.component
def test_init_sql_creates_the_databases_and_pg_trgm_on_postgresql(tmp_path):
    prefix = f"infra_{uuid.uuid4().hex[:8]}_"
    try:
        names = run_init_sql(prefix, tmp_path)  # as the postgres image runs it: psql, ON_ERROR_STOP
        listed = psql("-tAc", f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%'")
        assert set(listed.stdout.split()) == {prefix + n for n in names}
        assert set(names) == {"prefect", "mlflow", "pmf"}
        trgm = psql("-tAc", "SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'", database=f"{prefix}prefect")
        assert trgm.stdout.strip() == "pg_trgm"
    finally:
        drop_databases(prefix)


# ---- Kubernetes ------------------------------------------------------------------------------------------------


def k8s(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def test_helm_values_and_manifests_parse_and_name_what_pmf_needs():
    (server,) = k8s("prefect-server.values.yaml")
    assert server["externalDatabase"]["driver"] == "postgresql+asyncpg"
    assert server["externalDatabase"]["name"] == "prefect"
    assert server["postgresql"]["enabled"] is False
    assert re.fullmatch(r"3\.9\.1-python3\.11", server["global"]["prefect"]["image"]["prefectTag"])
    (worker,) = k8s("prefect-worker.values.yaml")
    assert worker["worker"]["config"]["workPool"] == "pmf"
    assert worker["worker"]["config"]["type"] == "process"
    args = worker["worker"]["args"]
    assert command_options(args)["pool"] == "pmf"
    assert command_options(args)["type"] == "process"
    assert worker["worker"]["image"]["prefectTag"] == VERSION
    (mlflow,) = k8s("mlflow.values.yaml")
    assert mlflow["artifactRoot"]["proxiedArtifactStorage"] is True
    assert mlflow["backendStore"]["postgres"]["enabled"] is True
    assert mlflow["backendStore"]["postgres"]["database"] == "mlflow"
    assert mlflow["auth"]["enabled"] is True
    assert mlflow["image"]["tag"] == VERSION
    (cluster,) = k8s("dask-cluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("kubernetes.dask.org/v1", "DaskCluster")
    worker_args = cluster["spec"]["worker"]["spec"]["containers"][0]["args"]
    assert worker_args[:2] == ["dask", "worker"]


def test_k8s_team_variables_point_at_the_services_the_charts_create():
    (cluster,) = k8s("dask-cluster.yaml")
    config_map = next(d for d in k8s("workspace.yaml") if d["kind"] == "ConfigMap")["data"]
    assert TEAM_VARIABLES - {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= set(config_map)
    namespace = cluster["metadata"]["namespace"]
    # the Dask operator names the scheduler's Service CLUSTER-scheduler
    assert host_port(config_map["PMF_DASK_ADDRESS"]) == (
        f"{cluster['metadata']['name']}-scheduler.{namespace}.svc.cluster.local",
        8786,
    )
    (worker,) = k8s("prefect-worker.values.yaml")
    assert config_map["PREFECT_API_URL"] == worker["worker"]["selfHostedServerApiConfig"]["apiUrl"]
    (mlflow,) = k8s("mlflow.values.yaml")
    mlflow_host = config_map["MLFLOW_TRACKING_URI"].split("://")[1]
    assert mlflow_host in mlflow["serverAllowedHosts"]
    secrets = {d["metadata"]["name"]: d["stringData"] for d in k8s("secrets.example.yaml")}
    assert secrets["pmf-postgres"]["password"] == ""
    assert secrets["pmf-mlflow-admin"]["password"] == ""
    assert secrets["pmf-team"]["MLFLOW_TRACKING_PASSWORD"] == ""
    assert secrets["pmf-team"]["PMF_SERVE_TOKEN"] == ""
