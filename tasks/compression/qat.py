"""Quantization-aware training: fine-tune a clone of the teacher with fake-quantized weights and
activations (tfmot `quantize_model`), then convert it to full int8 like any other model.

tfmot's default 8-bit scheme covers Dense, Conv2D, MaxPooling2D, Reshape, Flatten, Dropout and
Softmax; a model with a layer outside that list raises here with tfmot's message, which
`build_and_measure` turns into a failed variant with that reason.
"""

from __future__ import annotations

from typing import Any

from tasks.compression.common import CompressionData, Task, clone_teacher, fine_tune
from tasks.compression.settings import QatSettings


def quantize_aware_fine_tune(teacher: Any, data: CompressionData, task: Task, settings: QatSettings, seed: int) -> Any:
    """A quantization-aware copy of `teacher`, fine-tuned for `settings.epochs` epochs."""
    import tensorflow_model_optimization as tfmot

    try:
        model = tfmot.quantization.keras.quantize_model(clone_teacher(teacher))
    except (ValueError, RuntimeError) as error:
        raise ValueError(f"tfmot cannot quantize this model for QAT: {error}") from error
    return fine_tune(model, data, task, settings.epochs, settings.batch_size, settings.learning_rate, seed)
