import numpy as np
import pandas as pd
import pytest

from tasks.data.preprocess import Preprocessor, fit_preprocessor, split_frame
from tasks.data.schema import infer_schema
from tests.support.frames import mixed_table


@pytest.fixture
def fitted():
    frame = mixed_table()
    schema = infer_schema(frame, "label", None)
    return frame, fit_preprocessor(frame, schema)


def test_transform_shapes_and_scaling(fitted):
    frame, pre = fitted
    matrix = pre.transform(frame)
    assert matrix.dtype == np.float32
    assert matrix.shape == (len(frame), len(pre.feature_names))
    amount = matrix[:, pre.feature_names.index("amount")]
    assert abs(amount.mean()) < 1e-5
    assert abs(amount.std() - 1) < 1e-3


def test_json_round_trip_gives_identical_features(fitted, tmp_path):
    frame, pre = fitted
    loaded = Preprocessor.load(pre.save(tmp_path / "pre.json"))
    np.testing.assert_array_equal(loaded.transform(frame), pre.transform(frame))


def test_unknown_category_encodes_as_all_zeros_and_missing_values_are_imputed(fitted):
    frame, pre = fitted
    rows = frame.head(2).copy()
    rows["country"] = ["mars", None]
    rows["amount"] = [np.nan, np.nan]
    matrix = pre.transform(rows)
    onehot = [pre.feature_names.index(f"country={c}") for c in ("de", "fr", "it")]
    assert matrix[:, onehot].sum() == 0
    imputed = matrix[:, pre.feature_names.index("amount")]
    expected = (pre.medians["amount"] - pre.means["amount"]) / pre.stds["amount"]
    np.testing.assert_allclose(imputed, expected, rtol=1e-5)


def test_raw_rows_with_text_typed_numbers_transform_like_numbers(fitted):
    frame, pre = fitted
    as_text = frame.head(5).astype({"amount": "str"})
    np.testing.assert_allclose(pre.transform(as_text), pre.transform(frame.head(5)), rtol=1e-6)


def test_missing_feature_column_raises_naming_it(fitted):
    frame, pre = fitted
    with pytest.raises(KeyError, match="country"):
        pre.transform(frame.drop(columns=["country"]))


def test_split_is_seeded_and_stratified():
    frame = pd.DataFrame({"x": np.arange(1000), "y": ["rare"] * 100 + ["common"] * 900})
    schema = infer_schema(frame.assign(x=np.random.default_rng(1).random(1000)), "y", None)
    first = split_frame(frame, schema, 0.2, 0.25, seed=3)
    again = split_frame(frame, schema, 0.2, 0.25, seed=3)
    other = split_frame(frame, schema, 0.2, 0.25, seed=4)
    assert first.test.index.equals(again.test.index)
    assert not first.test.index.equals(other.test.index)
    assert (first.test["y"] == "rare").mean() == pytest.approx(0.1)
    assert len(first.test) == 200
    assert len(first.validation) == 200
    assert len(first.train) == 600


def test_regression_target_is_standardized_and_decoded_back():
    frame = pd.DataFrame({"x": np.random.default_rng(0).random(100), "y": np.linspace(100, 300, 100)})
    pre = fit_preprocessor(frame, infer_schema(frame, "y", "regression"))
    encoded = pre.encode_target(frame["y"])
    assert abs(encoded.mean()) < 1e-5
    np.testing.assert_allclose(pre.decode_output(encoded.reshape(-1, 1)), frame["y"], rtol=1e-5)


def test_date_columns_become_numeric_parts(fitted):
    _frame, pre = fitted
    assert "signup.hour" in pre.feature_names
    assert "signup.month" in pre.feature_names


def test_split_sizes_follow_scikit_learn_rounding():
    from sklearn.model_selection import train_test_split

    from tasks.data.preprocess import split_sizes

    for rows, test_size, validation_size in [(344, 0.2, 0.2), (21, 0.33, 0.1), (1000, 0.05, 0.5)]:
        rest, test = train_test_split(np.arange(rows), test_size=test_size)
        train, validation = train_test_split(rest, test_size=validation_size)
        assert split_sizes(rows, test_size, validation_size) == {
            "train": len(train),
            "validation": len(validation),
            "test": len(test),
        }


def test_split_sizes_that_leave_no_rows_are_a_config_error_naming_the_settings():
    from tasks.config import ConfigError

    frame = pd.DataFrame({"x": np.arange(50.0), "y": np.linspace(0, 1, 50)})
    schema = infer_schema(frame, "y", "regression")
    with pytest.raises(
        ConfigError,
        match=r"split.test_size=0.99 and split.validation_size=0.2 leave no train and no validation rows out of 50 labelled rows",
    ):
        split_frame(frame, schema, 0.99, 0.2, seed=0)


def test_more_classes_than_the_test_split_holds_is_a_data_rejection():
    from tasks.data.load import DataError

    frame = pd.DataFrame({"x": np.arange(60.0), "y": [f"c{i}" for i in range(20)] * 3})
    schema = infer_schema(frame, "y", "classification")
    with pytest.raises(DataError, match=r"20 classes but the validation split holds only 10 of 60 rows"):
        split_frame(frame, schema, 0.2, 0.2, seed=0)


def test_rows_without_a_usable_label_are_left_out_of_every_split():
    frame = pd.DataFrame({"x": np.arange(100.0), "y": np.r_[np.linspace(0, 1, 96), [np.nan, np.inf, -np.inf, np.nan]]})
    split = split_frame(frame, infer_schema(frame, "y", "regression"), 0.2, 0.2, seed=0)
    assert sum(split.sizes().values()) == 96
    assert all(np.isfinite(part["y"]).all() for part in (split.train, split.validation, split.test))
