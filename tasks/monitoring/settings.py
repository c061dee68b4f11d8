"""The `monitoring:` section of a dataset's config: window, minimum rows and drift thresholds.

Defaults are Evidently's (DECISIONS.md "Schedules, retraining, monitoring"): a reference of at most
`small_reference_rows` rows is tested with KS (numbers) and chi-squared (categories) at p <= 0.05;
a larger one with the Wasserstein distance normalised by the reference's std (numbers) and the
Jensen-Shannon distance (categories), both drifting at >= 0.1. PSI is reported beside them (0.1).
"""

from __future__ import annotations

from pydantic import Field

from tasks.frozen import Frozen


class MonitoringSettings(Frozen):
    window: int = Field(5000, ge=1, description="the last N logged predictions a check compares with the reference")
    min_rows: int = Field(100, ge=1, description="fewer rows than this: the verdict is not_enough_data")
    drift_share: float = Field(0.5, gt=0, le=1, description="the dataset drifts when this share of its features drift")
    small_reference_rows: int = Field(
        1000,
        ge=1,
        le=5000,  # the profile keeps at most 5,000 raw values a column (profile.SAMPLE_CAP): KS stays exact up to there
        description="a reference of at most this many rows is tested with KS / chi2",
    )
    ks_p_value: float = Field(0.05, gt=0, lt=1, description="a number drifts when the KS test's p-value is <= this")
    chi2_p_value: float = Field(0.05, gt=0, lt=1, description="a category drifts when the chi-squared p-value is <= this")
    wasserstein: float = Field(0.1, gt=0, description="a number drifts at a normalised Wasserstein distance >= this")
    jensenshannon: float = Field(0.1, gt=0, le=1, description="a category drifts at a Jensen-Shannon distance >= this")
    psi: float = Field(0.1, gt=0, description="the PSI shown beside them (reported, not voting)")
