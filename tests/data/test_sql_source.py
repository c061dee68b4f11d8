"""Batches from PostgreSQL: the URL and its masked password, the hash over the rows read, the suite run
inside PostgreSQL by GX's SQL datasource, and `pmf run` / `pmf validate` on a table and a query.

Real PostgreSQL (127.0.0.1:5432, database `test`, trust auth): the tables are named with a random prefix
and dropped at the end of the module.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import pandas as pd
import pytest
from mlflow import MlflowClient

from tasks.config import ConfigError, PmfConfig, RunRequest
from tasks.data.sql_source import SqlSource, SqlSourceUnreachable, check_sql_source, parse_sql_source, read_sql_source
from tasks.data.suite import infer_suite_document, validate_against_suite
from tests.conftest import DATA
from tests.support.pmf_process import pmf_env

SERVER = "127.0.0.1:5432"
DATABASE = f"postgresql+psycopg://postgres@{SERVER}/test"
PASSWORD = "s3cret-h3-pw"  # trust auth ignores it: a URL that carries one must still never show it
WITH_PASSWORD = f"postgresql+psycopg://postgres:{PASSWORD}@{SERVER}/test"


# ---- the URL: pure, no database ----------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "postgresql", "postgres"])
def test_the_three_schemes_name_a_table_and_the_default_name_is_the_tables(scheme):
    source = parse_sql_source(f"{scheme}://me@db.example:6543/shop?table=sales")
    assert (source.host, source.port, source.database, source.username) == ("db.example", 6543, "shop", "me")
    assert (source.schema, source.table, source.query) == (None, "sales", None)
    assert source.connection_url().drivername == "postgresql+psycopg"  # whatever the scheme: psycopg 3


def test_a_schema_qualified_table_and_an_url_encoded_query():
    qualified = parse_sql_source("postgres://me@db/shop?table=archive.sales")
    assert (qualified.schema, qualified.table, qualified.name) == ("archive", "sales", "shop.archive.sales")
    query = "SELECT * FROM sales WHERE region = 'north';"
    source = parse_sql_source(f"postgres://me@db/shop?query={quote(query)}")
    assert source.query == "SELECT * FROM sales WHERE region = 'north'"  # the trailing ';' is dropped
    assert source.table is None


def test_the_password_is_masked_in_every_rendering_but_the_connection():
    source = parse_sql_source(f"{WITH_PASSWORD}?table=penguins")
    shown = [str(source), repr(source), source.name, json.dumps(source.describe(3, "ab"))]
    assert all(PASSWORD not in text for text in shown)
    assert str(source) == f"postgresql+psycopg://postgres:***@{SERVER}/test?table=penguins"
    assert source.connection_url().password == PASSWORD
    assert source.scrub(f"error near {PASSWORD}") == "error near ***"


def test_a_flow_run_records_the_request_with_the_password_masked():
    """What Prefect stores as the flow run's parameters (its own serialisation) never holds the password."""
    from flows.train_flow import train_flow

    request = RunRequest(data=parse_sql_source(f"{WITH_PASSWORD}?table=penguins"), name="penguins", cfg=PmfConfig())
    recorded = json.dumps(train_flow.serialize_parameters({"request": request}))
    assert PASSWORD not in recorded
    assert "**********" in recorded
    validated = train_flow.validate_parameters({"request": request})["request"]
    assert validated.data.connection_url().password == PASSWORD  # the run itself can still connect


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"mysql://me:{PASSWORD}@db/shop?table=sales", "unsupported scheme 'mysql'"),
        (f"postgresql://me:{PASSWORD}@db/shop", "give exactly one of table= or query="),
        (f"postgresql://me:{PASSWORD}@db/shop?table=a&query=SELECT+1", "give exactly one of table= or query=, not both"),
        (f"postgresql://me:{PASSWORD}@db/shop?table=a&sslmode=require", "unknown parameter(s) sslmode"),
        (f"postgresql://me:{PASSWORD}@db/shop?query=DELETE+FROM+sales", "query= must be a SELECT"),
        (f"postgresql://me:{PASSWORD}@db/shop?query=SELECT+1%3B+DROP+TABLE+sales", "query= must be one statement"),
        (f"postgresql://me:{PASSWORD}@db/shop?table=", "give table= exactly once, with a value"),
        (f"postgresql://me:{PASSWORD}@db/shop?table=a.b.c", "is not a table name or SCHEMA.TABLE"),
        (f"postgresql://me:{PASSWORD}@db/?table=sales", "no database"),
        (f"postgresql://me:{PASSWORD}@db:99999/shop?table=sales", "the port is not a number"),
    ],
)
def test_a_bad_url_is_a_usage_error_naming_the_masked_url_and_what_was_expected(url, expected):
    with pytest.raises(ConfigError) as caught:
        parse_sql_source(url)
    message = str(caught.value)
    assert expected in message
    assert PASSWORD not in message
    assert "me:***@db" in message
    assert "expected postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DATABASE?table=" in message


