from pathlib import Path

import pydantic
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
    assert cfg.train.epochs == 3
    assert cfg.train.hidden_units == (8, 4)
    assert cfg.data.target == "species"
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        load_config(None, ["train.epochs=-1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["train.epochs"])


def test_overrides_do_not_mutate_the_source_mapping():
    raw = {"train": {"epochs": 5}}
    assert apply_overrides(raw, ["train.epochs=7"])["train"]["epochs"] == 7
    assert raw["train"]["epochs"] == 5


def test_config_is_frozen():
    cfg = PmfConfig()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        cfg.train = None  # type: ignore[misc]


def test_gate_rule_needs_exactly_one_bound():
    with pytest.raises(ConfigError, match="exactly one of min or max"):
        load_config(None, ["gates=[{metric: accuracy}]"])


def test_cnn_requires_image_shape():
    with pytest.raises(ConfigError, match="image_shape"):
        load_config(None, ["train.model=cnn"])


@pytest.mark.parametrize("name", ["..", ".", "-x", "a/b", "a b", "x" * 101, "", "naïve", "a:b", "a@b", "penguins.pmf-store"])
def test_names_outside_the_allow_list_are_refused(name):
    from tasks.config import check_name

    with pytest.raises(ConfigError, match=r"--name: invalid name"):
        check_name(name, "--name")


@pytest.mark.parametrize("name", ["penguins", "sales_2026.v2", "A-1", "x" * 100])
def test_names_on_the_allow_list_pass(name):
    from tasks.config import check_name

    assert check_name(name, "--name") == name


def test_config_name_is_checked_against_the_allow_list(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: ../../etc\n")
    with pytest.raises(ConfigError, match=r"config file .* is invalid:\n  - name: .*invalid name '\.\./\.\./etc'"):
        load_config(path)


def test_config_path_that_is_a_folder_names_it(tmp_path):
    with pytest.raises(ConfigError, match=rf"config file {tmp_path} is a folder"):
        load_config(tmp_path)


def test_config_that_is_not_utf8_names_the_byte(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes("train:\n  epochs: 5 # café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at position 24\): re-encode it as UTF-8"):
        load_config(path)


def test_recordable_config_keeps_what_was_set_but_not_the_batch(tmp_path):
    from tasks.config import recordable

    cfg = load_config(DATA / "penguins.yaml", ["train.epochs=7"])
    recorded = recordable(cfg)
    assert "name" not in recorded
    assert set(recorded["data"]) == {"slice_columns"}
    assert recorded["train"]["epochs"] == 7
    assert recorded["primary_metric"] == "accuracy"
    assert "auto_promote" not in recorded["promotion"]  # defaults stay defaults
    again = load_config(None, [], base=recorded)
    assert again.gates == cfg.gates
    assert again.promotion == cfg.promotion
    assert again.train == cfg.train
    assert again.data.slice_columns == ("island", "sex")
    assert again.data.path is None
    assert again.data.target is None
