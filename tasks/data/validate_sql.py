"""Validate a batch inside PostgreSQL: the dataset's stored suite run by Great Expectations' SQL datasource.

The suite document is the one the pandas path uses (tasks/data/suite.py); GX runs it with its
SqlAlchemyExecutionEngine on a query asset over the labelled rows of the table or query (the rows
the pandas path validates: the target is not NULL, nor NaN, nor ±Infinity for regression), so every
count, range, set and null share is computed by PostgreSQL. The asset uses GX's temporary table, so
GX reflects the columns' SQL types for the type checks. Two translations, both in the open:

- pmf's numeric type list (pandas dtype names) means PostgreSQL's numeric types (SMALLINT, INTEGER,
  BIGINT, REAL, DOUBLE PRECISION, NUMERIC of any precision, BOOLEAN); `str` means the text types.
- An expectation GX has no SQL implementation for (today: `expect_column_values_to_be_dateutil_parseable`)
  runs on the rows read, with GX's pandas engine, and the result says so (`in_pandas`).

pmf's own class balance checks run on the rows read, as on the pandas path; the report is the same
`ValidationReport`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from tasks.data.schema import Schema
from tasks.data.sql_source import SqlSource, engine, explain_database_error
from tasks.data.suite import SuiteDocument, explain_text_in_numbers
from tasks.data.validate import (
    NUMERIC_TYPES,
    ValidationReport,
    class_balance_checks,
    describe_result,
    gx_context,
    merge_missing_columns,
    to_gx,
    validate_frame,
)

NUMERIC_SQL_TYPES = ("SMALLINT", "INTEGER", "BIGINT", "REAL", "DOUBLE PRECISION", "NUMERIC", "DECIMAL", "BOOLEAN")
TEXT_SQL_TYPES = ("TEXT", "VARCHAR", "CHAR", "CHARACTER VARYING", "CHARACTER")
FLOAT_SQL_TYPES = ("REAL", "DOUBLE PRECISION", "NUMERIC", "DECIMAL")  # the types that can hold NaN and ±Infinity
# pmf's numeric type list (pandas dtype names) and pandas' text dtypes, in PostgreSQL's terms.
_PANDAS_TO_SQL = {
    **dict.fromkeys(NUMERIC_TYPES, NUMERIC_SQL_TYPES),
    **dict.fromkeys(("str", "string", "object"), TEXT_SQL_TYPES),
}
# GX's messages for a metric its SQL engine cannot compute: no SQL implementation, or not on this column type
# (`expect_column_values_to_be_between` on a BOOLEAN column, which pandas compares as 0/1).
NOT_IN_SQL = ("No provider found", "cannot be computed on column of type")


@dataclass(frozen=True)
class SqlValidation:
    """The report, and where each check ran: `engine` is GX's execution engine for the suite
    (SqlAlchemyExecutionEngine), `batch_query` the SQL of its batch spec (what PostgreSQL validated),
    `in_database` the expectations PostgreSQL computed, `in_pandas` those GX cannot run in SQL."""

    report: ValidationReport
    engine: str
    batch_query: str
    in_database: int
    in_pandas: tuple[str, ...] = ()

    def sentence(self) -> str:
        """`  ran 30 expectations in PostgreSQL (GX SqlAlchemyExecutionEngine); 1 on the rows read, in pandas ...`"""
        said = f"  ran {self.in_database} expectations in PostgreSQL (GX {self.engine})"
        if self.in_pandas:
            said += (
                f"; {len(self.in_pandas)} on the rows read, in pandas (GX cannot run them in SQL): {', '.join(self.in_pandas)}"
            )
        return said


def validate_sql_against_suite(
    name: str, source: SqlSource, frame: pd.DataFrame, suite: SuiteDocument, min_rows_per_class: int
) -> SqlValidation:
    """The suite run inside PostgreSQL on `source`'s labelled rows, plus the class balance checks on
    `frame` (those rows as read); numeric columns that arrived as text say which values are not numbers.
    `frame` must hold the labelled rows (the validate stage's), for the checks that run in pandas."""
    schema = Schema.from_dict(suite["schema"])
    checked = validate_in_database(name, source, frame, suite["expectations"], schema)
    report = checked.report.with_checks(class_balance_checks(frame, schema, min_rows_per_class))
    report = report.with_failures([explain_text_in_numbers(f, frame, schema) for f in report.failures])
    return SqlValidation(report, checked.engine, checked.batch_query, checked.in_database, checked.in_pandas)


def validate_in_database(
    name: str, source: SqlSource, frame: pd.DataFrame, expectations: list[dict[str, Any]], schema: Schema | None = None
) -> SqlValidation:
    """Run `expectations` with GX's SQL datasource on the source's rows (only the labelled ones when
    `schema` is given); those GX cannot run in SQL run on `frame` in pandas."""
    import great_expectations as gx
    import sqlalchemy as sa

    types = column_types(source)
    selected = labelled_rows_sql(source, schema, types)
    context = gx_context()
    datasource = context.data_sources.add_postgres(
        name="pmf",
        connection_string=source.connection_url().render_as_string(hide_password=False),
        create_temp_table=True,  # GX reflects the SQL types of its temporary table (a query's own are not known)
        kwargs={"connect_args": {"connect_timeout": 10, "application_name": "pmf-validate"}},
    )
    try:
        batch_definition = datasource.add_query_asset(name=name, query=selected).add_batch_definition_whole_table("batch")
        translated = [in_sql_terms(e, types) for e in expectations]
        suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=[to_gx(e) for e in translated]))
        definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch_definition, suite=suite))
        result = definition.run(result_format="BASIC")
        engine_name = type(datasource.get_execution_engine()).__name__
    except sa.exc.DBAPIError as exc:
        raise explain_database_error(source, exc) from None
    finally:
        datasource.get_engine().dispose()
    _raise_lost_connection(source, result.results)
    return _combine(name, frame, expectations, result, engine_name)


