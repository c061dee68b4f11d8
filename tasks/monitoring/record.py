"""Where a check's verdict is recorded in MLflow: a run per check in the model's experiment, tagged
`pmf.kind=monitor`, with the per-feature values as metrics, the report and a plot of each feature's
value against its threshold; and the markdown table both UIs show."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from tasks.monitoring.verdict import P_VALUE_STATISTICS

REPORT_ARTIFACT = "drift/report.json"
PLOT_DIR = "drift"


def metric_key(prefix: str, column: str) -> str:
    """An MLflow metric name for a column (letters, digits, _ - . / and spaces only)."""
    return f"{prefix}.{re.sub(r'[^A-Za-z0-9_./ -]', '_', column)}"


def check_metrics(result: dict[str, Any]) -> dict[str, float]:
    metrics = {"rows": float(result["rows"]), "drift_share": result["drift_share"], "drifted": float(result["drifted"])}
    for feature in result["features"]:
        metrics[metric_key("drift", feature["column"])] = feature["value"]
        metrics[metric_key("psi", feature["column"])] = feature["psi"]
        metrics[metric_key("missing_rate", feature["column"])] = feature["missing_rate"]
    metrics["drift.prediction"] = result["prediction_drift"]["value"]
    return metrics


def record_check(name: str, result: dict[str, Any], markdown: str, workdir: Path) -> tuple[str, str]:
    """Open, fill and finish the check's MLflow run; returns (experiment id, run id)."""
    from tasks.registry import tracking

    experiment_id = tracking.ensure_experiment(name)
    tags = {
        "pmf.kind": "monitor",
        "pmf.verdict": result["verdict"],
        "pmf.model_version": result["version"],
        "pmf.trigger": result.get("trigger", "manual"),
        "pmf.source": result["source"]["kind"],
        "prefect.flow_run_id": result.get("prefect_flow_run_id") or "",
        "mlflow.note.content": markdown,
    }
    run_id = tracking.start_run(experiment_id, f"monitor-{time.strftime('%Y%m%d-%H%M%S')}", tags=tags)
    try:
        tracking.log_params(run_id, {"version": result["version"], "source": result["source"].get("path") or "prediction log"})
        tracking.log_metrics(run_id, check_metrics(result))
        tracking.log_dict(run_id, result, REPORT_ARTIFACT)
        if result["features"]:
            tracking.log_artifact(run_id, drift_plot(result, workdir), PLOT_DIR)
    except BaseException:
        tracking.end_run(run_id, "FAILED")
        raise
    tracking.end_run(run_id)
    return experiment_id, run_id


def drift_plot(result: dict[str, Any], folder: Path) -> Path:
    """A bar per feature (and the predictions), red when it drifted, its threshold marked; drift is at or
    right of the mark. p-values (ks, chi2) are drawn as -log10(p), so a longer bar is stronger evidence
    of drift, as it is for the distances (wasserstein, jensenshannon)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [*result["features"], {"column": "(predictions)", **result["prediction_drift"]}]
    entries = [e for e in entries if e["value"] is not None][::-1]  # most drifted at the top
    p_values = any(e["statistic"] in P_VALUE_STATISTICS for e in entries)
    scale = (lambda v: -np.log10(max(v, 1e-300))) if p_values else (lambda v: v)
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(entries) + 1.5))
    ax.barh(
        range(len(entries)),
        [scale(e["value"]) for e in entries],
        color=["tab:red" if e["drifted"] else "tab:blue" for e in entries],
    )
    ax.scatter([scale(e["threshold"]) for e in entries], range(len(entries)), marker="|", s=400, color="black")
    ax.set_yticks(range(len(entries)), [f"{e['column']} ({e['statistic']})" for e in entries])
    ax.set_xlabel(f"{'-log10 p-value' if p_values else 'distance'}   (| = threshold: drift at or right of it)")
    ax.set_title(f"{result['model']} v{result['version']}: {result['verdict'].replace('_', ' ')} ({result['rows']:,} rows)")
    fig.tight_layout()
    path = folder / "drift.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def features_table(result: dict[str, Any]) -> list[str]:
    """The verdict per feature as a markdown table, most drifted first (Prefect's and MLflow's view)."""
    lines = [
        "| column | statistic | value | threshold | drifted | psi | missing | unknown |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in [*result["features"], {"column": "(predictions)", **result["prediction_drift"]}]:
        lines.append(
            f"| {f['column']} | {f['statistic']} | {_g(f['value'])} | {_g(f['threshold'])} | "
            f"{'yes' if f['drifted'] else 'no'} | {_g(f.get('psi'))} | {_rate(f.get('missing_rate'))} | "
            f"{_rate(f.get('unknown_rate'))} |"
        )
    return lines


def _g(value: Any) -> str:
    return "-" if value is None else f"{value:.3g}"


def _rate(value: Any) -> str:
    return "-" if value is None else f"{value:.1%}"
