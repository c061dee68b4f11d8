"""Magnitude pruning: prune a clone of the teacher to a target sparsity while fine-tuning it.

The PolynomialDecay schedule is derived from the real number of fine-tuning steps: mask updates
every `frequency` steps, the target reached at `end_step` (a multiple of the frequency, so the
last update lands on it) after `ramp_fraction` of the steps, the rest recovering accuracy. The
returned model is stripped (no wrappers, plain zeros in the kernels): only a stripped model
shrinks once gzipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tasks.compression.common import CompressionData, Task, clone_teacher, fine_tune, fine_tune_steps
from tasks.compression.settings import PruningSettings


@dataclass(frozen=True)
class PruningSchedule:
    begin_step: int
    end_step: int
    frequency: int
    total_steps: int


@dataclass(frozen=True)
class PrunedModel:
    """A stripped pruned model and what pruning achieved (`sparsity` is measured, not assumed)."""

    model: Any
    sparsity: float
    target_sparsity: float
    schedule: PruningSchedule

    def summary(self) -> dict[str, Any]:
        return {"sparsity": round(self.sparsity, 4), "target_sparsity": self.target_sparsity, **asdict(self.schedule)}


def pruning_schedule(total_steps: int, settings: PruningSettings) -> PruningSchedule:
    """Begin, end and frequency of mask updates for a fine-tuning run of `total_steps` steps."""
    if settings.begin_step >= total_steps - 1:
        raise ValueError(f"pruning.begin_step {settings.begin_step} leaves no room in {total_steps} fine-tuning steps")
    ramp = max(1, int((total_steps - settings.begin_step) * settings.ramp_fraction))
    frequency = max(1, ramp // settings.updates)
    end_step = min(settings.begin_step + frequency * (ramp // frequency), total_steps - 1)
    return PruningSchedule(settings.begin_step, end_step, frequency, total_steps)


def kernel_sparsity(model: Any) -> float:
    """Fraction of exact zeros over the model's kernels (weights with 2+ dimensions; biases excluded)."""
    kernels = [w for w in model.get_weights() if w.ndim >= 2]
    return float(sum(int(np.sum(w == 0)) for w in kernels) / max(1, sum(w.size for w in kernels)))


def prune_and_fine_tune(
    teacher: Any, data: CompressionData, task: Task, settings: PruningSettings, seed: int, strip: bool = True
) -> PrunedModel:
    """Prune a clone of `teacher` to `settings.sparsity_for(params)` while fine-tuning it.

    `strip=False` keeps the pruning wrappers (masks and thresholds as extra variables); it exists
    to show that an unstripped model does not shrink, use the default otherwise.
    """
    import tensorflow_model_optimization as tfmot

    target = settings.sparsity_for(teacher.count_params())
    schedule = pruning_schedule(fine_tune_steps(len(data.x_train), settings.epochs, settings.batch_size), settings)
    polynomial = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=target,
        begin_step=schedule.begin_step,
        end_step=schedule.end_step,
        frequency=schedule.frequency,
    )
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(clone_teacher(teacher), pruning_schedule=polynomial)
    fine_tune(
        wrapped,
        data,
        task,
        settings.epochs,
        settings.batch_size,
        settings.learning_rate,
        seed,
        [tfmot.sparsity.keras.UpdatePruningStep()],
    )
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    return PrunedModel(stripped if strip else wrapped, kernel_sparsity(stripped), target, schedule)
