"""Validate: a Great Expectations 1.x suite = rules from config + expectations inferred from reference data.

`infer_expectations` profiles the first batch of a dataset (GX 1.0 removed profiling, so this is
ours): column presence and types, numeric ranges widened by a tolerance, category sets, null
budgets, a minimum row count and the target's classes. `validate_frame` runs a suite on a batch
with GX and returns every check with its verdict (failures with their column and observed value);
per-column checks that a vectorised summary of the batch proves passing are settled without GX's
per-expectation overhead (see its docstring), so wide tables cost seconds, not minutes. pmf's own
checks (`class_balance_checks`) join the same report, so the terminal's counts and the HTML report
(`tasks.data.validation_report`) are one set of numbers. `check_declared_rules` turns rules from
config that GX cannot build into configuration errors before any data is read.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.config import ValidationConfig
from tasks.data.schema import Schema, label_strings

NUMERIC_TYPES = [
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "Float32",
    "Float64",
    "bool",
    "boolean",
]


@dataclass(frozen=True)
class ValidationReport:
    """Every check run on a batch: the suite's expectations and pmf's own checks, one set of counts.

    `evaluated` counts every check; `passed` lists those that passed, `failures` those that failed, for
    people: the expectations on a column the batch lacks are folded into that column's existence failure
    (named in its `also_failed`), so `failed` = evaluated - passed can exceed len(failures). The terminal,
    `--json`, the MLflow metrics and the HTML report all read their numbers from here.
    """

    success: bool
    evaluated: int
    failures: list[dict[str, Any]]
    passed: list[dict[str, Any]]

    @property
    def failed(self) -> int:
        return self.evaluated - len(self.passed)

    def summary(self) -> dict[str, Any]:
        return {"success": self.success, "expectations": self.evaluated, "passed": len(self.passed), "failed": self.failed}

    def with_checks(self, checks: list[dict[str, Any]]) -> ValidationReport:
        """The report with pmf's own checks added (`{"success", "column", "expectation", "expected", "observed"}` each)."""
        failed = [_without_verdict(c) for c in checks if not c["success"]]
        passed = [_without_verdict(c) for c in checks if c["success"]]
        return ValidationReport(
            self.success and not failed, self.evaluated + len(checks), [*self.failures, *failed], [*self.passed, *passed]
        )

    def with_failures(self, failures: list[dict[str, Any]]) -> ValidationReport:
        """The same verdicts with the failures re-worded (e.g. a clearer observed value); never fewer or more."""
        if len(failures) != len(self.failures):
            raise ValueError(f"{len(failures)} failures given for {len(self.failures)}: re-word them, do not drop or add")
        return ValidationReport(self.success, self.evaluated, list(failures), self.passed)


def _without_verdict(check: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in check.items() if k != "success"}


def infer_expectations(frame: pd.DataFrame, schema: Schema, cfg: ValidationConfig) -> list[dict[str, Any]]:
    """Expectations (as GX `{"type", "kwargs"}` dicts) that the reference batch itself satisfies."""
    suite: list[dict[str, Any]] = [_exp("expect_table_row_count_to_be_between", min_value=cfg.min_rows)]
    for column in (schema.target, *schema.features):
        suite.append(_exp("expect_column_to_exist", column=column))
    for column in schema.numeric:
        suite += _numeric_expectations(frame[column], cfg)
    for column in schema.categorical:
        values = sorted(frame[column].dropna().astype("str").unique().tolist())
        suite.append(_exp("expect_column_values_to_be_in_set", column=column, value_set=values))
    for column in schema.datetime:
        suite.append(_date_expectation(frame[column], cfg))
    for column in schema.features:
        suite.append(_null_budget(frame[column], cfg))
    suite.append(_exp("expect_column_values_to_not_be_null", column=schema.target))
    if schema.task == "classification":
        labels = sorted(frame[schema.target].dropna().unique().tolist())  # native values: 3, not "3"
        suite.append(_exp("expect_column_values_to_be_in_set", column=schema.target, value_set=labels))
    else:
        suite += _numeric_expectations(frame[schema.target], cfg)
    return suite


