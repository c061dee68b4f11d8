"""Validation cost: pmf's GX validation of an inferred suite against the same checks written by hand in
pandas, on (a) a wide table (2,000 numeric columns x 10k rows, 8,004 expectations) and (b) a long one
(1M rows x 11 columns). Data are generated from a fixed seed; each batch has one out-of-range value so
both sides must find a failure. GX is imported once before timing (its ~2.5 s import is not validation).

    python benchmarks/bench_validation.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import tabular_frame
from timing import best_of

from tasks.config import ValidationConfig
from tasks.data.schema import infer_schema
from tasks.data.validate import infer_expectations, validate_frame


def wide_frame(rows: int, columns: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, columns)), columns=[f"c{i}" for i in range(columns)])
    frame["label"] = rng.choice(np.array(["a", "b", "c"]), rows)
    return frame


def hand_written_checks(frame: pd.DataFrame, suite: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    """The suite's checks as a pandas user would write them: one vectorised operation per expectation."""
    failed = []
    for expectation in suite:
        kind, kw = expectation["type"], expectation["kwargs"]
        column = kw.get("column")
        if column is not None and column not in frame.columns:
            failed.append((column, kind))
            continue
        values = frame[column] if column is not None else None
        if kind == "expect_table_row_count_to_be_between":
            ok = len(frame) >= kw["min_value"]
        elif kind == "expect_column_to_exist":
            ok = True
        elif kind == "expect_column_values_to_be_in_type_list":
            ok = values.dtype.name in kw["type_list"]
        elif kind == "expect_column_values_to_be_between":
            present = values.dropna()
            ok = bool(present.between(kw["min_value"], kw["max_value"]).all())
        elif kind == "expect_column_values_to_not_be_null":
            ok = values.notna().mean() >= kw.get("mostly", 1.0)
        elif kind == "expect_column_values_to_be_in_set":
            ok = bool(values.dropna().isin(kw["value_set"]).all())
        elif kind == "expect_column_values_to_be_dateutil_parseable":
            ok = bool(pd.to_datetime(values.dropna(), errors="coerce").notna().all())
        else:
            raise ValueError(f"no hand-written check for {kind}")
        if not ok:
            failed.append((column, kind))
    return failed


def measure(label: str, frame: pd.DataFrame, repeats: int) -> dict[str, Any]:
    schema = infer_schema(frame, "label", None)
    suite = infer_expectations(frame, schema, ValidationConfig())
    batch = frame.copy()
    batch.iloc[0, 0] = 1e12  # one out-of-range value: both sides must report it
    pandas_s, hand = best_of(repeats, lambda: hand_written_checks(batch, suite))
    pmf_s, report = best_of(repeats, lambda: validate_frame(batch, suite, "bench"))
    with tempfile.TemporaryDirectory() as docs:
        docs_s, with_docs = best_of(1, lambda: validate_frame(batch, suite, "bench", Path(docs) / "docs"))
    found = [(f["column"], f["expectation"]) for f in report.failures]
    if found != hand or with_docs.failures != report.failures:
        raise SystemExit(f"{label}: pmf found {found}, hand-written checks found {hand}")
    return {"table": label, "expectations": len(suite), "pandas_s": pandas_s, "pmf_s": pmf_s, "docs_s": docs_s}


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    wide = (2_000, 500) if quick else (10_000, 2_000)
    long_rows = 100_000 if quick else 1_000_000
    repeats = 1 if quick else 3
    validate_frame(wide_frame(30, 2), [{"type": "expect_column_to_exist", "kwargs": {"column": "c0"}}], "warm-up")
    rows = [
        measure(f"wide: {wide[1]:,} columns x {wide[0]:,} rows", wide_frame(*wide), repeats),
        measure(f"long: {long_rows:,} rows x 11 columns", tabular_frame(long_rows, seed=0), repeats),
    ]
    print("| table | expectations | hand-written pandas s | pmf (GX) s | ratio pmf/pandas | pmf + Data Docs s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['table']} | {r['expectations']:,} | {r['pandas_s']:.2f} | {r['pmf_s']:.2f} | "
            f"{r['pmf_s'] / r['pandas_s']:.2f}x | {r['docs_s']:.2f} |"
        )
    print("\ngoal: wide table validated in <= 10 s; 1M rows within 3x of the hand-written pandas checks")


if __name__ == "__main__":
    main()
