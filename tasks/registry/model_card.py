"""Model cards: what the pipeline knows about a registered version, as markdown for people.

Pure functions (facts in, markdown out, no MLflow call). Two texts:
- `version_card`: the version's card (data, training, metrics with gates and slices, compression and
  why the shipped variant won, promotion, how to load and serve). It is the version's description in
  the MLflow UI and the artifact `model_card.md` of the pipeline run that produced the version.
- `model_description`: the registered model's description: what it predicts, from which columns, and
  the promotion history as a table, newest first.

The registry's history tags stay the source of truth (tasks.registry.lifecycle); these texts only
render them. MLflow stores a description in at most 5,000 characters (a VARCHAR(5000) on PostgreSQL),
so every text here fits DESCRIPTION_LIMIT: long tables lose their last rows first, with a line saying
how many are left out and where the whole record is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DESCRIPTION_LIMIT = 5000
PROMOTION_START = "<!-- pmf:promotion -->"
PROMOTION_END = "<!-- /pmf:promotion -->"
HISTORY_START = "<!-- pmf:history -->"
HISTORY_END = "<!-- /pmf:history -->"
MAX_COLUMNS_NAMED = 40  # a 64-pixel image or a 10k-column table: name the first ones, count the rest
ROW_BUDGETS = (None, 20, 10, 5, 3, 1, 0)  # rows per table tried, all first, until the text fits


@dataclass(frozen=True)
class ModelCardFacts:
    """Everything a card says, as the pipeline knew it when it registered the version."""

    name: str
    version: str
    task: str
    target: str
    input_columns: tuple[str, ...]
    classes: tuple[str, ...]
    data_path: str
    data_sha256: str
    rows: dict[str, int]  # rows_train / rows_validation / rows_test
    suite_version: int | None
    training: dict[str, Any]  # the train config plus epochs_run, parameters, resumed_from_epoch, warm_start(_reason)
    primary_metric: str
    metrics: dict[str, float]  # the float Keras model on the test split
    gates: list[dict[str, Any]] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)
    compression: list[dict[str, Any]] = field(default_factory=list)
    shipped_variant: str = ""
    shipped_metrics: dict[str, float] = field(default_factory=dict)  # the shipped variant through LiteRT
    model_uri: str = ""
    pipeline_run_id: str = ""
    pipeline_run_url: str = ""
    prefect_flow_run_id: str = ""
    git_commit: str = ""
    example_row: dict[str, Any] = field(default_factory=dict)


# ---- the version's card -------------------------------------------------------------------------


def version_card(facts: ModelCardFacts, limit: int = DESCRIPTION_LIMIT) -> str:
    """The card of a version just registered (its promotion section says @candidate), in at most `limit` characters."""
    return fit(lambda rows: _version_card(facts, rows), limit)


def _version_card(facts: ModelCardFacts, rows: int | None) -> str:
    parts = [
        f"# {facts.name} v{facts.version}: {_what_it_predicts(facts.task, facts.target, facts.classes)}",
        _data_section(facts),
        _training_section(facts),
        _metrics_section(facts, rows),
        _compression_section(facts, rows),
        promotion_section(facts.version, (), ("candidate",), "", rows),
        _usage_section(facts),
        _lineage_section(facts),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def _data_section(facts: ModelCardFacts) -> str:
    total = sum(facts.rows.values())
    split = ", ".join(f"{key.removeprefix('rows_')} {count:,}" for key, count in facts.rows.items())
    suite = f"v{facts.suite_version}" if facts.suite_version is not None else "not recorded"
    return "\n".join(
        [
            "## Data",
            "",
            f"- file: `{facts.data_path}`",
            f"- SHA-256: `{facts.data_sha256}`",
            f"- rows: {total:,} labelled ({split})",
            f"- expectation suite: {suite}",
            f"- input columns ({len(facts.input_columns)}): {columns_text(facts.input_columns)}",
        ]
    )


def _training_section(facts: ModelCardFacts) -> str:
    t = facts.training
    if t.get("model") == "cnn":
        architecture = f"CNN, conv filters {list(t.get('conv_filters', []))}, image {t.get('image_shape')}"
    else:
        architecture = f"MLP, hidden units {list(t.get('hidden_units', []))}, dropout {t.get('dropout')}"
    lines = ["## Training", "", f"- architecture: {architecture}"]
    if t.get("parameters") is not None:
        lines.append(f"- parameters: {int(t['parameters']):,}")
    ran = f"{t['epochs_run']} of {t.get('epochs')}" if t.get("epochs_run") is not None else f"up to {t.get('epochs')}"
    lines.append(f"- epochs: {ran} (early stopping patience {t.get('early_stopping_patience')})")
    if t.get("resumed_from_epoch"):
        lines.append(f"- resumed from the checkpoint at epoch {t['resumed_from_epoch']}")
    lines.append(
        f"- optimizer: Adam, learning rate {t.get('learning_rate')} ({t.get('lr_schedule')} schedule), "
        f"batch size {t.get('batch_size')}, seed {t.get('seed')}"
    )
    lines.append(f"- warm start: {_warm_start(t)}")
    return "\n".join(lines)


def _warm_start(training: dict[str, Any]) -> str:
    reason = training.get("warm_start_reason")
    if training.get("warm_start"):
        return f"yes{f' ({reason})' if reason else ''}"
    return f"no, trained from scratch{f' ({reason})' if reason else ''}"


def _metrics_section(facts: ModelCardFacts, rows: int | None) -> str:
    if not facts.metrics and not facts.shipped_metrics:
        return "## Metrics\n\nnot recorded by the pipeline run"
    names = list(dict.fromkeys([*facts.metrics, *facts.shipped_metrics]))
    header = f"| metric | Keras model | shipped ({facts.shipped_variant or '?'}) | gate |"
    gates = {g["name"]: g for g in facts.gates}
    table = [header, "|---|---|---|---|"]
    table += [
        f"| {'**' + n + '**' if n == facts.primary_metric else n} | {number(facts.metrics.get(n))} | "
        f"{number(facts.shipped_metrics.get(n))} | {gate_text(gates.get(n))} |"
        for n in names
    ]
    lines = ["## Metrics (test split)", "", *table]
    other_gates = [g for name, g in gates.items() if name not in names]
    lines += [f"\ngate on {g['name']}: {gate_text(g)}" for g in other_gates]
    if facts.slices:
        lines += ["", "### Per slice (Keras model)", "", *_slice_table(facts, rows)]
    return "\n".join(lines)


def _slice_table(facts: ModelCardFacts, rows: int | None) -> list[str]:
    keys = [k for k in facts.slices[0] if k not in ("column", "value", "rows")]
    keys = ([facts.primary_metric] if facts.primary_metric in keys else []) + [k for k in keys if k != facts.primary_metric][:2]
    table = ["| column | value | rows | " + " | ".join(keys) + " |", "|---|---|---|" + "---|" * len(keys)]
    body = [
        f"| {cell(s['column'])} | {cell(s['value'])} | {s['rows']:,} | " + " | ".join(number(s.get(k)) for k in keys) + " |"
        for s in facts.slices
    ]
    return table + limited(body, rows, "slices")


def _compression_section(facts: ModelCardFacts, rows: int | None) -> str:
    if not facts.compression:
        return ""
    metric = facts.primary_metric
    table = [f"| variant | role | {metric} | bytes | gzip bytes | p50 ms | gate |", "|---|---|---|---|---|---|---|"]
    body = [
        f"| {'**' + r['variant'] + '**' if r.get('shipped') else r['variant']} | {row_role(r)} | "
        f"{number((r.get('metrics') or {}).get(metric))} | {count(r.get('bytes'))} | {count(r.get('gzip_bytes'))} | "
        f"{number(r.get('latency_ms_p50'), 3)} | {verdict_text(r)} |"
        for r in facts.compression
    ]
    return "\n".join(
        [
            "## Compression",
            "",
            f"Shipped: **{facts.shipped_variant}**. Why: {shipping_reason(facts)}",
            "",
            *table,
            *limited(body, rows, "variants"),
        ]
    )


def shipping_reason(facts: ModelCardFacts) -> str:
    """The compression stage's own decision line for the shipped variant (the last of its reasons)."""
    shipped = next((r for r in facts.compression if r.get("shipped")), None)
    reasons = (shipped or {}).get("reasons") or []
    return cell(reasons[-1]) if reasons else "the only variant that passed the compression gate"


