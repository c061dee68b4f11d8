"""What a search shows: the trials table (best first), a parallel-coordinates plot, the study's name."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.config import PmfConfig
    from tasks.tuning.search import SearchResult


def study_name(name: str, data_sha256: str, cfg: PmfConfig) -> str:
    """One study per dataset name, data and search settings: the same run again resumes it, any change starts anew."""
    settings = cfg.tune.model_dump_json() + cfg.train.model_dump_json()
    return f"pmf-{name}-{hashlib.sha256((data_sha256 + settings).encode()).hexdigest()[:12]}"


def _shown(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return value


def trial_rows(result: SearchResult, limit: int | None = None) -> list[dict[str, Any]]:
    """One row per trial, best first: number, state, value, its values, epochs, seconds, why it stopped."""
    rows = []
    for outcome in result.ranked()[:limit]:
        rows.append(
            {
                "trial": outcome.number,
                "state": outcome.state,
                f"val_{result.metric}": None if outcome.value is None else round(outcome.value, 4),
                **{k: _shown(v) for k, v in outcome.params.items()},
                "epochs": outcome.epochs_run,
                "seconds": round(outcome.seconds, 1),
                "note": outcome.reason or _note(result, outcome),
            }
        )
    return rows


def _note(result: SearchResult, outcome: Any) -> str:
    if outcome is result.best:
        return (
            "kept: the configured values (the leader's lead is within its standard error)" if result.kept_configured else "best"
        )
    if result.kept_configured and outcome is result.leader:
        return "led within its standard error: not adopted"
    return ""


def kept_sentence(tuning: dict[str, Any]) -> str | None:
    """Why the configured values train the model although another trial scored higher, or None."""
    if not tuning.get("kept_configured"):
        return None
    leader, best = tuning["leader"], tuning["best"]
    lead = abs(leader["value"] - best["value"])
    return (
        f"trial {leader['trial']} led trial {best['trial']} (the configured values) by {lead:.4f}, within its standard "
        f"error {leader['spread']:.4f} on the validation split: the configured values are kept"
    )


def parallel_coordinates(result: SearchResult, path: Path) -> Path | None:
    """Each completed or pruned trial as a line across its (scaled) values, coloured by its validation metric."""
    shown = [o for o in result.outcomes if o.value is not None and math.isfinite(o.value)]
    if len(shown) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({k for o in shown for k in o.params})
    columns = [*names, f"val_{result.metric}"]

    def position(name: str, value: Any, values: list[Any]) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and all(isinstance(v, (int, float)) for v in values):
            low, high = min(values), max(values)
            if name == "learning_rate" and low > 0:
                low, high, value = math.log10(low), math.log10(high), math.log10(value)
            return 0.5 if high == low else (value - low) / (high - low)
        labels = sorted({str(v) for v in values})
        return labels.index(str(value)) / max(1, len(labels) - 1)

    table = {n: [o.params.get(n) for o in shown] for n in names}
    table[columns[-1]] = [o.value for o in shown]
    values = [o.value for o in shown]
    low, high = min(values), max(values)  # type: ignore[type-var]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(columns)), 4))
    cmap = plt.get_cmap("viridis")
    for i, o in enumerate(shown):
        ys = [position(c, table[c][i], table[c]) for c in columns]
        shade = 0.5 if high == low else (o.value - low) / (high - low)  # type: ignore[operator]
        ax.plot(range(len(columns)), ys, color=cmap(shade if result.higher_is_better else 1 - shade), alpha=0.8)
    ax.set_xticks(range(len(columns)), columns, rotation=20)
    ax.set_yticks([])
    ax.set_title(f"{len(shown)} trials; brighter = better validation {result.metric}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
