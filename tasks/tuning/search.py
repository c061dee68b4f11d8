"""The search: Optuna's ask/tell, trials asked for in batches of `parallelism` and evaluated by whatever
`evaluate` the caller passes (Prefect tasks on Dask in the flow, a plain loop in a test).

Reproducible from the seed: the sampler is seeded, a batch is always `parallelism` trials whatever the
number of workers, and the pruning rule a trial gets holds only the trials of earlier batches. With a
storage URL (the team's PostgreSQL) the study outlives the process: a search interrupted half-way is
resumed by the next run of the same data and config (its finished trials are kept, the rest are asked).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tasks.tuning.settings import ParamSpec, TuneSettings
from tasks.tuning.space import suggest
from tasks.tuning.trial import PruneRule, TrialOutcome, best_of

Asked = tuple[int, dict[str, Any], PruneRule | None]
Evaluate = Callable[[Sequence[Asked]], list[TrialOutcome]]


@dataclass
class SearchResult:
    metric: str
    higher_is_better: bool
    outcomes: list[TrialOutcome]
    seconds: float
    asked: int
    resumed: int = 0  # trials a stored study already had
    out_of_time: bool = False
    best: TrialOutcome | None = field(init=False)

    def __post_init__(self) -> None:
        self.best = best_of(self.outcomes, self.higher_is_better)

    def count(self, state: str) -> int:
        return sum(o.state == state for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        """The `tuning` object of `--json` (DECISIONS.md: trials is the count asked for)."""
        return {
            "trials": self.asked,
            "completed": self.count("completed"),
            "pruned": self.count("pruned"),
            "failed": self.count("failed"),
            "metric": self.metric,
            "best": None
            if self.best is None
            else {"trial": self.best.number, "params": self.best.params, "value": self.best.value},
            "seconds": round(self.seconds, 3),
            "minutes_budget_reached": self.out_of_time,
            "resumed": self.resumed,
            "top": [o.to_json() for o in self.ranked()[:5]],
        }

    def ranked(self) -> list[TrialOutcome]:
        """Best first: completed by value, then pruned, then failed."""
        order = {"completed": 0, "pruned": 1, "failed": 2}

        def key(o: TrialOutcome) -> tuple[int, float, int]:
            value = o.value if o.value is not None and math.isfinite(o.value) else math.inf
            return order[o.state], (-value if self.higher_is_better and value != math.inf else value), o.number

        return sorted(self.outcomes, key=key)


class SearchFailed(Exception):
    """Every trial failed: the message lists the reasons."""


def make_study(settings: TuneSettings, direction: Literal["minimize", "maximize"], storage: str | None, study_name: str) -> Any:
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    sampler = (
        optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=min(settings.parallelism * 2, settings.trials))
        if settings.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=settings.seed)
    )
    return optuna.create_study(
        study_name=study_name, storage=storage, sampler=sampler, direction=direction, load_if_exists=storage is not None
    )


def stored_outcomes(study: Any) -> list[TrialOutcome]:
    """The finished trials a stored study already holds (a resumed search), as outcomes."""
    from optuna.trial import TrialState

    states = {TrialState.COMPLETE: "completed", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}
    kept = []
    for t in study.get_trials(deepcopy=False):
        if t.state in states:
            curve = [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
            kept.append(
                TrialOutcome(
                    t.number,
                    dict(t.params),
                    states[t.state],  # type: ignore[arg-type]
                    t.value,
                    curve,
                    epochs_run=len(curve),
                    reason=t.user_attrs.get("reason"),
                    worker=t.user_attrs.get("worker", ""),
                    seconds=float(t.user_attrs.get("seconds", 0.0)),
                )
            )
    return kept


def run_search(
    settings: TuneSettings,
    space: Mapping[str, ParamSpec],
    metric: str,
    higher_is_better: bool,
    evaluate: Evaluate,
    storage: str | None = None,
    study_name: str = "pmf",
    clock: Callable[[], float] = time.monotonic,
    first: Mapping[str, Any] | None = None,
) -> SearchResult:
    """Ask, evaluate and tell until `settings.trials` trials are done or `settings.minutes` are spent
    (a batch started before the budget ran out finishes). `first`: values the first trial takes (the
    configured model), the rest sampled. Raises SearchFailed when every trial failed."""
    from optuna.trial import TrialState

    study = make_study(settings, "maximize" if higher_is_better else "minimize", storage, study_name)
    outcomes = stored_outcomes(study)  # a resumed study's finished trials count; interrupted ones do not
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(stale.number, state=TrialState.FAIL)  # left running by an interrupted search
    if first and not study.get_trials(deepcopy=False):
        study.enqueue_trial(dict(first))
    resumed = len(outcomes)
    started = clock()
    out_of_time = False
    while len(outcomes) < settings.trials:
        if clock() - started > settings.minutes * 60:
            out_of_time = True
            break
        rule = prune_rule(settings, outcomes, higher_is_better)
        size = min(settings.parallelism, settings.trials - len(outcomes))
        trials = [study.ask() for _ in range(size)]
        asked = [(t.number, suggest(t, space), rule) for t in trials]
        results = {o.number: o for o in evaluate(asked)}
        for trial, (number, params, _) in zip(trials, asked, strict=True):
            outcome = results.get(number) or TrialOutcome(number, params, "failed", reason="the trial returned nothing")
            tell(study, trial, outcome)
            outcomes.append(outcome)
    result = SearchResult(metric, higher_is_better, outcomes, clock() - started, len(outcomes), resumed, out_of_time)
    if outcomes and result.count("failed") == len(outcomes):
        reasons = "; ".join(f"trial {o.number}: {o.reason}" for o in outcomes[:5])
        raise SearchFailed(f"every one of the {len(outcomes)} trials failed: {reasons}")
    return result


def prune_rule(settings: TuneSettings, done: Sequence[TrialOutcome], higher_is_better: bool) -> PruneRule | None:
    if not settings.pruning:
        return None
    curves = tuple(tuple(o.curve) for o in done if o.state == "completed")
    return PruneRule(curves, settings.warmup_epochs, higher_is_better)


def tell(study: Any, trial: Any, outcome: TrialOutcome) -> None:
    from optuna.trial import TrialState

    for step, point in enumerate(outcome.curve, start=1):
        if math.isfinite(point):
            trial.report(point, step)
    for key, value in {"reason": outcome.reason, "worker": outcome.worker, "seconds": round(outcome.seconds, 3)}.items():
        if value is not None:
            trial.set_user_attr(key, value)
    if outcome.state == "completed":
        study.tell(trial, outcome.value)
    elif outcome.state == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)