def _usage_section(facts: ModelCardFacts) -> str:
    uri = f"models:/{facts.name}/{facts.version}"
    lines = [
        "## Load and serve",
        "",
        "```python",
        "import mlflow",
        f'model = mlflow.pyfunc.load_model("{uri}")  # or "models:/{facts.name}@production"',
        "predictions = model.predict(frame)  # raw rows, columns as in the file; no target column",
        "```",
        "",
        "```bash",
        f"pmf serve {facts.name} --version {facts.version}   # or --alias production (follows the alias)",
    ]
    if facts.example_row:
        import json

        body = json.dumps({"dataframe_records": [facts.example_row]}, default=str)
        lines.append(f"curl -s localhost:8080/invocations -H 'Content-Type: application/json' -d '{body}'")
    lines += ["```"]
    return "\n".join(lines)


def _lineage_section(facts: ModelCardFacts) -> str:
    run = f"[{facts.pipeline_run_id}]({facts.pipeline_run_url})" if facts.pipeline_run_url else f"`{facts.pipeline_run_id}`"
    lines = ["## Lineage", "", f"- pipeline run (MLflow): {run}; this card is its artifact `model_card.md`"]
    if facts.prefect_flow_run_id:
        lines.append(f"- Prefect flow run: `{facts.prefect_flow_run_id}`")
    if facts.git_commit:
        lines.append(f"- git commit: `{facts.git_commit}`")
    if facts.model_uri:
        lines.append(f"- logged model: `{facts.model_uri}`")
    return "\n".join(lines)


