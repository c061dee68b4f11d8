"""One trial: train the model a trial's values describe, score it on the validation split every epoch, stop
it early when it trails the trials finished before it, and never raise (a failure is an outcome).

Runs wherever the trial is sent (a thread here, a process on a Dask worker elsewhere): it takes only
numpy arrays and plain values, touches no tracking store, and writes only to its own temporary folder.
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tasks.config import TrainConfig
from tasks.workspace import pmf_home

TrialState = Literal["completed", "pruned", "failed"]


@dataclass(frozen=True)
class TrialData:
    """The splits a trial trains and scores on: the test split never comes here."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    task: Literal["classification", "regression"]
    n_outputs: int
    target_mean: float = 0.0  # regression: predictions are scored in the target's own units
    target_std: float = 1.0


@dataclass(frozen=True)
class PruneRule:
    """Median stopping: after `warmup` epochs, a trial whose validation metric at epoch e is worse than the
    median of the earlier trials' at epoch e stops. Only trials finished before this one's batch count,
    so the decision does not depend on which worker finished first."""

    curves: tuple[tuple[float, ...], ...] = ()
    warmup: int = 3
    higher_is_better: bool = True
    min_trials: int = 2

    def should_stop(self, epoch: int, value: float) -> bool:
        if epoch <= self.warmup:
            return False
        peers = [c[epoch - 1] for c in self.curves if len(c) >= epoch and math.isfinite(c[epoch - 1])]
        if len(peers) < self.min_trials:
            return False
        median = float(np.median(peers))
        return value < median if self.higher_is_better else value > median


@dataclass
class TrialOutcome:
    number: int
    params: dict[str, Any]
    state: TrialState
    value: float | None = None
    curve: list[float] = field(default_factory=list)  # the validation metric after each epoch
    losses: list[float] = field(default_factory=list)
    epochs_run: int = 0
    seconds: float = 0.0
    reason: str | None = None  # why it was pruned or failed
    worker: str = ""
    spread: float | None = None  # the standard error of `value` over the validation rows (bootstrap)

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "state": self.state,
            "value": self.value,
            "params": self.params,
            "epochs_run": self.epochs_run,
            "seconds": round(self.seconds, 3),
            "reason": self.reason,
            "worker": self.worker,
            "spread": None if self.spread is None else round(self.spread, 6),
        }


def validation_score(data: TrialData, metric: str, outputs: np.ndarray, rows: np.ndarray | None = None) -> float:
    """`metric` of `outputs` on the validation split (on its `rows` only, when given)."""
    from tasks.model.evaluate import task_metrics

    y, out = (data.y_val, outputs) if rows is None else (np.asarray(data.y_val)[rows], np.asarray(outputs)[rows])
    if data.task == "classification":
        return task_metrics("classification", y, out)[metric]
    decode = np.asarray(out, dtype=np.float64).reshape(-1) * data.target_std + data.target_mean
    truth = np.asarray(y, dtype=np.float64).reshape(-1) * data.target_std + data.target_mean
    return task_metrics("regression", truth, decode)[metric]


def bootstrap_spread(data: TrialData, metric: str, outputs: np.ndarray, resamples: int = 200, most_rows: int = 20_000) -> float:
    """The standard error of the validation metric: its spread over `resamples` seeded bootstrap draws of
    the validation rows, all computed at once from each draw's row counts (a large split is drawn with
    `most_rows` rows and the spread scaled by sqrt(m / n)). ROC AUC, which has no such form, takes 30 draws."""
    n = len(data.y_val)
    m = min(n, most_rows)
    if n < 2:
        return math.nan
    rng = np.random.default_rng(0)
    if metric == "roc_auc":
        values = np.asarray([validation_score(data, metric, outputs, rng.integers(0, n, size=m)) for _ in range(30)])
    else:
        draws = rng.integers(0, n, size=(resamples, m))
        counts = np.bincount((draws + n * np.arange(resamples)[:, None]).ravel(), minlength=resamples * n)
        values = _weighted_metric(data, metric, outputs, counts.reshape(resamples, n).astype(np.float64), m)
    finite = values[np.isfinite(values)]
    return float(np.std(finite, ddof=1) * math.sqrt(m / n)) if len(finite) > 1 else math.nan


