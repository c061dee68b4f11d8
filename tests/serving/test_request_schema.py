"""Request parsing and the numpy encoder: same features as the shipped preprocessor, errors that name the field."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.data.preprocess import fit_preprocessor
from tasks.data.schema import infer_schema
from tasks.serving.request_schema import RequestError, RequestSchema
from tests.conftest import DATA

FRAME = pd.read_csv(DATA / "penguins.csv")
PREPROCESSOR = fit_preprocessor(FRAME, infer_schema(FRAME, "species", "classification"))
SCHEMA = RequestSchema(PREPROCESSOR, max_rows=100)
ROW = {
    "island": "Biscoe",
    "bill_length_mm": 45.1,
    "bill_depth_mm": 15.2,
    "flipper_length_mm": 220,
    "body_mass_g": 5000,
    "sex": "male",
    "year": 2008,
}


def numeric_values():
    return st.one_of(st.none(), st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6, allow_nan=False))


def category_values(column: str):
    return st.one_of(st.none(), st.sampled_from(PREPROCESSOR.categories[column]), st.text(max_size=5), st.integers(0, 3))


def records():
    fields = {c: numeric_values() for c in PREPROCESSOR.schema.numeric}
    fields.update({c: category_values(c) for c in PREPROCESSOR.schema.categorical})
    return st.lists(st.fixed_dictionaries(fields), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_the_numpy_encoder_gives_exactly_the_preprocessors_features(rows):
    parsed = SCHEMA.parse(orjson.dumps({"dataframe_records": rows}))
    expected = PREPROCESSOR.transform(pd.DataFrame(rows))
    np.testing.assert_array_equal(SCHEMA.encode(parsed), expected)


def test_the_three_mlflow_formats_read_the_same_rows():
    frame = pd.DataFrame([ROW, {**ROW, "island": "Dream"}])
    bodies = [
        {"dataframe_records": frame.to_dict(orient="records")},
        {"dataframe_split": orjson.loads(frame.to_json(orient="split", index=False))},
        {"inputs": frame.to_dict(orient="list")},
        {"inputs": frame.to_dict(orient="records")},
    ]
    encoded = [SCHEMA.encode(SCHEMA.parse(orjson.dumps(b))) for b in bodies]
    for features in encoded[1:]:
        np.testing.assert_array_equal(features, encoded[0])
    one_row = SCHEMA.parse(orjson.dumps({"inputs": ROW}))
    assert one_row.rows == 1


def test_an_unknown_category_encodes_as_all_zeros():
    parsed = SCHEMA.parse(orjson.dumps({"dataframe_records": [{**ROW, "island": "Atlantis"}]}))
    features = SCHEMA.encode(parsed)
    island = [i for i, n in enumerate(PREPROCESSOR.feature_names) if n.startswith("island=")]
    assert features[0, island].sum() == 0


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"not json", 400, "body"),
        (b"[1, 2]", 400, "body"),
        (b"{}", 400, "body"),
        (b'{"records": []}', 400, "records"),
        (b'{"dataframe_records": []}', 400, "dataframe_records"),
        (b'{"dataframe_records": [1]}', 400, "dataframe_records"),
        (orjson.dumps({"dataframe_records": [{k: v for k, v in ROW.items() if k != "island"}]}), 400, "island"),
        (orjson.dumps({"dataframe_records": [{**ROW, "body_mass_g": "heavy"}]}), 400, "body_mass_g"),
        (orjson.dumps({"dataframe_records": [{**ROW, "body_mass_g": True}]}), 400, "body_mass_g"),
        (orjson.dumps({"dataframe_records": [{**ROW, "sex": ["male"]}]}), 400, "sex"),
        (orjson.dumps({"dataframe_split": {"columns": list(ROW), "data": [[1]]}}), 400, "dataframe_split"),
        (orjson.dumps({"dataframe_split": {"columns": ["island"], "data": [["Dream"]]}}), 400, "bill_length_mm"),
        (orjson.dumps({"dataframe_records": [ROW] * 101}), 413, "dataframe_records"),
    ],
)
def test_bad_requests_are_4xx_naming_the_field(body, status, field):
    with pytest.raises(RequestError) as caught:
        SCHEMA.parse(body)
    assert (caught.value.status, caught.value.field) == (status, field)
    assert field in caught.value.message
