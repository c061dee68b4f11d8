"""Build one compression variant as a .tflite file, then measure it: `build_and_measure`.

Variants never share state, so the pipeline may fan them out in threads: each call clones the
teacher (`clone_model` + `set_weights`) before touching it, converts its own copy, and measures
its file through its own LiteRT interpreter. The teacher is only ever read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tasks.compression.common import CompressionData, Task, clone_teacher, representative_sample
from tasks.compression.measure import Score, VariantReport, failed_report, measure_keras, measure_tflite
from tasks.compression.settings import KERAS_BASELINE, CompressionSettings

log = logging.getLogger(__name__)
Conversion = Literal["float32", "dynamic_range", "float16", "int8"]
StudentBuilder = Callable[[float], Any]


def convert_to_tflite(model: Any, conversion: Conversion, representative: np.ndarray | None = None) -> bytes:
    """TFLite flatbuffer bytes of a tf_keras model.

    `int8` is full-integer: int8 weights, activations, input and output, calibrated on
    `representative` rows (required). `dynamic_range` stores int8 weights with float I/O;
    `float16` stores float16 weights that are widened to float32 at load.
    """
    from tasks.model.tf_env import import_tf

    tf = import_tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if conversion != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if conversion == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if conversion == "int8":
        if representative is None:
            raise ValueError("int8 conversion needs representative rows")
        converter.representative_dataset = lambda: ([row[None, :]] for row in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    from tasks.model.tf_env import native_stderr_silenced

    with native_stderr_silenced():  # the converter prints "fully_quantize: ..." from C++ on every int8 call
        return converter.convert()


def write_tflite(flatbuffer: bytes, workdir: Path, variant: str) -> Path:
    path = Path(workdir) / f"{variant}.tflite"
    path.write_bytes(flatbuffer)
    return path


def build_variant(
    variant: str,
    teacher: Any,
    data: CompressionData,
    task: Task,
    settings: CompressionSettings,
    workdir: Path,
    student_builder: StudentBuilder | None,
) -> tuple[Path, dict[str, Any]]:
    """Build `variant`'s .tflite file in `workdir`; returns its path and variant-specific extras."""
    representative = representative_sample(data.x_train, settings.representative_rows, settings.seed)
    extra: dict[str, Any] = {}
    if variant in ("float32", "dynamic_range", "float16", "int8"):
        model = clone_teacher(teacher)
        flatbuffer = convert_to_tflite(model, variant, representative)  # type: ignore[arg-type]
    elif variant == "pruned_int8":
        from tasks.compression.prune import prune_and_fine_tune

        pruned = prune_and_fine_tune(teacher, data, task, settings.pruning, settings.seed)
        flatbuffer, extra = convert_to_tflite(pruned.model, "int8", representative), pruned.summary()
    elif variant == "qat_int8":
        from tasks.compression.qat import quantize_aware_fine_tune

        flatbuffer = convert_to_tflite(
            quantize_aware_fine_tune(teacher, data, task, settings.qat, settings.seed), "int8", representative
        )
    elif variant in ("distilled_int8", "student_scratch_int8"):
        from tasks.compression.distill import train_student

        if student_builder is None:
            raise ValueError(f"{variant} needs a student_builder(width_factor) callable")
        student = train_student(
            teacher, student_builder, data, task, settings.distillation, settings.seed, distil=variant == "distilled_int8"
        )
        flatbuffer, extra = convert_to_tflite(student.model, "int8", representative), student.summary()
    else:
        raise ValueError(f"unknown compression variant {variant!r}")
    return write_tflite(flatbuffer, workdir, variant), extra


def build_and_measure(
    variant: str,
    teacher: Any,
    arrays: CompressionData,
    task: Task,
    score: Score,
    settings: CompressionSettings,
    workdir: Path | str,
    student_builder: StudentBuilder | None = None,
) -> VariantReport:
    """Build one variant (or the `keras` baseline) and measure it on `arrays.x_test`.

    Never raises: a failure comes back as a report with `error` set, `passed=False` and the
    reason, so one broken variant never sinks the others. Files go to `workdir/<variant>/`.
    Safe to call from several threads at once with the same teacher, but latencies measured
    while other variants train share the CPU: to gate on latency, fan out `build_only` and run
    `measure_built` one variant at a time.
    """
    folder = Path(workdir) / variant
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if variant == KERAS_BASELINE:
            return measure_keras(teacher, arrays.x_test, score, settings.latency, folder)
        path, extra = build_variant(variant, teacher, arrays, task, settings, folder, student_builder)
        return measure_tflite(variant, path, arrays.x_test, score, settings.latency, extra)
    except Exception as error:
        log.warning("compression variant %s failed: %s", variant, error, exc_info=True)
        return failed_report(variant, error)


def build_only(
    variant: str,
    teacher: Any,
    arrays: CompressionData,
    task: Task,
    settings: CompressionSettings,
    workdir: Path | str,
    student_builder: StudentBuilder | None = None,
) -> VariantReport:
    """Build one variant's .tflite without measuring it: an unmeasured report with `path` and
    `extra` (or `error`). Thread-safe; pair it with `measure_built`. Not for the keras row."""
    folder = Path(workdir) / variant
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path, extra = build_variant(variant, teacher, arrays, task, settings, folder, student_builder)
        return VariantReport(variant=variant, path=str(path), extra=extra)
    except Exception as error:
        log.warning("compression variant %s failed: %s", variant, error, exc_info=True)
        return failed_report(variant, error)


def measure_built(report: VariantReport, arrays: CompressionData, score: Score, settings: CompressionSettings) -> VariantReport:
    """Measure a `build_only` report's file on `arrays.x_test`; failed reports pass through unchanged."""
    if not report.ok or report.path is None:
        return report
    try:
        return measure_tflite(report.variant, Path(report.path), arrays.x_test, score, settings.latency, report.extra)
    except Exception as error:  # noqa: BLE001
        return failed_report(report.variant, error)
