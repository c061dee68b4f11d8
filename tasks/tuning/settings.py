"""The `tune:` config section: how many trials, how long, what to optimise, over which space.

Off by default (`pmf run --tune` or `--set tune.enabled=true` turns it on). Every parameter of the
search space has a default per model kind (tasks.tuning.space); `space:` overrides one parameter at a
time, e.g. `space: {learning_rate: {low: 0.0005, high: 0.02, log: true}, batch_size: {choices: [32, 64]}}`
or `dropout: {fixed: 0.2}` to take it out of the search.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tasks.frozen import Frozen


class ParamSpec(Frozen):
    """One searched parameter: a range (`low`/`high`, `log` for a log scale, `step` for a grid), a list
    of `choices`, or a `fixed` value (not searched)."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    fixed: Any = None

    @model_validator(mode="after")
    def _one_kind(self) -> ParamSpec:
        kinds = [self.low is not None or self.high is not None, self.choices is not None, self.fixed is not None]
        if sum(kinds) != 1:
            raise ValueError("a search parameter is a range (low and high), a list of choices, or a fixed value")
        if kinds[0]:
            if self.low is None or self.high is None:
                raise ValueError("a range needs both low and high")
            if self.low > self.high:
                raise ValueError(f"low {self.low} is above high {self.high}")
            if self.log and self.low <= 0:
                raise ValueError("a log-scale range needs low > 0")
        if self.choices is not None and not self.choices:
            raise ValueError("choices is empty")
        return self


class TuneSettings(Frozen):
    enabled: bool = Field(False, description="search hyper-parameters before training (pmf run --tune)")
    trials: int = Field(20, ge=1, description="trials asked for")
    minutes: float = Field(30.0, gt=0, description="time budget: no new batch of trials starts after it")
    metric: str | None = Field(None, description="validation-split metric to optimise (default: the primary metric)")
    sampler: Literal["tpe", "random"] = "tpe"
    pruning: bool = Field(True, description="stop a trial whose per-epoch validation metric trails the median")
    warmup_epochs: int = Field(3, ge=0, description="epochs every trial runs before it may be pruned")
    parallelism: int = Field(
        2,
        ge=1,
        description="trials asked for at once (a batch; the same whatever the workers, so a seed reproduces the search);"
        " two batches are in flight, so a worker that frees finds a queued trial",
    )
    epochs: int | None = Field(None, ge=1, description="epochs per trial (default: train.epochs)")
    seed: int = 42
    space: dict[str, ParamSpec] = Field(default_factory=dict, description="overrides of the default search space")
    distillation: bool = Field(True, description="also search the distilled student's temperature, loss weight and width")
    distillation_trials: int = Field(6, ge=1, description="trials of the student search")
