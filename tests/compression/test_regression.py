"""Regression: int8 and distillation on a standardized target, gated with a relative r2 budget."""

import numpy as np
import pytest

from tasks.compression.common import CompressionData
from tasks.compression.gate import compression_gate
from tasks.compression.measure import TfliteRunner, keras_predict
from tasks.compression.settings import CompressionSettings
from tasks.compression.variants import build_and_measure
from tasks.model.builders import build_mlp
from tasks.model.tf_env import import_keras

pytestmark = [pytest.mark.component, pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")]
SETTINGS = CompressionSettings(
    variants=("float32", "int8", "distilled_int8", "student_scratch_int8"),
    distillation={"epochs": 15},
    latency={"warmup": 10, "repeats": 50},
)


def make_data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    target = x[:, 0] * 2 + np.sin(x[:, 1] * 2) + 0.5 * x[:, 2] * x[:, 3] + rng.normal(scale=0.1, size=600)
    y = ((target - target.mean()) / target.std()).astype(np.float32)
    return CompressionData(x[:360], y[:360], x[360:480], y[360:480], x[480:], y[480:])


def scorer(y_test):
    def score(predictions):
        error = predictions.reshape(-1) - y_test
        return {
            "mse": float(np.mean(error**2)),
            "mae": float(np.mean(np.abs(error))),
            "r2": float(1 - np.sum(error**2) / np.sum((y_test - y_test.mean()) ** 2)),
        }

    return score


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    keras = import_keras()
    keras.utils.set_random_seed(1)
    data = make_data()
    teacher = build_mlp(8, 1, (64, 32), 0.0, "regression")
    teacher.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    teacher.fit(data.x_train, data.y_train, epochs=40, batch_size=32, verbose=0)

    def student(width):
        return build_mlp(8, 1, (int(64 * width), int(32 * width)), 0.0, "regression")

    workdir = tmp_path_factory.mktemp("regression")
    reports = {
        v: build_and_measure(v, teacher, data, "regression", scorer(data.y_test), SETTINGS, workdir, student)
        for v in ("keras", *SETTINGS.variants)
    }
    return teacher, data, reports


def test_regression_variants_build_and_track_the_teacher(built):
    teacher, data, reports = built
    assert all(r.error is None for r in reports.values()), {n: r.error for n, r in reports.items()}
    assert reports["float32"].metrics["r2"] > 0.8
    assert reports["float32"].metrics["r2"] - reports["int8"].metrics["r2"] < 0.05
    int8 = TfliteRunner(reports["int8"].path)
    assert int8.output["dtype"] == np.int8
    outputs = int8.predict(data.x_test)
    assert outputs.shape == (len(data.x_test), 1)
    error = np.abs(outputs - keras_predict(teacher, data.x_test))
    # Typical rows are close; a row beyond the calibrated output range saturates, so no max bound.
    assert 0 < np.median(error) < 0.05


def test_regression_students_learn(built):
    _, _, reports = built
    assert reports["distilled_int8"].metrics["r2"] > 0.6
    assert reports["student_scratch_int8"].metrics["r2"] > 0.6


def test_r2_is_gated_with_a_relative_budget(built):
    _, _, reports = built
    gated = {r.variant: r for r in compression_gate(reports.values(), SETTINGS, "r2", higher_is_better=True)}
    assert gated["int8"].reasons[0].startswith("r2 relative drop")
    mse_gated = {r.variant: r for r in compression_gate(reports.values(), SETTINGS, "mse", higher_is_better=False)}
    assert mse_gated["int8"].reasons[0].startswith("mse relative drop")
