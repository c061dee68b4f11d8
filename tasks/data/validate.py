"""Validate: a Great Expectations 1.x suite = rules from config + expectations inferred from reference data.

`infer_expectations` profiles the first batch of a dataset (GX 1.0 removed profiling, so this is
ours): column presence and types, numeric ranges widened by a tolerance, category sets, null
budgets, a minimum row count and the target's classes. `validate_frame` runs a suite on a batch
with GX and returns every failed expectation with its column and observed value.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.config import ValidationConfig
from tasks.data.schema import Schema, label_strings

NUMERIC_TYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                 "float16", "float32", "float64", "Int8", "Int16", "Int32", "Int64", "Float32", "Float64", "bool", "boolean"]


@dataclass(frozen=True)
class ValidationReport:
    success: bool
    evaluated: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    docs_dir: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"success": self.success, "expectations": self.evaluated, "failed": len(self.failures)}


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
        suite.append(_exp("expect_column_values_to_be_dateutil_parseable", column=column))
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


def class_balance_failures(frame: pd.DataFrame, schema: Schema, min_rows_per_class: int) -> list[dict[str, Any]]:
    """Classification needs at least two classes with enough rows each: the split and early stopping rely on it."""
    if schema.task != "classification" or schema.target not in frame.columns:
        return []
    counts = label_strings(frame[schema.target].dropna()).value_counts()
    failures = []
    if len(counts) < 2:
        failures.append({"column": schema.target, "expectation": "at_least_two_classes", "observed": counts.to_dict()})
    small = counts[counts < min_rows_per_class]
    if len(small):
        failures.append({"column": schema.target, "expectation": f"at_least_{min_rows_per_class}_rows_per_class",
                         "observed": {str(k): int(v) for k, v in small.items()}})
    return failures


def validate_frame(frame: pd.DataFrame, expectations: list[dict[str, Any]], suite_name: str, docs_dir: Path | None = None) -> ValidationReport:
    """Run the suite with GX on an in-memory batch; optionally build the Data Docs HTML into docs_dir."""
    import great_expectations as gx

    context = _context(docs_dir)
    source = context.data_sources.add_pandas(name="pmf")
    batch_definition = source.add_dataframe_asset(name=suite_name).add_batch_definition_whole_dataframe("batch")
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=[_to_gx(e) for e in expectations]))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch_definition, suite=suite))
    if docs_dir is None:
        result = definition.run(batch_parameters={"dataframe": frame})
    else:
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=suite_name, validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="docs")]))
        result = next(iter(checkpoint.run(batch_parameters={"dataframe": frame}).run_results.values()))
    failures = _merge_missing_columns([_describe_failure(r) for r in result.results if not r.success], frame)
    return ValidationReport(bool(result.success), len(result.results), failures, str(docs_dir) if docs_dir else None)


def _merge_missing_columns(failures: list[dict[str, Any]], frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A missing column fails every expectation on it; report it once, as missing."""
    merged = []
    for failure in failures:
        column = failure["column"]
        if column is not None and column not in frame.columns:
            if failure["expectation"] != "expect_column_to_exist":
                continue
            failure = {**failure, "observed": "column is missing"}
        merged.append(failure)
    return merged


def _context(docs_dir: Path | None) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    for site in list(context.get_config().data_docs_sites or {}):
        context.delete_data_docs_site(site)
    if docs_dir is not None:
        context.add_data_docs_site("pmf", {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
    return context


def _to_gx(expectation: dict[str, Any]) -> Any:
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        impl = get_expectation_impl(expectation["type"])
    except Exception:
        raise ValueError(f"unknown Great Expectations expectation {expectation['type']!r}") from None
    return impl(**expectation["kwargs"])


def _describe_failure(result: Any) -> dict[str, Any]:
    config = result.expectation_config
    details = result.result or {}
    if result.exception_info and result.exception_info.get("raised_exception"):
        observed: Any = result.exception_info.get("exception_message")
    elif "observed_value" in details:
        observed = details["observed_value"]
    else:
        observed = {k: details[k] for k in ("unexpected_count", "unexpected_percent", "partial_unexpected_list") if k in details}
    return {"column": config.kwargs.get("column"), "expectation": config.type, "observed": _jsonable(observed),
            "expected": _jsonable({k: v for k, v in config.kwargs.items() if k not in ("column", "batch_id")})}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.item() if isinstance(v, np.generic) else str(v)))
