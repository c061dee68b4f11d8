"""What the compression techniques share: the preprocessed splits, cloning the teacher, fine-tuning.

Kept apart from `variants` (which dispatches to prune, qat and distill) so that none of those
imports `variants` back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks.model.builders import Task

__all__ = [
    "CompressionData",
    "Task",
    "clone_teacher",
    "epoch_shuffled",
    "fine_tune",
    "fine_tune_steps",
    "representative_sample",
    "task_loss",
]


@dataclass(frozen=True)
class CompressionData:
    """The preprocessed splits: float32 features; y = class index (int) or standardized target."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def representative_sample(x_train: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """`rows` training rows drawn without replacement by a seeded generator (int8 calibration)."""
    rng = np.random.default_rng(seed)
    index = rng.choice(len(x_train), size=min(rows, len(x_train)), replace=False)
    return x_train[np.sort(index)].astype(np.float32)


def clone_teacher(teacher: Any) -> Any:
    """A fresh copy of the teacher with the same weights; fine-tune this, never the teacher."""
    from tasks.model.tf_env import import_keras

    keras = import_keras()
    clone = keras.models.clone_model(teacher)
    clone.set_weights(teacher.get_weights())
    return clone


def task_loss(task: Task) -> str:
    """The label loss for a model whose classification head outputs softmax probabilities."""
    return "sparse_categorical_crossentropy" if task == "classification" else "mse"


def epoch_shuffled(x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`epochs` seeded permutations of (x, y) back to back, so one `fit(shuffle=False)` call
    trains every epoch with a known step count and no TensorFlow randomness in the order."""
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(x)) for _ in range(epochs)])
    return x[order], y[order]


def fine_tune_steps(rows: int, epochs: int, batch_size: int) -> int:
    """Optimizer steps that `fine_tune` will take."""
    return math.ceil(rows * epochs / batch_size)


def fine_tune(
    model: Any,
    data: CompressionData,
    task: Task,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    callbacks: list[Any] | None = None,
) -> Any:
    """Compile `model` with Adam and the task loss, and train it `epochs` passes over the training rows."""
    from tasks.model.tf_env import import_keras

    keras = import_keras()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=task_loss(task))
    x, y = epoch_shuffled(data.x_train, data.y_train, epochs, seed)
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0, callbacks=callbacks or [])
    return model
