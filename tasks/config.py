"""Configuration is data: one YAML file per dataset, validated once into frozen pydantic models.

Unknown keys are an error that names the key, so a typo never silently falls back to a default.
`--set key.path=value` overrides are applied to the raw mapping before validation, so they are
checked by the same rules as the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from tasks.compression.settings import CompressionSettings
from tasks.data.sql_source import SqlSource, looks_like_url
from tasks.frozen import Frozen
from tasks.monitoring.settings import MonitoringSettings
from tasks.registry.promotion_settings import PromotionSettings
from tasks.tuning.settings import TuneSettings


class ConfigError(ValueError):
    """A configuration or usage problem: the CLI exits with code 2 and prints the message."""


# One allow-list for dataset (and registered model) names: they become MLflow experiment and model
# names and folder names under PMF_HOME, so nothing that could climb out of a folder ('.', '..', '/').
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
NAME_RULE = "1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"


RESERVED_SUFFIX = ".pmf-store"


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a dataset, or None when it can."""
    if name in (".", "..") or not NAME_PATTERN.fullmatch(name):
        return f"invalid name {name!r}: a dataset name is {NAME_RULE}"
    if name.endswith(RESERVED_SUFFIX):  # the experiment that keeps NAME's suite and config records
        return f"invalid name {name!r}: names ending in {RESERVED_SUFFIX!r} are reserved for pmf's own records"
    return None


def check_name(name: str, origin: str) -> str:
    """Return `name` if allowed; otherwise raise ConfigError naming where it came from (`--name`, a file stem...)."""
    problem = name_problem(name)
    if problem:
        raise ConfigError(f"{origin}: {problem}")
    return name


class DataConfig(Frozen):
    path: str | None = Field(
        None,
        description="CSV or Parquet file (relative paths are resolved against the config file), "
        "or a PostgreSQL URL with ?table= or ?query=",
    )
    target: str | None = None
    task: Literal["classification", "regression"] | None = Field(None, description="inferred from the target when unset")
    drop_columns: tuple[str, ...] = ()
    slice_columns: tuple[str, ...] = Field((), description="categorical columns whose values get per-slice metrics")
    max_categories: int = Field(
        50, ge=2, description="a text column with more distinct values is treated as free text/ID and dropped"
    )


class ExpectationRule(Frozen):
    """A Great Expectations expectation declared in config, e.g. ExpectColumnValuesToBeBetween."""

    expectation: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ValidationConfig(Frozen):
    range_tolerance: float = Field(0.25, ge=0, description="numeric ranges are widened by this fraction of the observed range")
    null_margin: float = Field(0.05, ge=0, le=1, description="allowed null fraction = reference null fraction + margin")
    min_rows: int = Field(20, ge=1)
    min_rows_per_class: int = Field(5, ge=1)
    max_unlabelled_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="rows without a target value are set aside and counted; a batch with a larger share of them is rejected",
    )
    rules: tuple[ExpectationRule, ...] = ()


class SplitConfig(Frozen):
    test_size: float = Field(0.2, gt=0, lt=1)
    validation_size: float = Field(0.2, gt=0, lt=1, description="fraction of the remaining rows held out for early stopping")
    seed: int = 42


