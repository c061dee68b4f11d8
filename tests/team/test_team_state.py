"""Team mode without starting it: the PostgreSQL URL forms `--postgres` takes, the state file, the exports,
each part's command line and environment, and the port check (fast: no server, no database)."""

from __future__ import annotations

import socket
import sys

import pytest

from tasks.local_server.launch import PortInUse
from tasks.team.databases import BadPostgresUrl, PostgresServer, check_prefix, parse_postgres_url
from tasks.team.launch import TeamPorts, check_ports, command, environment
from tasks.team.state import TEAM_ID_VARIABLE, TeamState, parse_team_state, read_team_state, write_team_state
from tests.support.local_server import free_ports


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/test",
        "postgres://postgres@127.0.0.1:5432/test",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    ],
)
def test_the_three_url_forms_name_the_same_server(url):
    assert parse_postgres_url(url) == PostgresServer("127.0.0.1", 5432, "postgres", "", "test")


def test_port_and_database_default_and_a_password_is_masked_in_messages():
    server = parse_postgres_url("postgresql://pmf:s%40cret@db")
    assert server == PostgresServer("db", 5432, "pmf", "s@cret", "postgres")
    assert server.url("x_prefect", "asyncpg") == "postgresql+asyncpg://pmf:s%40cret@db:5432/x_prefect"
    assert server.shown() == "postgresql://pmf:***@db:5432/postgres"


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://root@db/x", "scheme 'mysql' is not PostgreSQL's"),
        ("127.0.0.1:5432", "is not PostgreSQL's"),
        ("postgresql://db:5432/x", "no user"),
        ("postgresql://u@:5432/x", "no host"),
        ("postgresql://u@db:port/x", "--postgres 'postgresql://u@db:port/x'"),
    ],
)
def test_a_malformed_url_says_what_was_expected(url, said):
    with pytest.raises(BadPostgresUrl, match="expected postgresql://USER@HOST") as error:
        parse_postgres_url(url)
    assert said in str(error.value)


@pytest.mark.parametrize("prefix", ["Pmf", "1pmf", "pmf-team", "", "p" * 56])
def test_a_prefix_postgresql_would_need_quoting_or_truncate_is_refused(prefix):
    with pytest.raises(BadPostgresUrl, match="--prefix"):
        check_prefix(prefix)


def team_state(tmp_path) -> TeamState:
    return TeamState(
        home=str(tmp_path),
        host=socket.gethostname(),
        started_at="2026-12-03T18:00:00+00:00",
        prefect_port=4400,
        mlflow_port=5400,
        server_id="abc123",
        postgres_url="postgresql://postgres@127.0.0.1:5432/test",
        prefix="demo",
        dask_port=8786,
        dask_workers=2,
    )


def test_the_exports_and_databases_follow_from_the_state(tmp_path):
    state = team_state(tmp_path)
    assert state.exports() == {
        "PREFECT_API_URL": "http://127.0.0.1:4400/api",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5400",
        "PMF_DASK_ADDRESS": "tcp://127.0.0.1:8786",
        "PMF_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/demo_pmf",
    }
    assert state.databases == ["demo_prefect", "demo_mlflow", "demo_pmf"]
    assert state.parts == ["prefect", "mlflow", "dask-scheduler", "dask-worker-1", "dask-worker-2", "worker"]


def test_the_state_file_round_trips_and_is_private(tmp_path):
    state = team_state(tmp_path)
    write_team_state(tmp_path, state)
    assert read_team_state(tmp_path) == state
    assert (tmp_path / "team" / "state.json").stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError, match="not a pmf team state file"):
        parse_team_state('{"home": "x"}')
    (tmp_path / "team" / "state.json").write_text("{half")
    assert read_team_state(tmp_path) is None


def test_each_part_runs_with_the_teams_id_and_only_the_prefect_server_sees_its_database(tmp_path):
    state = team_state(tmp_path)
    for part in state.parts:
        env = environment(state, part)
        assert env[TEAM_ID_VARIABLE] == "abc123"
        assert env["PMF_HOME"] == str(tmp_path)
        assert {k: env[k] for k in state.exports()} == state.exports()
        assert ("PREFECT_API_DATABASE_CONNECTION_URL" in env) == (part == "prefect")
        assert command(state, part)[0] == sys.executable
    assert environment(state, "prefect")["PREFECT_API_DATABASE_CONNECTION_URL"] == (
        "postgresql+asyncpg://postgres@127.0.0.1:5432/demo_prefect"
    )
    mlflow = command(state, "mlflow")
    assert mlflow[mlflow.index("--backend-store-uri") + 1] == "postgresql+psycopg://postgres@127.0.0.1:5432/demo_mlflow"
    assert mlflow[mlflow.index("--artifacts-destination") + 1] == (tmp_path / "team" / "artifacts").as_uri()
    assert "--serve-artifacts" in mlflow
    local = str(tmp_path / "team" / "dask")
    assert command(state, "dask-worker-2")[1:] == [
        "-m",
        "dask",
        "worker",
        "tcp://127.0.0.1:8786",
        "--nthreads",
        "1",
        "--nworkers",
        "1",
        "--name",
        "dask-worker-2",
        "--local-directory",
        local,
        "--no-dashboard",
    ]
    with pytest.raises(ValueError, match="no part 'dask-worker-3'"):
        command(state, "dask-worker-3")


def test_a_port_in_use_names_the_port_and_its_flag():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        prefect, mlflow = free_ports(2)
        with pytest.raises(PortInUse, match=f"port {port} \\(for the Dask scheduler\\) is in use .* --dask-port N"):
            check_ports(TeamPorts(prefect, mlflow, port))
    with pytest.raises(PortInUse, match="give each a different port"):
        check_ports(TeamPorts(4400, 4400, 8786))
