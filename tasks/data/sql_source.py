"""A batch read from PostgreSQL: `--data 'postgresql+psycopg://USER@HOST:PORT/DB?table=NAME'` or `...?query=SELECT…`.

`parse_sql_source` turns the URL into a `SqlSource` (a usage error names the URL, its password masked,
and what was expected); `check_sql_source` connects and makes sure the table or query can be read
(a missing table is a usage error like a missing file); `read_sql_source` reads the rows in a read-only
transaction and hashes them. The password is kept as a pydantic `SecretStr`, so it is never printed,
logged or serialised (a Prefect flow-run parameter shows `**********`); everything shown says
`str(source)`, the URL with the password masked. It can also come from `PGPASSWORD` or `~/.pgpass`.

The hash is order-independent: SHA-256 over the column names and dtypes and the sorted 64-bit row
hashes of the frame (pandas' `hash_pandas_object`); the same rows in any order hash the same, any
changed row changes it. The frame is put in that canonical order too, so the same rows train the same
model whatever order PostgreSQL returned them in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from pydantic import SecretStr

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

SCHEMES = ("postgresql+psycopg", "postgresql", "postgres")
DRIVER = "postgresql+psycopg"  # psycopg 3, the driver the lock carries
URL_FORM = "postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DATABASE?table=[SCHEMA.]TABLE (or ?query=SELECT..., URL-encoded)"
MASK = "***"
CONNECT_TIMEOUT_S = 10
_READS = re.compile(r"^\s*(\(\s*)*(select|with|values|table)\b", re.IGNORECASE)


class SqlSourceUnreachable(RuntimeError):
    """The PostgreSQL server could not be reached (down, wrong host or port): like any server down, exit 1."""


def looks_like_url(text: str) -> bool:
    """True for anything with a `scheme://`: it is parsed as a database URL (and refused if not PostgreSQL)."""
    return "://" in text


@dataclass(frozen=True)
class SqlSource:
    """One table (or SELECT) of a PostgreSQL database. `str()` is the URL with its password masked."""

    url: str  # as given, with the password masked
    username: str | None
    host: str | None
    port: int | None
    database: str
    table: str | None = None
    schema: str | None = None
    query: str | None = None
    password: SecretStr | None = field(default=None, repr=False, compare=False)
    source_type: ClassVar[str] = "postgresql"  # the MLflow dataset source type a run records

    def __str__(self) -> str:
        return self.url

    @property
    def name(self) -> str:
        """What a run is called after (Prefect flow run name, MLflow dataset name): `test.penguins`, `test (query)`."""
        return f"{self.database}.{self.relation}" if self.table else f"{self.database} (query)"

    @property
    def relation(self) -> str:
        """`schema.table`, `table`, or the query text."""
        if self.table is None:
            return self.query or ""
        return f"{self.schema}.{self.table}" if self.schema else self.table

    @property
    def what(self) -> str:
        """`table 'penguins'` or `the query`: how messages name what is read."""
        return f"table {self.relation!r}" if self.table else "the query"

    def connection_url(self) -> sa.engine.URL:
        """The SQLAlchemy URL with the password (an object: never rendered as text by pmf)."""
        import sqlalchemy as sa

        password = self.password.get_secret_value() if self.password else None
        return sa.engine.URL.create(DRIVER, self.username, password, self.host, self.port, self.database)

    def select_sql(self, dialect: Any) -> str:
        """`SELECT * FROM "schema"."table"`, or the query as a subquery: what is read and validated."""
        quote = dialect.identifier_preparer.quote
        if self.table is not None:
            return f"SELECT * FROM {quote(self.schema) + '.' if self.schema else ''}{quote(self.table)}"  # noqa: S608  (quoted identifiers)
        # The user's own SELECT, by design; it only ever runs in a read-only transaction or as a subquery.
        return f"SELECT * FROM ({self.query}) AS pmf_source"  # noqa: S608

    def scrub(self, text: str) -> str:
        """`text` with the password replaced by ***, wherever a library's message might have quoted it."""
        secret = self.password.get_secret_value() if self.password else ""
        return text.replace(secret, MASK) if secret else text

    def describe(self, rows: int, sha256: str) -> dict[str, str]:
        """The facts a run records about the source (MLflow dataset source, parameters)."""
        facts = {"url": self.url, "database": self.database, "rows": str(rows), "sha256": sha256}
        return {**facts, **({"table": self.relation} if self.table else {"query": self.query or ""})}


