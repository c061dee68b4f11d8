"""Model cards in the registry: what the MLflow UI shows for a version and a registered model.

Unit part: the card and the descriptions as pure markdown (bounded to MLflow's 5,000 characters).
Store part (slow): the real three-version `penguins` registry built by `pmf run` (tests/registry/store.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tasks.registry import lifecycle, model_card, tracking
from tasks.registry.model_card import DESCRIPTION_LIMIT, ModelCardFacts
from tasks.registry.promotion import promote_version
from tasks.registry.promotion_settings import PromotionSettings
from tests.registry.store import NAME

SETTINGS = PromotionSettings(slice_columns=("island", "sex"), champion_margin=0.01)
COLUMNS = ("island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex")


def facts(**changes) -> ModelCardFacts:
    base = {
        "name": "penguins",
        "version": "4",
        "task": "classification",
        "target": "species",
        "input_columns": COLUMNS,
        "classes": ("Adelie", "Chinstrap", "Gentoo"),
        "data_path": "/data/penguins.csv",
        "data_sha256": "ab" * 32,
        "rows": {"rows_train": 240, "rows_validation": 34, "rows_test": 68},
        "suite_version": 2,
        "training": {
            "model": "mlp",
            "hidden_units": [64, 32],
            "dropout": 0.1,
            "epochs": 60,
            "epochs_run": 23,
            "parameters": 3011,
            "learning_rate": 0.005,
            "lr_schedule": "cosine",
            "batch_size": 32,
            "seed": 42,
            "early_stopping_patience": 8,
        },
        "primary_metric": "f1_macro",
        "metrics": {"accuracy": 0.9705882352941176, "f1_macro": 0.96512},
        "gates": [{"name": "f1_macro", "value": 0.96512, "threshold": 0.85, "op": ">=", "passed": True, "severity": "fail"}],
        "slices": [{"column": "island", "value": "Biscoe", "rows": 33, "accuracy": 1.0, "f1_macro": 1.0}],
        "compression": [
            {
                "variant": "keras",
                "metrics": {"f1_macro": 0.965},
                "bytes": 40000,
                "gzip_bytes": 30000,
                "latency_ms_p50": 1.4,
                "passed": None,
                "shipped": False,
                "gate": "baseline",
                "reasons": [],
            },
            {
                "variant": "int8",
                "metrics": {"f1_macro": 0.96},
                "bytes": 6000,
                "gzip_bytes": 3000,
                "latency_ms_p50": 0.005,
                "passed": True,
                "shipped": True,
                "gate": "pass",
                "reasons": ["shipped int8: smallest variant within 1 pp of float32"],
            },
        ],
        "shipped_variant": "int8",
        "shipped_metrics": {"accuracy": 0.9705882352941176, "f1_macro": 0.96},
        "pipeline_run_id": "r" * 32,
        "git_commit": "c0ffee1",
    }
    return ModelCardFacts(**{**base, **changes})


def move(seq: int, alias: str, to: str, came_from: str | None = None, reason: str = "champion gate passed") -> dict:
    return {
        "seq": seq,
        "key": f"pmf.history.{seq:06d}",
        "time": f"2026-11-0{seq}T10:00:00+00:00",
        "actor": "ana",
        "reason": reason,
        "alias": alias,
        "from_version": came_from,
        "to_version": to,
        "forced": False,
        "kind": "promote",
        "metrics": {"accuracy": 0.97},
    }


def test_a_card_says_what_the_pipeline_knew_in_sections_with_rounded_numbers():
    card = model_card.version_card(facts())
    for section in (
        "## Data",
        "## Training",
        "## Metrics (test split)",
        "### Per slice",
        "## Compression",
        "## Promotion",
        "## Load and serve",
        "## Lineage",
    ):
        assert section in card
    assert "ab" * 32 in card
    assert "342 labelled (train 240, validation 34, test 68)" in card
    assert "suite: v2" in card
    assert "MLP, hidden units [64, 32]" in card
    assert "epochs: 23 of 60" in card
    assert "parameters: 3,011" in card
    assert "warm start: no, trained from scratch" in card
    assert "| **f1_macro** | 0.9651 | 0.96 | ✓ >= 0.85 |" in card  # 4 significant digits, the gate beside it
    assert "0.9705882352941176" not in card
    assert "Shipped: **int8**. Why: shipped int8: smallest variant within 1 pp of float32" in card
    assert 'mlflow.pyfunc.load_model("models:/penguins/4")' in card
    assert "pmf serve penguins --version 4" in card


def test_a_huge_model_still_fits_a_description_and_says_where_the_rest_is():
    wide = facts(
        input_columns=tuple(f"pixel_{i}" for i in range(10_000)),
        slices=[{"column": "region", "value": f"r{i}", "rows": 10, "accuracy": 0.5, "f1_macro": 0.5} for i in range(2_000)],
    )
    card = model_card.version_card(wide)
    assert len(card) <= DESCRIPTION_LIMIT
    assert "pixel_39" in card
    assert "pixel_40`" not in card
    assert "and 9,960 more" in card
    assert "more slices not shown here: the whole table is in model_card.md" in card
    whole = model_card.version_card(wide, limit=10_000_000)
    assert whole.count("| region |") == 2_000


def test_the_history_table_is_newest_first_readable_and_bounded():
    records = [move(1, "staging", "1"), move(2, "production", "1"), move(3, "production", "2", "1", "x" * 2000)]
    text = model_card.model_description("penguins", "classification", "species", ("Adelie", "Gentoo"), COLUMNS, records)
    rows = [line for line in text.splitlines() if line.startswith("| 2026")]
    assert rows[0].startswith("| 2026-11-03 10:00 | ana | @production | v1 → v2 |")
    assert rows[-1].startswith("| 2026-11-01 10:00 | ana | @staging | – → v1 |")
    assert "{" not in text
    assert "to_version" not in text
    many = [move(i, "production", str(i), str(i - 1)) for i in range(1, 400)]
    bounded = model_card.model_description("penguins", "classification", "species", ("Adelie",), COLUMNS, many)
    assert len(bounded) <= DESCRIPTION_LIMIT
    assert "`pmf models NAME` lists every one" in bounded
    assert "| v398 → v399 |" in bounded


# ---- the real registry ----------------------------------------------------------------------------


def parent_run(version):
    return tracking.client().get_run(version.run_id)


@pytest.mark.slow
def test_a_version_is_described_by_its_card_and_comes_from_the_pipeline_run(store):
    client = tracking.client()
    version = client.get_model_version(NAME, "3")
    run = parent_run(version)
    assert run.data.tags["pmf.kind"] == "pipeline"  # the source run: the pipeline, not the register stage
    card = version.description
    assert card
    assert len(card) <= DESCRIPTION_LIMIT
    assert version.tags["pmf.data_sha256"] in card
    assert "expectation suite: v1" in card
    assert re.search(r"rows: [\d,]+ labelled \(train \d+, validation \d+, test \d+\)", card)
    assert re.search(r"architecture: MLP, hidden units \[\d+(, \d+)*\]", card)
    assert re.search(r"epochs: \d+ of 8", card)
    primary = re.search(r"\| \*\*(\w+)\*\* \| (0\.\d+) \| (0\.\d+) \| ✓ >= ", card)
    assert primary, card
    evaluate = next(
        r
        for r in client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")
        if r.data.tags.get("pmf.stage") == "evaluate"
    )
    assert float(primary.group(2)) == pytest.approx(evaluate.data.metrics[primary.group(1)], abs=5e-4)
    assert "Shipped: **float32**. Why: " in card
    assert 'mlflow.pyfunc.load_model("models:/penguins/3")' in card
    assert "pmf serve penguins --version 3" in card
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model_card.md", "heldout"} <= artifacts
    whole = Path(client.download_artifacts(run.info.run_id, "model_card.md", str(store)))
    assert whole.read_text() == card  # the penguins card fits: description and artifact are the same text


@pytest.mark.slow
def test_the_logged_model_carries_metrics_params_and_the_tags_follow_one_scheme(store):
    client = tracking.client()
    version = client.get_model_version(NAME, "3")
    assert version.source.startswith("models:/m-")  # a SQL store keeps the link in the source, not model_id
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    assert {"name": NAME, "version": "3"} in json.loads(logged.tags["mlflow.modelVersions"])
    assert logged.source_run_id == version.run_id
    metrics = {m.key: m.value for m in logged.metrics}
    assert {"accuracy", "f1_macro", "bytes", "gzip_bytes", "latency_ms_p50"} <= set(metrics)
    assert logged.params["variant"] == "float32"
    assert logged.params["train.epochs"] == "8"
    assert all(key.startswith("pmf.") for key in version.tags), sorted(version.tags)
    assert len(version.tags["pmf.git_commit"]) >= 7
    assert "git_commit" not in version.tags
    assert version.tags["pmf.prefect_flow_run_id"]


@pytest.mark.slow
def test_the_registered_model_says_what_it_predicts_and_shows_each_promotion(store):
    client = tracking.client()
    description = client.get_registered_model(NAME).description
    assert "`species` (classification into 3 classes: Adelie, Chinstrap, Gentoo)" in description
    assert all(f"`{column}`" in description for column in (*COLUMNS, "year"))
    assert "No alias has moved yet." in description

    assert promote_version(NAME, "1", "production", SETTINGS, reason="first model")["promoted"]
    assert promote_version(NAME, "3", "production", SETTINGS, reason="better")["promoted"]
    lifecycle.rollback(NAME, reason="v3 misbehaves")
    description = client.get_registered_model(NAME).description
    rows = [line for line in description.splitlines() if line.startswith("| 20")]
    assert [row.split(" | ")[2:4] for row in rows] == [
        ["@production", "v3 → v1"],
        ["@production", "v1 → v3"],
        ["@staging", "v1 → v3"],
        ["@production", "– → v1"],
        ["@staging", "– → v1"],
    ]
    assert "v3 misbehaves (rollback)" in rows[0]
    assert "pytest" in rows[0]
    assert '"to_version"' not in description
    card = client.get_model_version(NAME, "3").description
    assert "Aliases now: @candidate, @staging." in card
    assert "| @production | v3 → v1 |" in card
    assert "## Load and serve" in card  # the other sections are kept
    assert "Aliases now: @production." in client.get_model_version(NAME, "1").description
