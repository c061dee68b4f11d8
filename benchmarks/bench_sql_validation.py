"""A batch from PostgreSQL: its suite run inside the database (GX's SQL datasource) against the same suite
run by pmf's pandas path on the rows read, in the same run. The table (`tabular_frame`, 11 columns, one
out-of-range value so both sides must find a failure) is written to a randomly named table in database
`test` at 127.0.0.1:5432 and dropped at the end. GX is imported once before timing.

    python benchmarks/bench_sql_validation.py [--rows 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import tabular_frame
from timing import best_of

from tasks.config import PmfConfig
from tasks.data.sql_source import parse_sql_source, read_sql_source
from tasks.data.suite import infer_suite_document, validate_against_suite
from tasks.data.validate_sql import validate_sql_against_suite

DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def copy_into(engine: Any, table: str, frame: Any) -> None:
    """The frame as a new table, its rows sent with COPY (an INSERT per row would take minutes at 1M)."""
    import io

    frame.head(0).to_sql(table, engine, index=False)
    text = io.StringIO()
    frame.to_csv(text, index=False, header=False)
    with engine.begin() as connection:
        cursor = connection.connection.cursor()
        with cursor.copy(f'COPY "{table}" FROM STDIN (FORMAT csv)') as copy:
            copy.write(text.getvalue())


def measure(rows: int, repeats: int) -> dict[str, Any]:
    import sqlalchemy as sa

    table = f"pmf_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(DATABASE)
    reference = tabular_frame(rows, seed=0)
    batch = reference.copy()
    batch.loc[0, "f1"] = 1e12  # one out-of-range value: both sides must report it
    try:
        copy_into(engine, table, batch)
        source = parse_sql_source(f"{DATABASE}?table={table}")
        suite = infer_suite_document("bench", reference, "label", "classification", "-", PmfConfig())
        read_s, (frame, _) = best_of(repeats, lambda: read_sql_source(source))
        sql_s, in_sql = best_of(repeats, lambda: validate_sql_against_suite("bench", source, frame, suite, 5))
        pandas_s, in_pandas = best_of(repeats, lambda: validate_against_suite("bench", frame, suite, 5))
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()
    found_sql = sorted((f["column"], f["expectation"]) for f in in_sql.report.failures)
    found_pandas = sorted((f["column"], f["expectation"]) for f in in_pandas.failures)
    if found_sql != found_pandas or in_sql.report.evaluated != in_pandas.evaluated:
        raise SystemExit(f"in PostgreSQL: {found_sql}; in pandas: {found_pandas}")
    return {
        "rows": rows,
        "checks": in_sql.report.evaluated,
        "read_s": read_s,
        "sql_s": sql_s,
        "pandas_s": pandas_s,
        "engine": in_sql.engine,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="accepted for `make bench BENCH_ARGS=--quick`; the defaults are already short"
    )
    args = parser.parse_args()
    warm = tabular_frame(200, seed=1)
    validate_against_suite("warm-up", warm, infer_suite_document("warm-up", warm, "label", "classification", "-", PmfConfig()), 5)
    r = measure(args.rows, args.repeats)
    print("| rows | checks | read + hash s | validate in PostgreSQL s | validate in pandas s | ratio SQL/pandas |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {r['rows']:,} | {r['checks']} | {r['read_s']:.2f} | {r['sql_s']:.2f} | {r['pandas_s']:.2f} | "
        f"{r['sql_s'] / r['pandas_s']:.2f}x |"
    )
    print(f"\nthe SQL side ran on GX's {r['engine']}; both sides found the same failure")


if __name__ == "__main__":
    main()
