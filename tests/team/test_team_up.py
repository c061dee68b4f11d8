"""`pmf team up` / `status` / `down` against the real PostgreSQL at 127.0.0.1:5432: the databases it
creates, every part answering, the exports it prints, and pmf itself run against the team's servers.

Most tests share the session's `team_servers` (tests/support/team.py); the one that takes a team down
starts a small team of its own.
"""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path

import pytest

from tasks.local_server.health import mlflow_answers, prefect_answers
from tasks.local_server.stop import server_processes
from tasks.team.health import dask_workers, worker_heartbeat
from tasks.team.state import TEAM_ID_VARIABLE, read_team_state
from tests.conftest import DATA
from tests.support.local_server import free_ports, pmf
from tests.support.pmf_process import pmf_env
from tests.support.team import POSTGRES, TeamServers, team_down, team_up

pytestmark = pytest.mark.slow

PARTS = ["prefect", "mlflow", "dask-scheduler", "dask-worker-1", "dask-worker-2", "worker"]
MODEL = "team-penguins"
LEAN = ["--set", "train.epochs=2", "--set", "compression.variants=[float32,int8]"]


def databases(names: list[str]) -> set[str]:
    """Which of `names` exist on the test PostgreSQL."""
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        rows = connection.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,)).fetchall()
    return {row[0] for row in rows}


def tables(database: str) -> set[str]:
    import psycopg

    with psycopg.connect(POSTGRES.rsplit("/", 1)[0] + f"/{database}", autocommit=True) as connection:
        rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        extensions = connection.execute("SELECT extname FROM pg_extension").fetchall()
    return {row[0] for row in rows} | {f"extension:{row[0]}" for row in extensions}


def exports_of(stdout: str) -> dict[str, str]:
    """`export NAME=VALUE` lines as a dict (the values need no shell quoting here)."""
    lines = [line.removeprefix("export ") for line in stdout.splitlines() if line.startswith("export ")]
    return dict(line.split("=", 1) for line in lines)


# ---- the shared team ----------------------------------------------------------------------------


def test_up_prints_the_exports_and_writes_the_state_file(team_servers: TeamServers):
    state = team_servers.state
    assert team_servers.started is not None
    assert exports_of(team_servers.started.stdout) == {
        "PREFECT_API_URL": f"http://127.0.0.1:{state.prefect_port}/api",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{state.mlflow_port}",
        "PMF_DASK_ADDRESS": f"tcp://127.0.0.1:{state.dask_port}",
        "PMF_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{team_servers.prefix}_pmf",
    }
    assert team_servers.started.stdout.strip().splitlines() == [f"export {k}={v}" for k, v in state.exports().items()]
    assert f"pmf team · up · {team_servers.home}" in team_servers.started.stderr
    saved = json.loads((team_servers.home / "team" / "state.json").read_text())
    assert saved["exports"] == state.exports()
    assert saved["databases"] == [f"{team_servers.prefix}_{s}" for s in ("prefect", "mlflow", "pmf")]
    assert list(saved["processes"]) == PARTS
    for part in PARTS:
        assert Path(saved["processes"][part]["log"]) == team_servers.home / "logs" / f"team-{part}.log"
        assert state.is_up(part), f"{part} is not running"


def test_the_databases_exist_with_each_services_tables(team_servers: TeamServers):
    prefix = team_servers.prefix
    assert databases([f"{prefix}_prefect", f"{prefix}_mlflow", f"{prefix}_pmf"]) == {
        f"{prefix}_prefect",
        f"{prefix}_mlflow",
        f"{prefix}_pmf",
    }
    prefect = tables(f"{prefix}_prefect")
    assert {"flow_run", "work_pool", "extension:pg_trgm", "alembic_version"} <= prefect
    assert {"registered_models", "model_versions", "alembic_version"} <= tables(f"{prefix}_mlflow")
    assert "flow_run" not in tables(f"{prefix}_mlflow")


def test_each_part_answers(team_servers: TeamServers):
    state = team_servers.state
    assert prefect_answers(state.prefect_api_url)
    assert mlflow_answers(state.mlflow_url)
    assert worker_heartbeat(state.prefect_api_url) is not None
    assert sorted(dask_workers(state.dask_address) or []) == ["dask-worker-1", "dask-worker-2"]

    done = team_servers.pmf("team", "status", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["up"] is True
    assert {part: p["up"] for part, p in report["processes"].items()} == dict.fromkeys(PARTS, True)
    assert report["processes"]["worker"]["work_pool"] == "pmf"
    shown = team_servers.pmf("team", "status", timeout=120)
    assert shown.stdout.startswith("pmf team · up · since"), shown.stdout
    assert [line for line in shown.stdout.splitlines() if len(line) > 80] == []


def test_the_work_pool_is_pmf_of_type_process(team_servers: TeamServers):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: team_servers.state.prefect_api_url}), get_client(sync_client=True) as client:
        pool = client.read_work_pool("pmf")
    assert pool.type == "process"


