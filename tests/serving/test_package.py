"""What a package's model_meta.json says about the model it holds."""

from __future__ import annotations

import pandas as pd

from tasks.data.schema import infer_schema
from tasks.serving.package import model_meta


def test_model_meta_says_what_the_model_predicts_from_which_columns_and_which_variant_it_is():
    frame = pd.DataFrame({"bill_mm": [40.0, 41.0, 50.0, 51.0], "island": ["a", "b", "a", "b"], "species": ["x", "x", "y", "y"]})
    schema = infer_schema(frame, "species", "classification")
    meta = model_meta("penguins", schema, "int8", {"f1_macro": 0.97}, "f1_macro")
    assert meta == {
        "name": "penguins",
        "task": "classification",
        "target": "species",
        "variant": "int8",
        "input_columns": list(schema.features),
        "classes": ["x", "y"],
        "metrics": {"f1_macro": 0.97},
        "primary_metric": "f1_macro",
    }
    assert set(meta["input_columns"]) == {"bill_mm", "island"}
