"""The search space: sensible defaults for the MLP and the CNN, overridable one parameter at a time.

Parameters are named as a person tunes them, not as TrainConfig stores them: `layers` and `width` make
`hidden_units` (width, width/2, ... at least 8), `conv_layers` and `conv_base` make `conv_filters`
(base, 2·base, ...). The rest are TrainConfig fields of the same name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.config import ConfigError, TrainConfig
from tasks.tuning.settings import ParamSpec, TuneSettings

COMMON: dict[str, ParamSpec] = {
    "dropout": ParamSpec(low=0.0, high=0.4, step=0.05),
    "learning_rate": ParamSpec(low=1e-4, high=3e-2, log=True),
    "lr_schedule": ParamSpec(choices=("cosine", "exponential", "constant")),
}
DEFAULT_SPACES: dict[str, dict[str, ParamSpec]] = {
    "mlp": {
        "layers": ParamSpec(low=1, high=3, step=1),
        "width": ParamSpec(choices=(16, 32, 64, 128, 256)),
        **COMMON,
        "batch_size": ParamSpec(choices=(16, 32, 64, 128)),
    },
    "cnn": {
        "conv_layers": ParamSpec(low=1, high=3, step=1),
        "conv_base": ParamSpec(choices=(8, 16, 32)),
        "layers": ParamSpec(low=1, high=2, step=1),
        "width": ParamSpec(choices=(32, 64, 128)),
        **COMMON,
        "batch_size": ParamSpec(choices=(32, 64, 128)),
    },
}
INTEGER_PARAMS = {"layers", "width", "conv_layers", "conv_base", "batch_size"}


def search_space(settings: TuneSettings, model: str, configured: TrainConfig | None = None) -> dict[str, ParamSpec]:
    """The default space of `model` with the config's overrides; an unknown parameter is a ConfigError naming it.

    With `configured`, a default range or list of choices is widened to hold the configured value (the
    digits CNN's 512 units are not among the default widths), so trial 0 is exactly the configured model;
    a parameter the config's `tune.space` sets stays as written."""
    space = dict(DEFAULT_SPACES[model])
    unknown = sorted(set(settings.space) - set(space))
    if unknown:
        raise ConfigError(f"tune.space.{unknown[0]}: not a parameter of the {model} search; expected one of {', '.join(space)}")
    if configured is not None:
        for name, value in _in_space_terms(configured).items():
            if name in space and name not in settings.space and not holds(space[name], value):
                space[name] = widened(space[name], value)
    space.update(settings.space)
    return space


def widened(spec: ParamSpec, value: Any) -> ParamSpec:
    if spec.choices is not None:
        choices = (*spec.choices, value)
        ordered = sorted(choices) if all(isinstance(c, (int, float)) for c in choices) else choices
        return spec.model_copy(update={"choices": tuple(ordered)})
    if spec.low is not None and spec.high is not None and isinstance(value, (int, float)):
        if spec.log and value <= 0:
            return spec
        if spec.step and abs((value - spec.low) / spec.step - round((value - spec.low) / spec.step)) > 1e-9:
            return spec  # off the grid: sampled instead
        return spec.model_copy(update={"low": min(spec.low, value), "high": max(spec.high, value)})
    return spec


def suggest(trial: Any, space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """Ask an Optuna trial for one value of every parameter (fixed ones are recorded as they are)."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.fixed is not None:
            params[name] = spec.fixed
        elif spec.choices is not None:
            params[name] = trial.suggest_categorical(name, list(spec.choices))
        elif name in INTEGER_PARAMS:
            assert spec.low is not None
            assert spec.high is not None
            params[name] = trial.suggest_int(name, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log)
        else:
            assert spec.low is not None
            assert spec.high is not None
            params[name] = trial.suggest_float(name, spec.low, spec.high, step=None if spec.log else spec.step, log=spec.log)
    return params


def hidden_units(layers: int, width: int) -> tuple[int, ...]:
    return tuple(max(8, int(width) // 2**i) for i in range(int(layers)))


def conv_filters(layers: int, base: int) -> tuple[int, ...]:
    return tuple(int(base) * 2**i for i in range(int(layers)))


def apply_params(cfg: TrainConfig, params: Mapping[str, Any], epochs: int | None = None) -> TrainConfig:
    """`cfg` with a trial's values: what the trial trains, and what the final model trains with the best one."""
    update: dict[str, Any] = {k: v for k, v in params.items() if k in TrainConfig.model_fields}
    # the configured layer count and first width keep the configured layers as written (64, 64 stays 64, 64)
    if "layers" in params or "width" in params:
        current = cfg.hidden_units or (64,)
        shape = (int(params.get("layers", len(current))), int(params.get("width", current[0])))
        if not cfg.hidden_units or shape != (len(current), current[0]):
            update["hidden_units"] = hidden_units(*shape)
    if "conv_layers" in params or "conv_base" in params:
        current = cfg.conv_filters or (32,)
        shape = (int(params.get("conv_layers", len(current))), int(params.get("conv_base", current[0])))
        if not cfg.conv_filters or shape != (len(current), current[0]):
            update["conv_filters"] = conv_filters(*shape)
    if epochs is not None:
        update["epochs"] = epochs
    return TrainConfig.model_validate({**cfg.model_dump(), **update})


def configured_values(cfg: TrainConfig, space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """The config's own values in the space's terms, where the space can hold them: the search's first
    trial, so a search never ends worse than the model the config describes."""
    values = _in_space_terms(cfg)
    return {k: v for k, v in values.items() if k in space and holds(space[k], v)}


def _in_space_terms(cfg: TrainConfig) -> dict[str, Any]:
    values: dict[str, Any] = {k: getattr(cfg, k) for k in ("dropout", "learning_rate", "lr_schedule", "batch_size")}
    if cfg.hidden_units:
        values |= {"layers": len(cfg.hidden_units), "width": cfg.hidden_units[0]}
    if cfg.conv_filters:
        values |= {"conv_layers": len(cfg.conv_filters), "conv_base": cfg.conv_filters[0]}
    return values


def holds(spec: ParamSpec, value: Any) -> bool:
    if spec.fixed is not None:
        return bool(spec.fixed == value)
    if spec.choices is not None:
        return value in spec.choices
    assert spec.low is not None
    assert spec.high is not None
    return isinstance(value, (int, float)) and spec.low <= value <= spec.high
