"""The result of one `pmf run`: one typed object, built by the flow, printed by `--json`, rendered by the summary.

Its JSON keys are the contract in DESIGN.md (`status`, `registered_model`, `version`, `promoted`, `aliases`,
`metrics`, `gates`, `compression`, `mlflow_run_id`, `prefect_flow_run_id`, `errors` on rejection, `trigger`,
`warm_start`; a retrain's `batches` and `drift`),
plus `outcome` (DECISIONS.md's outcome names) and `links` (`mlflow_run`, `prefect_flow_run`, `model_version`:
URLs into the UIs, None where there is nothing to link to).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["completed", "data_rejected", "no_new_data", "usage_error", "failed"]
Outcome = Literal["promoted", "not_promoted", "no_new_data", "data_rejected", "usage_error", "failed"]


@dataclass
class RunResult:
    registered_model: str
    mlflow_run_id: str
    mlflow_experiment_id: str
    prefect_flow_run_id: str | None = None
    status: Status = "failed"
    trigger: str = "manual"
    config_source: str = "defaults"
    config_overrides: list[str] = field(default_factory=list)
    config_recorded: int | None = None
    unlabelled_rows: int = 0
    suite_version: int | None = None
    version: str | None = None
    promoted: bool = False
    aliases: list[str] = field(default_factory=list)
    primary_metric: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    slices: list[dict[str, Any]] = field(default_factory=list)
    training: dict[str, Any] | None = None
    # Whether training started from the production version's weights, and why (a retrain warm-starts
    # when they fit; `pmf run` trains from scratch); None until the train stage ran.
    warm_start: bool | None = None
    warm_start_reason: str | None = None
    # A retrain's batches: `new` (trained on now), `rejected` (with their failed expectations), `skipped`
    # (trained on or rejected before), `window` (what older data went with them); None for `pmf run`.
    batches: dict[str, Any] | None = None
    # The hyper-parameter search when tuned (DECISIONS.md: trials, completed, pruned, failed, best, seconds).
    tuning: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None  # the drift summary that triggered a retrain, as the monitor sent it
    compression: list[dict[str, Any]] = field(default_factory=list)
    shipped_variant: str | None = None
    model_uri: str | None = None
    promotion: dict[str, Any] | None = None
    reasons: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float | None = None
    # URLs built from the UIs in use (flows.ui.links): the MLflow parent run, the Prefect flow run, the version.
    links: dict[str, str | None] = field(
        default_factory=lambda: {"mlflow_run": None, "prefect_flow_run": None, "model_version": None}
    )

    @property
    def outcome(self) -> Outcome:
        """What happened, in the words of DECISIONS.md's outcome table."""
        if self.status == "completed":
            return "promoted" if self.promoted else "not_promoted"
        return self.status

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only (numpy scalars become numbers); `error` only when there is one."""
        payload = {**asdict(self), "outcome": self.outcome}
        for optional in ("error", "tuning"):
            if payload[optional] is None:
                del payload[optional]
        return json_safe(payload)


def json_safe(value: Any) -> Any:
    """`value` with numpy scalars as Python numbers and anything else unknown as text."""
    import numpy as np

    return json.loads(json.dumps(value, default=lambda v: v.item() if isinstance(v, np.generic) else str(v)))