def test_a_second_up_says_already_running_and_prints_the_exports_again(team_servers: TeamServers):
    pids = {part: p.pid for part, p in team_servers.state.processes.items()}
    done = team_servers.pmf("team", "up", "--postgres", POSTGRES, "--prefix", team_servers.prefix, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "already running" in done.stderr
    assert exports_of(done.stdout) == team_servers.state.exports()
    assert {part: p.pid for part, p in team_servers.state.processes.items()} == pids  # nothing restarted

    other = team_servers.pmf("team", "up", "--postgres", POSTGRES, "--prefix", "someone_else", timeout=120)
    assert other.returncode == 2
    assert f"prefix {team_servers.prefix}" in other.stderr
    assert "pmf team down first" in other.stderr


def test_pmf_run_models_and_status_work_against_the_team(team_servers: TeamServers):
    from mlflow import MlflowClient

    state = team_servers.state
    done = team_servers.pmf("run", "--config", str(DATA / "penguins.yaml"), "--name", MODEL, *LEAN, "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "promoted", result.get("reasons")
    assert result["links"]["prefect_flow_run"].startswith(f"{state.prefect_ui_url}/runs/flow-run/")
    assert result["links"]["mlflow_run"].startswith(state.mlflow_url)

    # The registry is the PostgreSQL-backed server's, read over HTTP; the artifacts went through its proxy.
    client = MlflowClient(tracking_uri=state.mlflow_url, registry_uri=state.mlflow_url)
    version = client.get_model_version_by_alias(MODEL, "production")
    assert version.version == "1"
    assert client.get_run(version.run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    assert any((team_servers.home / "team" / "artifacts").rglob("*"))
    assert not (team_servers.home / "mlflow.db").exists()  # nothing fell back to the embedded store

    # The flow run is on the team's Prefect server, completed.
    flow_run_id = result["links"]["prefect_flow_run"].rsplit("/", 1)[-1]
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: state.prefect_api_url}), get_client(sync_client=True) as prefect:
        assert prefect.read_flow_run(uuid.UUID(flow_run_id)).state.is_completed()

    models = team_servers.pmf("models", MODEL, "--json", timeout=300)
    assert models.returncode == 0, models.stderr
    listed = json.loads(models.stdout.strip().splitlines()[-1])["models"]
    assert listed[0]["aliases"]["production"] == "1", listed

    status = team_servers.pmf("status", "--json", timeout=300)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout.strip().splitlines()[-1])
    assert MODEL in json.dumps(report["models"])


def test_stop_part_and_start_part_restart_one_part(team_servers: TeamServers):
    before = team_servers.state
    stopped = team_servers.stop_part("dask-worker-2")
    try:
        assert not stopped.is_up("dask-worker-2")
        assert stopped.is_up("dask-worker-1")
        assert dask_workers(before.dask_address) == ["dask-worker-1"]
        report = json.loads(team_servers.pmf("team", "status", "--json", timeout=120).stdout)
        assert report["up"] is False
        assert report["processes"]["dask-worker-2"]["up"] is False
    finally:
        restarted = team_servers.start_part("dask-worker-2")
    assert restarted.processes["dask-worker-2"].pid != before.processes["dask-worker-2"].pid
    assert read_team_state(team_servers.home) == restarted
    assert sorted(dask_workers(before.dask_address) or []) == ["dask-worker-1", "dask-worker-2"]
    assert restarted.server_id == before.server_id  # its id: `down` stops it too
    assert restarted.processes["dask-worker-2"].pid in server_processes(before.server_id, TEAM_ID_VARIABLE)

    team_servers.stop_part("mlflow")
    assert not mlflow_answers(before.mlflow_url)
    restarted = team_servers.start_part("mlflow")
    assert mlflow_answers(before.mlflow_url)
    assert restarted.mlflow_port == before.mlflow_port


