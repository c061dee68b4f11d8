"""The drift statistics, as the monitoring tools define them (Evidently's defaults, DECISIONS.md).

Plain numpy/scipy on arrays, no per-row Python. Each function takes what the reference profile
keeps (a sample of raw values, bin edges and counts, category counts) and the current values:
- numbers: `ks_p_value` (two-sample Kolmogorov-Smirnov), `wasserstein_normalised` (the earth mover's
  distance divided by the reference's standard deviation), `binned_psi`;
- categories: `chi2_p_value` (test of homogeneity), `jensenshannon_distance` (natural log, as scipy and Evidently),
  `psi`; current values are first counted against the reference's categories (`category_counts`),
  values the reference never saw going to one "unknown" bucket.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PSI_FLOOR = 0.0001  # an empty bin's share, as Evidently fills it, so PSI's log stays finite
QUANTILE_BINS = 10  # PSI's bins for numbers: the reference's deciles


def ks_p_value(reference: np.ndarray, current: np.ndarray) -> float:
    """The two-sample KS test's p-value (small: the two samples come from different distributions)."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference, current).pvalue)


def chi2_p_value(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Pearson's chi-squared test that both counts come from one distribution (the 2 x k contingency table
    of reference and current over the same buckets, buckets empty in both left out).

    Both are samples: a goodness-of-fit test against the reference's shares, as if they were exact,
    would call a same-distribution batch drifted far more often than its p-value says (at 220
    reference and 200 current rows, ~18 % of the time at p <= 0.05 instead of 5 %)."""
    from scipy.stats import chi2_contingency

    observed = np.vstack([reference_counts, current_counts]).astype(np.float64)
    observed = observed[:, observed.sum(axis=0) > 0]
    if observed.shape[1] < 2 or np.any(observed.sum(axis=1) == 0):
        return 1.0  # one category in all, or an empty side: no evidence of a change
    return float(chi2_contingency(observed, correction=False).pvalue)


def wasserstein_normalised(reference: np.ndarray, current: np.ndarray, reference_std: float) -> float:
    """The Wasserstein-1 distance between the two samples in units of the reference's standard deviation
    (a constant reference: in the column's own units, so any change still shows). Equal to
    `scipy.stats.wasserstein_distance(reference, current) / reference_std`, computed by `wasserstein`."""
    scale = reference_std if reference_std > 0 else 1.0
    return wasserstein(reference, current) / scale


def wasserstein(u: np.ndarray, v: np.ndarray) -> float:
    """W1 = the integral of |F_u - F_v| over the merged sorted values: one sort of each sample and linear
    passes (scipy's version argsorts the concatenation, ~3x slower on a million values). Values that tie
    add nothing (their gap is 0), so the order of equal values in the merge does not matter."""
    u, v = np.sort(u), np.sort(v)
    if len(u) > len(v):
        u, v = v, u  # merge the short sample into the long one; W1 is symmetric
    at = np.searchsorted(v, u, side="left") + np.arange(len(u))  # where u's values land in the merge
    from_u = np.zeros(len(u) + len(v), dtype=bool)
    from_u[at] = True
    merged = np.empty(len(u) + len(v), dtype=np.float64)
    merged[at], merged[~from_u] = u, v
    cdf_u = np.cumsum(from_u)[:-1] / len(u)
    cdf_v = np.cumsum(~from_u)[:-1] / len(v)
    return float(np.sum(np.abs(cdf_u - cdf_v) * np.diff(merged)))


def shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


def jensenshannon_distance(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """The Jensen-Shannon distance (natural log: 0 identical, at most sqrt(ln 2) ~ 0.83 for disjoint)."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(shares(reference_counts), shares(current_counts)))


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index over the same buckets: sum((cur - ref) * ln(cur / ref)) of the shares,
    empty buckets counted as PSI_FLOOR."""
    reference = np.maximum(shares(reference_counts), PSI_FLOOR)
    current = np.maximum(shares(current_counts), PSI_FLOOR)
    return float(np.sum((current - reference) * np.log(current / reference)))


def quantile_edges(values: np.ndarray, bins: int = QUANTILE_BINS) -> np.ndarray:
    """The inner cut points of `bins` equal-frequency bins of `values` (duplicates merged: a column with
    few distinct values gets fewer bins). Bin i holds edges[i-1] < x <= edges[i]; the outer bins are open."""
    if len(values) == 0:
        return np.array([], dtype=np.float64)
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """How many `values` fall in each of the len(edges) + 1 bins `quantile_edges` describes."""
    return np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)


def binned_psi(edges: np.ndarray, reference_counts: np.ndarray, current: np.ndarray) -> float:
    """PSI of current numbers against the reference's histogram on its quantile bins."""
    return psi(reference_counts, bin_counts(current, edges))


def category_counts(values: pd.Series, categories: list[str]) -> np.ndarray:
    """Counts of the non-missing `values` (as text) per reference category, then one bucket for values the
    reference never saw: an array of len(categories) + 1, the unknown bucket last."""
    counts = values.value_counts(dropna=True)
    known = counts.reindex(pd.Index(categories, dtype=counts.index.dtype), fill_value=0).to_numpy(dtype=np.int64)
    return np.append(known, int(counts.sum()) - int(known.sum()))
