"""Every variant built for real from a tiny tf_keras MLP and measured through LiteRT.

One module-scoped teacher and one sequential build of every variant keep the folder fast; tests
that need other builds (threads, failures) make their own.
"""

import gzip
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tasks.compression.common import CompressionData, clone_teacher
from tasks.compression.gate import compression_gate
from tasks.compression.measure import TfliteRunner, keras_predict, measure_tflite
from tasks.compression.settings import ALL_VARIANTS, CompressionSettings
from tasks.compression.variants import build_and_measure, build_only, convert_to_tflite, measure_built
from tasks.model.builders import build_mlp
from tasks.model.tf_env import import_keras

pytestmark = [pytest.mark.component, pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")]
HIDDEN = (64, 32)
SETTINGS = CompressionSettings(distillation={"epochs": 12}, latency={"warmup": 10, "repeats": 50})


def student_builder(width_factor):
    return build_mlp(8, 3, tuple(max(2, int(u * width_factor)) for u in HIDDEN), 0.0, "classification")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    y = ((x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] + 0.5 * x[:, 3] > 0.8)).astype(np.int64)
    return CompressionData(x[:360], y[:360], x[360:480], y[360:480], x[480:], y[480:])


@pytest.fixture(scope="module")
def score(data):
    return lambda probabilities: {"accuracy": float(np.mean(probabilities.argmax(axis=1) == data.y_test))}


@pytest.fixture(scope="module")
def teacher(data):
    keras = import_keras()
    keras.utils.set_random_seed(0)
    model = build_mlp(8, 3, HIDDEN, 0.0, "classification")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=30, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def reports(teacher, data, score, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sequential")
    before = [w.copy() for w in teacher.get_weights()]
    built = {
        v: build_and_measure(v, teacher, data, "classification", score, SETTINGS, workdir, student_builder)
        for v in ("keras", *ALL_VARIANTS)
    }
    assert all(np.array_equal(a, b) for a, b in zip(before, teacher.get_weights(), strict=False)), "a variant mutated the teacher"
    return built


def test_every_variant_builds_and_is_measured(reports):
    for name, r in reports.items():
        assert r.error is None, f"{name}: {r.error}"
        assert r.bytes > 0
        assert r.gzip_bytes > 0
        assert 0 < r.latency_ms_p50 <= r.latency_ms_p99
        assert r.throughput_rows_s > 0
        assert 0.5 < r.metrics["accuracy"] <= 1.0


def test_float32_tflite_matches_keras_and_int8_differs_slightly(reports, teacher, data):
    expected = keras_predict(teacher, data.x_test)
    float32 = TfliteRunner(reports["float32"].path).predict(data.x_test)
    int8 = TfliteRunner(reports["int8"].path).predict(data.x_test)
    np.testing.assert_allclose(float32, expected, atol=1e-5)
    assert 0 < np.max(np.abs(int8 - expected)) < 0.15, "int8 outputs must be dequantized interpreter outputs"
    assert abs(reports["int8"].metrics["accuracy"] - reports["float32"].metrics["accuracy"]) <= 0.05


def test_measurement_runs_the_file_it_is_given(reports, teacher, data, score, tmp_path):
    other = clone_teacher(teacher)
    other.set_weights([np.roll(w, 1, axis=-1) for w in other.get_weights()])  # scrambled output wiring
    path = tmp_path / "other.tflite"
    path.write_bytes(convert_to_tflite(other, "float32"))
    measured = measure_tflite("other", path, data.x_test, score, SETTINGS.latency)
    assert measured.metrics != reports["float32"].metrics


def test_int8_has_int8_input_output_and_weights(reports, teacher):
    interpreter = TfliteRunner(reports["int8"].path).interpreter
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    tensors = {tuple(t["shape"]): t["dtype"] for t in interpreter.get_tensor_details() if len(t["shape"]) == 2}
    kernel_shapes = [w.shape for w in teacher.get_weights() if w.ndim == 2]
    for rows, cols in kernel_shapes:  # TFLite stores a Dense kernel transposed: (out, in)
        assert tensors.get((cols, rows)) == np.int8, f"kernel {(rows, cols)} is not stored as int8"


def test_quantized_variants_are_smaller_than_float32(reports):
    f32 = reports["float32"]
    for name in ("dynamic_range", "float16", "int8", "qat_int8", "pruned_int8"):
        assert reports[name].bytes < f32.bytes, name
        assert reports[name].gzip_bytes < f32.gzip_bytes, name


def test_pruning_reaches_its_target_and_only_shrinks_once_stripped(reports, teacher, data):
    import tensorflow_model_optimization as tfmot

    from tasks.compression.prune import kernel_sparsity, prune_and_fine_tune

    pruned = prune_and_fine_tune(teacher, data, "classification", SETTINGS.pruning, SETTINGS.seed, strip=False)
    stripped = tfmot.sparsity.keras.strip_pruning(pruned.model)
    assert kernel_sparsity(stripped) >= pruned.target_sparsity - 0.01
    assert reports["pruned_int8"].extra["sparsity"] >= reports["pruned_int8"].extra["target_sparsity"] - 0.01

    def gz(model):
        return len(gzip.compress(convert_to_tflite(model, "float32"), 9))

    assert gz(stripped) < 0.9 * gz(pruned.model), "stripping must shrink the gzipped file"
    assert gz(stripped) < 0.9 * reports["float32"].gzip_bytes
    assert reports["pruned_int8"].gzip_bytes < reports["int8"].gzip_bytes < reports["float32"].gzip_bytes


def test_the_distilled_and_scratch_students_share_architecture_and_are_smaller(reports):
    distilled, scratch = reports["distilled_int8"], reports["student_scratch_int8"]
    assert distilled.extra["distilled"]
    assert not scratch.extra["distilled"]
    assert distilled.extra["student_params"] == scratch.extra["student_params"] < distilled.extra["teacher_params"]
    assert distilled.bytes < reports["int8"].bytes


def test_variants_built_in_threads_match_the_sequential_build(reports, teacher, data, score, tmp_path):
    names = ("int8", "pruned_int8", "distilled_int8")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            n: pool.submit(build_and_measure, n, teacher, data, "classification", score, SETTINGS, tmp_path, student_builder)
            for n in names
        }
        threaded = {n: f.result() for n, f in futures.items()}

    def digest(path):
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    for name in names:
        assert threaded[name].error is None, threaded[name].error
        assert threaded[name].metrics == reports[name].metrics, name
        outputs = [TfliteRunner(r.path).predict(data.x_test) for r in (threaded[name], reports[name])]
        assert np.array_equal(*outputs), f"{name}: threaded build computes different outputs"
    for name in ("int8", "pruned_int8"):  # clones keep the teacher's layer names: identical files
        assert digest(threaded[name].path) == digest(reports[name].path), name
    # A new student gets fresh auto-generated layer names (dense_7...), which TFLite stores as
    # tensor names: its file differs by a few bytes while every number in it is the same.
    assert abs(threaded["distilled_int8"].bytes - reports["distilled_int8"].bytes) < 64