def _weighted_metric(data: TrialData, metric: str, outputs: np.ndarray, weights: np.ndarray, m: int) -> np.ndarray:
    """`metric` under each row of `weights` (how often each validation row was drawn), as the evaluation computes it."""
    if data.task == "classification":
        truth = np.asarray(data.y_val).reshape(-1)
        predicted = np.asarray(outputs).argmax(axis=1)
        if metric == "accuracy":
            return weights @ (predicted == truth).astype(np.float64) / m
        classes = np.arange(np.asarray(outputs).shape[1])
        hit = weights @ ((predicted[:, None] == classes) & (truth[:, None] == classes)).astype(np.float64)
        said = weights @ (predicted[:, None] == classes).astype(np.float64)
        real = weights @ (truth[:, None] == classes).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_class = {
                "precision_macro": np.where(said > 0, hit / said, 0.0),
                "recall_macro": np.where(real > 0, hit / real, 0.0),
                "f1_macro": np.where(said + real > 0, 2 * hit / (said + real), 0.0),
            }[metric]
        return np.asarray(per_class.mean(axis=1))
    truth = np.asarray(data.y_val, dtype=np.float64).reshape(-1) * data.target_std + data.target_mean
    predicted = np.asarray(outputs, dtype=np.float64).reshape(-1) * data.target_std + data.target_mean
    residual = truth - predicted
    if metric == "mae":
        return weights @ np.abs(residual) / m
    squared = weights @ residual**2
    if metric == "mse":
        return squared / m
    spread = weights @ truth**2 - (weights @ truth) ** 2 / m
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 0, 1 - squared / spread, np.nan)


def run_trial(
    number: int,
    params: dict[str, Any],
    cfg: TrainConfig,
    data: TrialData,
    metric: str,
    prune: PruneRule | None = None,
) -> TrialOutcome:
    """Train `cfg` (a trial's values already applied) and score it; `prune` None never stops it early."""
    from tasks.model.tf_env import import_keras
    from tasks.model.train import train_model

    started = time.perf_counter()
    outcome = TrialOutcome(number, dict(params), "completed", worker=f"{socket.gethostname()}:{os.getpid()}")
    keras = import_keras()

    class Watch(keras.callbacks.Callback):  # type: ignore[name-defined]
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            loss = float((logs or {}).get("loss", float("nan")))
            outcome.losses.append(loss)
            if not math.isfinite(loss):
                outcome.state, outcome.reason = "failed", f"diverged: the training loss is {loss} at epoch {epoch + 1}"
                self.model.stop_training = True
                return
            value = validation_score(data, metric, self.model.predict(data.x_val, verbose=0, batch_size=1024))
            outcome.curve.append(value)
            if prune is not None and prune.should_stop(epoch + 1, value):
                outcome.state = "pruned"
                outcome.reason = (
                    f"pruned at epoch {epoch + 1}: validation {metric} {value:.4f} trails the median of earlier trials"
                )
                self.model.stop_training = True

    try:
        scratch = pmf_home() / "tmp"  # the workspace's own scratch (a Dask worker's PMF_HOME on another machine)
        scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"pmf-trial-{number}-", dir=scratch) as folder:
            result = train_model(
                data.x_train,
                data.y_train,
                data.x_val,
                data.y_val,
                data.task,
                data.n_outputs,
                cfg,
                Path(folder) / "checkpoint",
                extra_callbacks=(Watch(),),
            )
            outcome.epochs_run = result.epochs_run
            if outcome.state == "completed":
                outputs = result.model.predict(data.x_val, verbose=0, batch_size=1024)
                value = validation_score(data, metric, outputs)
                if not math.isfinite(value):
                    outcome.state, outcome.reason = "failed", f"diverged: validation {metric} is {value}"
                else:
                    outcome.value = value
                    outcome.spread = bootstrap_spread(data, metric, outputs)
    except Exception as exc:  # noqa: BLE001  (a trial that raises is recorded; the search goes on)
        outcome.state = "failed"
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        outcome.reason = f"{type(exc).__name__}: {first_line}"
    if outcome.state == "pruned" and outcome.curve:
        outcome.value = outcome.curve[-1]
    outcome.seconds = time.perf_counter() - started
    return outcome


def adopted(leader: TrialOutcome | None, configured: TrialOutcome | None, higher_is_better: bool) -> TrialOutcome | None:
    """The one-standard-error rule: the leading trial replaces the configured model only when it leads by more
    than the leader's standard error on the validation split; a smaller lead is noise, and the configured
    model is kept."""
    if leader is None or configured is None or leader is configured or configured.state != "completed":
        return leader
    if leader.value is None or configured.value is None or leader.spread is None or not math.isfinite(leader.spread):
        return leader
    lead = (leader.value - configured.value) if higher_is_better else (configured.value - leader.value)
    return leader if lead > leader.spread else configured


def best_of(outcomes: Sequence[TrialOutcome], higher_is_better: bool) -> TrialOutcome | None:
    """The completed trial with the best value (the lowest number among equals), or None."""
    done = [o for o in outcomes if o.state == "completed" and o.value is not None]
    if not done:
        return None
    return min(done, key=lambda o: ((-o.value if higher_is_better else o.value), o.number))  # type: ignore[operator]
