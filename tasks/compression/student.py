"""The student of distillation: the teacher's architecture with every width scaled down."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasks.config import TrainConfig
from tasks.model.builders import Task

StudentBuilder = Callable[[float], Any]


def scaled_widths(units: tuple[int, ...], width_factor: float) -> tuple[int, ...]:
    """Every layer width times `width_factor`, at least 2 units each."""
    return tuple(max(2, round(u * width_factor)) for u in units)


def student_builder(cfg: TrainConfig, input_dim: int, n_outputs: int, task: Task) -> StudentBuilder:
    """A function `width_factor -> uncompiled tf_keras model` shaped like the teacher `cfg` builds."""
    from tasks.model.train import build_model

    def build(width_factor: float) -> Any:
        small = cfg.model_copy(
            update={
                "hidden_units": scaled_widths(cfg.hidden_units, width_factor),
                "conv_filters": scaled_widths(cfg.conv_filters, width_factor),
            }
        )
        return build_model(small, input_dim, n_outputs, task)

    return build
