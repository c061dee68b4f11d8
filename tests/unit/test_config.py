from pathlib import Path

import pytest

from tasks.config import ConfigError, PmfConfig, apply_overrides, load_config

from tests.conftest import DATA


@pytest.mark.parametrize("config", sorted(DATA.glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_configs_are_valid_and_point_at_bundled_data(config):
    cfg = load_config(config)
    assert cfg.name == config.stem
    assert Path(cfg.data.path).exists()


def test_unknown_key_is_an_error_naming_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epoch: 5\n")
    with pytest.raises(ConfigError, match=r"train\.epoch: unknown key"):
        load_config(path)


def test_wrong_value_names_field_and_value(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr_schedule: linear\n")
    with pytest.raises(ConfigError, match=r"train\.lr_schedule.*'linear'"):
        load_config(path)


def test_set_overrides_are_parsed_as_yaml_and_validated():
    cfg = load_config(None, ["train.epochs=3", "train.hidden_units=[8, 4]", "data.target=species"])
    assert cfg.train.epochs == 3 and cfg.train.hidden_units == (8, 4) and cfg.data.target == "species"
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(None, ["train.epochs=-1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["train.epochs"])


def test_overrides_do_not_mutate_the_source_mapping():
    raw = {"train": {"epochs": 5}}
    assert apply_overrides(raw, ["train.epochs=7"])["train"]["epochs"] == 7
    assert raw["train"]["epochs"] == 5


def test_config_is_frozen():
    cfg = PmfConfig()
    with pytest.raises(Exception):
        cfg.train = None  # type: ignore[misc]


def test_gate_rule_needs_exactly_one_bound():
    with pytest.raises(ConfigError, match="exactly one of min or max"):
        load_config(None, ["gates=[{metric: accuracy}]"])


def test_cnn_requires_image_shape():
    with pytest.raises(ConfigError, match="image_shape"):
        load_config(None, ["train.model=cnn"])
