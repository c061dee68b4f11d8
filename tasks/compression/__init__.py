"""The compression stage: build TFLite variants of a trained tf_keras model, measure each through
LiteRT, gate them against float32 and choose the one to ship.

Importing this package is light (no TensorFlow): the names below are loaded on first use.

    from tasks.compression import CompressionSettings, CompressionData, build_and_measure
    reports = [build_and_measure(v, teacher, data, task, score, settings, workdir, student_builder)
               for v in ("keras", *settings.variants)]
    gated = compression_gate(reports, settings, primary_metric, higher_is_better)
    shipped = choose_variant(gated, settings.policy)
    final = mark_shipped(gated, shipped)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "CompressionSettings": "tasks.compression.settings",
    "ALL_VARIANTS": "tasks.compression.settings",
    "KERAS_BASELINE": "tasks.compression.settings",
    "VariantReport": "tasks.compression.measure",
    "measure_tflite": "tasks.compression.measure",
    "measure_keras": "tasks.compression.measure",
    "CompressionData": "tasks.compression.common",
    "build_and_measure": "tasks.compression.variants",
    "build_only": "tasks.compression.variants",
    "measure_built": "tasks.compression.variants",
    "convert_to_tflite": "tasks.compression.variants",
    "compression_gate": "tasks.compression.gate",
    "choose_variant": "tasks.compression.gate",
    "mark_shipped": "tasks.compression.gate",
    "comparison_table": "tasks.compression.gate",
    "tradeoff_plot": "tasks.compression.gate",
    "display_rows": "tasks.compression.gate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tasks.compression' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