# ---- promotion ----------------------------------------------------------------------------------


def promotion_section(
    version: str,
    moves: Sequence[dict[str, Any]],
    aliases: Sequence[str] = ("candidate",),
    decision: str = "",
    rows: int | None = None,
) -> str:
    """The version's aliases now, the last promotion decision and its alias moves (newest first),
    between markers so `with_promotion` can replace it after a move without the other facts."""
    now = ", ".join(f"@{a}" for a in aliases) or "no alias"
    lines = [PROMOTION_START, "## Promotion", "", f"Aliases now: {now}."]
    if decision:
        lines += ["", f"Last decision: {cell(decision)}"]
    mine = [m for m in moves if str(m.get("to_version")) == str(version) or str(m.get("from_version")) == str(version)]
    lines += ["", *history_rows(mine, rows)] if mine else ["", "No alias move has involved this version yet."]
    return "\n".join([*lines, PROMOTION_END])


def with_promotion(
    card: str,
    version: str,
    moves: Sequence[dict[str, Any]],
    aliases: Sequence[str],
    decision: str = "",
    limit: int = DESCRIPTION_LIMIT,
) -> str:
    """`card` with its promotion section rendered again (a card without one gets it at the end)."""

    def render(rows: int | None) -> str:
        section = promotion_section(version, moves, aliases, decision, rows)
        return _replace_between(card, PROMOTION_START, PROMOTION_END, section)

    return fit(render, limit)


def _replace_between(text: str, start: str, end: str, section: str) -> str:
    """`text` with the part from `start` to `end` (markers included) replaced by `section`, or `section` appended."""
    if start in text and end in text:
        before, rest = text.split(start, 1)
        return before + section + rest.split(end, 1)[1]
    return (text.rstrip("\n") + "\n\n" if text.strip() else "") + section + "\n"


def history_rows(records: Sequence[dict[str, Any]], rows: int | None = None) -> list[str]:
    """History records as a markdown table, newest first: time, who, alias, from → to, why, forced."""
    header = ["| time (UTC) | who | alias | from → to | why | forced |", "|---|---|---|---|---|---|"]
    body = []
    for record in sorted(records, key=lambda r: (r.get("seq") is None, r.get("seq") or 0), reverse=True):
        if record.get("unreadable"):
            body.append(
                f"| ? | ? | ? | ? | unreadable record `{cell(record.get('key', ''))}`: {cell(record.get('error', ''))} | ? |"
            )
            continue
        move = f"v{record.get('from_version') or '–'} → v{record.get('to_version')}".replace("v–", "–")
        kind = " (rollback)" if record.get("kind") == "rollback" else ""
        body.append(
            f"| {when(record.get('time'))} | {cell(record.get('actor', '?'))} | @{record['alias']} | {move} | "
            f"{cell(record.get('reason', ''), 300)}{kind} | {'yes' if record.get('forced') else 'no'} |"
        )
    return header + limited(body, rows, "moves", "`pmf models NAME` lists every one")


# ---- the registered model's description ---------------------------------------------------------


