"""The drift statistics against known distributions and hand-computed values (fast, no tools)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from tasks.monitoring import statistics as st


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_ks_p_value_is_scipys_two_sample_test(rng):
    a, b = rng.normal(size=300), rng.normal(0.2, 1, size=400)
    assert st.ks_p_value(a, b) == pytest.approx(stats.ks_2samp(a, b).pvalue)


def test_ks_identical_samples_do_not_drift_and_shifted_ones_do(rng):
    reference = rng.normal(size=500)
    assert st.ks_p_value(reference, reference) == pytest.approx(1.0)
    assert st.ks_p_value(reference, rng.normal(size=500)) > 0.05
    assert st.ks_p_value(reference, rng.normal(0.5, 1, size=500)) < 0.05


def test_chi2_p_value_is_scipys_test_of_homogeneity_without_empty_buckets():
    reference, current = np.array([50, 30, 20, 0]), np.array([30, 40, 30, 0])
    table = np.array([[50, 30, 20], [30, 40, 30]])
    assert st.chi2_p_value(reference, current) == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)


def test_chi2_hand_checked_two_by_two():
    # [[10, 10], [20, 0]]: expected [[15, 5], [15, 5]]; X2 = 25/15 + 25/5 + 25/15 + 25/5 = 13.33, df 1
    assert st.chi2_p_value(np.array([10, 10]), np.array([20, 0])) == pytest.approx(stats.chi2.sf(40 / 3, 1))


def test_chi2_same_shares_do_not_drift():
    assert st.chi2_p_value(np.array([100, 50, 50, 0]), np.array([200, 100, 100, 0])) == pytest.approx(1.0)


def test_chi2_many_values_of_a_category_the_reference_never_had_drift():
    assert st.chi2_p_value(np.array([100, 50, 0]), np.array([80, 40, 30])) < 1e-6


def test_chi2_without_two_categories_has_no_evidence():
    assert st.chi2_p_value(np.array([100, 0]), np.array([50, 0])) == 1.0
    assert st.chi2_p_value(np.array([100, 10]), np.array([0, 0])) == 1.0


def test_wasserstein_of_a_shift_is_the_shift_in_reference_stds():
    reference = np.array([0.0, 1.0, 2.0, 3.0])
    std = float(reference.std())
    assert st.wasserstein_normalised(reference, reference + 0.5, std) == pytest.approx(0.5 / std)
    assert st.wasserstein_normalised(reference, reference, std) == 0.0


def test_wasserstein_of_a_constant_reference_is_in_the_columns_units():
    assert st.wasserstein_normalised(np.array([3.0, 3.0]), np.array([4.0, 4.0]), 0.0) == pytest.approx(1.0)


def test_jensenshannon_hand_checked():
    # p = (1, 0), q = (0.5, 0.5): m = (0.75, 0.25); JS^2 = (KL(p||m) + KL(q||m)) / 2 in nats
    kl_p = math.log(1 / 0.75)
    kl_q = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert st.jensenshannon_distance(np.array([10, 0]), np.array([5, 5])) == pytest.approx(math.sqrt((kl_p + kl_q) / 2))
    assert st.jensenshannon_distance(np.array([3, 7]), np.array([30, 70])) == pytest.approx(0.0, abs=1e-12)
    assert st.jensenshannon_distance(np.array([1, 0]), np.array([0, 1])) == pytest.approx(math.sqrt(math.log(2)))


def test_jensenshannon_matches_scipy_on_counts():
    reference, current = np.array([5, 3, 2]), np.array([1, 1, 8])
    assert st.jensenshannon_distance(reference, current) == pytest.approx(jensenshannon(reference / 10, current / 10))


def test_psi_hand_checked():
    # shares (0.5, 0.5) -> (0.25, 0.75): (0.25-0.5)ln(0.5) + (0.75-0.5)ln(1.5)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert st.psi(np.array([50, 50]), np.array([25, 75])) == pytest.approx(expected)
    assert st.psi(np.array([10, 20]), np.array([100, 200])) == pytest.approx(0.0)


def test_psi_counts_an_empty_bucket_as_the_floor():
    expected = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - st.PSI_FLOOR) * math.log(0.5 / st.PSI_FLOOR)
    assert st.psi(np.array([10, 0]), np.array([5, 5])) == pytest.approx(expected)


def test_quantile_bins_split_the_reference_into_equal_counts(rng):
    reference = rng.normal(size=1000)
    edges = st.quantile_edges(reference)
    assert len(edges) == 9
    assert st.bin_counts(reference, edges).tolist() == [100] * 10


def test_quantile_bins_merge_on_few_distinct_values():
    edges = st.quantile_edges(np.array([2007.0, 2008.0, 2009.0] * 10))
    assert edges.tolist() == [2007.0, 2008.0, 2009.0]
    assert st.bin_counts(np.array([2006.0, 2007.0, 2008.5, 2010.0]), edges).tolist() == [2, 0, 1, 1]


def test_binned_psi_of_a_shift_is_large_and_of_the_same_distribution_small(rng):
    reference = rng.normal(size=5000)
    edges = st.quantile_edges(reference)
    counts = st.bin_counts(reference, edges)
    assert st.binned_psi(edges, counts, rng.normal(size=5000)) < 0.1
    assert st.binned_psi(edges, counts, rng.normal(1.0, 1, size=5000)) > 0.1


def test_category_counts_put_unknown_values_in_the_last_bucket():
    values = pd.Series(["a", "b", "a", "zebra", "c?"])
    assert st.category_counts(values, ["a", "b"]).tolist() == [2, 1, 2]


@pytest.mark.parametrize(("sizes", "ties"), [((300, 1000), False), ((1000, 300), False), ((50, 5000), True)])
def test_wasserstein_equals_scipys(rng, sizes, ties):
    u, v = rng.normal(size=sizes[0]), rng.normal(0.3, 2, size=sizes[1])
    if ties:
        u, v = np.round(u), np.round(v)
    assert st.wasserstein(u, v) == pytest.approx(stats.wasserstein_distance(u, v), rel=1e-12)


def test_category_counts_of_numbers_read_as_text():
    values = pd.Series([2007, 2008, 2008, 1999]).astype("str")
    assert st.category_counts(values, ["2007", "2008"]).tolist() == [1, 2, 1]