class TrainConfig(Frozen):
    model: Literal["mlp", "cnn"] = "mlp"
    hidden_units: tuple[int, ...] = (64, 32)
    dropout: float = Field(0.1, ge=0, lt=1)
    image_shape: tuple[int, int, int] | None = Field(None, description="(height, width, channels) for the CNN")
    conv_filters: tuple[int, ...] = (32, 64)
    augment: bool = Field(True, description="random pixel shifts for image models")
    epochs: int = Field(60, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(0.005, gt=0)
    lr_schedule: Literal["exponential", "cosine", "constant"] = "cosine"
    lr_decay_rate: float = Field(0.5, gt=0, le=1, description="exponential schedule: factor per `epochs` of training")
    early_stopping_patience: int = Field(8, ge=1)
    class_weights: bool = True
    seed: int = 42

    @model_validator(mode="after")
    def _cnn_needs_shape(self) -> TrainConfig:
        if self.model == "cnn" and self.image_shape is None:
            raise ValueError("train.image_shape is required when train.model is 'cnn'")
        return self


class GateRule(Frozen):
    """An absolute threshold on a test-split metric: `min` for scores, `max` for errors."""

    metric: str
    min: float | None = None
    max: float | None = None
    severity: Literal["fail", "warn"] = "fail"

    @model_validator(mode="after")
    def _one_bound(self) -> GateRule:
        if (self.min is None) == (self.max is None):
            raise ValueError(f"gate on {self.metric!r} needs exactly one of min or max")
        return self


class RetrainSettings(Frozen):
    """What `pmf retrain` trains on besides the new batches (which it always uses whole): `all` the batches
    trained on before (the first `pmf run`'s included), or only the newest `size` `rows` / `batches`."""

    window: Literal["all", "rows", "batches"] = "all"
    size: int | None = Field(None, ge=1, description="rows or batches in the window (window rows|batches only)")

    @model_validator(mode="after")
    def _size_with_its_window(self) -> RetrainSettings:
        if (self.window == "all") != (self.size is None):
            raise ValueError("retrain.size is needed with window rows or batches, and only with them")
        return self


class PmfConfig(Frozen):
    name: str | None = Field(None, description="dataset and registered model name")
    data: DataConfig = DataConfig()
    validation: ValidationConfig = ValidationConfig()
    split: SplitConfig = SplitConfig()
    train: TrainConfig = TrainConfig()
    gates: tuple[GateRule, ...] | None = Field(None, description="defaults depend on the task")
    primary_metric: str | None = Field(None, description="defaults: f1_macro (classification), r2 (regression)")
    compression: CompressionSettings = CompressionSettings()
    promotion: PromotionSettings = PromotionSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    retrain: RetrainSettings = RetrainSettings()
    tune: TuneSettings = TuneSettings()

    @field_validator("name")
    @classmethod
    def _allowed_name(cls, name: str | None) -> str | None:
        problem = None if name is None else name_problem(name)
        if problem:
            raise ValueError(problem)
        return name


DEFAULT_GATES: dict[str, tuple[GateRule, ...]] = {
    "classification": (GateRule(metric="accuracy", min=0.7), GateRule(metric="f1_macro", min=0.6)),
    "regression": (GateRule(metric="r2", min=0.2),),
}
DEFAULT_PRIMARY = {"classification": "f1_macro", "regression": "r2"}


def gates_for(cfg: PmfConfig, task: str) -> tuple[GateRule, ...]:
    return cfg.gates if cfg.gates is not None else DEFAULT_GATES[task]


def primary_metric_for(cfg: PmfConfig, task: str) -> str:
    return cfg.primary_metric or DEFAULT_PRIMARY[task]


def parse_override(item: str) -> tuple[list[str], Any]:
    """`train.epochs=5` -> (["train", "epochs"], 5); the value is parsed as a YAML scalar or list."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.epochs=5")
    key, raw = item.split("=", 1)
    if not key.strip():
        raise ConfigError(f"--set {item!r}: the key before '=' is empty")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: value is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    merged = _deep_copy(raw)
    for item in overrides:
        keys, value = parse_override(item)
        node = merged
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {key!r} is not a section")
            node = child
        node[keys[-1]] = value
    return merged


def _deep_copy(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in raw.items()}


def read_yaml(path: Path) -> dict[str, Any]:
    """The raw mapping of a YAML config file; every way the file can be unusable is a ConfigError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder: pass the path of a YAML file, e.g. data/penguins.yaml") from None
    except PermissionError:
        raise ConfigError(f"config file {path} cannot be read: permission denied") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
            f"{exc.start}): re-encode it as UTF-8"
        ) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level, got {type(loaded).__name__}")
    return loaded


def load_config(
    path: Path | None = None, overrides: list[str] | None = None, base: dict[str, Any] | None = None, origin: str | None = None
) -> PmfConfig:
    """Read, override and validate a config. Relative data paths resolve against the config file.

    Without `path`, `base` (a recorded config's mapping) is the starting point, else the defaults;
    `origin` names that starting point in error messages.
    """
    raw = read_yaml(path) if path else _deep_copy(base or {})
    raw = apply_overrides(raw, overrides or [])
    data_path = raw.get("data", {}).get("path") if isinstance(raw.get("data"), dict) else None
    if path and data_path and not looks_like_url(str(data_path)) and not Path(data_path).is_absolute():
        raw["data"]["path"] = str((path.parent / data_path).resolve())
    try:
        return PmfConfig.model_validate(raw)
    except ValidationError as exc:
        where = f"config file {path}" if path else (origin or "configuration")
        raise ConfigError(f"{where} is invalid:\n{_describe(exc)}") from None


# What a recorded config leaves out: the data file is per batch, and the target and task live with
# the expectation suite's schema (so `--update-suite --target other` does not contradict the record).
DATA_NOT_RECORDED = ("path", "target", "task")


def recordable(cfg: PmfConfig) -> dict[str, Any]:
    """The settings a named dataset keeps for its later batches: what the user set, not the defaults,
    so a default that is a function of something else (gates per task, slices from data) stays one."""
    raw = cfg.model_dump(mode="json", exclude_unset=True)
    raw.pop("name", None)
    data = {k: v for k, v in (raw.get("data") or {}).items() if k not in DATA_NOT_RECORDED}
    raw.pop("data", None)
    return {**raw, "data": data} if data else raw


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  - {loc}: unknown key")
        else:
            lines.append(f"  - {loc}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


@dataclass(frozen=True)
class RunRequest:
    """One batch of a named dataset and the config to run it with: what `pmf run` / `pmf validate` hand a flow.

    `data`: a CSV or Parquet file, or a PostgreSQL table or query (`str()` masks its password)."""

    data: Path | SqlSource
    name: str
    cfg: PmfConfig
    target: str | None = None
    update_suite: bool = False
    config_source: str = "defaults"
    overrides: tuple[str, ...] = ()
    # "first": nothing is recorded for the name yet, record this run's config; "update": --update-config.
    record_config: Literal["first", "update"] | None = None