def model_description(
    name: str,
    task: str,
    target: str,
    classes: Sequence[str],
    input_columns: Sequence[str],
    records: Sequence[dict[str, Any]],
    limit: int = DESCRIPTION_LIMIT,
) -> str:
    """What `name` predicts, from which columns, and its promotion history (newest first)."""

    def render(rows: int | None) -> str:
        lines = [
            f"**{name}** predicts {_what_it_predicts(task, target, classes)}.",
            "",
            f"Input: {len(input_columns)} column(s) of a raw row, as in the training file: {columns_text(input_columns)}.",
            "",
            "Each version's description is its model card (data, training, metrics, compression, how to load).",
            "",
            history_section(records, rows),
        ]
        return "\n".join(lines) + "\n"

    return fit(render, limit)


def history_section(records: Sequence[dict[str, Any]], rows: int | None = None) -> str:
    table = history_rows(records, rows) if records else ["No alias has moved yet."]
    return "\n".join(
        [
            HISTORY_START,
            "## Promotion history (newest first)",
            "",
            *table,
            "",
            "Source of truth: the registered model's `pmf.history.*` tags.",
            HISTORY_END,
        ]
    )


def with_history(description: str, records: Sequence[dict[str, Any]], limit: int = DESCRIPTION_LIMIT) -> str:
    """`description` with its history section rendered again from `records` (appended when it has none:
    a model registered before cards, or a description written by hand, keeps its text above)."""
    return fit(lambda rows: _replace_between(description, HISTORY_START, HISTORY_END, history_section(records, rows)), limit)


def _what_it_predicts(task: str, target: str, classes: Sequence[str]) -> str:
    if task == "classification":
        return f"`{target}` (classification into {len(classes)} classes: {columns_text(classes, 20, quote=False)})"
    return f"`{target}` (regression: a number in the target's own units)"


# ---- formatting ---------------------------------------------------------------------------------


def fit(render: Callable[[int | None], str], limit: int) -> str:
    """The first of `render(rows)` for ROW_BUDGETS that fits `limit`; failing that, the smallest one cut with a marker."""
    for rows in ROW_BUDGETS:
        text = render(rows)
        if len(text) <= limit:
            return text
    marker = f"\n\n… [cut at {limit:,} characters: the whole card is the artifact model_card.md]\n"
    return text[: limit - len(marker)] + marker


def limited(body: list[str], rows: int | None, what: str, where: str = "the whole table is in model_card.md") -> list[str]:
    if rows is None or len(body) <= rows:
        return body
    return [*body[:rows], f"\n… {len(body) - rows} more {what} not shown here: {where}"]


def columns_text(columns: Sequence[str], most: int = MAX_COLUMNS_NAMED, quote: bool = True) -> str:
    shown = [f"`{c}`" if quote else str(c) for c in list(columns)[:most]]
    more = len(columns) - len(shown)
    return ", ".join(shown) + (f" and {more:,} more" if more > 0 else "")


def number(value: Any, digits: int = 4) -> str:
    """A metric for people: 4 significant digits, no float noise (`0.9565`, `4.098e+06`), `–` when absent."""
    if value is None or value != value:
        return "–"
    return f"{float(value):.{digits}g}"


def count(value: Any) -> str:
    return "–" if value is None else f"{int(value):,}"


def gate_text(gate: dict[str, Any] | None) -> str:
    if not gate:
        return "–"
    mark = "✓" if gate.get("passed") else ("! warn" if gate.get("severity") == "warn" else "✗")
    return f"{mark} {gate.get('op')} {number(gate.get('threshold'))}" + (" (warn only)" if gate.get("severity") == "warn" else "")


def row_role(row: dict[str, Any]) -> str:
    if row.get("shipped"):
        return "shipped"
    if row.get("control"):
        return "control"
    return {"keras": "baseline", "float32": "reference"}.get(row["variant"], "candidate")


def verdict_text(row: dict[str, Any]) -> str:
    verdict = row.get("gate") or {True: "pass", False: "fail", None: "not gated"}[row.get("passed")]
    return {"pass": "✓ pass", "warn": "! pass, warnings", "fail": "✗ fail", "baseline": "– not gated"}.get(verdict, verdict)


def cell(text: Any, most: int = 500) -> str:
    """Free text as one markdown table cell: no pipes or newlines, bounded."""
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat if len(flat) <= most else flat[: most - 1] + "…"


def when(iso: str | None) -> str:
    if not iso:
        return "?"
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return cell(iso, 40)
