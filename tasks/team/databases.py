"""The team's PostgreSQL: its URL checked, the three databases team mode needs created, and dropped.

`pmf team up --postgres URL` names a server (and the database to connect to while creating the others,
default `postgres`); team mode keeps each service in a database of its own, `{prefix}_prefect`,
`{prefix}_mlflow` and `{prefix}_pmf`, because Prefect and MLflow both keep Alembic's `alembic_version`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

# `postgresql+psycopg://` is what SQLAlchemy (and PMF_DATABASE_URL) spell; the other two are libpq's.
SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
# Prefect's and MLflow's databases, and pmf's own tables (PMF_DATABASE_URL), in that order.
SERVICES = ("prefect", "mlflow", "pmf")
# PostgreSQL names are at most 63 bytes; the longest suffix is `_prefect`.
PREFIX_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,54}")
CONNECT_TIMEOUT_S = 5


class BadPostgresUrl(ValueError):
    """The URL (or prefix) is not one team mode can use: the message says what was expected."""


class PostgresUnreachable(Exception):
    """Nothing answered at the URL, or it refused us: the message names the URL (without its password)."""


@dataclass(frozen=True)
class PostgresServer:
    """A PostgreSQL server as `--postgres` named it; `database` is the one connected to for admin work."""

    host: str
    port: int
    user: str
    password: str = ""
    database: str = "postgres"

    def url(self, database: str | None = None, driver: str = "") -> str:
        """`postgresql[+driver]://USER[:PASSWORD]@HOST:PORT/DATABASE` (default: the admin database)."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        secret = f":{quote(self.password, safe='')}" if self.password else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{quote(self.user, safe='')}{secret}@{host}:{self.port}/{database or self.database}"

    def shown(self, database: str | None = None) -> str:
        """The URL as messages print it: the password masked."""
        url = self.url(database)
        return url.replace(f":{quote(self.password, safe='')}@", ":***@") if self.password else url


def parse_postgres_url(url: str) -> PostgresServer:
    """`postgresql://`, `postgres://` or `postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT][/DATABASE]`.

    Raises BadPostgresUrl naming the URL and what was expected.
    """
    expected = "expected postgresql://USER@HOST[:PORT][/DATABASE] (or postgres://, postgresql+psycopg://)"
    try:
        parts = urlsplit(url)
        port = parts.port or 5432
    except ValueError as exc:
        raise BadPostgresUrl(f"--postgres {url!r}: {exc}; {expected}") from None
    if parts.scheme not in SCHEMES:
        raise BadPostgresUrl(f"--postgres {url!r}: scheme {parts.scheme or '(none)'!r} is not PostgreSQL's; {expected}")
    if not parts.hostname:
        raise BadPostgresUrl(f"--postgres {url!r}: no host; {expected}")
    if not parts.username:
        raise BadPostgresUrl(f"--postgres {url!r}: no user; {expected}")
    database = unquote(parts.path.lstrip("/")) or "postgres"
    return PostgresServer(parts.hostname, port, unquote(parts.username), unquote(parts.password or ""), database)


def check_prefix(prefix: str) -> str:
    """The databases' prefix: lower-case letters, digits and `_`, not starting with a digit (BadPostgresUrl)."""
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise BadPostgresUrl(
            f"--prefix {prefix!r}: expected lower-case letters, digits and _ (not starting with a digit), at most 55 characters"
        )
    return prefix


def database_names(prefix: str) -> list[str]:
    return [f"{prefix}_{service}" for service in SERVICES]


def _connect(server: PostgresServer, database: str | None = None):  # -> psycopg.Connection
    import psycopg

    try:
        return psycopg.connect(server.url(database), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())[:300]
        raise PostgresUnreachable(f"PostgreSQL at {server.shown(database)} did not answer: {reason}") from None


def check_server(server: PostgresServer) -> str:
    """Connect once and return the server's version (PostgresUnreachable if it does not answer)."""
    with _connect(server) as connection:
        return str(connection.execute("SHOW server_version").fetchone()[0])


def existing_databases(server: PostgresServer, names: list[str]) -> list[str]:
    """Which of `names` exist on the server."""
    with _connect(server) as connection:
        rows = connection.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,)).fetchall()
    return [name for name in names if (name,) in rows]


def create_databases(server: PostgresServer, prefix: str) -> list[str]:
    """Create the databases of `prefix` that are missing (and pg_trgm, which Prefect's migrations need,
    in Prefect's); returns the ones created. Raises PostgresUnreachable."""
    import psycopg
    from psycopg import sql

    names = database_names(prefix)
    created = []
    with _connect(server) as connection:
        present = {row[0] for row in connection.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,))}
        for name in names:
            if name in present:
                continue
            try:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                created.append(name)
            except psycopg.errors.DuplicateDatabase:  # another `team up` created it meanwhile
                continue
            except psycopg.Error as exc:
                raise PostgresUnreachable(f"could not create database {name} on {server.shown()}: {exc}") from None
    with _connect(server, names[0]) as connection:
        try:
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except psycopg.Error as exc:
            raise PostgresUnreachable(f"could not create extension pg_trgm in {server.shown(names[0])}: {exc}") from None
    return created


def drop_databases(server: PostgresServer, names: list[str]) -> list[str]:
    """Drop the databases `names` that exist, closing their connections first; returns the ones dropped."""
    from psycopg import sql

    dropped = []
    with _connect(server) as connection:
        for name in existing_databases(server, names):
            # Connections a stopped server left half-closed (or a user's psql) would block the drop.
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)
            )
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            dropped.append(name)
    return dropped
