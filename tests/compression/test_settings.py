"""CompressionSettings: defaults, unknown keys rejected, float32 always present."""

import pytest
from pydantic import ValidationError

from tasks.compression.settings import ALL_VARIANTS, CompressionSettings, PruningSettings


def test_defaults_build_every_variant_with_documented_budgets():
    settings = CompressionSettings()
    assert settings.variants == ALL_VARIANTS
    assert (settings.max_metric_drop, settings.max_relative_drop, settings.policy) == (0.01, 0.05, "smallest")
    assert settings.distillation.temperature == 4.0
    assert settings.distillation.alpha == 0.5


@pytest.mark.parametrize("mapping", [{"max_metric_dorp": 0.02}, {"pruning": {"target_sparsity": 0.9, "frequncy": 10}}])
def test_unknown_keys_are_rejected_by_name(mapping):
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        CompressionSettings.model_validate(mapping)


@pytest.mark.parametrize("variants", [("int8",), ("float32", "int8", "int8"), ("float32", "int4")])
def test_variants_must_include_float32_once_and_be_known(variants):
    with pytest.raises(ValidationError):
        CompressionSettings(variants=variants)


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        CompressionSettings().policy = "fastest"


def test_large_models_are_pruned_harder_than_small_ones():
    pruning = PruningSettings()
    assert pruning.sparsity_for(150_000) == 0.85
    assert pruning.sparsity_for(3_000) == pruning.small_model_sparsity < 0.85