def _exp(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs}


def _date_expectation(column: pd.Series, cfg: ValidationConfig) -> dict[str, Any]:
    """Values parse as dates; a reference batch with a few unparseable values sets the bar at its own share
    (less the null margin), so a first batch is never rejected by an expectation inferred from itself."""
    values = column.dropna()
    if pd.api.types.is_datetime64_any_dtype(values) or values.empty:
        return _exp("expect_column_values_to_be_dateutil_parseable", column=column.name)
    share = float(pd.to_datetime(values.astype("str"), errors="coerce", format="mixed").notna().mean())
    if share >= 1.0:
        return _exp("expect_column_values_to_be_dateutil_parseable", column=column.name)
    return _exp(
        "expect_column_values_to_be_dateutil_parseable", column=column.name, mostly=max(0.0, round(share - cfg.null_margin, 6))
    )


def _numeric_expectations(column: pd.Series, cfg: ValidationConfig) -> list[dict[str, Any]]:
    values = pd.to_numeric(column, errors="coerce").dropna()
    low, high = float(values.min()), float(values.max())
    slack = (high - low) * cfg.range_tolerance
    return [
        _exp("expect_column_values_to_be_in_type_list", column=column.name, type_list=NUMERIC_TYPES),
        _exp("expect_column_values_to_be_between", column=column.name, min_value=low - slack, max_value=high + slack),
    ]


def _null_budget(column: pd.Series, cfg: ValidationConfig) -> dict[str, Any]:
    allowed = min(1.0, float(column.isna().mean()) + cfg.null_margin)
    return _exp("expect_column_values_to_not_be_null", column=column.name, mostly=round(1.0 - allowed, 6))


def declared_expectations(cfg: ValidationConfig) -> list[dict[str, Any]]:
    """Rules from config, named by GX class (ExpectColumnValuesToBeBetween) or snake_case type."""
    return [{"type": _snake(rule.expectation), "kwargs": dict(rule.kwargs)} for rule in cfg.rules]


def _snake(name: str) -> str:
    if "_" in name or name.islower():
        return name
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def class_balance_checks(frame: pd.DataFrame, schema: Schema, min_rows_per_class: int) -> list[dict[str, Any]]:
    """Classification needs at least two classes with enough rows each: the split and early stopping rely on it.

    Two checks, passed or not (`success`), to join the report with `ValidationReport.with_checks`; none
    for regression, or when the target column is missing (the suite's existence check reports that).
    """
    if schema.task != "classification" or schema.target not in frame.columns:
        return []
    counts = label_strings(frame[schema.target].dropna()).value_counts()
    rows = {str(k): int(v) for k, v in counts.items()}
    small = {label: n for label, n in rows.items() if n < min_rows_per_class}
    smallest = dict([min(rows.items(), key=lambda item: item[1])]) if rows else {}
    return [
        {
            "success": len(rows) >= 2,
            "column": schema.target,
            "expectation": "at_least_two_classes",
            "expected": {"min_classes": 2},
            "observed": rows,
        },
        {
            "success": not small,
            "column": schema.target,
            "expectation": f"at_least_{min_rows_per_class}_rows_per_class",
            "expected": {"min_rows_per_class": min_rows_per_class},
            "observed": small or smallest,
        },
    ]


def class_balance_failures(frame: pd.DataFrame, schema: Schema, min_rows_per_class: int) -> list[dict[str, Any]]:
    """The failed `class_balance_checks`, as failures."""
    return [_without_verdict(c) for c in class_balance_checks(frame, schema, min_rows_per_class) if not c["success"]]


