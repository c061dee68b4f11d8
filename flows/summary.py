"""Readable summaries of a finished run for the terminal, in 80 columns (`--json` prints the raw,
unrounded result instead).

Long lines are wrapped deliberately: a failed expectation's detail under it, the stage timings packed
item by item, links each on a line of their own; numbers are rounded for people (flows.console).
"""

from __future__ import annotations

import shlex
from typing import Any

from flows.console import command_lines, fit, metric, number, pack, path_lines, seconds, wrap
from tasks.tuning.report import kept_sentence


def render_run(result: dict[str, Any], data: str | None = None) -> str:
    """The summary of `pmf run`; `data` is the batch's path as the user gave it (for the next step of a
    rejection)."""
    lines = [f"pmf run · {result['registered_model']} · {result['status']}", ""]
    lines += config_lines(result)
    if result.get("stage_seconds"):
        lines += pack("stages  ", (f"{k} {seconds(v)}" for k, v in result["stage_seconds"].items()))
    if result["status"] == "data_rejected":
        lines += ["", "data rejected by validation: nothing trained, nothing registered, no alias moved"]
        lines += [line for e in result.get("errors", []) for line in failure_lines(e)]
        lines += ["", *next_step_lines(result, "run", data)]
    if result.get("tuning"):
        lines += ["", *tuning_lines(result["tuning"])]
    if result.get("metrics"):
        lines += ["", "metrics (test split, float model)"]
        lines += [f"  {k:<16} {metric(v)}" for k, v in result["metrics"].items()]
    if result.get("gates"):
        lines += ["", "gates"]
        lines += [
            f"  {'✓' if g['passed'] else '✗'} {g['name']:<16} {metric(g['value'])} {g['op']} {number(g['threshold'])}"
            for g in result["gates"]
        ]
    if result.get("compression"):
        lines += ["", _compression_table(result["compression"], result.get("primary_metric") or "accuracy")]
    lines.append("")
    if result.get("version"):
        lines.append(
            f"registered  {result['registered_model']} version {result['version']}  "
            f"aliases: {', '.join(result['aliases']) or '-'}"
        )
    elif result["status"] == "completed":
        lines += ["not registered:", *(f"  - {reason}" for reason in result.get("reasons", []))]
    if result["status"] == "completed":
        lines += promotion_lines(result)
    lines += [*([""] if lines[-1] else []), *link_lines(result)]
    return "\n".join(fit(lines))


def tuning_lines(tuning: dict[str, Any]) -> list[str]:
    """The search's best trials (validation split) and the budget it used."""
    metric_name = tuning.get("metric", "value")
    lines = [
        f"tuning  {tuning['trials']} trials: {tuning['completed']} completed, {tuning['pruned']} pruned, "
        f"{tuning['failed']} failed in {seconds(tuning['seconds'])}"
        + (" (time budget reached)" if tuning.get("minutes_budget_reached") else "")
    ]
    for trial in tuning.get("top", []):
        value = "-" if trial["value"] is None else metric(trial["value"])
        params = " ".join(f"{k}={v if isinstance(v, str) else _value(v)}" for k, v in trial["params"].items())
        mark = "★" if tuning.get("best") and trial["number"] == tuning["best"]["trial"] else " "
        lines.append(f"  {mark} #{trial['number']:<3} {trial['state']:<9} val_{metric_name} {value}  {params}")
    kept = kept_sentence(tuning)
    if kept:
        lines += wrap(f"★ {kept}", 2, 4)
    return lines


def promotion_lines(result: dict[str, Any]) -> list[str]:
    """`promoted    true` and each alias move, or each reason it was not promoted."""
    promotion = result.get("promotion") or {}
    lines = [f"promoted    {str(result.get('promoted', False)).lower()}"]
    lines += [
        f"  ✓ {m.get('alias')}: v{m.get('from_version') or '-'} → v{m.get('to_version')}" for m in promotion.get("moves", [])
    ]
    if not promotion.get("promoted"):
        lines += [line for reason in promotion.get("reasons", []) for line in wrap(f"✗ {reason}", 2, 4)]
    return lines


def config_lines(result: dict[str, Any]) -> list[str]:
    """`config   recorded v1 + --set train.epochs=5` and the unlabelled rows set aside, when known."""
    lines = []
    if result.get("config_source"):
        overrides = "".join(f" + --set {o}" for o in result.get("config_overrides") or [])
        recorded = f"  (recorded as this name's config v{result['config_recorded']})" if result.get("config_recorded") else ""
        lines += wrap(f"config   {result['config_source']}{overrides}{recorded}", 0, 9)
    if result.get("unlabelled_rows"):
        lines += wrap(f"rows     {result['unlabelled_rows']:,} without a label set aside (not trained or validated on)", 0, 9)
    return lines