# ---- against the real PostgreSQL ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tables:
    good: str  # the bundled penguins
    bad: str  # the same with 20 rows of a species the suite does not know and a negative body mass
    text_mass: str  # the penguins with body_mass_g stored as text, one value not a number
    scratch: str  # a copy the tests change

    def url(self, table: str, base: str = DATABASE) -> str:
        return f"{base}?table={table}"


@pytest.fixture(scope="module")
def tables():
    import sqlalchemy as sa

    prefix = f"pmf_h3_{uuid.uuid4().hex[:8]}"
    names = Tables(f"{prefix}_penguins", f"{prefix}_bad", f"{prefix}_text_mass", f"{prefix}_scratch")
    engine = sa.create_engine(DATABASE)
    penguins = pd.read_csv(DATA / "penguins.csv")
    bad = penguins.copy()
    bad.loc[:19, "species"] = "Dodo"  # enough rows to split on: the suite, not the split check, must say no
    bad.loc[1, "body_mass_g"] = -5.0
    text_mass = penguins.astype({"body_mass_g": "str"})
    text_mass.loc[2, "body_mass_g"] = "heavy"
    try:
        for name, frame in [(names.good, penguins), (names.bad, bad), (names.text_mass, text_mass), (names.scratch, penguins)]:
            frame.to_sql(name, engine, index=False)
        yield names
    finally:
        with engine.begin() as connection:
            for name in (names.good, names.bad, names.text_mass, names.scratch):
                connection.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
        engine.dispose()


@pytest.fixture(scope="module")
def penguins_suite(tables):
    """The suite the first batch of a name gets: inferred from the rows read, with the bundled config's rule."""
    from tasks.config import load_config

    frame, sha256 = read_sql_source(parse_sql_source(tables.url(tables.good)))
    labelled = frame[frame["species"].notna()]
    return infer_suite_document("penguins", labelled, "species", "classification", sha256, load_config(DATA / "penguins.yaml"))


@pytest.mark.component
def test_a_missing_table_a_refused_login_and_a_server_that_does_not_answer_are_told_apart(tables):
    with pytest.raises(ConfigError, match=r"table 'no_such_table' does not exist in database 'test' at postgresql"):
        check_sql_source(parse_sql_source(f"{WITH_PASSWORD}?table=no_such_table"))
    with pytest.raises(ConfigError, match="PostgreSQL refused the login") as refused:
        check_sql_source(parse_sql_source(f"postgresql://nobody_h3:{PASSWORD}@{SERVER}/test?table={tables.good}"))
    assert PASSWORD not in str(refused.value)
    with pytest.raises(ConfigError, match="the database does not exist"):
        check_sql_source(parse_sql_source(f"postgresql://postgres@{SERVER}/no_such_db_h3?table=x"))
    with pytest.raises(ConfigError, match='column "no_column" does not exist'):
        check_sql_source(parse_sql_source(f"{DATABASE}?query={quote(f'SELECT no_column FROM {tables.good}')}"))
    with pytest.raises(SqlSourceUnreachable, match=r"cannot connect to postgresql.*:1/test.*Connection refused"):
        check_sql_source(parse_sql_source(f"postgresql://postgres@127.0.0.1:1/test?table={tables.good}"))
    assert check_sql_source(parse_sql_source(tables.url(tables.good)))[:2] == ["species", "island"]