def test_build_in_threads_then_measure_one_at_a_time(reports, teacher, data, score, tmp_path):
    with ThreadPoolExecutor(max_workers=2) as pool:
        built = list(
            pool.map(lambda v: build_only(v, teacher, data, "classification", SETTINGS, tmp_path), ("float32", "int8", "int4"))
        )
    assert built[0].latency_ms_p50 is None
    assert built[2].passed is False
    measured = [measure_built(r, data, score, SETTINGS) for r in built]
    assert [m.metrics for m in measured[:2]] == [reports["float32"].metrics, reports["int8"].metrics]
    assert measured[1].gzip_bytes == reports["int8"].gzip_bytes
    assert measured[1].latency_ms_p50 > 0
    assert measured[2] == built[2]


def test_a_broken_variant_reports_its_reason_and_the_others_continue(teacher, data, score, tmp_path):
    keras = import_keras()
    # LayerNormalization has no default QAT config in tfmot: qat_int8 must fail, int8 must not.
    model = keras.Sequential(
        [
            keras.Input((8,), name="features"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.LayerNormalization(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(loss="sparse_categorical_crossentropy")
    built = {
        v: build_and_measure(v, model, data, "classification", score, SETTINGS, tmp_path, None)
        for v in ("float32", "int8", "qat_int8", "distilled_int8", "int4")
    }
    assert built["int8"].error is None
    assert built["float32"].error is None
    assert "not supported" in built["qat_int8"].error
    assert built["qat_int8"].passed is False
    assert "student_builder" in built["distilled_int8"].error
    assert "unknown compression variant" in built["int4"].error
    gated = {r.variant: r for r in compression_gate(built.values(), SETTINGS, "accuracy", True)}
    assert gated["qat_int8"].passed is False
    assert gated["qat_int8"].reasons[0].startswith("qat_int8 could not be built")


def test_zero_budget_on_real_variants_rejects_exactly_those_that_lost_accuracy(reports):
    gated = compression_gate(reports.values(), CompressionSettings(max_metric_drop=0.0), "accuracy", True)
    reference = reports["float32"].metrics["accuracy"]
    for r in gated:
        if r.variant in ("keras", "float32"):
            continue
        lost = r.metrics["accuracy"] < reference
        assert r.reasons[0].startswith("accuracy drop")
        assert ("> budget 0.00 pp" in r.reasons[0]) == lost, r.reasons
        if lost:
            assert r.passed is False
