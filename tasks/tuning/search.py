"""The search: Optuna's ask/tell in batches of `parallelism` trials, two batches in flight, each trial
started by whatever `submit` the caller passes (a Prefect task on Dask in the flow, a plain function in a test).

Reproducible from the seed: the sampler is seeded, a batch is always `parallelism` trials whatever the
number of workers, and batch b knows batches 0 … b - 2 only (also its pruning rule). With a
storage URL (the team's PostgreSQL) the study outlives the process: a search interrupted half-way is
resumed by the next run of the same data and config (its finished trials are kept, the rest are asked).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tasks.tuning.settings import ParamSpec, TuneSettings
from tasks.tuning.space import suggest
from tasks.tuning.trial import PruneRule, TrialOutcome, adopted, best_of

Asked = tuple[int, dict[str, Any], PruneRule | None]
Submit = Callable[[Asked], Any]  # returns the TrialOutcome, or a future of it
BATCHES_IN_FLIGHT = 2  # the next batch is queued while one runs: a worker that frees never waits for a batch's slowest


@dataclass
class SearchResult:
    metric: str
    higher_is_better: bool
    outcomes: list[TrialOutcome]
    seconds: float
    asked: int
    resumed: int = 0  # trials a stored study already had
    out_of_time: bool = False
    configured: int | None = None  # the trial that took the configured values
    best: TrialOutcome | None = field(init=False)  # what trains the final model
    leader: TrialOutcome | None = field(init=False)  # the best validation value

    def __post_init__(self) -> None:
        self.leader = best_of(self.outcomes, self.higher_is_better)
        baseline = next((o for o in self.outcomes if o.number == self.configured), None)
        self.best = adopted(self.leader, baseline, self.higher_is_better)

    @property
    def kept_configured(self) -> bool:
        """The leader's lead over the configured trial was within its standard error: the configured values stay."""
        return self.best is not None and self.leader is not None and self.best is not self.leader

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
            else {"trial": self.best.number, "params": self.best.params, "value": self.best.value, "spread": self.best.spread},
            "kept_configured": self.kept_configured,
            "leader": None
            if self.leader is None
            else {"trial": self.leader.number, "value": self.leader.value, "spread": self.leader.spread},
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
                    spread=t.user_attrs.get("spread"),
                )
            )
    return kept


def run_search(
    settings: TuneSettings,
    space: Mapping[str, ParamSpec],
    metric: str,
    higher_is_better: bool,
    submit: Submit,
    storage: str | None = None,
    study_name: str = "pmf",
    clock: Callable[[], float] = time.monotonic,
    first: Mapping[str, Any] | None = None,
    on_outcome: Callable[[TrialOutcome], None] | None = None,
) -> SearchResult:
    """Ask, submit and tell until `settings.trials` trials are done or `settings.minutes` are spent (no
    batch starts after the budget; those in flight finish).

    Trials are asked for in batches of `settings.parallelism`, whatever the number of workers, and two
    batches are in flight: batch b is asked once batch b - 2 is complete and told, so it knows exactly
    batches 0 … b - 2 (its pruning rule too), and a seed reproduces the search. A batch's results are told
    together, in trial order, once its last trial is done. A worker that frees takes the next queued trial
    instead of waiting for the batch's slowest.

    `submit(asked)` starts a trial and returns its outcome or a future of it (`.result()`); a future that
    raises is a failed trial. `first`: values the first trial takes (the configured model), the rest are
    sampled. `on_outcome` sees each outcome as it is told (the flow records it while others run).
    Raises SearchFailed when every trial failed."""
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
    batches: deque[list[tuple[Any, Asked, Any]]] = deque()
    while True:
        while not out_of_time and len(batches) < BATCHES_IN_FLIGHT:
            size = min(settings.parallelism, settings.trials - len(outcomes) - sum(len(b) for b in batches))
            if size <= 0:
                break
            if clock() - started > settings.minutes * 60:
                out_of_time = True
                break
            rule = prune_rule(settings, outcomes, higher_is_better)
            trials = [study.ask() for _ in range(size)]
            asked = [(t.number, suggest(t, space), rule) for t in trials]
            batches.append([(t, a, submit(a)) for t, a in zip(trials, asked, strict=True)])
        if not batches:
            break
        done = [(trial, _outcome_of(pending, number, params)) for trial, (number, params, _), pending in batches.popleft()]
        for trial, outcome in done:
            tell(study, trial, outcome)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    configured = 0 if first else None  # enqueued into a fresh study: trial 0, also when the study is resumed
    result = SearchResult(metric, higher_is_better, outcomes, clock() - started, len(outcomes), resumed, out_of_time, configured)
    if outcomes and result.count("failed") == len(outcomes):
        reasons = "; ".join(f"trial {o.number}: {o.reason}" for o in outcomes[:5])
        raise SearchFailed(f"every one of the {len(outcomes)} trials failed: {reasons}")
    return result


def _outcome_of(pending: Any, number: int, params: dict[str, Any]) -> TrialOutcome:
    if isinstance(pending, TrialOutcome):
        return pending
    try:
        outcome = pending.result()
    except Exception as exc:  # noqa: BLE001  (the worker running it failed: a failed trial, the search goes on)
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        return TrialOutcome(number, params, "failed", reason=f"{type(exc).__name__}: {first_line}")
    if not isinstance(outcome, TrialOutcome):
        return TrialOutcome(number, params, "failed", reason="the trial returned nothing")
    return outcome


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
    attrs = {"reason": outcome.reason, "worker": outcome.worker, "seconds": round(outcome.seconds, 3), "spread": outcome.spread}
    for key, value in attrs.items():
        if value is not None:
            trial.set_user_attr(key, value)
    if outcome.state == "completed":
        study.tell(trial, outcome.value)
    elif outcome.state == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)
