"""Declared GX rules that GX cannot build are configuration errors, found before any data is read."""

from __future__ import annotations

import pytest

from tests.conftest import DATA
from tests.flows.helpers import pmf

pytestmark = pytest.mark.component


def all_runs(client) -> list:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments) if experiments else []


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("[{expectation: NoSuchThing}]", "validation.rules[0] (NoSuchThing): unknown Great Expectations expectation"),
        (
            "[{expectation: ExpectColumnValuesToBeBetween, kwargs: {column: body_mass_g, min_value: heavy}}]",
            "validation.rules[0] (ExpectColumnValuesToBeBetween): min_value: value is not a valid float",
        ),
    ],
)
def test_invalid_declared_rule_exits_2_naming_the_rule_and_opens_no_run(mlflow_client, rules, message):
    code, result = pmf("run", "--set", f"validation.rules={rules}")
    assert code == 2
    assert result["status"] == "usage_error"
    assert message in result["error"]
    assert all_runs(mlflow_client) == []


def test_invalid_declared_rule_in_a_config_file_fails_validate_too(mlflow_client, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("validation:\n  rules:\n    - expectation: ExpectColumnValuesToBeInSet\n      kwargs: {value_set: [a]}\n")
    code, result = pmf("validate", "--config", str(config), "--data", str(DATA / "penguins.csv"), "--target", "species")
    assert code == 2
    assert "validation.rules[0] (ExpectColumnValuesToBeInSet): column: field required" in result["error"]
    assert all_runs(mlflow_client) == []