# ---- bad input: nothing is started --------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--port", "--mlflow-port", "--dask-port"])
def test_a_port_in_use_is_exit_2_naming_the_port_and_its_flag(tmp_path, flag):
    home = tmp_path / "home"
    ports = dict(zip(["--port", "--mlflow-port", "--dask-port"], free_ports(3), strict=True))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[flag]))
        taken.listen()
        flags = [str(item) for pair in ports.items() for item in pair]
        done = pmf(pmf_env(home), "team", "up", "--postgres", POSTGRES, "--prefix", "pmf_tunused", *flags, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"port {ports[flag]}" in done.stderr
    assert f"choose another with {flag} N" in done.stderr
    assert read_team_state(home) is None
    assert databases(["pmf_tunused_prefect"]) == set()


@pytest.mark.parametrize(
    ("url", "code", "said"),
    [
        ("mysql://root@127.0.0.1/test", 2, "scheme 'mysql' is not PostgreSQL's"),
        ("postgresql://127.0.0.1:5432/test", 2, "no user"),
        ("postgresql://postgres@127.0.0.1:99999/test", 2, "--postgres 'postgresql://postgres@127.0.0.1:99999/test'"),
        ("postgresql://postgres@127.0.0.1:1/test", 1, "PostgreSQL at postgresql://postgres@127.0.0.1:1/test did not answer"),
    ],
)
def test_a_bad_postgres_url_is_a_clear_error(tmp_path, url, code, said):
    home = tmp_path / "home"
    done = pmf(pmf_env(home), "team", "up", "--postgres", url, "--prefix", "pmf_tunused", timeout=120)
    assert done.returncode == code, done.stderr
    assert said in done.stderr
    assert "Traceback" not in done.stderr
    assert read_team_state(home) is None


def test_a_bad_prefix_is_exit_2(tmp_path):
    done = pmf(pmf_env(tmp_path / "home"), "team", "up", "--postgres", POSTGRES, "--prefix", "Bad-Prefix", timeout=120)
    assert done.returncode == 2
    assert "--prefix 'Bad-Prefix': expected lower-case letters" in done.stderr


# ---- a team of its own, taken down --------------------------------------------------------------


def test_down_stops_every_process_and_drop_removes_the_databases(tmp_path):
    team = team_up(tmp_path / "home", dask_workers=1)
    state = team.state
    names = state.databases
    assert set(state.parts) == {"prefect", "mlflow", "dask-scheduler", "dask-worker-1", "worker"}
    ours = server_processes(state.server_id, TEAM_ID_VARIABLE)
    assert {p.pid for p in state.processes.values()} <= set(ours)

    done = team.pmf("team", "down", timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pmf team: stopped (prefect pid")
    assert server_processes(state.server_id, TEAM_ID_VARIABLE) == []
    assert not (team.home / "team" / "state.json").exists()
    assert databases(names) == set(names)  # without --drop the data stays

    again = team_up(team.home, prefix=team.prefix, dask_workers=1)  # on the databases it left
    assert again.state.databases == names
    team_down(again)  # `down --drop`, and no process left
    assert databases(names) == set()
    gone = again.pmf("team", "down", "--drop", timeout=60)
    assert gone.returncode == 0
    assert "not running" in gone.stdout


def test_a_part_that_fails_to_start_is_named_with_its_log_and_nothing_is_left(tmp_path):
    """An MLflow database that holds another application's Alembic revision: the MLflow server exits."""
    import psycopg

    prefix = f"pmf_t{uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"
    with psycopg.connect(POSTGRES, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {prefix}_mlflow")
    try:
        with psycopg.connect(POSTGRES.rsplit("/", 1)[0] + f"/{prefix}_mlflow", autocommit=True) as connection:
            connection.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
            connection.execute("INSERT INTO alembic_version VALUES ('0123456789ab')")
        ports = [
            str(item) for pair in zip(["--port", "--mlflow-port", "--dask-port"], free_ports(3), strict=True) for item in pair
        ]
        done = pmf(pmf_env(home), "team", "up", "--postgres", POSTGRES, "--prefix", prefix, *ports, timeout=300)
        assert done.returncode == 1, done.stderr
        log = home / "logs" / "team-mlflow.log"
        assert (
            f"the MLflow server exited during start; everything started was stopped and the databases it created dropped ({prefix}_prefect, {prefix}_pmf). Its log: {log}"
            in done.stderr
        )
        assert "0123456789ab" in log.read_text()  # the log says why
        assert "Traceback" not in done.stderr
        assert read_team_state(home) is None
        assert databases([f"{prefix}_{s}" for s in ("prefect", "mlflow", "pmf")]) == {f"{prefix}_mlflow"}  # the one it found
        assert not any(f"PMF_HOME={home}".encode() in environ for environ in process_environments())
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {prefix}_mlflow WITH (FORCE)")


def process_environments() -> list[bytes]:
    """The environment of every process this user may read (to find any the failed start left)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "environ").read_bytes())
            except OSError:
                continue
    return found
