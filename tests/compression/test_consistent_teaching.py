"""Distilling a CNN teacher that trained on shifted images: both students see shifted images, and the
teacher labels the very images the distilled student sees (what makes distillation worth more than labels)."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.compression.common import CompressionData
from tasks.compression.distill import shifted_images, train_student
from tasks.compression.settings import DistillationSettings
from tasks.compression.student import student_builder
from tasks.config import TrainConfig

pytestmark = pytest.mark.component


def one_pixel(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """3x3 images, flattened, each with one lit pixel at (row, col)."""
    x = np.zeros((len(rows), 3, 3, 1), dtype=np.float32)
    x[np.arange(len(rows)), rows, cols, 0] = 1.0
    return x.reshape(len(rows), 9)


def test_each_image_moves_by_at_most_one_pixel_per_axis_with_zeros_shifted_in():
    x = one_pixel(np.ones(2000, dtype=int), np.ones(2000, dtype=int))  # the centre pixel
    moved = shifted_images(x, (3, 3, 1), np.random.default_rng(0))
    assert moved.shape == x.shape
    assert moved.dtype == np.float32
    assert np.all(moved.sum(axis=1) == 1.0)  # a centre pixel never leaves a 3x3 image
    positions = np.argmax(moved, axis=1)
    assert set(positions.tolist()) == set(range(9))  # every one of the nine moves happens
    corner = shifted_images(one_pixel(np.zeros(500, dtype=int), np.zeros(500, dtype=int)), (3, 3, 1), np.random.default_rng(1))
    assert 0 < (corner.sum(axis=1) == 0).sum() < 500  # moved out of the picture sometimes, replaced by zeros
    again = shifted_images(x, (3, 3, 1), np.random.default_rng(0))
    assert np.array_equal(again, moved)


def test_only_a_cnn_teacher_that_trained_on_shifted_images_shifts_the_students():
    cnn = TrainConfig(model="cnn", image_shape=(8, 8, 1), augment=True)
    assert student_builder(cnn, 64, 10, "classification").image_shape == (8, 8, 1)
    assert student_builder(cnn.model_copy(update={"augment": False}), 64, 10, "classification").image_shape is None
    assert student_builder(TrainConfig(), 8, 3, "classification").image_shape is None


class ColumnStudents:
    """A small MLP student for 3x3 images that trained teachers shifted."""

    image_shape = (3, 3, 1)

    def __call__(self, width_factor: float):
        from tasks.model.builders import build_mlp

        return build_mlp(9, 3, (max(2, int(32 * width_factor)),), 0.0, "classification")


def column_teacher():
    """Knows what the labels never show: the class is the column of the lit pixel."""
    from tasks.model.tf_env import import_keras

    keras = import_keras()
    teacher = keras.Sequential([keras.layers.Input((9,)), keras.layers.Dense(3, activation="softmax")])
    kernel = np.zeros((9, 3), dtype=np.float32)
    kernel[np.arange(9), np.arange(9) % 3] = 8.0
    teacher.set_weights([kernel, np.zeros(3, dtype=np.float32)])
    return teacher


def test_the_teacher_labels_the_shifted_images_the_distilled_student_sees():
    """Every training image has its pixel in the middle column (label 1). Shifted, some land in the outer
    columns: only the teacher can say those are class 0 and 2, so only the distilled student learns it."""
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 3, size=240)
    x = one_pixel(rows, np.ones(240, dtype=int))
    y = np.ones(240, dtype=np.int64)
    data = CompressionData(x[:180], y[:180], x[180:], y[180:], x[180:], y[180:])
    settings = DistillationSettings(epochs=25, alpha=0.1, temperature=1.0, learning_rate=0.02, width_factor=1.0)
    probe_rows = np.array([0, 1, 2, 0, 1, 2])
    probe = one_pixel(probe_rows, np.array([0, 0, 0, 2, 2, 2]))
    expected = np.array([0, 0, 0, 2, 2, 2])

    def accuracy(distil: bool, augment: bool = True) -> float:
        trained = train_student(
            column_teacher(),
            ColumnStudents(),
            data,
            "classification",
            settings.model_copy(update={"augment": augment}),
            0,
            distil,
        )
        return float(np.mean(trained.model.predict(probe, verbose=0).argmax(axis=1) == expected))

    assert accuracy(distil=True) == 1.0
    assert accuracy(distil=False) == 0.0  # labels alone say "1" for every shifted image
    assert accuracy(distil=True, augment=False) == 0.0  # the teacher asked about unshifted images only