def failure_lines(error: dict[str, Any]) -> list[str]:
    """One failed expectation in 80 columns, its detail wrapped under it:
    `  ✗ body_mass_g: expect_column_values_to_be_between (min_value=1800, max_value=7200)`
    `      observed 5 rows (4.2%), e.g. 5019500, 4097900`"""
    expected = error.get("expected") or {}
    shown = ", ".join(f"{k}={_value(v)}" for k, v in expected.items() if k != "mostly" or v != 1)
    head = f"✗ {error.get('column') or '(table)'}: {error['expectation']}{f' ({shown})' if shown else ''}"
    return [*wrap(head, 2, 6), *wrap(f"observed {observed_text(error.get('observed'))}", 6, 8)]


def failure_line(error: dict[str, Any]) -> str:
    """`failure_lines` joined: one failed expectation as printed."""
    return "\n".join(failure_lines(error))


def observed_text(observed: Any) -> str:
    """`5 rows (4.2%), e.g. 5019500, 4097900` for values outside a rule (up to 5 distinct examples); the
    observed value itself otherwise, numbers rounded."""
    if isinstance(observed, dict) and "unexpected_count" in observed:
        examples = list(dict.fromkeys(map(_value, observed.get("partial_unexpected_list") or [])))[:5]
        count = observed["unexpected_count"]
        share = observed.get("unexpected_percent")
        text = f"{number(count)} row{'s' if count != 1 else ''}" + (f" ({share:.1f}%)" if isinstance(share, (int, float)) else "")
        return text + (f", e.g. {', '.join(examples)}" if examples else "")
    if isinstance(observed, dict):
        return ", ".join(f"{k}: {_value(v)}" for k, v in observed.items()) or "-"
    return observed if isinstance(observed, str) else _value(observed)


def _value(value: Any) -> str:
    """A value inside a list or `key=value` list: numbers rounded without separators, text quoted."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return number(value, grouping=False)
    if isinstance(value, list):
        shown = [_value(v) for v in value[:12]]
        return "[" + ", ".join(shown + (["…"] if len(value) > 12 else [])) + "]"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57]) + "…"
    return str(value)


def next_step_lines(result: dict[str, Any], command: str, data: str | None) -> list[str]:
    """What to do about a rejected batch: fix the data, or make it the name's new reference with
    `--update-suite`; and where the full validation report is."""
    rerun = ["pmf", command, "--data", data or "PATH", "--name", str(result.get("registered_model") or result.get("name"))]
    lines = [
        "next step:",
        *wrap("fix the data (each ✗ names the column and what was expected), then run again:", 2, 4),
        *command_lines(rerun, 4),
        *wrap(
            "or, if the batch is right and the reference outdated, make it the new reference "
            "(its expectation suite is inferred again from it):",
            2,
            4,
        ),
        *command_lines(["pmf", "run", *rerun[2:], "--update-suite"], 4),
    ]
    report = validation_report(result)
    if report:
        lines += [*wrap("full report (every expectation, passed and failed):", 2, 4), *path_lines(report, 4)]
    return lines


def validation_report(result: dict[str, Any]) -> str | None:
    """Where the validation report of this run is: a file path when the artifact store is on this disk,
    else its MLflow artifact URI; None when the run has no validate stage (an unreadable file)."""
    if result.get("validation_report"):
        return str(result["validation_report"])
    run_id = result.get("mlflow_run_id")
    if not run_id:
        return None
    from mlflow.exceptions import MlflowException

    from tasks.registry import tracking

    try:
        runs = tracking.client().search_runs(
            [result.get("mlflow_experiment_id") or tracking.client().get_run(run_id).info.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{run_id}' and tags.`pmf.stage` = 'validate'",
            max_results=1,
        )
    except MlflowException:
        return None  # the store went away: the summary still prints, without the report's place
    if not runs:
        return None
    uri = f"{runs[0].info.artifact_uri.rstrip('/')}/validation/validation_report.html"
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path)
    return uri


def link_lines(result: dict[str, Any]) -> list[str]:
    """The run's links (MLflow run, Prefect flow run, model version), each URL whole on its own line;
    with the commands that start the UIs when the links point to UIs nobody runs yet (embedded mode)."""
    links = result.get("links") or {}
    ids = {"mlflow_run": result.get("mlflow_run_id"), "prefect_flow_run": result.get("prefect_flow_run_id")}
    labels = {"mlflow_run": "MLflow run", "prefect_flow_run": "Prefect flow run", "model_version": "model version"}
    lines = []
    for key, label in labels.items():
        shown = links.get(key) or ids.get(key)  # no link (no UI to point at): the id at least
        if shown:
            lines += [f"{label:<16} {shown}"] if len(label) + 17 + len(shown) <= 80 else [label, *path_lines(shown, 2)]
    return lines + _ui_hints()


def _compression_table(rows: list[dict[str, Any]], metric: str) -> str:
    """The compression table in 80 columns: sizes in KiB, 3-significant-digit latencies, the gate
    mark (✓ pass, ! a warn-only rule failed, ✗ fail) and the role (shipped, reference, baseline,
    control); under a row, each failed rule; full detail stays in --json."""
    import textwrap

    head = f"  {'variant':<21}{'size KiB':>8}{'gzip KiB':>9}{'p50 ms':>9}{'p99 ms':>9}{metric[:9]:>10} gate"
    body = [line for r in rows for line in _compression_row(r, metric)]
    shipped = next((r for r in rows if r.get("shipped")), None)
    decision = shipped["reasons"][-1] if shipped and shipped.get("reasons") else ""
    why = (
        decision
        if not shipped or decision.startswith(f"shipped {shipped['variant']}")
        else f"shipped {shipped['variant']}: {decision.removeprefix('shipped ')}"
    )
    notes = textwrap.wrap(why, 80, initial_indent="  ", subsequent_indent="    ")
    if any(r.get("control") for r in rows):
        notes.append("  control: the student trained on labels only, to compare; never shipped")
    return "\n".join(["compression (LiteRT, test split)  gate: ✓ pass  ! warn only  ✗ fail", head, *body, *notes])


def _compression_row(row: dict[str, Any], metric: str) -> list[str]:
    """One variant's line, then one line per failed rule (cut at 80 columns)."""
    from tasks.compression.gate import GATE_MARKS, format_kib, format_metric_short, format_ms, role

    def fit(text: str) -> str:
        return text if len(text) <= 80 else text[:79] + "…"

    kind = role(row)
    if row.get("error"):
        return [fit(f"  {row['variant']:<21}✗ could not be built: {row['error']}")]
    gate = row.get("gate") or {True: "pass", False: "fail", None: "baseline"}[row.get("passed")]
    line = (
        f"  {row['variant']:<21}{format_kib(row['bytes']):>8}{format_kib(row['gzip_bytes']):>9}"
        f"{format_ms(row['latency_ms_p50']):>9}{format_ms(row['latency_ms_p99']):>9}"
        f"{format_metric_short(row.get('metrics', {}).get(metric)):>10} {GATE_MARKS[gate]}"
        f"{'' if kind == 'candidate' else ' ' + kind}"
    )
    failed = [c for c in row.get("checks") or [] if not c["passed"]]
    return [fit(line), *(fit(f"      {'!' if c['severity'] == 'warn' else '✗'} {c['reason']}") for c in failed)]


