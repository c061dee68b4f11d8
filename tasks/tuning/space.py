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


def search_space(settings: TuneSettings, model: str) -> dict[str, ParamSpec]:
    """The default space of `model` with the config's overrides; an unknown parameter is a ConfigError naming it."""
    space = dict(DEFAULT_SPACES[model])
    unknown = sorted(set(settings.space) - set(space))
    if unknown:
        raise ConfigError(f"tune.space.{unknown[0]}: not a parameter of the {model} search; expected one of {', '.join(space)}")
    space.update(settings.space)
    return space


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
    if "layers" in params or "width" in params:
        current = cfg.hidden_units or (64,)
        update["hidden_units"] = hidden_units(params.get("layers", len(current)), params.get("width", current[0]))
    if "conv_layers" in params or "conv_base" in params:
        current = cfg.conv_filters or (32,)
        update["conv_filters"] = conv_filters(params.get("conv_layers", len(current)), params.get("conv_base", current[0]))
    if epochs is not None:
        update["epochs"] = epochs
    return TrainConfig.model_validate({**cfg.model_dump(), **update})


def configured_values(cfg: TrainConfig, space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """The config's own values in the space's terms, where the space can hold them: the search's first
    trial, so a search never ends worse than the model the config describes."""
    values: dict[str, Any] = {k: getattr(cfg, k) for k in space if k in TrainConfig.model_fields}
    if cfg.hidden_units:
        values |= {"layers": len(cfg.hidden_units), "width": cfg.hidden_units[0]}
    if cfg.conv_filters:
        values |= {"conv_layers": len(cfg.conv_filters), "conv_base": cfg.conv_filters[0]}
    return {k: v for k, v in values.items() if k in space and holds(space[k], v)}


def holds(spec: ParamSpec, value: Any) -> bool:
    if spec.fixed is not None:
        return bool(spec.fixed == value)
    if spec.choices is not None:
        return value in spec.choices
    assert spec.low is not None
    assert spec.high is not None
    return isinstance(value, (int, float)) and spec.low <= value <= spec.high
