"""Readable summaries of a finished run for the terminal (`--json` prints the raw result instead)."""
from __future__ import annotations

from typing import Any

from tasks.workspace import pmf_home, tracking_uri


def render_run(result: dict[str, Any]) -> str:
    lines = [f"pmf run · {result['registered_model']} · {result['status']}", ""]
    lines += config_lines(result)
    if result.get("stage_seconds"):
        lines.append("stages   " + "  ".join(f"{k} {v:.1f}s" for k, v in result["stage_seconds"].items()))
    if result["status"] == "data_rejected":
        lines += ["", "data rejected by validation — nothing trained, nothing registered, no alias moved:"]
        lines += [failure_line(e) for e in result.get("errors", [])]
    if result.get("metrics"):
        lines += ["", "metrics (test split, float model)"]
        lines += [f"  {k:<16} {v:.4f}" for k, v in result["metrics"].items()]
    if result.get("gates"):
        lines += ["", "gates"]
        lines += [f"  {'✓' if g['passed'] else '✗'} {g['name']:<16} {_num(g['value'])} {g['op']} {g['threshold']:g}" for g in result["gates"]]
    if result.get("compression"):
        lines += ["", _compression_table(result["compression"], result.get("primary_metric") or "accuracy")]
    lines.append("")
    if result.get("version"):
        lines.append(f"registered  {result['registered_model']} version {result['version']}  aliases: {', '.join(result['aliases']) or '-'}")
    elif result["status"] == "completed":
        lines.append("not registered: " + "; ".join(result.get("reasons", [])))
    lines.append(f"promoted    {str(result.get('promoted', False)).lower()}")
    promotion = result.get("promotion") or {}
    lines += [f"  ✓ {m.get('alias')}: v{m.get('from_version') or '-'} → v{m.get('to_version')}" for m in promotion.get("moves", [])]
    lines += [f"  ✗ {reason}" for reason in promotion.get("reasons", []) if not promotion.get("promoted")]
    lines += ["", *_ui_hints(result)]
    return "\n".join(lines)


def config_lines(result: dict[str, Any]) -> list[str]:
    """`config   recorded v1 + --set train.epochs=5` and the unlabelled rows set aside, when known."""
    lines = []
    if result.get("config_source"):
        overrides = "".join(f" + --set {o}" for o in result.get("config_overrides") or [])
        recorded = f"  (recorded as this name's config v{result['config_recorded']})" if result.get("config_recorded") else ""
        lines.append(f"config   {result['config_source']}{overrides}{recorded}")
    if result.get("unlabelled_rows"):
        lines.append(f"rows     {result['unlabelled_rows']:,} without a label set aside (not trained or validated on)")
    return lines


def failure_line(error: dict[str, Any]) -> str:
    """`✗ body_mass_g: expect_column_values_to_be_between (min_value=1800, max_value=7200) — 5 rows (4.2%), e.g. [...]`"""
    expected = error.get("expected") or {}
    shown = ", ".join(f"{k}={_short(v)}" for k, v in expected.items() if k != "mostly" or v != 1)
    observed = error.get("observed")
    if isinstance(observed, dict) and "unexpected_count" in observed:
        examples = observed.get("partial_unexpected_list", [])[:5]
        observed = f"{observed['unexpected_count']} rows ({observed.get('unexpected_percent', 0):.1f}%), e.g. {examples}"
    return f"  ✗ {error.get('column') or '(table)'}: {error['expectation']}{f' ({shown})' if shown else ''} — observed {observed}"


def _short(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _num(value: Any) -> str:
    return "missing" if value is None else f"{value:.4f}"


def _compression_table(rows: list[dict[str, Any]], metric: str) -> str:
    """The compression table in 80 columns: sizes in KiB, 3-significant-digit latencies, the gate
    mark (✓ pass, ! a warn-only rule failed, ✗ fail) and the role (shipped, reference, baseline,
    control); under a row, each failed rule; full detail stays in --json."""
    import textwrap

    head = f"  {'variant':<21}{'size KiB':>8}{'gzip KiB':>9}{'p50 ms':>9}{'p99 ms':>9}{metric[:9]:>10} gate"
    body = [line for r in rows for line in _compression_row(r, metric)]
    shipped = next((r for r in rows if r.get("shipped")), None)
    decision = shipped["reasons"][-1] if shipped and shipped.get("reasons") else ""
    why = decision if not shipped or decision.startswith(f"shipped {shipped['variant']}") else \
        f"shipped {shipped['variant']}: {decision.removeprefix('shipped ')}"
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
    line = (f"  {row['variant']:<21}{format_kib(row['bytes']):>8}{format_kib(row['gzip_bytes']):>9}"
            f"{format_ms(row['latency_ms_p50']):>9}{format_ms(row['latency_ms_p99']):>9}"
            f"{format_metric_short(row.get('metrics', {}).get(metric)):>10} {GATE_MARKS[gate]}"
            f"{'' if kind == 'candidate' else ' ' + kind}")
    failed = [c for c in row.get("checks") or [] if not c["passed"]]
    return [fit(line), *(fit(f"      {'!' if c['severity'] == 'warn' else '✗'} {c['reason']}") for c in failed)]


def _ui_hints(result: dict[str, Any]) -> list[str]:
    uri = tracking_uri()
    mlflow_ui = uri if uri.startswith("http") else f"mlflow ui --backend-store-uri {uri} --port 5000"
    prefect_ui = "open $PREFECT_API_URL without /api" if _team_prefect() else f"PREFECT_HOME={pmf_home() / 'prefect'} prefect server start"
    return [f"MLflow run   {result['mlflow_run_id']}   → {mlflow_ui}",
            f"Prefect run  {result.get('prefect_flow_run_id')}   → {prefect_ui}"]


def _team_prefect() -> bool:
    import os

    return bool(os.environ.get("PREFECT_API_URL"))


def render_validation(result: dict[str, Any]) -> str:
    lines = [f"pmf validate · {result['name']} · {result['status']}", *config_lines(result)]
    if "expectations" in result:
        lines.append(f"  {result['expectations'] - result.get('failed', 0)}/{result['expectations']} expectations passed"
                     + (f" (suite v{result['suite_version']})" if result.get("suite_version") else ""))
    lines += [failure_line(e) for e in result.get("errors", [])]
    lines.append(f"  MLflow run {result['mlflow_run_id']}")
    return "\n".join(lines)