def _ui_hints() -> list[str]:
    """How to open the UIs that serve the links above, when nothing serves them yet: an MLflow store on
    disk (no tracking server) and Prefect's embedded server (gone when the command ended)."""
    import os

    from tasks.registry.tracking import ui_base
    from tasks.workspace import pmf_home, tracking_uri

    uri = tracking_uri()
    local_mlflow, local_prefect = not ui_base()[1], not os.environ.get("PREFECT_API_URL")
    if not (local_mlflow or local_prefect):
        return []
    home = pmf_home()
    lines = ["", "to open the UIs on this workspace:", f"  cd {shlex.quote(str(home))}"]
    if local_mlflow:
        store = uri.removeprefix(f"sqlite:///{home}/") if uri.startswith(f"sqlite:///{home}/") else None
        lines += wrap(f"mlflow ui --port 5000 --backend-store-uri {f'sqlite:///{store}' if store else shlex.quote(uri)}", 2, 6)
    if local_prefect:
        prefect_home = os.environ.get("PREFECT_HOME", str(home / "prefect"))
        where = '"$PWD/prefect"' if prefect_home == str(home / "prefect") else shlex.quote(prefect_home)
        lines += wrap(f"PREFECT_HOME={where} prefect server start", 2, 6)
    return lines


def render_validation(result: dict[str, Any], data: str | None = None) -> str:
    """The summary of `pmf validate`; `data` as in `render_run`."""
    lines = [f"pmf validate · {result['name']} · {result['status']}", *config_lines(result)]
    if "expectations" in result:
        lines.append(
            f"  {result['expectations'] - result.get('failed', 0)}/{result['expectations']} expectations passed"
            + (f" (suite v{result['suite_version']})" if result.get("suite_version") else "")
        )
    lines += [line for e in result.get("errors", []) for line in failure_lines(e)]
    if result["status"] == "data_rejected":
        lines += ["", *next_step_lines({**result, "registered_model": result["name"]}, "validate", data)]
    lines += ["", *link_lines(result)] if result.get("links") else [f"  MLflow run {result['mlflow_run_id']}"]
    return "\n".join(fit(lines))
