"""`pmf serve` as a user meets it: a real server process on a socket, serving a real registry."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.registry import lifecycle, tracking
from tasks.registry.promotion import load_heldout, load_verified
from tests.registry.store import NAME, fresh_copy
from tests.support.serving import PENGUIN, Server

pytestmark = pytest.mark.slow

COLUMNS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year", "island", "sex"]


@pytest.fixture(scope="module")
def served(built_store, tmp_path_factory):
    """v1 at @production, served with a 50-row limit; the module's tests share it."""
    with pytest.MonkeyPatch.context() as patch:
        home = fresh_copy(built_store, tmp_path_factory.mktemp("served"), patch)
        patch.delenv("PMF_SERVE_TOKEN", raising=False)
        lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "serve tests")
        server = Server("--max-rows", "50").wait_ready()
        yield server, home
        server.stop()


@pytest.fixture(scope="module")
def heldout(served) -> pd.DataFrame:
    return load_heldout(NAME, "1", Path(tempfile.mkdtemp()))


def test_predictions_match_the_pipeline_in_every_format_and_name_the_version(served, heldout):
    server, _ = served
    model = load_verified(NAME, "1", Path(tempfile.mkdtemp()))
    rows = heldout[COLUMNS].head(20)
    expected = model.predict(rows).tolist()
    split = orjson.loads(rows.to_json(orient="split", index=False))
    records = orjson.loads(rows.to_json(orient="records"))
    for body in ({"dataframe_split": split}, {"dataframe_records": records}, {"inputs": records}):
        status, headers, payload = server.post(body)
        assert status == 200
        assert headers["x-model-version"] == "1"
        assert payload["predictions"] == expected


def test_health_metadata_and_docs(served):
    server, _ = served
    status, _headers, body = server.get("/health")
    assert status == 200
    assert json.loads(body) == {"status": "alive", "model": NAME, "version": "1"}
    assert server.get_json("/ready") == (200, {"status": "ready", "serving": "1", "alias": "production", "alias_points_to": "1"})
    status, _, body = server.get("/metadata")
    meta = json.loads(body)
    assert status == 200
    assert (meta["name"], meta["version"], meta["alias"]) == (NAME, "1", "production")
    assert meta["sha256"] == tracking.client().get_model_version(NAME, "1").tags["pmf.sha256"]
    assert meta["metrics"]["f1_macro"] > 0.5
    assert meta["runtime"]["tensorflow_imported"] is False  # the serving process never loads TensorFlow
    assert server.get("/docs")[0] == 200
    assert "/invocations" in json.loads(server.get("/openapi.json")[2])["paths"]
    assert "auth off" in server.output()


def test_bad_requests_get_4xx_naming_the_field_and_unknown_categories_still_answer(served):
    server, _ = served
    row = {
        "island": "Atlantis",
        "bill_length_mm": 45.0,
        "bill_depth_mm": 15.0,
        "flipper_length_mm": 220,
        "body_mass_g": 5000,
        "sex": None,
        "year": 2008,
    }
    assert server.post({"dataframe_records": [row]})[0] == 200
    status, _, error = server.post({"dataframe_records": [{**row, "flipper_length_mm": "long"}]})
    assert status == 400
    assert error["field"] == "flipper_length_mm"
    status, _, error = server.post({"dataframe_records": [row] * 51})
    assert status == 413
    assert error["field"] == "dataframe_records"


def test_every_prediction_is_logged_without_blocking(served):
    server, home = served
    server.post({"dataframe_records": [PENGUIN]})
    log = home / "predictions" / f"{NAME}.jsonl"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (log.exists() and "Dream" in log.read_text()):
        time.sleep(0.1)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    last = [entry for entry in lines if entry["row"]["island"] == "Dream"][-1]
    assert set(last) == {"ts", "version", "row", "prediction"}
    assert last["version"] == "1"
    assert last["prediction"] in ("Adelie", "Chinstrap", "Gentoo")


def _dumps(value) -> bytes:
    return json.dumps(value).encode()  # the stdlib writes integers of any size, as a careless client may


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELD_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.lists(st.integers(), max_size=2)
)
RECORDS = st.lists(st.dictionaries(st.sampled_from([*COLUMNS, "extra"]), FIELD_VALUES, min_size=5), max_size=4)
BODIES = st.one_of(
    st.binary(max_size=40),
    JSON_VALUES.map(_dumps),
    st.fixed_dictionaries({"dataframe_records": RECORDS}).map(_dumps),
    st.fixed_dictionaries(
        {"inputs": RECORDS | st.dictionaries(st.sampled_from(COLUMNS), st.lists(FIELD_VALUES, max_size=3))}
    ).map(_dumps),
    st.fixed_dictionaries(
        {
            "dataframe_split": st.fixed_dictionaries(
                {
                    "columns": st.lists(st.sampled_from(COLUMNS), max_size=7),
                    "data": st.lists(st.lists(FIELD_VALUES, max_size=7), max_size=3),
                }
            )
        }
    ).map(_dumps),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=BODIES)
def test_fuzzed_bodies_never_5xx_and_every_4xx_names_its_field(served, body):
    server, _ = served
    status, _, payload = server.post(body)
    assert status < 500, payload
    if status >= 400:
        assert payload["field"], payload
        assert payload["field"] in payload["message"], payload
    else:
        assert len(payload["predictions"]) >= 1


def test_a_bearer_token_guards_every_path_but_health_with_one_401_format(served):
    server = Server("--no-prediction-log", env={"PMF_SERVE_TOKEN": "s3cret"}).wait_ready()
    try:
        body = {"inputs": PENGUIN}
        status, headers, error = server.post(body)
        assert status == 401
        assert headers["www-authenticate"] == "Bearer"
        assert set(error) == {"error_code", "message", "field"}
        assert error["field"] == "Authorization"
        for path in ("/docs", "/redoc", "/openapi.json", "/metadata", "/ready", "/ping", "/no-such-page"):
            status, headers, payload = server.get(path)
            assert (status, headers["www-authenticate"], json.loads(payload)) == (401, "Bearer", error), path
            assert server.get(path, {"Authorization": "Bearer wrong"})[0] == 401, path
            assert server.get(path, {"Authorization": "Basic czNjcmV0"})[0] == 401, path
        assert server.post(body, {"Authorization": "Bearer wrong"})[:3:2] == (401, error)
        assert server.post(body, {"Authorization": "Bearer s3cret"})[0] == 200
        for path in ("/docs", "/redoc", "/openapi.json", "/metadata", "/ready"):
            assert server.get(path, {"Authorization": "Bearer s3cret"})[0] == 200, path
        assert server.get("/health")[0] == 200  # liveness probes carry no token
        assert "bearer token required" in server.output()
    finally:
        server.stop()


def test_a_version_whose_file_does_not_match_its_sha256_is_refused(served):
    tracking.client().set_model_version_tag(NAME, "2", "pmf.sha256", "0" * 64)
    server = Server("--version", "2")
    assert server.exit_code() == 1  # a refused model is not a usage error
    assert "SHA-256" in server.output()
    assert "Traceback" not in server.output()
