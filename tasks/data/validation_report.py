"""The validation report as one self-contained HTML file: readable offline, as a file and in MLflow's viewer.

GX's Data Docs load Bootstrap, jQuery and fonts from CDNs, so they show blank or unstyled without
internet (MLflow's artifact view on a closed network, a file opened from disk). This page inlines its
styles, has no scripts, and forbids every network load in its Content-Security-Policy. It renders a
`ValidationReport` (the suite's expectations and pmf's own checks), so its counts are the terminal's.
Every value from the data is HTML-escaped: a column name is text, never markup.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from tasks.data.validate import ValidationReport

# default-src 'none': the page may load nothing at all; only its own inline <style> applies.
_CSP = "default-src 'none'; style-src 'unsafe-inline'"
_LONGEST = 240  # characters of one expected/observed value shown; result.json beside the page has them whole
_SET_ITEMS = 12

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;
 margin:0;background:#f6f8fa}
main{max-width:1120px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.verdict{display:inline-block;padding:3px 10px;border-radius:12px;font-weight:600;margin:6px 0 12px}
.verdict.ok{background:#dafbe1;color:#116329}.verdict.bad{background:#ffebe9;color:#a40e26}
.counts{display:flex;gap:12px;margin:8px 0 12px}
.count{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 18px;min-width:110px}
.count .n{display:block;font-size:26px;font-weight:700}
.count.passed .n{color:#116329}.count.failed .n{color:#a40e26}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0;color:#57606a}
dl.facts dt{font-weight:600}dl.facts dd{margin:0;overflow-wrap:anywhere}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #d0d7de;table-layout:fixed}
th,td{text-align:left;vertical-align:top;padding:6px 10px;border-bottom:1px solid #eaeef2;overflow-wrap:break-word}
th{background:#f6f8fa;font-weight:600}
th.column{width:16%}th.check{width:28%}th.expected{width:26%}
tr.failed td:first-child{border-left:4px solid #cf222e}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.tag{font-size:11px;background:#ddf4ff;color:#0969da;border-radius:8px;padding:0 6px;margin-left:6px}
.muted{color:#57606a}
details{margin-top:28px}summary{font-size:17px;font-weight:600;cursor:pointer;margin-bottom:8px}
footer{margin-top:28px;color:#57606a;font-size:12.5px}
"""


def write_report(report: ValidationReport, path: Path, title: str, facts: dict[str, str] | None = None) -> Path:
    """Write `render_report(...)` to path (folders created) and return path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(report, title, facts), encoding="utf-8")
    return path


def render_report(report: ValidationReport, title: str, facts: dict[str, str] | None = None) -> str:
    """The page: verdict and counts first (evaluated, passed, failed), then every failed check with its
    column, check, expected and observed values, then the passed checks (folded). facts are shown as a
    label/value list under the title (data file, rows, suite version...)."""
    verdict = (
        "Accepted: every check passed" if report.success else f"Rejected: {report.failed:,} of {report.evaluated:,} checks failed"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)} · validation report</title><style>{_STYLE}</style></head>",
        "<body><main>",
        f"<h1>{_e(title)} · validation report</h1>",
        f'<p class="verdict {"ok" if report.success else "bad"}">{_e(verdict)}</p>',
        _counts(report),
        _facts(facts or {}),
        f"<h2>Failed ({report.failed:,})</h2>",
        _table(_failed_rows(report.failures), "failed") if report.failures else '<p class="muted">No check failed.</p>',
        f"<details><summary>Passed ({len(report.passed):,})</summary>",
        _table([_row(check) for check in report.passed], "passed") if report.passed else '<p class="muted">None.</p>',
        "</details>",
        "<footer>Checks: the dataset's expectation suite (Great Expectations) and pmf's own checks (marked pmf). "
        "The terminal and <code>--json</code> count the same checks. A column the batch lacks is one line in "
        "the terminal; here each expectation on it is a row. Full values: <code>validation/result.json</code>. "
        "This page loads nothing from the network.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(parts)


def _counts(report: ValidationReport) -> str:
    boxes = [("evaluated", report.evaluated), ("passed", len(report.passed)), ("failed", report.failed)]
    return (
        '<div class="counts">'
        + "".join(f'<div class="count {name}"><span class="n" id="{name}">{value:,}</span>{name}</div>' for name, value in boxes)
        + "</div>"
    )


def _facts(facts: dict[str, str]) -> str:
    if not facts:
        return ""
    return '<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts.items()) + "</dl>"


def _table(rows: list[str], kind: str) -> str:
    head = (
        '<tr><th class="column">Column</th><th class="check">Check</th><th class="expected">Expected</th><th>Observed</th></tr>'
    )
    return f'<table class="{kind}"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _failed_rows(failures: list[dict[str, Any]]) -> list[str]:
    """One row per failed check: a missing column's folded expectations get their own rows."""
    rows = []
    for failure in failures:
        rows.append(_row(failure, "failed"))
        rows += [
            _row({"column": failure["column"], "expectation": name, "expected": {}, "observed": "column is missing"}, "failed")
            for name in failure.get("also_failed", [])
        ]
    return rows


