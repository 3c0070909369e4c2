"""Closed-form queueing results against textbook values and independent checks."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshsim.analytic import (
    QueueMetrics,
    erlang_b,
    erlang_c,
    jackson,
    mg1,
    mm1,
    mmc,
    tandem_mmc,
)

FIELDS = ("utilisation", "p_wait", "mean_wait", "mean_sojourn", "mean_queue_length", "mean_in_system")


def assert_metrics_close(a: QueueMetrics, b: QueueMetrics, rel: float = 1e-12) -> None:
    for f in FIELDS:
        assert getattr(a, f) == pytest.approx(getattr(b, f), rel=rel, abs=1e-15), f


# ----------------------------------------------------------------------------- M/M/1


def test_mm1_reference_values():
    m = mm1(0.5, 1.0)
    assert m.utilisation == 0.5
    assert m.p_wait == 0.5
    assert m.mean_wait == pytest.approx(1.0)
    assert m.mean_sojourn == pytest.approx(2.0)
    assert m.mean_queue_length == pytest.approx(0.5)
    assert m.mean_in_system == pytest.approx(1.0)
    # sojourn ~ Exp(mu - lam) = Exp(0.5): p99 = ln(100) / 0.5
    assert m.sojourn_quantile(0.99) == pytest.approx(9.2103, abs=1e-4)
    assert m.sojourn_quantile(0.5) == pytest.approx(2 * math.log(2), rel=1e-12)
    # P(Wq > t) = rho e^{-(mu-lam) t}: p99 = ln(0.5/0.01)/0.5; no wait below q = 1 - rho
    assert m.wait_quantile(0.99) == pytest.approx(2 * math.log(50), rel=1e-12)
    assert m.wait_quantile(0.3) == 0.0
    assert m.wait_quantile(0.5) == 0.0


def test_mm1_scales_with_time_unit():
    # rates per second vs per millisecond: times scale by 1000, dimensionless results do not
    per_s = mm1(8.0, 10.0)
    per_ms = mm1(0.008, 0.010)
    assert per_ms.mean_sojourn == pytest.approx(1000 * per_s.mean_sojourn, rel=1e-12)
    assert per_ms.mean_in_system == pytest.approx(per_s.mean_in_system, rel=1e-12)
    assert per_ms.sojourn_quantile(0.999) == pytest.approx(1000 * per_s.sojourn_quantile(0.999), rel=1e-9)


@pytest.mark.parametrize(
    "lam, mu, match",
    [
        (1.0, 1.0, "utilisation"),
        (2.0, 1.0, "utilisation"),
        (0.0, 1.0, "lam"),
        (-1.0, 1.0, "lam"),
        (0.5, 0.0, "mu"),
        (0.5, -2.0, "mu"),
        (math.nan, 1.0, "lam"),
        (0.5, math.inf, "mu"),
    ],
)
def test_mm1_rejects_unstable_and_nonpositive(lam, mu, match):
    with pytest.raises(ValueError, match=match):
        mm1(lam, mu)


def test_quantile_level_validated():
    m = mm1(0.5, 1.0)
    for q in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError):
            m.sojourn_quantile(q)
        with pytest.raises(ValueError):
            m.wait_quantile(q)


# ----------------------------------------------------------------------------- Erlang


def test_erlang_b_table_values():
    assert erlang_b(10, 8.0) == pytest.approx(0.1217, abs=5e-5)
    assert erlang_b(10, 8.0) == pytest.approx(0.12166106, abs=1e-8)
    # B(5, 3) = (3^5/5!) / sum_{k<=5} 3^k/k! = 2.025 / 18.4
    assert erlang_b(5, 3.0) == pytest.approx(2.025 / 18.4, rel=1e-12)
    assert erlang_b(1, 2.0) == pytest.approx(2.0 / 3.0, rel=1e-12)  # a / (1 + a)
    assert erlang_b(3, 0.0) == 0.0


def test_erlang_b_large_c_is_stable_and_matches_log_space_formula():
    c, a = 2000, 1950.0
    logs = [k * math.log(a) - math.lgamma(k + 1) for k in range(c + 1)]
    top = max(logs)
    expected = math.exp(logs[c] - top) / sum(math.exp(v - top) for v in logs)
    got = erlang_b(c, a)
    assert math.isfinite(got)
    assert got == pytest.approx(expected, rel=1e-9)


def test_erlang_c_reference_and_mm1_limit():
    assert erlang_c(10, 8.0) == pytest.approx(0.4092, abs=1e-4)
    assert erlang_c(1, 0.7) == pytest.approx(0.7, rel=1e-12)  # M/M/1: C = rho
    # M/M/2 closed form: C = 2 rho^2 / (1 + rho)
    rho = 0.6
    assert erlang_c(2, 2 * rho) == pytest.approx(2 * rho**2 / (1 + rho), rel=1e-12)
    with pytest.raises(ValueError, match="utilisation"):
        erlang_c(4, 4.0)
    with pytest.raises(ValueError):
        erlang_c(0, 0.5)
    with pytest.raises(ValueError):
        erlang_b(3, -1.0)


# ----------------------------------------------------------------------------- M/M/c


def test_mmc_reference_three_mm10_stations():
    m = mmc(8.0, 1.0, 10)  # lambda = 8/s, mu = 1/s -> seconds
    assert m.utilisation == pytest.approx(0.8)
    assert m.p_wait == pytest.approx(0.4092, abs=1e-4)
    assert m.mean_wait == pytest.approx(0.2046, abs=1e-4)
    assert m.mean_sojourn == pytest.approx(1.2046, abs=1e-4)
    assert tandem_mmc(8.0, 1.0, 10, 3) == pytest.approx(3.6138, abs=1e-4)
    # the same in milliseconds: 0.008/ms and 0.001/ms per server
    assert tandem_mmc(0.008, 0.001, 10, 3) == pytest.approx(3613.8, abs=0.1)


@pytest.mark.parametrize("lam, mu", [(0.5, 1.0), (0.9, 1.0), (3.0, 7.5), (0.001, 0.01)])
def test_mmc_with_one_server_equals_mm1(lam, mu):
    a, b = mmc(lam, mu, 1), mm1(lam, mu)
    assert_metrics_close(a, b)
    for q in (0.1, 0.5, 0.9, 0.999):
        assert a.sojourn_quantile(q) == pytest.approx(b.sojourn_quantile(q), rel=1e-12)
        assert a.wait_quantile(q) == pytest.approx(b.wait_quantile(q), rel=1e-12)


def test_mmc_validation_names_the_problem():
    with pytest.raises(ValueError, match="utilisation"):
        mmc(10.0, 1.0, 10)
    with pytest.raises(ValueError, match="c must be an integer"):
        mmc(1.0, 1.0, 0)
    with pytest.raises(ValueError, match="c must be an integer"):
        mmc(1.0, 1.0, 2.5)
    with pytest.raises(ValueError, match="lam"):
        mmc(0.0, 1.0, 2)


def test_mmc_wait_quantile_closed_form():
    m = mmc(8.0, 1.0, 10)
    c_wait = m.p_wait
    q = 0.99
    assert m.wait_quantile(q) == pytest.approx(math.log(c_wait / (1 - q)) / (10 - 8), rel=1e-12)
    assert m.wait_quantile(1 - c_wait - 1e-6) == 0.0
    assert m.wait_cdf(m.wait_quantile(0.95)) == pytest.approx(0.95, abs=1e-12)


@pytest.mark.parametrize("lam, mu, c", [(8.0, 1.0, 10), (2.4, 1.0, 3), (1.0, 1.0, 2), (0.3, 0.2, 4)])
def test_mmc_sojourn_distribution_is_consistent(lam, mu, c):
    m = mmc(lam, mu, c)
    # the quantile inverts the CDF
    for q in (0.01, 0.5, 0.9, 0.99, 0.9999):
        assert m.sojourn_cdf(m.sojourn_quantile(q)) == pytest.approx(q, abs=1e-10)
    # the mean of the distribution is W: integral of the survival function
    hi = m.sojourn_quantile(1 - 1e-14)
    t = np.linspace(0.0, hi, 20_001)
    surv = np.array([1.0 - m.sojourn_cdf(x) for x in t])
    integral = np.trapezoid(surv, t)
    assert integral == pytest.approx(m.mean_sojourn, rel=1e-6)
    # sojourn is at least a service time, so its quantile exceeds that of Exp(mu)
    assert m.sojourn_quantile(0.9) > -math.log(0.1) / mu


def test_mmc_sojourn_quantile_continuous_where_c_mu_minus_lam_equals_mu():
    # c=2, mu=1, lam=1 gives theta = c mu - lam = mu: the CDF's removable singularity
    q = 0.99
    mid = mmc(1.0, 1.0, 2).sojourn_quantile(q)
    def f(lam: float) -> float:
        return mmc(lam, 1.0, 2).sojourn_quantile(q)

    for eps in (1e-12, 1e-9, 1e-6, 1e-4, 1e-2):
        assert f(1.0 - eps) == pytest.approx(mid, abs=10 * eps + 1e-9)
        assert f(1.0 + eps) == pytest.approx(mid, abs=10 * eps + 1e-9)
    # smooth: central-difference slopes agree at different step sizes
    slopes = [(f(1.0 + e) - f(1.0 - e)) / (2 * e) for e in (1e-2, 1e-3, 1e-4)]
    assert slopes[1] == pytest.approx(slopes[2], rel=1e-3)
    assert slopes[0] == pytest.approx(slopes[2], rel=1e-2)
    # no jump where the implementation switches formulas (|theta - mu| = 1e-3 mu)
    for edge in (1.0 - 1e-3, 1.0 + 1e-3):
        assert f(edge * (1 - 1e-9)) == pytest.approx(f(edge * (1 + 1e-9)), abs=1e-7)
    # closed form at theta = mu: P(W>t) = (1-C) e^{-t} + C (1+t) e^{-t}, with C = 1/3
    t = mid
    assert (2 / 3) * math.exp(-t) + (1 / 3) * (1 + t) * math.exp(-t) == pytest.approx(1 - q, rel=1e-9)


def _simulate_mmc(lam: float, mu: float, c: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """FCFS M/M/c by the earliest-free-server recursion (independent of the formulas).

    Returns (waits, sojourns) of the n customers in arrival order.
    """
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / lam, n)).tolist()
    services = rng.exponential(1 / mu, n).tolist()
    free = [0.0] * c  # heap of the times at which each server next becomes free
    waits = np.empty(n)
    for k in range(n):
        a = arrivals[k]
        start = max(a, free[0])
        heapq.heapreplace(free, start + services[k])
        waits[k] = start - a
    return waits, waits + np.asarray(services)


def test_mmc_distributions_match_simulation():
    # rho = 0.7; over several seeds the sampling error is < 2% (sojourn) and < 5% (waits)
    lam, mu, c = 2.1, 1.0, 3
    waits, sojourns = _simulate_mmc(lam, mu, c, 300_000, seed=2024)
    waits, sojourns = waits[20_000:], sojourns[20_000:]
    m = mmc(lam, mu, c)
    assert sojourns.mean() == pytest.approx(m.mean_sojourn, rel=0.03)
    assert waits.mean() == pytest.approx(m.mean_wait, rel=0.05)
    assert np.mean(waits > 0) == pytest.approx(m.p_wait, abs=0.01)  # Erlang C, via PASTA
    for q in (0.5, 0.9, 0.99):
        assert np.quantile(sojourns, q) == pytest.approx(m.sojourn_quantile(q), rel=0.03), q
    for q in (0.9, 0.99):
        assert np.quantile(waits, q) == pytest.approx(m.wait_quantile(q), rel=0.05), q


# ----------------------------------------------------------------------------- M/G/1


def test_mg1_exponential_service_equals_mm1():
    lam, mu = 0.7, 1.3
    g = mg1(lam, 1 / mu, 2 / mu**2)
    assert_metrics_close(g, mm1(lam, mu), rel=1e-12)
    assert g.model == "M/G/1"
    with pytest.raises(NotImplementedError):
        g.sojourn_quantile(0.5)


def test_mg1_deterministic_service_halves_the_wait():
    # M/D/1: Wq = rho E[S] / (2 (1 - rho)); lam = 0.8, S = 1 -> Wq = 2, W = 3, L = 2.4
    d = mg1(0.8, 1.0, 1.0)
    assert d.mean_wait == pytest.approx(2.0)
    assert d.mean_sojourn == pytest.approx(3.0)
    assert d.mean_in_system == pytest.approx(2.4)
    assert d.mean_wait == pytest.approx(mm1(0.8, 1.0).mean_wait / 2)


def test_mg1_validation():
    with pytest.raises(ValueError, match="utilisation"):
        mg1(1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="second_moment"):
        mg1(0.5, 1.0, 0.5)  # E[S^2] < E[S]^2 is impossible
    with pytest.raises(ValueError, match="mean_service"):
        mg1(0.5, 0.0, 1.0)


# ----------------------------------------------------------------------------- Jackson


def test_jackson_tandem_equals_sum_of_stations():
    p = [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    net = jackson([8.0, 0, 0], p, mu=1.0, servers=10)
    np.testing.assert_allclose(net.throughputs, [8.0, 8.0, 8.0], rtol=1e-12)
    np.testing.assert_allclose(net.visit_ratios, [1.0, 1.0, 1.0], rtol=1e-12)
    assert net.mean_sojourn == pytest.approx(tandem_mmc(8.0, 1.0, 10, 3), rel=1e-12)
    assert net.mean_sojourn == pytest.approx(3.6138, abs=1e-4)
    for node in net.nodes:
        assert_metrics_close(node, mmc(8.0, 1.0, 10))


def test_jackson_heterogeneous_tandem():
    net = jackson([1.0, 0.0], [[0.0, 1.0], [0.0, 0.0]], mu=[2.0, 1.5], servers=[1, 2])
    expected = mm1(1.0, 2.0).mean_sojourn + mmc(1.0, 1.5, 2).mean_sojourn
    assert net.mean_sojourn == pytest.approx(expected, rel=1e-12)


def test_jackson_feedback_single_node():
    # gamma = 1, feedback 0.5 -> lambda = 2, rho = 0.5 at mu = 4: node W = 0.5, two visits -> 1.0
    net = jackson([1.0], [[0.5]], [4.0])
    assert net.throughputs[0] == pytest.approx(2.0)
    assert net.visit_ratios[0] == pytest.approx(2.0)
    assert net.nodes[0].utilisation == pytest.approx(0.5)
    assert net.mean_sojourn == pytest.approx(1.0)


def test_jackson_three_node_network_with_loop():
    # 0 -> 1 (0.6) or 2 (0.4); 1 -> 0 (0.5) else out; 2 -> out.
    # lambda0 = 1 + 0.5 * 0.6 lambda0 -> 1/0.7
    p = [[0.0, 0.6, 0.4], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]
    mu = [3.0, 2.0, 1.0]
    net = jackson([1.0, 0.0, 0.0], p, mu, servers=[1, 1, 1])
    lam0 = 1 / 0.7
    lam = [lam0, 0.6 * lam0, 0.4 * lam0]
    np.testing.assert_allclose(net.throughputs, lam, rtol=1e-12)
    w = sum(li / (m - li) for li, m in zip(lam, mu)) / 1.0  # sum L_i / gamma, L = rho/(1-rho)
    assert net.mean_sojourn == pytest.approx(w, rel=1e-12)
    # Little per node and for the network: sum of visits x node W
    assert net.mean_sojourn == pytest.approx(
        sum(v * n.mean_sojourn for v, n in zip(net.visit_ratios, net.nodes)), rel=1e-12
    )
    assert net.mean_in_system == pytest.approx(net.total_arrival_rate * net.mean_sojourn, rel=1e-12)


def test_jackson_node_without_traffic_is_idle():
    net = jackson([1.0, 0.0], [[0.0, 0.0], [0.0, 0.0]], mu=[2.0, 2.0])
    assert net.throughputs[1] == 0.0
    assert net.nodes[1].mean_in_system == 0.0
    assert net.mean_sojourn == pytest.approx(1.0)


def test_jackson_unstable_node_is_named():
    p = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match=r"node 2 is unstable"):
        jackson([1.0, 0.0, 0.0], p, mu=[2.0, 2.0, 1.0])
    with pytest.raises(ValueError, match=r"node 0 is unstable"):
        jackson([1.0], [[0.9]], mu=[5.0])  # lambda = 10 > 5


@pytest.mark.parametrize(
    "arrivals, routing, mu, servers, match",
    [
        ([1.0, 0.0], [[0.0, 1.0]], 2.0, 1, "routing must be a 2x2"),
        ([1.0, 0.0], [[0, 0], [0, 0]], [2.0], 1, "mu must be"),
        ([1.0, 0.0], [[0, 0], [0, 0]], 2.0, [1, 1, 1], "servers must be"),
        ([1.0, 0.0], [[0, 0], [0, 0]], 2.0, [1, 0], "servers must be integers"),
        ([1.0, 0.0], [[0, 0.7], [0.5, 0.6]], 2.0, 1, "row 1 sums"),
        ([1.0, -1.0], [[0, 0], [0, 0]], 2.0, 1, "arrivals"),
        ([0.0, 0.0], [[0, 0], [0, 0]], 2.0, 1, "positive sum"),
        ([[1.0]], [[0.0]], 2.0, 1, "1-D"),
        ([1.0, 0.0], [[0, 1], [1, 0]], 2.0, 1, "singular"),
    ],
)
def test_jackson_validation(arrivals, routing, mu, servers, match):
    with pytest.raises(ValueError, match=match):
        jackson(arrivals, routing, mu, servers)


# ----------------------------------------------------------------------------- properties

rates = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)
loads = st.floats(min_value=0.01, max_value=0.98)


@settings(max_examples=150, deadline=None)
@given(mu=rates, c=st.integers(1, 60), rho=loads)
def test_littles_law_and_identities(mu, c, rho):
    lam = rho * c * mu
    m = mmc(lam, mu, c)
    assert 0.0 <= m.p_wait <= 1.0
    assert m.utilisation == pytest.approx(rho, rel=1e-12)
    assert m.mean_in_system == pytest.approx(lam * m.mean_sojourn, rel=1e-12)
    assert m.mean_queue_length == pytest.approx(lam * m.mean_wait, rel=1e-12)
    assert m.mean_sojourn == pytest.approx(m.mean_wait + 1 / mu, rel=1e-12)
    # L = Lq + offered load (mean number in service)
    assert m.mean_in_system == pytest.approx(m.mean_queue_length + lam / mu, rel=1e-9)
    assert m.mean_wait == pytest.approx(m.p_wait / (c * mu - lam), rel=1e-12)


@settings(max_examples=150, deadline=None)
@given(c=st.integers(1, 200), r1=st.floats(0.001, 0.999), r2=st.floats(0.001, 0.999))
def test_erlang_c_in_unit_interval_and_increasing_in_load(c, r1, r2):
    lo, hi = sorted((r1, r2))
    c_lo, c_hi = erlang_c(c, lo * c), erlang_c(c, hi * c)
    assert 0.0 <= c_lo <= c_hi <= 1.0
    assert erlang_b(c, lo * c) <= c_lo  # waiting is likelier than blocking would be
    if hi - lo > 1e-6:
        assert c_lo < c_hi or c_hi == 0.0


@settings(max_examples=100, deadline=None)
@given(mu=rates, c=st.integers(1, 40), rho=loads)
def test_mmc_mean_sojourn_decreasing_in_servers(mu, c, rho):
    lam = rho * c * mu
    w = [mmc(lam, mu, k).mean_sojourn for k in range(c, c + 4)]
    assert all(a >= b for a, b in zip(w, w[1:]))
    assert all(x >= 1 / mu * (1 - 1e-12) for x in w)


@settings(max_examples=60, deadline=None)
@given(mu=rates, c=st.integers(1, 30), rho=loads, q=st.floats(0.001, 0.999))
def test_sojourn_quantile_inverts_cdf(mu, c, rho, q):
    m = mmc(rho * c * mu, mu, c)
    t = m.sojourn_quantile(q)
    assert t > 0
    assert m.sojourn_cdf(t) == pytest.approx(q, abs=1e-9)
    assert m.sojourn_quantile(min(q + 0.0005, 0.9995)) >= t