def parse_sql_source(text: str) -> SqlSource:
    """A `SqlSource` from `--data URL`; ConfigError naming the (masked) URL and what was expected."""
    from tasks.config import ConfigError

    masked = _masked(text)

    def refuse(problem: str) -> ConfigError:
        return ConfigError(f"--data {masked}: {problem}; expected {URL_FORM}")

    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise refuse(f"not a URL ({exc})") from None
    if parts.scheme.lower() not in SCHEMES:
        raise refuse(f"unsupported scheme {parts.scheme!r} (a database URL is one of {', '.join(SCHEMES)})")
    try:
        port = parts.port
    except ValueError:
        raise refuse("the port is not a number from 0 to 65535") from None
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise refuse("no database named after the host (…@HOST:PORT/DATABASE)")
    table, schema, query = _relation(parts.query, refuse)
    password = unquote(parts.password) if parts.password is not None else None
    return SqlSource(
        url=masked,
        username=unquote(parts.username) if parts.username else None,
        host=parts.hostname,
        port=port,
        database=database,
        table=table,
        schema=schema,
        query=query,
        password=SecretStr(password) if password else None,
    )


def _relation(query_string: str, refuse: Any) -> tuple[str | None, str | None, str | None]:
    """(table, schema, query) from `table=[schema.]name` or `query=SELECT…`: exactly one of the two."""
    try:
        params = parse_qs(query_string, keep_blank_values=True, strict_parsing=bool(query_string))
    except ValueError:
        raise refuse(f"cannot read the parameters {query_string!r}") from None
    unknown = sorted(set(params) - {"table", "query"})
    if unknown:
        raise refuse(f"unknown parameter(s) {', '.join(unknown)} (only table= or query=)")
    if len(params) != 1:
        raise refuse("give exactly one of table= or query=" + (", not both" if params else ""))
    ((key, values),) = params.items()
    if len(values) != 1 or not values[0].strip():
        raise refuse(f"give {key}= exactly once, with a value")
    value = values[0].strip()
    if key == "query":
        return None, None, _select_only(value, refuse)
    schema, _, table = value.rpartition(".") if value.count(".") == 1 else ("", "", value)
    if not table or (value.count(".") == 1 and not schema) or value.count(".") > 1:
        raise refuse(f"table={value!r} is not a table name or SCHEMA.TABLE")
    return table, schema or None, None


def _select_only(query: str, refuse: Any) -> str:
    """The query without a trailing `;`, if it is one read-only statement (it also runs in a read-only transaction)."""
    body = query.rstrip().removesuffix(";").rstrip()
    if not _READS.match(body):
        raise refuse("query= must be a SELECT (or WITH … SELECT) statement")
    if ";" in body:
        raise refuse("query= must be one statement (no ';' inside)")
    return body


def _masked(text: str) -> str:
    """`text` with the password of its user part replaced by *** (the rest as given)."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return "(an unreadable URL)"
    if parts.password is None:
        return text
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}:{MASK}@{host}"))


def engine(source: SqlSource) -> sa.Engine:
    """An engine without a pool (each use connects once), bounded connect time, named `pmf` in pg_stat_activity."""
    import sqlalchemy as sa

    return sa.create_engine(
        source.connection_url(),
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "pmf"},
    )


def check_sql_source(source: SqlSource) -> list[str]:
    """Connect and read no rows of the table or query: its column names. ConfigError for a missing
    table, database or login; SqlSourceUnreachable when the server cannot be reached."""
    import sqlalchemy as sa

    with _reading(source) as connection:
        probe = f"SELECT * FROM ({source.select_sql(connection.dialect)}) AS pmf_probe LIMIT 0"  # noqa: S608  (see select_sql)
        result = connection.execute(sa.text(probe))
        return list(result.keys())


def read_sql_source(source: SqlSource) -> tuple[pd.DataFrame, str]:
    """The rows (in canonical order) and their hash; DataError for a table pmf cannot train on (no rows,
    fewer than two columns), like a file's."""
    from tasks.data.load import DataError

    with _reading(source) as connection:
        frame = _copy_out(connection, source.select_sql(connection.dialect))
    if frame.shape[1] < 2:
        raise DataError(f"{source} ({source.what}) has {frame.shape[1]} column(s): expected feature columns and a target")
    if frame.empty:
        raise DataError(f"{source} ({source.what}) has no rows")
    return canonical_rows(frame)


# PostgreSQL type OIDs read as typed columns; every other type (dates, times, JSON...) arrives as text, as
# in a CSV export, and pmf infers its role from the values as it does for a file.
_ARROW_TYPES = {16: "bool", 20: "int64", 21: "int64", 23: "int64", 26: "int64", 700: "float64", 701: "float64", 1700: "float64"}