@pytest.mark.component
def test_the_hash_is_over_the_rows_stable_across_reads_and_orders_and_changes_with_a_row(tables):
    import sqlalchemy as sa

    table = parse_sql_source(tables.url(tables.scratch))
    frame, first = read_sql_source(table)
    _, again = read_sql_source(table)
    shuffled = parse_sql_source(f"{DATABASE}?query={quote(f'SELECT * FROM {tables.scratch} ORDER BY random()')}")
    reordered, any_order = read_sql_source(shuffled)
    assert first == again == any_order
    pd.testing.assert_frame_equal(frame, reordered)  # the same rows, the same canonical order: the same training
    assert (len(frame), list(frame.columns)) == (344, list(pd.read_csv(DATA / "penguins.csv").columns))

    with sa.create_engine(DATABASE).begin() as connection:
        one_row = f'SELECT ctid FROM "{tables.scratch}" WHERE body_mass_g IS NOT NULL LIMIT 1'
        connection.execute(sa.text(f'UPDATE "{tables.scratch}" SET body_mass_g = body_mass_g + 1 WHERE ctid = ({one_row})'))
    _, changed = read_sql_source(table)
    assert changed != first


@pytest.mark.component
def test_the_suite_runs_inside_postgresql_and_passes_a_good_table_as_pandas_does(tables, penguins_suite):
    from tasks.data.validate_sql import validate_sql_against_suite

    source = parse_sql_source(tables.url(tables.good))
    frame, _ = read_sql_source(source)
    labelled = frame[frame["species"].notna()]
    checked = validate_sql_against_suite("penguins", source, labelled, penguins_suite, 5)
    assert checked.engine == "SqlAlchemyExecutionEngine"  # GX computed the metrics with SQL, not on a frame
    # The batch GX validated is a SQL query over the table's labelled rows, not a frame.
    assert checked.batch_query == f"SELECT * FROM (SELECT * FROM {tables.good}) AS pmf_batch WHERE species IS NOT NULL"
    assert checked.in_pandas == ()
    assert checked.in_database == len(penguins_suite["expectations"])
    in_pandas = validate_against_suite("penguins", labelled, penguins_suite, 5)
    checks = len(penguins_suite["expectations"]) + 2  # and pmf's two class balance checks
    assert (
        checked.report.summary()
        == in_pandas.summary()
        == {"success": True, "expectations": checks, "passed": checks, "failed": 0}
    )


@pytest.mark.component
def test_a_table_with_bad_rows_is_rejected_inside_postgresql_naming_the_columns(tables, penguins_suite):
    from tasks.data.validate_sql import validate_sql_against_suite

    source = parse_sql_source(tables.url(tables.bad))
    frame, _ = read_sql_source(source)
    checked = validate_sql_against_suite("penguins", source, frame[frame["species"].notna()], penguins_suite, 5)
    assert checked.engine == "SqlAlchemyExecutionEngine"
    assert not checked.report.success
    failed = {(f["column"], f["expectation"]): f["observed"] for f in checked.report.failures}
    assert failed[("species", "expect_column_values_to_be_in_set")]["unexpected_count"] == 20
    assert set(failed[("species", "expect_column_values_to_be_in_set")]["partial_unexpected_list"]) == {"Dodo"}
    assert failed[("body_mass_g", "expect_column_values_to_be_between")]["partial_unexpected_list"] == [-5.0]


@pytest.mark.component
def test_numbers_stored_as_text_fail_the_type_check_in_sql_and_a_check_gx_has_no_sql_for_runs_in_pandas(tables, penguins_suite):
    from tasks.data.validate_sql import validate_sql_against_suite

    no_sql_version = {"type": "expect_column_values_to_be_dateutil_parseable", "kwargs": {"column": "island"}}
    suite = {**penguins_suite, "expectations": [*penguins_suite["expectations"], no_sql_version]}
    source = parse_sql_source(tables.url(tables.text_mass))
    frame, _ = read_sql_source(source)
    checked = validate_sql_against_suite("penguins", source, frame[frame["species"].notna()], suite, 5)
    assert checked.in_pandas == ("island: column_values_to_be_dateutil_parseable",)
    assert checked.in_database == len(penguins_suite["expectations"])
    failed = {(f["column"], f["expectation"]): f["observed"] for f in checked.report.failures}
    type_failure = failed[("body_mass_g", "expect_column_values_to_be_in_type_list")]
    assert "numbers expected but the column arrived as text" in type_failure
    assert "'heavy'" in type_failure
    # The island names are not dates: pandas saw the rows read and lists them.
    assert "Biscoe" in failed[("island", "expect_column_values_to_be_dateutil_parseable")]["partial_unexpected_list"]


# ---- pmf run / pmf validate, as a user runs them ----------------------------------------------------------


