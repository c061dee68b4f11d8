"""Compression stage settings: one frozen pydantic model, unknown keys rejected.

The pipeline validates `PmfConfig.compression` (a plain mapping) with
`CompressionSettings.model_validate(mapping)`; a typo such as `max_metric_dorp` is an error
that names the key instead of silently falling back to the default.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator

from tasks.frozen import Frozen

VariantName = Literal[
    "float32",
    "dynamic_range",
    "float16",
    "int8",
    "pruned_int8",
    "qat_int8",
    "distilled_int8",
    "student_scratch_int8",
]
ALL_VARIANTS: tuple[VariantName, ...] = get_args(VariantName)  # in build order
# The float Keras model measured directly: a baseline row, never gated, never shipped.
KERAS_BASELINE = "keras"
# float32 TFLite is the reference every lossy variant is gated against.
REFERENCE_VARIANT = "float32"
# A control experiment reported beside distilled_int8 (same student, labels only); gated for
# information but never shipped: it exists to show what distillation bought.
CONTROL_VARIANTS: frozenset[str] = frozenset({"student_scratch_int8"})
# "fail": a variant that breaks the rule is rejected; "warn": it is reported (shown as !) and may
# still ship. The same words as the evaluation gates' `severity`.
Severity = Literal["fail", "warn"]


class FineTuneSettings(Frozen):
    """How a clone of the teacher is fine-tuned (pruning and QAT share the shape of this)."""

    epochs: int = Field(4, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(5e-4, gt=0, description="small: the teacher is already trained")


class PruningSettings(FineTuneSettings):
    epochs: int = Field(8, ge=1, description="pruning removes most weights: it needs more recovery than QAT")
    learning_rate: float = Field(1e-3, gt=0)
    target_sparsity: float = Field(0.85, gt=0, lt=1, description="for models with >= large_model_params parameters")
    small_model_sparsity: float = Field(0.5, gt=0, lt=1, description="small models have little redundancy to remove")
    large_model_params: int = Field(100_000, ge=1)
    begin_step: int = Field(0, ge=0)
    ramp_fraction: float = Field(
        0.7, gt=0, le=1, description="sparsity reaches its target after this fraction of the fine-tuning steps; the rest recovers"
    )
    updates: int = Field(10, ge=1, description="mask updates during the ramp; frequency = ramp steps / updates")

    def sparsity_for(self, n_params: int) -> float:
        """The target sparsity for a model of `n_params` parameters."""
        return self.target_sparsity if n_params >= self.large_model_params else self.small_model_sparsity


class QatSettings(FineTuneSettings):
    epochs: int = Field(3, ge=1)


class DistillationSettings(Frozen):
    width_factor: float = Field(0.5, gt=0, le=1, description="student width as a fraction of the teacher's")
    temperature: float = Field(4.0, gt=0, description="softens the teacher's class probabilities (classification only)")
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the hard-label loss; 1 - alpha goes to matching the teacher")
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    augment: bool = Field(
        True, description="a CNN teacher trained on shifted images: shift the students' images too, labelled by the teacher"
    )


class LatencySettings(Frozen):
    warmup: int = Field(50, ge=0, description="single-row invokes discarded before timing")
    repeats: int = Field(300, ge=10, description="timed single-row invokes; p50/p99 come from these")
    batch_size: int = Field(1024, ge=1, description="rows per invoke for metrics and throughput")
    num_threads: int = Field(1, ge=1, description="LiteRT interpreter threads; 1 keeps timings comparable on a shared CPU")


class GateSeverity(Frozen):
    """The severity of each compression gate rule (`compression.severity.latency: warn`)."""

    quality: Severity = Field("fail", description="the primary metric's drop against float32 within budget")
    size: Severity = Field("fail", description="gzip bytes strictly below float32's")
    latency: Severity = Field(
        "fail", description="p50 within float32's x (1 + latency_tolerance); 'warn' where timings are noisy (shared CPUs)"
    )


class CompressionSettings(Frozen):
    """Which variants to build, the gate's budgets and the shipping policy."""

    variants: tuple[VariantName, ...] = ALL_VARIANTS
    max_metric_drop: float = Field(0.01, ge=0, description="absolute drop of an accuracy-type primary metric (0.01 = 1 pp)")
    max_relative_drop: float = Field(0.05, ge=0, description="relative drop of an error metric or r2 (0.05 = 5 %)")
    budget_kind: Literal["auto", "absolute", "relative"] = Field(
        "auto", description="auto: relative for lower-is-better metrics and r2, absolute otherwise"
    )
    latency_tolerance: float = Field(
        0.10, ge=0, description="a variant may be this fraction slower than float32 at p50 (timer noise on a shared CPU)"
    )
    latency_noise_ms: float = Field(
        0.002,
        ge=0,
        description="plus this many ms: below a few microseconds the timer and scheduler noise exceed any real difference",
    )
    severity: GateSeverity = GateSeverity()  # fail (rejects) or warn (reported, may ship), per rule
    policy: Literal["smallest", "fastest"] = "smallest"
    representative_rows: int = Field(300, ge=1, description="training rows that calibrate int8 ranges")
    pruning: PruningSettings = PruningSettings()
    qat: QatSettings = QatSettings()
    distillation: DistillationSettings = DistillationSettings()
    latency: LatencySettings = LatencySettings()
    seed: int = 42

    @field_validator("variants")
    @classmethod
    def _float32_is_the_reference(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if REFERENCE_VARIANT not in value:
            raise ValueError("variants must include 'float32': it is the reference the gate compares against")
        if len(set(value)) != len(value):
            raise ValueError(f"variants are listed twice: {value}")
        return value
