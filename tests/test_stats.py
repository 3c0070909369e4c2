"""Output analysis: t quantiles, batch-means intervals, log histograms."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshsim.stats import (
    ConfidenceInterval,
    LogHistogram,
    batch_means_ci,
    percentiles,
    t_cdf,
    t_quantile,
)

# ----------------------------------------------------------------------------- Student t


@pytest.mark.parametrize(
    "p, df, expected",
    [
        # published two-sided 95% / 99% critical values (standard t tables)
        (0.975, 1, 12.7062),
        (0.975, 2, 4.3027),
        (0.975, 9, 2.2622),
        (0.975, 19, 2.0930),
        (0.975, 30, 2.0423),
        (0.975, 1000, 1.9623),
        (0.995, 4, 4.6041),
        (0.995, 19, 2.8609),
        (0.95, 5, 2.0150),
        (0.9995, 1, 636.6192),
        (0.9995, 10, 4.5869),
        (0.90, 120, 1.2886),
    ],
)
def test_t_quantile_table_values(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-4)
    assert t_quantile(1 - p, df) == pytest.approx(-expected, abs=1e-4)


@pytest.mark.parametrize("p", [0.51, 0.6, 0.75, 0.9, 0.975, 0.999, 0.999999])
def test_t_quantile_closed_forms_df1_df2(p):
    # df = 1 is Cauchy: tan(pi (p - 1/2)); df = 2: (2p - 1) / sqrt(2 p (1 - p))
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)


def test_t_quantile_large_df_tends_to_normal():
    z = 1.959963984540054  # standard normal 0.975 quantile
    assert t_quantile(0.975, math.inf) == pytest.approx(z, abs=1e-9)
    # Cornish-Fisher: t ~ z + (z^3 + z) / (4 df)
    for df in (1e4, 1e6):
        assert t_quantile(0.975, df) == pytest.approx(z + (z**3 + z) / (4 * df), abs=1e-7)
    assert t_quantile(0.5, 7) == 0.0


def test_t_cdf_values():
    assert t_cdf(0.0, 5) == 0.5
    assert t_cdf(1.0, 1) == pytest.approx(0.75, abs=1e-12)  # Cauchy: 1/2 + atan(1)/pi
    assert t_cdf(-2.0, 2) == pytest.approx(0.5 * (1 - 2 / math.sqrt(6)), abs=1e-12)
    assert t_cdf(2.0, math.inf) == pytest.approx(0.5 * math.erfc(-2 / math.sqrt(2)), abs=1e-15)


@pytest.mark.parametrize("bad_p", [0.0, 1.0, -0.2, 1.2, math.nan])
def test_t_quantile_rejects_bad_p(bad_p):
    with pytest.raises(ValueError):
        t_quantile(bad_p, 5)


def test_t_quantile_rejects_bad_df():
    for df in (0, -1, math.nan):
        with pytest.raises(ValueError):
            t_quantile(0.9, df)


@settings(max_examples=80, deadline=None)
@given(p=st.floats(0.001, 0.999), df=st.floats(1.0, 500.0))
def test_t_quantile_inverts_cdf_and_is_monotone(p, df):
    t = t_quantile(p, df)
    assert t_cdf(t, df) == pytest.approx(p, abs=1e-10)
    # heavier tails with fewer degrees of freedom
    if p > 0.5:
        assert t_quantile(p, df) <= t_quantile(p, df / 2) + 1e-12
        assert t >= t_quantile(p, math.inf) - 1e-12


# ----------------------------------------------------------------------------- batch means


def test_batch_means_exact_values():
    x = np.arange(100.0)
    ci = batch_means_ci(x, batches=4, confidence=0.95)
    # batch means 12, 37, 62, 87: sd = 25 sqrt(5/3); t(0.975, 3) = 3.18245
    half = 3.182446305284263 * 25 * math.sqrt(5 / 3) / 2
    assert ci.mean == pytest.approx(49.5)
    assert ci.half_width == pytest.approx(half, rel=1e-9)
    assert (ci.low, ci.high) == pytest.approx((49.5 - half, 49.5 + half))
    assert (ci.batches, ci.n) == (4, 100)


def test_batch_means_drops_the_tail_remainder():
    # 23 values into 5 batches of 4: the last 3 (the huge ones) are dropped
    x = np.concatenate([np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], 4), [1e6, 1e6, 1e6]])
    ci = batch_means_ci(x, batches=5)
    assert ci.n == 20
    assert ci.mean == pytest.approx(3.0)
    assert ci.half_width == pytest.approx(t_quantile(0.975, 4) * math.sqrt(2.5) / math.sqrt(5), rel=1e-12)


def test_batch_means_too_few_values_gives_nan_half_width():
    ci = batch_means_ci(np.arange(39.0), batches=20)
    assert ci.mean == pytest.approx(19.0)
    assert math.isnan(ci.half_width) and math.isnan(ci.low) and math.isnan(ci.high)
    assert not math.isnan(batch_means_ci(np.arange(40.0), batches=20).half_width)
    assert math.isnan(batch_means_ci([], batches=20).mean)


def test_batch_means_validation():
    with pytest.raises(ValueError, match="batches"):
        batch_means_ci(np.ones(100), batches=1)
    with pytest.raises(ValueError, match="batches"):
        batch_means_ci(np.ones(100), batches=0)
    with pytest.raises(ValueError, match="confidence"):
        batch_means_ci(np.ones(100), confidence=1.0)
    with pytest.raises(ValueError):
        batch_means_ci(np.ones((10, 10)))


def test_batch_means_coverage_iid_normal():
    rng = np.random.default_rng(12345)
    hits = 0
    widths = []
    for _ in range(400):
        x = rng.normal(5.0, 2.0, 1000)
        ci = batch_means_ci(x, batches=20, confidence=0.95)
        hits += ci.low <= 5.0 <= ci.high
        widths.append(ci.half_width)
    assert 0.92 <= hits / 400 <= 0.98
    # mean half width ~ t(0.975,19) * E[sd] / sqrt(20) with sd of a batch mean = 2/sqrt(50)
    assert np.mean(widths) == pytest.approx(2.093 * (2 / math.sqrt(50)) / math.sqrt(20), rel=0.05)


def test_batch_means_handles_correlated_output():
    # moving average of 25 iid normals: strongly correlated; a naive iid interval under-covers
    rng = np.random.default_rng(99)
    kernel = np.ones(25) / 25
    naive_hits = batch_hits = 0
    reps = 200
    for _ in range(reps):
        x = np.convolve(rng.normal(0.0, 1.0, 10_024), kernel, mode="valid")  # mean 0
        ci = batch_means_ci(x, batches=20)
        batch_hits += ci.low <= 0.0 <= ci.high
        naive_half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)
        naive_hits += abs(x.mean()) <= naive_half
    assert naive_hits / reps < 0.5
    assert 0.90 <= batch_hits / reps <= 0.99


def test_confidence_interval_relative_half_width():
    assert ConfidenceInterval(4.0, 1.0, 3.0, 5.0, 20, 100).relative_half_width == 0.25
    assert math.isnan(ConfidenceInterval(0.0, 1.0, -1.0, 1.0, 20, 100).relative_half_width)


# ----------------------------------------------------------------------------- LogHistogram


def _exact_lower(x: np.ndarray, q: float) -> float:
    return float(np.sort(x)[math.floor(q * (x.size - 1))])


def test_quantiles_of_exponential_within_one_percent():
    rng = np.random.default_rng(2024)
    x = rng.exponential(25.0, 100_000)  # e.g. latencies in ms
    h = LogHistogram(relative_error=0.01, min_value=1e-3)
    for v in x[:50_000].tolist():
        h.add(v)
    h.add_many(x[50_000:])
    qs = [0.5, 0.9, 0.99, 0.999]
    est = h.quantiles(qs)
    exact = np.quantile(x, qs)
    for q, e, t in zip(qs, est, exact):
        assert abs(e - t) <= 0.01 * t, q
        assert h.quantile(q) == e
    assert h.count == 100_000
    assert h.sum == pytest.approx(float(x.sum()), rel=1e-12)
    assert h.mean == pytest.approx(float(x.mean()), rel=1e-12)
    assert (h.min, h.max) == (float(x.min()), float(x.max()))
    assert h.quantile(0.0) == h.min and h.quantile(1.0) == h.max


def test_bucket_index_and_representative():
    h = LogHistogram(relative_error=0.05, min_value=1.0)
    g = 1.05 / 0.95
    assert h.gamma == pytest.approx(g)
    h.add(g**3 * 0.999)  # inside bucket 3 = (g^2, g^3]
    assert h.to_dict()["buckets"] == [[3, 1]]
    h2 = LogHistogram(relative_error=0.05, min_value=1.0)
    for v in (g**2 * 1.0001, g**2.5, g**3 * 0.9999):
        h2.add(v)
    assert h2.quantile(0.5) == pytest.approx(2 * g**3 / (g + 1), rel=1e-12)


def test_zero_bucket():
    h = LogHistogram(relative_error=0.01, min_value=1e-3)
    h.add_many([0.0, 0.0, 5e-4, 1e-3, 10.0])
    d = h.to_dict()
    assert d["zero_count"] == 4
    assert h.quantile(0.5) == 0.0  # values <= min_value are reported as 0 (abs error <= min_value)
    assert h.quantile(1.0) == 10.0
    only_small = LogHistogram(min_value=1e-3)
    only_small.add(5e-4)
    assert only_small.quantile(0.5) == 5e-4  # clamped to the exact [min, max]


def test_rejects_negative_and_nan():
    h = LogHistogram()
    with pytest.raises(ValueError):
        h.add(-1.0)
    with pytest.raises(ValueError):
        h.add(math.nan)
    with pytest.raises(ValueError):
        h.add_many([1.0, -2.0])
    with pytest.raises(ValueError):
        h.add_many([1.0, math.inf])
    assert h.count == 0
    with pytest.raises(ValueError):
        h.quantile(1.5)
    with pytest.raises(ValueError):
        LogHistogram(relative_error=0.0)
    with pytest.raises(ValueError):
        LogHistogram(min_value=0.0)


def test_empty_histogram():
    h = LogHistogram()
    assert h.count == 0 and h.sum == 0.0
    assert math.isnan(h.mean) and math.isnan(h.min) and math.isnan(h.max)
    assert math.isnan(h.quantile(0.5))
    assert h.num_buckets == 0


def test_merge_equals_adding_all():
    rng = np.random.default_rng(5)
    parts = [rng.lognormal(2.0, 1.5, 20_000), rng.exponential(3.0, 5_000), np.zeros(100)]
    merged = LogHistogram()
    for p in parts:
        h = LogHistogram()
        h.add_many(p)
        merged.merge(h)
    allh = LogHistogram()
    allh.add_many(np.concatenate(parts))
    a, b = merged.to_dict(), allh.to_dict()
    assert a["buckets"] == b["buckets"]
    assert (a["count"], a["zero_count"], a["min"], a["max"]) == (b["count"], b["zero_count"], b["min"], b["max"])
    assert a["sum"] == pytest.approx(b["sum"], rel=1e-12)
    assert merged.quantiles([0.1, 0.5, 0.99]) == allh.quantiles([0.1, 0.5, 0.99])
    with pytest.raises(ValueError, match="different parameters"):
        merged.merge(LogHistogram(relative_error=0.02))


def test_add_and_add_many_agree():
    x = np.random.default_rng(8).pareto(1.5, 20_000) * 10
    a, b = LogHistogram(), LogHistogram()
    for v in x.tolist():
        a.add(v)
    b.add_many(x)
    assert a.to_dict()["buckets"] == b.to_dict()["buckets"]


def test_memory_bounded_regardless_of_count():
    rng = np.random.default_rng(3)
    h = LogHistogram(relative_error=0.01, min_value=1e-3)
    # log-uniform over 1e-3 .. 1e7, in several rounds: bucket count must stop growing
    sizes = []
    for _ in range(5):
        h.add_many(10 ** rng.uniform(-3, 7, 200_000))
        sizes.append(h.num_buckets)
    # ln(1e10) / ln(gamma) = 1151 buckets cover the whole range
    expected = math.ceil(math.log(1e10) / math.log(h.gamma))
    assert sizes[-1] < 2000
    assert sizes[-1] <= expected + 1
    assert sizes[0] == sizes[-1]
    assert h.count == 1_000_000


def test_to_dict_round_trip_through_json():
    h = LogHistogram(relative_error=0.02, min_value=0.01)
    h.add_many([0.0, 0.5, 3.0, 3.1, 700.0])
    d = json.loads(json.dumps(h.to_dict()))
    back = LogHistogram.from_dict(d)
    assert back.to_dict() == h.to_dict()
    assert back.quantiles([0.25, 0.5, 0.75]) == h.quantiles([0.25, 0.5, 0.75])
    back.add(4.0)
    assert back.count == 6 and h.count == 5
    bad = dict(d, count=99)
    with pytest.raises(ValueError):
        LogHistogram.from_dict(bad)
    empty = LogHistogram.from_dict(LogHistogram().to_dict())
    assert empty.count == 0 and math.isnan(empty.max)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.floats(min_value=2e-3, max_value=1e9), min_size=1, max_size=300),
    q=st.floats(0.0, 1.0),
    err=st.sampled_from([0.005, 0.01, 0.05]),
)
def test_quantile_within_relative_error_of_order_statistic(values, q, err):
    h = LogHistogram(relative_error=err, min_value=1e-3)
    for v in values:
        h.add(v)
    x = np.asarray(values)
    exact = _exact_lower(x, q)
    assert abs(h.quantile(q) - exact) <= err * exact * (1 + 1e-9)


# ----------------------------------------------------------------------------- percentiles


def test_percentiles_match_numpy_linear():
    x = np.arange(1.0, 11.0)  # 1..10
    res = percentiles(x)
    assert list(res) == [50, 90, 99, 99.9]
    assert res[50] == 5.5
    assert res[90] == pytest.approx(9.1)
    assert res[99] == pytest.approx(9.91)
    assert res[99.9] == pytest.approx(9.991)
    assert percentiles([3.0], qs=(0, 100)) == {0: 3.0, 100: 3.0}
    assert all(math.isnan(v) for v in percentiles([]).values())
    with pytest.raises(ValueError):
        percentiles(x, qs=(0.5, 101))
