"""Readable summaries of a finished run for the terminal (`--json` prints the raw result instead)."""
from __future__ import annotations

from typing import Any

from tasks.workspace import pmf_home, tracking_uri


def render_run(result: dict[str, Any]) -> str:
    lines = [f"pmf run · {result['registered_model']} · {result['status']}", ""]
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
    head = f"  {'variant':<22}{'bytes':>10}{'gzip':>10}{'p50 ms':>9}{'p99 ms':>9}{metric:>14}  gate"
    body = [_compression_row(r, metric) for r in rows]
    shipped = next((r for r in rows if r.get("shipped")), None)
    why = f"shipped {shipped['variant']}: {shipped['reasons'][-1]}" if shipped and shipped.get("reasons") else ""
    return "\n".join(["compression (measured through LiteRT on the test split; * = shipped)", head, *body, f"  {why}"])


def _compression_row(row: dict[str, Any], metric: str) -> str:
    name = row["variant"] + (" *" if row.get("shipped") else "")
    if row.get("error"):
        return f"  {name:<22}failed: {row['error'][:90]}"
    verdict = {True: "✓", False: "✗", None: "baseline"}[row.get("passed")]
    failed = [r for r in row.get("reasons", []) if (" > " in r or ">=" in r) and not r.startswith("shipped")]
    value = row.get("metrics", {}).get(metric)
    return (f"  {name:<22}{row['bytes']:>10,}{row['gzip_bytes']:>10,}{row['latency_ms_p50']:>9.3f}{row['latency_ms_p99']:>9.3f}"
            f"{'' if value is None else f'{value:.4f}':>14}  {verdict} {'; '.join(failed)}".rstrip())


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
    lines = [f"pmf validate · {result['name']} · {result['status']}"]
    if "expectations" in result:
        lines.append(f"  {result['expectations'] - result.get('failed', 0)}/{result['expectations']} expectations passed"
                     + (f" (suite v{result['suite_version']})" if result.get("suite_version") else ""))
    lines += [failure_line(e) for e in result.get("errors", [])]
    lines.append(f"  MLflow run {result['mlflow_run_id']}")
    return "\n".join(lines)