def _row(check: dict[str, Any], kind: str = "passed") -> str:
    name = str(check.get("expectation", ""))
    tag = "" if name.startswith("expect_") else '<span class="tag">pmf</span>'
    column = check.get("column")
    observed = check.get("observed")
    shown = "present" if name == "expect_column_to_exist" and kind == "passed" and not observed else observed_text(observed)
    # <wbr> after each underscore: a long check name wraps between words, not inside one.
    return (
        f'<tr class="{kind}"><td>{_e(column) if column is not None else "<span class=muted>(table)</span>"}</td>'
        f"<td><code>{_e(name).replace('_', '_<wbr>')}</code>{tag}</td>"
        f"<td>{_e(expected_text(check.get('expected') or {}))}</td><td>{_e(shown)}</td></tr>"
    )


def expected_text(expected: dict[str, Any]) -> str:
    """`min_value=32.1, max_value=59.6`; `mostly=1` (GX's default) left out; long value sets cut."""
    shown = []
    for key, value in expected.items():
        if key == "mostly" and value == 1:
            continue
        if isinstance(value, list) and len(value) > _SET_ITEMS:
            value = [*value[:_SET_ITEMS], f"… {len(value):,} values in all"]
        shown.append(f"{key}={_value(value)}")
    return _cut(", ".join(shown))


def observed_text(observed: Any) -> str:
    """`3 rows (0.9%), e.g. ['Emperor']` for values outside the rule; the value itself otherwise."""
    if isinstance(observed, dict) and "unexpected_count" in observed:
        count = observed["unexpected_count"]
        if not count:
            return "no unexpected values"
        examples = observed.get("partial_unexpected_list") or []
        share = observed.get("unexpected_percent")
        text = f"{count:,} row{'s' if count != 1 else ''}" + (f" ({share:.3g}%)" if isinstance(share, (int, float)) else "")
        return _cut(text + (f", e.g. {_value(examples[:5])}" if examples else ""))
    if observed is None or observed == {}:
        return "—"
    return _cut(_value(observed))


def _value(value: Any) -> str:
    if isinstance(value, float):
        return format(value, ".10g")  # 4097900, not 4097899.9999999995
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(repr(v) if isinstance(v, str) and not v.startswith("…") else _value(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_value(v)}" for k, v in value.items())
    return json.dumps(value) if isinstance(value, bool) or value is None else str(value)


def _cut(text: str) -> str:
    return text if len(text) <= _LONGEST else text[: _LONGEST - 1] + "…"


def _e(value: Any) -> str:
    # "//" as character references: a URL among the data's values reads the same, yet the file holds no
    # URL for a viewer to auto-link or a scanner to flag.
    return html.escape(str(value), quote=True).replace("//", "&#47;&#47;")