def _copy_out(connection: sa.Connection, select: str) -> pd.DataFrame:
    """The rows of `select` through `COPY … TO STDOUT (FORMAT csv)`, parsed by pyarrow with the columns'
    SQL types: ~5x faster than fetching rows as Python objects (pandas.read_sql) at a million rows.
    NULL and '' stay apart (an empty quoted string is text), NUMERIC becomes float64, NaN/±Infinity too."""
    import io

    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv

    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(f"SELECT * FROM ({select}) AS pmf_read LIMIT 0")  # noqa: S608  (see select_sql)
    columns = [(str(c.name), _ARROW_TYPES.get(c.type_code, "string")) for c in cursor.description or []]
    data = io.BytesIO()
    with cursor.copy(f"COPY ({select}) TO STDOUT (FORMAT csv)") as copy:
        for chunk in copy:
            data.write(chunk)
    data.seek(0)
    if not data.getbuffer().nbytes:  # no rows: pyarrow reads nothing, the caller says the batch is empty
        return pd.DataFrame(columns=[name for name, _ in columns])
    names = [f"c{i}" for i in range(len(columns))]  # positions: a query may name two columns alike
    table = pacsv.read_csv(
        data,
        read_options=pacsv.ReadOptions(column_names=names),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.type_for_alias(t) for n, (_, t) in zip(names, columns, strict=True)},
            true_values=["t"],
            false_values=["f"],
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    frame = table.to_pandas()
    frame.columns = [name for name, _ in columns]
    return frame


def canonical_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The frame sorted by its row hashes (index reset) and the SHA-256 of its columns and sorted row hashes."""
    import hashlib
    import json

    import numpy as np
    import pandas as pd

    try:
        rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    except TypeError:  # values pandas cannot hash (arrays, JSON documents): hash their text
        rows = pd.util.hash_pandas_object(frame.astype("str"), index=False).to_numpy()
    order = np.argsort(rows, kind="stable")
    digest = hashlib.sha256(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(rows[order].astype("<u8").tobytes())
    return frame.iloc[order].reset_index(drop=True), digest.hexdigest()


def parquet_copy(frame: pd.DataFrame, source: SqlSource, sha256: str, folder: Path) -> Path:
    """The rows as a Parquet file in `folder`, named after the source and hash: what the store keeps of a
    SQL batch, so a later `pmf retrain` can use it as reference data like a file batch."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", source.name).strip("_") or "query"
    path = folder / f"{stem}-{sha256[:12]}.parquet"
    frame.to_parquet(path, index=False)
    return path


class _reading:
    """A connection in a read-only transaction (rolled back at the end); database errors become pmf's."""

    def __init__(self, source: SqlSource) -> None:
        self.source = source

    def __enter__(self) -> sa.Connection:
        import sqlalchemy as sa

        self.engine = engine(self.source)
        try:
            self.connection = self.engine.connect().execution_options(postgresql_readonly=True)
        except sa.exc.DBAPIError as exc:
            self.engine.dispose()
            raise explain_database_error(self.source, exc) from None
        return self.connection

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        import sqlalchemy as sa

        try:
            self.connection.rollback()
            self.connection.close()
        finally:
            self.engine.dispose()
        import psycopg

        if isinstance(error, (sa.exc.DBAPIError, psycopg.Error)):  # psycopg's own: the COPY runs on its cursor
            raise explain_database_error(self.source, error) from None


# SQLSTATE classes (PostgreSQL appendix A) that are the server's trouble, not the URL's, table's or query's: exit 1.
_SERVER_TROUBLE = ("08", "53", "57", "58", "XX")
_HINTS = {
    "28": "PostgreSQL refused the login: check the user and password (it can also come from PGPASSWORD or ~/.pgpass)",
    "3D": "the database does not exist",
    "3F": "the schema does not exist",
    "42501": "permission denied: the user needs SELECT on it",
    "25006": "the query tries to write: only a SELECT is read",
}


def explain_database_error(source: SqlSource, exc: Exception) -> Exception:
    """The error pmf raises for a database error, naming the masked URL and the table (or query) and keeping the
    database's first line (password scrubbed): ConfigError (exit 2) for what the user fixes in the URL,
    table or query (a login refused, a missing database, table or column, bad SQL); SqlSourceUnreachable
    (exit 1) when no server answered; RuntimeError (exit 1) for the server's own trouble."""
    from tasks.config import ConfigError

    original = getattr(exc, "orig", None) or exc
    state = getattr(original, "sqlstate", None)
    lines = str(original).strip().splitlines()
    text = " ".join(lines[0].split()) if lines else ""
    said = source.scrub(text or type(original).__name__)
    if state is None and "FATAL:" in text:  # the server answered the connection with a refusal
        refusal = said.split("FATAL:", 1)[1].strip()
        login = any(word in refusal for word in ("password", "authentication", "role", "pg_hba"))
        state = "28000" if login else ("3D000" if "database" in refusal else "08004")
        said = refusal
    if state is None:
        return SqlSourceUnreachable(f"cannot connect to {source} to read {source.what}: {said}")
    if state.startswith(_SERVER_TROUBLE):
        return RuntimeError(f"{source} ({source.what}): PostgreSQL error {state}: {said}")
    if state == "42P01" and source.table:
        return ConfigError(f"{source.what} does not exist in database {source.database!r} at {source}")
    hint = _HINTS.get(state) or _HINTS.get(state[:2]) or "PostgreSQL refused the query"
    return ConfigError(f"{source} ({source.what}): {hint}: {said}")
