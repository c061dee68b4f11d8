"""Model builders: pure functions of shapes and hyper-parameters."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.config import TrainConfig
from tasks.model.builders import build_cnn, build_mlp
from tasks.model.train import build_model


def test_mlp_has_one_dense_layer_per_hidden_width_and_a_softmax_head_for_classes():
    model = build_mlp(input_dim=7, n_outputs=3, hidden_units=(16, 8), dropout=0.0, task="classification")
    dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    assert [layer.units for layer in dense] == [16, 8, 3]
    assert dense[-1].activation.__name__ == "softmax"
    probabilities = model.predict(np.zeros((4, 7), dtype=np.float32), verbose=0)
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_regression_head_is_one_linear_output():
    model = build_mlp(input_dim=5, n_outputs=1, hidden_units=(4,), dropout=0.0, task="regression")
    assert model.layers[-1].units == 1
    assert model.layers[-1].activation.__name__ == "linear"


def test_dropout_layers_follow_each_hidden_layer_only_when_asked():
    with_dropout = build_mlp(4, 2, (8, 8), 0.25, "classification")
    without = build_mlp(4, 2, (8, 8), 0.0, "classification")
    assert sum(layer.__class__.__name__ == "Dropout" for layer in with_dropout.layers) == 2
    assert not any(layer.__class__.__name__ == "Dropout" for layer in without.layers)


def test_cnn_reshapes_flat_pixels_into_the_image_and_predicts_each_class():
    model = build_cnn(
        input_dim=64,
        n_outputs=10,
        image_shape=(8, 8, 1),
        conv_filters=(4, 8),
        hidden_units=(16,),
        dropout=0.0,
        task="classification",
    )
    assert model.predict(np.zeros((2, 64), dtype=np.float32), verbose=0).shape == (2, 10)
    assert any(layer.__class__.__name__ == "Conv2D" for layer in model.layers)


def test_cnn_refuses_an_image_shape_that_does_not_hold_the_features():
    with pytest.raises(ValueError, match=r"image_shape \(8, 8, 1\) holds 64 values, data has 63 features"):
        build_cnn(63, 10, (8, 8, 1), (4,), (8,), 0.0, "classification")


def test_build_model_follows_the_config_choice_of_architecture():
    cnn = build_model(
        TrainConfig(model="cnn", image_shape=(8, 8, 1), conv_filters=(4,), hidden_units=(8,)), 64, 10, "classification"
    )
    mlp = build_model(TrainConfig(hidden_units=(8,)), 64, 10, "classification")
    assert cnn.name == "cnn"
    assert mlp.name == "mlp"