def validate_frame(
    frame: pd.DataFrame, expectations: list[dict[str, Any]], suite_name: str, report_dir: Path | None = None
) -> ValidationReport:
    """Validate a batch against the suite in one GX validation; every expectation's verdict is in the report.

    GX charges ~5-15 ms of Python bookkeeping per expectation whatever the row count, so a wide table
    (2,000 columns = 8,000 expectations) took minutes. The per-column checks a whole-column summary
    proves passing (column present, numeric dtype in the type list, min/max inside the range, null share
    within budget, values inside the set) are settled from one vectorised summary of the frame, using
    GX's own pass rules; every other expectation, and every one that could fail, is run by GX in one
    validation. Failures therefore always carry GX's own observed values, and the report (success,
    evaluated count, failures, passed checks) is the same as running GX on all.

    With report_dir, the self-contained HTML report of this result is written there
    (`validation_report.html`); a caller that adds its own checks writes it once they are in
    (`tasks.data.validation_report.write_report`).
    """
    import great_expectations as gx

    keys = _gx_order(expectations)
    settled = _settled_by_summary(frame, expectations)
    run_by_gx = sorted((i for i in range(len(expectations)) if i not in settled), key=keys.__getitem__)
    context = gx_context()
    source = context.data_sources.add_pandas(name="pmf")
    batch_definition = source.add_dataframe_asset(name=suite_name).add_batch_definition_whole_dataframe("batch")
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=[to_gx(expectations[i]) for i in run_by_gx]))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch_definition, suite=suite))
    # BASIC carries everything the report reads (observed value, unexpected count/percent, partial list)
    # without SUMMARY's extra value-count metrics per expectation.
    result = definition.run(batch_parameters={"dataframe": frame}, result_format="BASIC")
    failures = merge_missing_columns([describe_result(r) for r in result.results if not r.success], frame)
    passed = _passed_in_suite_order(result.results, run_by_gx, settled, expectations, keys)
    report = ValidationReport(bool(result.success), len(result.results) + len(settled), failures, passed)
    if report_dir is not None:
        from tasks.data.validation_report import write_report

        write_report(report, Path(report_dir) / "validation_report.html", suite_name)
    return report


def _passed_in_suite_order(
    ran: list[Any],
    run_by_gx: list[int],
    settled: dict[int, dict[str, Any]],
    expectations: list[dict[str, Any]],
    keys: list[tuple[int, int]],
) -> list[dict[str, Any]]:
    """The passing checks, GX's and the settled ones, in the order GX reports a whole suite."""
    rows = [(keys[i], describe_result(r)) for i, r in zip(run_by_gx, ran, strict=True) if r.success]
    rows += [(keys[i], _describe_settled(expectations[i], value)) for i, value in settled.items()]
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