def _combine(name: str, frame: pd.DataFrame, expectations: list[dict[str, Any]], result: Any, engine_name: str) -> SqlValidation:
    """GX's SQL results, with those it has no SQL provider for run again on `frame` in pandas."""
    ran: list[Any] = []
    fallback: list[Any] = []
    for outcome in result.results:
        message = str((outcome.exception_info or {}).get("exception_message") or "")
        (fallback if any(said in message for said in NOT_IN_SQL) else ran).append(outcome)
    in_pandas = [_original(expectations, o.expectation_config) for o in fallback]
    pandas_report = validate_frame(frame, in_pandas, name) if in_pandas else ValidationReport(True, 0, [], [])
    failures = merge_missing_columns([describe_result(o) for o in ran if not o.success] + pandas_report.failures, frame)
    passed = [describe_result(o) for o in ran if o.success] + pandas_report.passed
    report = ValidationReport(
        all(o.success for o in ran) and pandas_report.success, len(ran) + pandas_report.evaluated, failures, passed
    )
    named = tuple(f"{e['kwargs'].get('column') or 'table'}: {e['type'].removeprefix('expect_')}" for e in in_pandas)
    spec = result.meta.get("batch_spec") or {}
    return SqlValidation(report, engine_name, str(spec.get("query", "")), len(ran), named)


def _original(expectations: list[dict[str, Any]], config: Any) -> dict[str, Any]:
    """The suite's own expectation behind a GX result (type and column), untranslated, for the pandas run."""
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    same_type = [e for e in expectations if e["type"] == config.type]
    exact = [e for e in same_type if e["kwargs"] == kwargs]
    on_column = [e for e in same_type if e["kwargs"].get("column") == kwargs.get("column")]
    return (exact or on_column or [{"type": config.type, "kwargs": kwargs}])[0]


def _raise_lost_connection(source: SqlSource, results: list[Any]) -> None:
    """A server that went away mid-validation fails every expectation with a connection error: that is a
    failure to validate (exit 1), never a rejected batch."""
    messages = [str((r.exception_info or {}).get("exception_message") or "") for r in results]
    lost = [m for m in messages if "OperationalError" in m or "server closed the connection" in m]
    if lost:
        raise RuntimeError(
            f"{source} ({source.what}): the database connection failed during validation: {source.scrub(lost[0])[:300]}"
        )


def column_types(source: SqlSource) -> dict[str, str]:
    """Each column's SQL type as GX names it on PostgreSQL (`DOUBLE PRECISION`, `NUMERIC(10, 2)`), read from
    an empty temporary table made from the source (rolled back)."""
    import sqlalchemy as sa

    database = engine(source)
    try:
        with database.connect() as connection:
            select = source.select_sql(connection.dialect)
            empty = f"CREATE TEMPORARY TABLE pmf_types AS SELECT * FROM ({select}) AS pmf_source LIMIT 0"  # noqa: S608  (select_sql)
            connection.execute(sa.text(empty))
            columns = sa.inspect(connection).get_columns("pmf_types")
            connection.rollback()
        return {str(c["name"]): str(c["type"].compile(dialect=database.dialect)) for c in columns}
    except sa.exc.DBAPIError as exc:
        raise explain_database_error(source, exc) from None
    finally:
        database.dispose()


def labelled_rows_sql(source: SqlSource, schema: Schema | None, types: dict[str, str]) -> str:
    """The source's SELECT, keeping the rows the pandas path validates: a target that is not NULL, and in
    a float or numeric column not NaN (pandas reads NaN as missing), nor ±Infinity for regression."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    select = source.select_sql(dialect)
    if schema is None or schema.target not in types:
        return select  # a missing target column is the suite's to report
    target = dialect.identifier_preparer.quote(schema.target)
    conditions = [f"{target} IS NOT NULL"]
    if _base(types[schema.target]) in FLOAT_SQL_TYPES:
        excluded = ["'NaN'", *(["'Infinity'", "'-Infinity'"] if schema.task == "regression" else [])]
        conditions.append(f"{target} NOT IN ({', '.join(excluded)})")
    return f"SELECT * FROM ({select}) AS pmf_batch WHERE {' AND '.join(conditions)}"  # noqa: S608  (quoted identifier)


def in_sql_terms(expectation: dict[str, Any], types: dict[str, str]) -> dict[str, Any]:
    """The expectation as GX checks it on PostgreSQL: a type list of pandas dtype names becomes the SQL types
    they stand for (with the column's own `NUMERIC(p, s)` or `VARCHAR(n)` when it is one of them)."""
    kwargs = expectation["kwargs"]
    if expectation["type"] != "expect_column_values_to_be_in_type_list" or not isinstance(kwargs.get("type_list"), list):
        return expectation
    wanted: list[str] = []
    for name in kwargs["type_list"]:
        for sql in _PANDAS_TO_SQL.get(str(name), (str(name),)):
            if sql not in wanted:
                wanted.append(sql)
    actual = types.get(str(kwargs.get("column")))
    if actual is not None and _base(actual) in wanted and actual not in wanted:
        wanted.append(actual)
    return {"type": expectation["type"], "kwargs": {**kwargs, "type_list": wanted}}


def _base(sql_type: str) -> str:
    """`NUMERIC(10, 2)` -> `NUMERIC`, `VARCHAR(20)` -> `VARCHAR`."""
    return sql_type.split("(", 1)[0].strip().upper()