def run_pmf(home, *args: str) -> tuple[int, dict, str]:
    """`pmf ARGS --json` in its own process: (exit code, the JSON on stdout, everything it printed)."""
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", *args, "--json"],
        cwd=home.parent,
        env=pmf_env(home),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    return done.returncode, json.loads(lines[-1]) if lines else {}, done.stdout + done.stderr


LEAN = ["--set", "train.epochs=2", "--set", "compression.variants=[float32]", "--set", "promotion.auto_promote=false"]


@pytest.mark.slow
def test_pmf_run_trains_on_a_table_and_rejects_a_table_with_bad_rows_never_showing_the_password(tables, tmp_path):
    home = tmp_path / "home"
    code, result, printed = run_pmf(home, "run", "--data", tables.url(tables.good, WITH_PASSWORD), "--target", "species", *LEAN)
    assert code == 0, printed[-3000:]
    assert (result["status"], result["registered_model"], result["version"]) == ("completed", tables.good, "1")
    assert "ran 30 expectations in PostgreSQL (GX SqlAlchemyExecutionEngine)" in printed

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    assert client.get_registered_model(tables.good).name == tables.good
    parent = client.get_run(result["mlflow_run_id"])
    (dataset,) = [d.dataset for d in parent.inputs.dataset_inputs]
    assert dataset.source_type == "postgresql"
    source = json.loads(dataset.source)
    assert (source["table"], source["rows"], source["url"]) == (
        tables.good,
        "344",
        str(parse_sql_source(tables.url(tables.good, WITH_PASSWORD))),
    )
    assert parent.data.params["data"] == f"postgresql+psycopg://postgres:***@{SERVER}/test?table={tables.good}"

    code, rejected, printed_bad = run_pmf(
        home, "run", "--data", tables.url(tables.bad, WITH_PASSWORD), "--name", tables.good, *LEAN
    )
    assert code == 3, printed_bad[-3000:]
    named = {(e["column"], e["expectation"]) for e in rejected["errors"]}
    assert {("species", "expect_column_values_to_be_in_set"), ("body_mass_g", "expect_column_values_to_be_between")} <= named
    assert "Traceback" not in printed_bad
    assert [str(v.version) for v in client.search_model_versions(f"name = '{tables.good}'")] == ["1"]  # nothing registered

    assert PASSWORD not in printed + printed_bad
    # Nor anywhere in the workspace: the MLflow and Prefect databases, logs, artifacts, the kept Parquet copy.
    assert [p for p in home.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()] == []


@pytest.mark.slow
def test_pmf_validate_takes_a_query_with_a_name_and_refuses_one_without(tables, tmp_path):
    home = tmp_path / "home"
    query = quote(f"SELECT * FROM {tables.good} WHERE island <> 'Torgersen'")
    code, refused, printed = run_pmf(home, "validate", "--data", f"{WITH_PASSWORD}?query={query}", "--target", "species")
    assert code == 2
    assert "a query has no name of its own: pass --name NAME" in refused["error"]
    assert PASSWORD not in printed

    code, missing, _ = run_pmf(home, "validate", "--data", tables.url("no_such_table_h3"), "--target", "species")
    assert code == 2  # like a data file that does not exist
    assert missing["error"] == f"table 'no_such_table_h3' does not exist in database 'test' at {tables.url('no_such_table_h3')}"

    code, valid, printed = run_pmf(
        home, "validate", "--data", f"{WITH_PASSWORD}?query={query}", "--name", "islands", "--target", "species"
    )
    assert code == 0, printed[-3000:]
    assert (valid["status"], valid["passed"], valid["failed"]) == ("valid", valid["expectations"], 0)
    assert valid["data"] == f"postgresql+psycopg://postgres:***@{SERVER}/test?query={query}"
    assert "in PostgreSQL (GX SqlAlchemyExecutionEngine)" in printed
    assert PASSWORD not in printed


def test_data_is_a_path_unless_it_is_a_url():
    """Files are read as before (the flows' own tests cover them); only a `scheme://` makes `--data` a database."""
    from pathlib import Path

    from flows.cli.run import _data

    assert _data("data/penguins.csv") == Path("data/penguins.csv")
    assert isinstance(_data(f"{DATABASE}?table=x"), SqlSource)
    with pytest.raises(ConfigError, match="unsupported scheme 'https'"):
        _data("https://example.com/penguins.csv")
