"""The student of distillation: the teacher's architecture with every width scaled down."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tasks.config import TrainConfig
from tasks.model.builders import Task

StudentBuilder = Callable[[float], Any]


def scaled_widths(units: tuple[int, ...], width_factor: float) -> tuple[int, ...]:
    """Every layer width times `width_factor`, at least 2 units each."""
    return tuple(max(2, round(u * width_factor)) for u in units)


@dataclass(frozen=True)
class Students:
    """`Students(cfg, ...)(width_factor)` -> an uncompiled tf_keras model shaped like the teacher `cfg` builds.

    `image_shape` is set when the teacher trained on shifted images (a CNN with `train.augment`): the
    student then sees shifted images too, and the teacher labels the very images the student sees."""

    cfg: TrainConfig
    input_dim: int
    n_outputs: int
    task: Task

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        shape = self.cfg.image_shape
        return tuple(shape) if self.cfg.model == "cnn" and self.cfg.augment and shape else None  # type: ignore[return-value]

    def __call__(self, width_factor: float) -> Any:
        from tasks.model.train import build_model

        small = self.cfg.model_copy(
            update={
                "hidden_units": scaled_widths(self.cfg.hidden_units, width_factor),
                "conv_filters": scaled_widths(self.cfg.conv_filters, width_factor),
            }
        )
        return build_model(small, self.input_dim, self.n_outputs, self.task)


def student_builder(cfg: TrainConfig, input_dim: int, n_outputs: int, task: Task) -> Students:
    """A function `width_factor -> uncompiled tf_keras model` shaped like the teacher `cfg` builds."""
    return Students(cfg, input_dim, n_outputs, task)