def _gx_order(expectations: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """GX validates a suite grouped by column in order of first appearance; the same key per expectation.

    Running GX on a subset sorted by this key keeps its results (and so the failures) in the order a
    run of the whole suite gives.
    """
    groups: dict[Any, int] = {}
    keys = []
    for index, expectation in enumerate(expectations):
        column = expectation["kwargs"].get("column")
        group = column if isinstance(column, str) else None
        keys.append((groups.setdefault(group, len(groups)), index))
    return keys


# Per kind, the only kwargs under which the summary's verdict is GX's verdict; anything else goes to GX.
_SETTLEABLE_KWARGS = {
    "expect_column_to_exist": {"column"},
    "expect_column_values_to_be_in_type_list": {"column", "type_list"},
    "expect_column_values_to_be_between": {"column", "min_value", "max_value"},
    "expect_column_values_to_not_be_null": {"column", "mostly"},
    "expect_column_values_to_be_in_set": {"column", "value_set"},
}


@dataclass(frozen=True)
class _ColumnSummary:
    """One vectorised pass over the frame: what the per-column expectations need, per column."""

    rows: int
    nulls: pd.Series
    minimum: pd.Series
    maximum: pd.Series

    @classmethod
    def of(cls, frame: pd.DataFrame) -> _ColumnSummary:
        # GX compares numbers vectorised only for plain int64/float64 columns; the others go to GX.
        numbers = frame.loc[:, [c for c, dtype in frame.dtypes.items() if dtype in (np.dtype("int64"), np.dtype("float64"))]]
        return cls(len(frame), frame.isna().sum(), numbers.min(), numbers.max())


def _settled_by_summary(frame: pd.DataFrame, expectations: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Index -> GX's BASIC result dict, for every expectation the column summary proves passing."""
    if not frame.columns.is_unique or len(frame) == 0:
        return {}  # duplicate names and empty batches: GX's own edge cases, left to GX
    summary = _ColumnSummary.of(frame)
    settled = {}
    for index, expectation in enumerate(expectations):
        kind, kwargs = expectation["type"], expectation["kwargs"]
        allowed = _SETTLEABLE_KWARGS.get(kind)
        column = kwargs.get("column")
        if allowed is None or not set(kwargs) <= allowed or not isinstance(column, str) or column not in frame.columns:
            continue
        result = _SETTLERS[kind](frame[column], kwargs, summary)
        if result is not None:
            settled[index] = result
    return settled


def _exists(column: pd.Series, kwargs: dict[str, Any], summary: _ColumnSummary) -> dict[str, Any] | None:
    return {}


def _in_type_list(column: pd.Series, kwargs: dict[str, Any], summary: _ColumnSummary) -> dict[str, Any] | None:
    # A plain numpy dtype named in the list is what GX matches through np.dtype(name); object, str and
    # extension dtypes take GX's own, subtler paths.
    dtype = column.dtype
    type_list = kwargs.get("type_list")
    if (
        not isinstance(dtype, np.dtype)
        or dtype.kind not in "iufb"
        or not isinstance(type_list, list)
        or dtype.name not in type_list
    ):
        return None
    return {"observed_value": dtype.type.__name__}


def _between(column: pd.Series, kwargs: dict[str, Any], summary: _ColumnSummary) -> dict[str, Any] | None:
    low: Any = kwargs.get("min_value")
    high: Any = kwargs.get("max_value")
    name = column.name
    if not (_is_number(low) and _is_number(high) and low <= high) or name not in summary.minimum.index:
        return None
    present = summary.rows - int(summary.nulls[name])
    if present == 0 or not (low <= summary.minimum[name] and summary.maximum[name] <= high):
        return None
    return _map_result(summary.rows, int(summary.nulls[name]))


def _not_null(column: pd.Series, kwargs: dict[str, Any], summary: _ColumnSummary) -> dict[str, Any] | None:
    mostly = kwargs.get("mostly", 1.0)
    if not _is_number(mostly) or not 0 <= mostly <= 1:  # out of [0, 1] GX refuses the expectation itself
        return None
    nulls = int(summary.nulls[column.name])
    if not (summary.rows - nulls) / summary.rows >= mostly:  # GX's own success rule, same float arithmetic
        return None
    partial = [None] * min(nulls, 20)
    return {
        "element_count": summary.rows,
        "unexpected_count": nulls,
        "unexpected_percent": 100.0 * nulls / summary.rows,
        "partial_unexpected_list": partial,
    }


def _in_set(column: pd.Series, kwargs: dict[str, Any], summary: _ColumnSummary) -> dict[str, Any] | None:
    value_set = kwargs.get("value_set")
    if not isinstance(value_set, list) or not column.dropna().isin(value_set).all():  # GX: column.isin on non-null
        return None
    return _map_result(summary.rows, int(summary.nulls[column.name]))


def _map_result(rows: int, missing: int) -> dict[str, Any]:
    """GX's BASIC result of a passing column-map expectation (no unexpected values)."""
    return {
        "element_count": rows,
        "unexpected_count": 0,
        "unexpected_percent": 0.0,
        "partial_unexpected_list": [],
        "missing_count": missing,
        "missing_percent": 100.0 * missing / rows,
        "unexpected_percent_total": 0.0,
        "unexpected_percent_nonmissing": 0.0,
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


_SETTLERS = {
    "expect_column_to_exist": _exists,
    "expect_column_values_to_be_in_type_list": _in_type_list,
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_in_set": _in_set,
}


def merge_missing_columns(failures: list[dict[str, Any]], frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A missing column fails every expectation on it; report it once, as missing.

    The other expectations on that column are named in the existence failure's `also_failed`, so the
    failures still account for every failed expectation. A declared rule on a column the batch lacks
    (and the suite has no existence check for) still rejects the batch: it is kept, with the column
    reported missing, never dropped silently.
    """
    checked = {f["column"] for f in failures if f["expectation"] == "expect_column_to_exist"}
    folded: dict[str, list[str]] = {}
    kept = []
    for failure in failures:
        column = failure["column"]
        if column is not None and column not in frame.columns:
            if column in checked and failure["expectation"] != "expect_column_to_exist":
                folded.setdefault(column, []).append(failure["expectation"])
                continue
            failure = {**failure, "observed": "column is missing"}
        kept.append(failure)
    return [
        {**f, "also_failed": folded[f["column"]]} if f["expectation"] == "expect_column_to_exist" and f["column"] in folded else f
        for f in kept
    ]


def gx_context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context: Any = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    # GX's Data Docs load their styles and scripts from CDNs (blank offline): pmf writes its own report.
    for site in list(context.get_config().data_docs_sites or {}):
        context.delete_data_docs_site(site)
    return context


def to_gx(expectation: dict[str, Any]) -> Any:
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        impl = get_expectation_impl(expectation["type"])
    except ExpectationNotFoundError:
        raise ValueError(f"unknown Great Expectations expectation {expectation['type']!r}") from None
    return impl(**expectation["kwargs"])


def check_declared_rules(validation: ValidationConfig) -> None:
    """Raise ConfigError for the first declared rule GX cannot build: unknown name or bad kwargs.

    Runs before any data is read. Whether a rule's column exists is a property of the batch, not of
    the config (a later batch may lack it): such a rule rejects the batch (exit 3, column named).
    """
    if not validation.rules:
        return  # GX costs seconds to import; a config without rules needs none of it
    from great_expectations.compatibility.pydantic import ValidationError
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl, list_registered_expectation_implementations

    from tasks.config import ConfigError

    for index, rule in enumerate(validation.rules):
        where = f"validation.rules[{index}] ({rule.expectation})"
        try:
            impl = get_expectation_impl(_snake(rule.expectation))
        except ExpectationNotFoundError:
            known = list_registered_expectation_implementations()
            close = difflib.get_close_matches(_snake(rule.expectation), known, n=1)
            hint = f"; did you mean {_camel(close[0])}?" if close else "; see the Great Expectations gallery for names"
            raise ConfigError(f"{where}: unknown Great Expectations expectation{hint}") from None
        if not all(isinstance(key, str) for key in rule.kwargs):
            raise ConfigError(f"{where}: kwargs names must be text, got {sorted(map(repr, rule.kwargs))}")
        try:
            impl(**rule.kwargs)
        except ValidationError as exc:
            raise ConfigError(f"{where}: {_first_problem(exc)}") from None


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _first_problem(exc: Any) -> str:
    """`min_value: value is not a valid float` from GX's pydantic error (the first alternative of a union)."""
    error = exc.errors()[0]
    field_name = ".".join(str(part) for part in error["loc"] if part != "__root__")
    return f"{field_name}: {error['msg']}" if field_name else error["msg"]


def describe_result(result: Any) -> dict[str, Any]:
    """`{column, expectation, expected, observed}` of one GX result, passed or failed."""
    config = result.expectation_config
    details = result.result or {}
    if result.exception_info and result.exception_info.get("raised_exception"):
        observed: Any = result.exception_info.get("exception_message")
    elif "observed_value" in details:
        observed = details["observed_value"]
    else:
        observed = {k: details[k] for k in ("unexpected_count", "unexpected_percent", "partial_unexpected_list") if k in details}
    return {
        "column": config.kwargs.get("column"),
        "expectation": config.type,
        "observed": _jsonable(observed),
        "expected": _jsonable({k: v for k, v in config.kwargs.items() if k not in ("column", "batch_id")}),
    }


def _describe_settled(expectation: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The same description for an expectation the column summary settled (its kwargs come from the suite's JSON)."""
    kwargs = expectation["kwargs"]
    if "observed_value" in result:
        observed: Any = result["observed_value"]
    else:
        observed = {k: result[k] for k in ("unexpected_count", "unexpected_percent", "partial_unexpected_list") if k in result}
    return {
        "column": kwargs.get("column"),
        "expectation": expectation["type"],
        "observed": observed,
        "expected": {k: v for k, v in kwargs.items() if k != "column"},
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.item() if isinstance(v, np.generic) else str(v)))
