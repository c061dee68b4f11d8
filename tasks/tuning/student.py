"""The distilled student's search: temperature, loss weight (alpha) and width, scored on the validation split.

Today's defaults (T=4, alpha=0.5, half width) left the distilled digits student behind the same student
trained on labels alone; the search picks the values that make distillation earn its place on data the
test split never sees. The scratch control is then trained at the chosen width, so the comparison stays fair.
"""

from __future__ import annotations

import time
from typing import Any

from tasks.compression.common import CompressionData, Task
from tasks.compression.settings import DistillationSettings
from tasks.tuning.settings import ParamSpec
from tasks.tuning.trial import TrialData, TrialOutcome, bootstrap_spread, validation_score

STUDENT_SPACE: dict[str, ParamSpec] = {
    "temperature": ParamSpec(low=1.0, high=10.0, log=True),
    "alpha": ParamSpec(low=0.05, high=0.9),
    "width_factor": ParamSpec(choices=(0.25, 0.5, 0.75)),
}


def student_settings(base: DistillationSettings, params: dict[str, Any]) -> DistillationSettings:
    return base.model_copy(update={k: v for k, v in params.items() if k in DistillationSettings.model_fields})


def run_student_trial(
    number: int,
    params: dict[str, Any],
    teacher: Any,
    build_student: Any,
    arrays: CompressionData,
    scoring: TrialData,
    task: Task,
    base: DistillationSettings,
    metric: str,
    seed: int,
) -> TrialOutcome:
    """Distil one student with `params` and score it on the validation split (never raises)."""
    from tasks.compression.distill import train_student
    from tasks.compression.measure import keras_predict

    started = time.perf_counter()
    try:
        trained = train_student(teacher, build_student, arrays, task, student_settings(base, params), seed, distil=True)
        outputs = keras_predict(trained.model, arrays.x_val)
        value = validation_score(scoring, metric, outputs)
        outcome = TrialOutcome(number, dict(params), "completed", value, [value], epochs_run=trained.best_epoch + 1)
        outcome.spread = bootstrap_spread(scoring, metric, outputs)
    except Exception as exc:  # noqa: BLE001  (recorded; the search goes on)
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        outcome = TrialOutcome(number, dict(params), "failed", reason=f"{type(exc).__name__}: {first_line}")
    outcome.seconds = time.perf_counter() - started
    return outcome
