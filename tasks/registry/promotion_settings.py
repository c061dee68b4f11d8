"""Promotion settings: the champion/challenger margin, the infra check and the model server, as one frozen object."""

from __future__ import annotations

from pydantic import Field

from tasks.frozen import Frozen


class PromotionSettings(Frozen):
    auto_promote: bool = Field(
        True,
        description="`pmf run` takes a registered candidate through staging to production; "
        "false stops at @candidate (promote later with `pmf promote`)",
    )
    champion_margin: float = Field(
        0.0,
        ge=0,
        description="how much worse than production the candidate may be on the primary metric, absolute (0.0 = not worse)",
    )
    primary_metric: str | None = Field(None, description="default: the model's own primary metric, else f1_macro / r2")
    slice_columns: tuple[str, ...] = Field((), description="columns of the held-out data whose slices must not be worse either")
    min_slice_rows: int = Field(10, ge=1, description="smaller slices are reported but do not block (too noisy to judge)")
    canary_rows: int = Field(
        32, ge=1, description="held-out rows sent to the served candidate and compared with offline predictions"
    )
    canary_tolerance: float = Field(
        1e-5, ge=0, description="regression: allowed relative difference between served and offline predictions"
    )
    infra_timeout_s: float = Field(
        90.0, gt=0, description="the served candidate must answer /health and the canaries within this"
    )
    manual_approval: bool = Field(
        False, description="pause before the production move until someone approves it in the Prefect UI"
    )
    approval_timeout_s: int = Field(3600, ge=1, description="an unanswered approval request rejects the promotion after this")
    watch_interval_s: float = Field(
        5.0, gt=0, description="the model server polls its alias this often and swaps to a new version"
    )
    max_batch_rows: int = Field(10_000, ge=1, description="the model server rejects larger requests with 413")
