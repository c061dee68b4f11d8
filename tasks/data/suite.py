"""A dataset name's expectation suite: which target and task it is for, which rows it validates, and
how the validate stage says its verdict.

The first batch of a name (or `--update-suite`) defines the suite: target and task from the flags and
config (else the previous suite's, else inferred), the schema and the expectations inferred from the
labelled rows. Later batches are checked against the stored suite. Everything here is a plain
function of frames, documents and config; storing the suite and logging it is the flow's business.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tasks.config import ConfigError, PmfConfig, SplitConfig
from tasks.data.load import DataError
from tasks.data.preprocess import check_split
from tasks.data.schema import Schema, Task, infer_schema, infer_task, label_strings, labelled_mask, non_numbers, target_problems
from tasks.data.validate import ValidationReport, class_balance_checks, declared_expectations, infer_expectations, validate_frame

SuiteDocument = dict[str, Any]  # {"name", "schema", "expectations", "inferred_from_sha256"}: stored as JSON


class DataRejected(Exception):
    """Validation failed: nothing is trained or registered; the CLI exits with code 3."""

    def __init__(self, report: ValidationReport):
        super().__init__(f"{report.failed} of {report.evaluated} expectation(s) failed")
        self.report = report


def check_target(name: str, suite: SuiteDocument, wanted: str | None) -> None:
    """ConfigError when the target asked for (flag or config) is not the one the stored suite is for."""
    stored = suite["schema"]["target"]
    if wanted and wanted != stored:
        raise ConfigError(
            f"dataset {name!r} is set up with target {stored!r}, not {wanted!r}: use --update-suite to redefine it, or another --name"
        )


def target_and_task(
    name: str,
    frame: pd.DataFrame,
    wanted_target: str | None,
    wanted_task: Task | None,
    stored: SuiteDocument | None,
    previous: SuiteDocument | None,
) -> tuple[str, Task | None]:
    """The stored suite's target and task; when (re)defining the suite, the wanted ones (flag, then
    config), falling back to the previous suite's target (--update-suite) and inferring the task when
    unset. None for the task only when the target is not in the frame (the suite reports that column).
    ConfigError when no target is known at all."""
    if stored:
        return stored["schema"]["target"], stored["schema"]["task"]
    known = previous["schema"] if previous else None
    target = wanted_target or (known or {}).get("target")
    if not target:
        raise ConfigError(f"no target column: pass --target COL the first time dataset {name!r} is seen")
    if known and known["target"] == target and not wanted_task:
        return target, known["task"]
    if target not in frame.columns:
        return target, wanted_task  # reported by the suite (or schema inference) as a missing column
    return target, wanted_task or infer_task(frame[target])


def split_off_unlabelled(frame: pd.DataFrame, target: str, task: Task) -> tuple[pd.DataFrame, int]:
    """The rows with a usable label, and how many rows had none. `target` must be a column of `frame`.
    DataError when the target is one the task cannot learn from (e.g. text for regression)."""
    problems = target_problems(frame[target], task)
    if problems:
        raise DataError(problems[0]["observed"], problems)
    mask = labelled_mask(frame[target], task)
    return frame[mask], int(len(frame) - mask.sum())


def check_unlabelled_budget(target: str, task: Task, unlabelled: int, rows: int, budget: float) -> None:
    """DataError naming the target and `validation.max_unlabelled_share` when more than `budget` of
    the `rows` had no label."""
    if unlabelled <= budget * rows:
        return
    observed = (
        f"{unlabelled:,} of {rows:,} rows ({unlabelled / rows:.1%}) have no {target!r} value"
        f"{' (or ±inf)' if task == 'regression' else ''}; the budget is {budget:.0%} "
        "(validation.max_unlabelled_share)"
    )
    failure = {
        "column": target,
        "expectation": "unlabelled_rows_within_budget",
        "observed": observed,
        "expected": {"max_unlabelled_share": budget},
    }
    raise DataError(observed, [failure])


def unlabelled_line(target: str, unlabelled: int, rows: int, budget: float) -> str:
    """`  set aside 20 row(s) without a 'species' value (5.8%, budget 10%)`: the console line."""
    return f"  set aside {unlabelled:,} row(s) without a {target!r} value ({unlabelled / rows:.1%}, budget {budget:.0%})"


def check_split_fits(labelled: pd.DataFrame, target: str, task: Task, split: SplitConfig) -> None:
    """Refuse (DataError, ConfigError) labelled rows whose classes or count cannot fill every split."""
    classes = label_strings(labelled[target]).value_counts().to_dict() if task == "classification" else {}
    check_split(len(labelled), classes, split.test_size, split.validation_size)


def infer_suite_document(
    name: str, frame: pd.DataFrame, target: str, task: Task | None, sha256: str, cfg: PmfConfig
) -> SuiteDocument:
    """A new suite inferred from `frame` (the labelled rows of the batch whose file has `sha256`):
    the schema, the expectations inferred from the data plus those declared in `validation.rules`."""
    data = cfg.data
    schema = infer_schema(frame, target, task, data.drop_columns, data.max_categories, keep_constant=cfg.train.model == "cnn")
    expectations = infer_expectations(frame, schema, cfg.validation) + declared_expectations(cfg.validation)
    return {"name": name, "schema": schema.to_dict(), "expectations": expectations, "inferred_from_sha256": sha256}


def validate_against_suite(name: str, frame: pd.DataFrame, suite: SuiteDocument, min_rows_per_class: int) -> ValidationReport:
    """GX on the suite plus the class balance checks, in one report; numeric columns that arrived as text say so."""
    schema = Schema.from_dict(suite["schema"])
    report = validate_frame(frame, suite["expectations"], name).with_checks(
        class_balance_checks(frame, schema, min_rows_per_class)
    )
    return report.with_failures([explain_text_in_numbers(f, frame, schema) for f in report.failures])


def explain_text_in_numbers(failure: dict[str, Any], frame: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """A numeric column that arrived as text fails its type expectation; name the values that are not
    numbers. Any other failure comes back unchanged."""
    column = failure.get("column")
    numeric = set(schema.numeric) | ({schema.target} if schema.task == "regression" else set())
    if failure["expectation"] != "expect_column_values_to_be_in_type_list" or column not in numeric or column not in frame:
        return failure
    bad = non_numbers(frame[column])
    what = (
        f"{len(bad)} distinct value(s) are not numbers, e.g. {bad[:5]}"
        if bad
        else "every value is a number written as text (check the file's quoting)"
    )
    return {**failure, "observed": f"numbers expected but the column arrived as text: {what}"}


def failed_list(failures: list[dict[str, Any]], limit: int = 5) -> str:
    """`species: values_in_set, body_mass_g: values_between` and `and N more` past `limit`."""
    named = [
        f"{f.get('column') or 'table'}: {str(f['expectation']).removeprefix('expect_column_').removeprefix('expect_')}"
        for f in failures
    ]
    more = f", and {len(named) - limit} more" if len(named) > limit else ""
    return ", ".join(named[:limit]) + more


def rejection_message(exc: DataRejected | DataError) -> str:
    """`rejected: 3 of 32 expectations failed (species: values_in_set, ...)` — what a Prefect state says."""
    if isinstance(exc, DataRejected):
        report = exc.report
        return f"rejected: {report.failed} of {report.evaluated} expectations failed ({failed_list(report.failures)})"
    return f"rejected: {exc}"


def validation_sentence(file_name: str, report: ValidationReport) -> str:
    """`validated penguins_new.csv: 31 of 32 expectations passed, 1 failed (species: values_to_be_in_set)`."""
    verdict = f"validated {file_name}: {len(report.passed)} of {report.evaluated} expectations passed"
    if report.success:
        return verdict
    return f"{verdict}, {report.failed} failed ({failed_list(report.failures)}): batch rejected"
