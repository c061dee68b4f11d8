"""Keras model builders: pure functions of shapes and hyper-parameters (tf_keras, Keras 2 API).

Every model takes the preprocessed float32 matrix (rows x features). Image models reshape it
inside the graph, so the same preprocessor, TFLite input and serving code fit every model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tasks.data.schema import Task
from tasks.model.tf_env import import_keras


def output_layer(keras: Any, task: Task, n_outputs: int) -> Any:
    if task == "classification":
        return keras.layers.Dense(n_outputs, activation="softmax", name="probabilities")
    return keras.layers.Dense(1, name="prediction")


def build_mlp(input_dim: int, n_outputs: int, hidden_units: Sequence[int], dropout: float, task: Task) -> Any:
    """A multilayer perceptron for tabular rows; `n_outputs` is the class count (1 for regression)."""
    keras = import_keras()
    layers: list[Any] = [keras.Input(shape=(input_dim,), name="features")]
    for units in hidden_units:
        layers.append(keras.layers.Dense(units, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(output_layer(keras, task, n_outputs))
    return keras.Sequential(layers, name="mlp")


def build_cnn(
    input_dim: int,
    n_outputs: int,
    image_shape: Sequence[int],
    conv_filters: Sequence[int],
    hidden_units: Sequence[int],
    dropout: float,
    task: Task,
) -> Any:
    """A small CNN over flattened images of `image_shape` (height, width, channels)."""
    keras = import_keras()
    height, width, channels = image_shape
    if height * width * channels != input_dim:
        raise ValueError(
            f"image_shape {tuple(image_shape)} holds {height * width * channels} values, data has {input_dim} features"
        )
    layers: list[Any] = [keras.Input(shape=(input_dim,), name="features"), keras.layers.Reshape((height, width, channels))]
    size = min(height, width)
    for filters in conv_filters:
        layers.append(keras.layers.Conv2D(filters, 3, padding="same", activation="relu"))
        if size >= 4:  # pool while the feature map is still at least 4 pixels wide
            layers.append(keras.layers.MaxPooling2D(2))
            size //= 2
    layers.append(keras.layers.Flatten())
    for units in hidden_units:
        layers.append(keras.layers.Dense(units, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(output_layer(keras, task, n_outputs))
    return keras.Sequential(layers, name="cnn")
