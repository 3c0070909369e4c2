"""Envoy's and Istio's resilience mechanisms (meshsim.core.resilience) against their source.

Reference rules and numbers come from Envoy's source (backoff_strategy.cc,
retry_state_impl.cc, router.cc, resource_manager_impl.h,
outlier_detection_impl.cc, conn_pool_base.cc), its API protos
(route_components.proto, circuit_breaker.proto, outlier_detection.proto,
protocol.proto) and docs (router filter, HTTP routing "Retry semantics" and
"Request hedging", circuit breaking), and from Istio's pilot
(route/retry/retry.go ``DefaultPolicy``, cluster_traffic_policy.go).  Where
Envoy's docs and code disagree the code wins and the test says so.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshsim.core.resilience import (
    BREAKER_KINDS,
    DEFAULT_IDLE_TIMEOUT_MS,
    OUTCOMES,
    UINT32_MAX,
    BreakerLimits,
    CircuitBreaker,
    HedgePolicy,
    OutlierConfig,
    OutlierDetector,
    RetryBudget,
    RetryPolicy,
    Timeouts,
    backoff_interval_ms,
    outlier_status,
    profile,
    response_action,
)

RESETS = ["connect-failure", "refused-stream", "reset", "per-try-timeout"]


# --------------------------------------------------------------------------- backoff


def test_backoff_intervals_double_from_base_to_cap():
    # JitteredExponentialBackOffStrategy: next = 2 * current while current < max / 2, else max
    assert [backoff_interval_ms(k) for k in range(1, 9)] == [25, 50, 100, 200, 250, 250, 250, 250]
    assert backoff_interval_ms(1000) == 250
    assert [backoff_interval_ms(k, 10, 1000) for k in range(1, 10)] == [10, 20, 40, 80, 160, 320, 640, 1000, 1000]
    # the corner the min(base * 2**k, max) shortcut misses: 200 is not below 250 // 2, so jump to max
    assert [backoff_interval_ms(k, 200, 250) for k in (1, 2, 3)] == [200, 250, 250]
    assert [backoff_interval_ms(k, 30, 30) for k in (1, 2)] == [30, 30]


def test_backoff_code_not_docs():
    """The router docs give [0, (2^N - 1) * base): 0-24, 0-74, 0-174 ms.  The code gives 0-24, 0-49, 0-99."""
    p = RetryPolicy(retry_on="5xx", num_retries=5)
    rng = np.random.default_rng(7)
    for attempt, bound in ((1, 25), (2, 50), (3, 100)):
        draws = [p.backoff_ms(attempt, rng) for _ in range(3000)]
        assert max(draws) == bound - 1 and min(draws) == 0


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 8])
def test_backoff_mean_is_half_the_interval(attempt):
    """Full jitter: uniform integers in [0, interval), mean (interval - 1) / 2, about half the cap."""
    p = RetryPolicy(retry_on="5xx", num_retries=10)
    interval = p.backoff_interval_ms(attempt)
    rng = np.random.default_rng(100 + attempt)
    draws = np.array([p.backoff_ms(attempt, rng) for _ in range(20_000)])
    expected = (interval - 1) / 2
    sd = math.sqrt((interval**2 - 1) / 12)
    assert abs(draws.mean() - expected) < 4 * sd / math.sqrt(len(draws))
    assert abs(draws.mean() - interval / 2) < 0.02 * interval + 0.5
    assert draws.dtype.kind == "i" and draws.min() >= 0 and draws.max() <= interval - 1
    counts = np.bincount(draws, minlength=interval)
    assert len(counts) == interval and counts.min() > 0  # every value in range is reachable


def test_backoff_capped_at_250_ms_by_default():
    p = RetryPolicy(retry_on="5xx", num_retries=100)
    assert p.max_interval_ms == 250
    rng = np.random.default_rng(1)
    draws = [p.backoff_ms(a, rng) for a in range(5, 100) for _ in range(50)]
    assert max(draws) == 249 and min(draws) == 0


def test_backoff_custom_base_caps_at_ten_times():
    p = RetryPolicy(retry_on="5xx", base_interval_ms=100)
    assert p.max_interval_ms == 1000
    assert RetryPolicy(base_interval_ms=100, max_interval_ms=150).backoff_interval_ms(5) == 150


@settings(max_examples=200, deadline=None)
@given(
    base=st.integers(1, 500),
    extra=st.integers(0, 5000),
    attempt=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_backoff_always_within_zero_and_cap(base, extra, attempt, seed):
    cap = base + extra
    interval = backoff_interval_ms(attempt, base, cap)
    assert base <= interval <= cap
    assert interval == cap or interval == base * 2 ** (attempt - 1)
    d = RetryPolicy(base_interval_ms=base, max_interval_ms=cap).backoff_ms(attempt, np.random.default_rng(seed))
    assert isinstance(d, int) and 0 <= d < interval <= cap


# --------------------------------------------------------------------------- retry conditions


def _retried(policy: RetryPolicy, outcomes) -> set:
    return {o for o in outcomes if policy.is_retriable(o)}


ALL = [200, 404, 409, 429, 500, 501, 502, 503, 504, 599, *RESETS, "overflow"]


@pytest.mark.parametrize(
    "retry_on, expected",
    [
        # wouldRetryFromHeaders / wouldRetryFromReset in retry_state_impl.cc
        ("5xx", {500, 501, 502, 503, 504, 599, *RESETS}),
        ("gateway-error", {502, 503, 504, *RESETS}),
        ("reset", set(RESETS)),
        ("connect-failure", {"connect-failure"}),
        ("refused-stream", {"refused-stream"}),
        ("reset-before-request", {"connect-failure"}),
        ("retriable-4xx", {409}),
        ("retriable-status-codes", set()),
        ("", set()),
    ],
)
def test_retry_conditions(retry_on, expected):
    assert _retried(RetryPolicy(retry_on=retry_on), ALL) == expected


def test_retriable_status_codes_and_grpc():
    p = RetryPolicy(retry_on="retriable-status-codes,unavailable", retriable_status_codes={503, 429})
    assert _retried(p, ALL) == {429, 503}
    assert p.is_retriable(200, grpc_status=14) and not p.is_retriable(200, grpc_status=13)
    assert RetryPolicy(retry_on="internal").is_retriable(200, grpc_status=13)


def test_overflow_is_never_retried():
    p = RetryPolicy(retry_on="5xx,gateway-error,reset,connect-failure,refused-stream,retriable-status-codes")
    assert not p.should_retry("overflow", 1)


def test_num_retries_counts_attempts():
    assert RetryPolicy().num_retries == 1  # Envoy default once a policy exists
    p = RetryPolicy(retry_on="5xx")
    assert [p.should_retry(503, a) for a in (1, 2)] == [True, False]
    p3 = RetryPolicy(retry_on="5xx", num_retries=3)
    assert [p3.should_retry(500, a) for a in range(1, 6)] == [True, True, True, False, False]
    assert not RetryPolicy(retry_on="5xx", num_retries=0).should_retry(500, 1)


def test_hedged_retry_ignores_conditions_but_not_the_count():
    p = RetryPolicy(retry_on="connect-failure", num_retries=1)
    assert p.can_hedge(1) and not p.can_hedge(2)
    assert not p.is_retriable("per-try-timeout")  # a non-hedged per-try timeout would not be retried


def test_retry_on_string_parsing():
    p = RetryPolicy(retry_on=" 5xx , reset,,")
    assert p.retry_on == frozenset({"5xx", "reset"})
    assert RetryPolicy(retry_on=["gateway-error"]).retry_on == frozenset({"gateway-error"})


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_retries": -1}, "num_retries"),
        ({"num_retries": 1.5}, "num_retries"),
        ({"retry_on": "5xx,sometimes"}, "retry_on"),
        ({"base_interval_ms": 0}, "base_interval_ms"),
        ({"base_interval_ms": 2.5}, "base_interval_ms"),
        ({"max_interval_ms": 10}, "max_interval_ms"),
        ({"per_try_timeout_ms": -5}, "per_try_timeout_ms"),
        ({"per_try_timeout_ms": "1s"}, "per_try_timeout_ms"),
        ({"retriable_status_codes": {700}}, "retriable_status_codes"),
        ({"host_selection_max_attempts": 0}, "host_selection_max_attempts"),
    ],
)
def test_retry_policy_bad_configs(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RetryPolicy(**kwargs)


def test_bad_outcomes_and_attempts():
    p = RetryPolicy(retry_on="5xx")
    with pytest.raises(ValueError, match="outcome"):
        p.is_retriable("timeout")
    with pytest.raises(ValueError, match="outcome"):
        p.is_retriable(42)
    with pytest.raises(ValueError, match="attempt"):
        p.should_retry(503, 0)
    assert set(OUTCOMES) == {*RESETS, "overflow"}


# --------------------------------------------------------------------------- profiles


def test_profile_envoy():
    e = profile("envoy")
    assert e.retry == RetryPolicy() and e.retry.retry_on == frozenset()
    assert not any(e.retry.should_retry(o, 1) for o in ALL)  # no retry policy: no retries
    assert (e.retry.base_interval_ms, e.retry.max_interval_ms) == (25, 250)
    assert e.timeouts == Timeouts(15_000.0, None)
    assert e.breaker == BreakerLimits(1024, 1024, 1024, 3, None)
    assert e.outlier == OutlierConfig()
    assert e.hedge == HedgePolicy(False, 1, 0.0)
    assert e.idle_timeout_ms == DEFAULT_IDLE_TIMEOUT_MS == 3_600_000


def test_profile_istio():
    i = profile("istio-1.20")  # the default that still retries 503; 1.24+ in tests/test_istio_versions.py
    r = i.retry
    assert r.num_retries == 2
    assert r.retry_on == {"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"}
    assert r.retriable_status_codes == {503}
    assert (r.retry_previous_hosts, r.host_selection_max_attempts, r.per_try_timeout_ms) == (True, 5, None)
    assert _retried(r, ALL) == {503, "connect-failure", "refused-stream"}
    assert r.is_retriable(200, grpc_status=1) and r.is_retriable(200, grpc_status=14)
    assert [r.should_retry(503, a) for a in (1, 2, 3)] == [True, True, False]  # 3 attempts in all
    assert (r.base_interval_ms, r.max_interval_ms) == (25, 250)
    assert i.timeouts == Timeouts(None, None)
    assert i.breaker == BreakerLimits(UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX)
    assert UINT32_MAX == 4_294_967_295
    assert i.outlier.enforcing_success_rate == 0
    assert i.outlier.consecutive_5xx == 5 and i.outlier.max_ejection_percent == 10


def test_unknown_profile():
    for fn in (profile, RetryPolicy.profile, Timeouts.profile, BreakerLimits.profile, OutlierConfig.profile):
        with pytest.raises(ValueError, match="name"):
            fn("linkerd")


# --------------------------------------------------------------------------- timeouts


def test_timeouts():
    t = Timeouts(per_try_timeout_ms=1000)
    assert t.route_timeout_ms == 15_000 and t.effective_per_try_ms == 1000
    assert t.attempt_deadline_ms(0, 0) == 1000
    assert t.attempt_deadline_ms(0, 14_500) == 15_000  # retries stay inside the route timeout
    assert t.request_deadline_ms(100) == 15_100
    # a per-try timeout >= the route timeout is ignored (router.cc finalTimeout)
    assert Timeouts(2000, 2000).effective_per_try_ms is None
    assert Timeouts(2000, 3000).attempt_deadline_ms(0, 500) == 2000
    # no route timeout (Istio): only the per-try timeout, or nothing
    assert Timeouts(None, 700).attempt_deadline_ms(0, 100) == 800
    assert Timeouts(None, None).attempt_deadline_ms(0, 100) is None
    assert RetryPolicy(per_try_timeout_ms=250).timeouts() == Timeouts(15_000, 250)
    assert Timeouts(0, 0) == Timeouts(None, None)  # Envoy: 0 disables (Istio writes timeout: 0s)
    assert RetryPolicy(per_try_timeout_ms=0).per_try_timeout_ms is None
    with pytest.raises(ValueError, match="route_timeout_ms"):
        Timeouts(-1)
    with pytest.raises(ValueError, match="per_try_timeout_ms"):
        Timeouts(per_try_timeout_ms=float("nan"))


# --------------------------------------------------------------------------- hedging


def test_hedge_policy():
    assert HedgePolicy().on_per_try_timeout() == "reset"
    assert HedgePolicy(hedge_on_per_try_timeout=True).on_per_try_timeout() == "hedge"
    assert HedgePolicy().initial_attempts() == 1
    assert HedgePolicy(initial_requests=2, additional_request_chance=100).initial_attempts() == 3
    rng = np.random.default_rng(5)
    n = [HedgePolicy(additional_request_chance=30).initial_attempts(rng) for _ in range(4000)]
    assert abs(np.mean(n) - 1.3) < 0.03
    with pytest.raises(ValueError, match="rng"):
        HedgePolicy(additional_request_chance=30).initial_attempts()
    with pytest.raises(ValueError, match="initial_requests"):
        HedgePolicy(initial_requests=0)
    with pytest.raises(ValueError, match="additional_request_chance"):
        HedgePolicy(additional_request_chance=120)
    with pytest.raises(ValueError, match="hedge_on_per_try_timeout"):
        HedgePolicy(hedge_on_per_try_timeout="yes")


@pytest.mark.parametrize(
    "args, action",
    [
        ((False, True, False, 0), "return"),  # a good response wins
        ((False, True, True, 2), "return"),  # a late good response from the hedged attempt still wins
        ((True, True, False, 0), "retry"),
        ((True, True, False, 1), "retry"),
        ((True, False, False, 0), "return"),  # retries exhausted: the 5xx goes downstream
        ((True, False, False, 1), "discard"),  # ...unless another attempt may still answer
        ((True, True, True, 1), "discard"),  # an attempt that already hedged is never retried again
        ((True, True, True, 0), "return"),
    ],
)
def test_response_action(args, action):
    assert response_action(*args) == action


# --------------------------------------------------------------------------- retry budget


def test_retry_budget_arithmetic():
    b = RetryBudget()
    assert (b.budget_percent, b.min_retry_concurrency) == (20.0, 3)
    assert b.max_retries(10) == 3  # 20% of 10 = 2, but never below 3
    assert b.max_retries(0) == 3
    assert b.max_retries(16) == 3  # 3.2 truncates
    assert b.max_retries(25) == 5
    assert b.max_retries(100) == 20
    assert b.allows(10, 2) and not b.allows(10, 3)
    assert b.allows(100, 19) and not b.allows(100, 20)
    assert RetryBudget(50, 0).max_retries(3) == 1
    assert RetryBudget(0, 0).max_retries(1000) == 0


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"budget_percent": 101}, "budget_percent"),
        ({"budget_percent": -1}, "budget_percent"),
        ({"min_retry_concurrency": -1}, "min_retry_concurrency"),
    ],
)
def test_retry_budget_bad_configs(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RetryBudget(**kwargs)


def test_breaker_with_budget_uses_active_plus_pending():
    cb = CircuitBreaker(BreakerLimits(retry_budget=RetryBudget()))
    assert cb.limit("retries") == 3
    for _ in range(90):
        cb.try_acquire("requests")
    for _ in range(10):
        cb.try_acquire("pending_requests")
    assert cb.limit("retries") == 20  # 20% of 100, replacing max_retries=3
    assert sum(cb.try_acquire("retries") for _ in range(25)) == 20
    assert cb.overflows == {"upstream_rq_retry_overflow": 5}


# --------------------------------------------------------------------------- circuit breaker


def test_breaker_defaults_1024_and_3():
    cb = CircuitBreaker()
    for kind in ("connections", "pending_requests", "requests"):
        assert cb.limit(kind) == 1024
        assert all(cb.try_acquire(kind) for _ in range(1024))
        assert cb.is_open(kind) and cb.remaining(kind) == 0
        assert not cb.try_acquire(kind)
    assert cb.limit("retries") == 3
    assert [cb.try_acquire("retries") for _ in range(4)] == [True, True, True, False]
    assert cb.overflows == {
        "upstream_cx_overflow": 1,
        "upstream_rq_pending_overflow": 2,  # max_requests overflows count here too
        "upstream_rq_retry_overflow": 1,
    }
    cb.release("retries")
    assert cb.try_acquire("retries")
    assert (CircuitBreaker.RESPONSE_STATUS, CircuitBreaker.RESPONSE_FLAG) == (503, "UO")


def test_breaker_release_and_errors():
    cb = CircuitBreaker(BreakerLimits(max_requests=2), priority="high")
    cb.try_acquire("requests")
    cb.try_acquire("requests")
    cb.release("requests", 2)
    assert cb.count("requests") == 0
    with pytest.raises(ValueError, match="release"):
        cb.release("requests")
    with pytest.raises(ValueError, match="kind"):
        cb.try_acquire("streams")
    with pytest.raises(ValueError, match="priority"):
        CircuitBreaker(priority="low")
    with pytest.raises(ValueError, match="max_retries"):
        BreakerLimits(max_retries=-1)
    assert {CircuitBreaker.overflow_reason(k) for k in BREAKER_KINDS} == {
        "upstream_cx_overflow",
        "upstream_rq_pending_overflow",
        "upstream_rq_retry_overflow",
    }


def test_istio_breakers_are_unlimited():
    cb = CircuitBreaker(BreakerLimits.profile("istio"))
    assert all(cb.try_acquire("retries") for _ in range(10_000))
    assert cb.remaining("retries") == UINT32_MAX - 10_000 and not cb.overflows


@settings(max_examples=150, deadline=None)
@given(
    limit=st.integers(0, 6),
    ops=st.lists(st.tuples(st.sampled_from(sorted(BREAKER_KINDS)), st.booleans()), max_size=80),
)
def test_breaker_counters_never_negative_nor_above_limit(limit, ops):
    cb = CircuitBreaker(BreakerLimits(limit, limit, limit, limit))
    refused = 0
    for kind, acquire in ops:
        if acquire:
            refused += not cb.try_acquire(kind)
        elif cb.count(kind):
            cb.release(kind)
        else:
            with pytest.raises(ValueError):
                cb.release(kind)
        for k in BREAKER_KINDS:
            assert 0 <= cb.count(k) <= limit
    assert sum(cb.overflows.values()) == refused


# --------------------------------------------------------------------------- outlier detection


def _fail(od, host, n, t=0.0, code=500):
    return [e for _ in range(n) for e in od.record(host, code, t)]


def test_five_consecutive_5xx_eject():
    od = OutlierDetector([f"h{i}" for i in range(20)])
    assert _fail(od, "h1", 4) == []
    (e,) = _fail(od, "h1", 1, t=3.0)
    assert (e.action, e.host, e.reason, e.time_ms, e.ejection_ms) == ("eject", "h1", "consecutive_5xx", 3.0, 30_000)
    assert od.is_ejected("h1") and od.ejected_hosts() == ["h1"] and od.num_ejections("h1") == 1
    assert od.stats["ejections_enforced_consecutive_5xx"] == 1


def test_a_success_resets_the_count():
    od = OutlierDetector(range(20))
    _fail(od, 0, 4)
    od.record(0, 200, 0.0)
    assert _fail(od, 0, 4) == [] and not od.is_ejected(0)
    od.record(0, True, 0.0)
    assert _fail(od, 0, 4) == []
    assert [e.action for e in _fail(od, 0, 1)] == ["eject"]


def test_gateway_failures_are_detected_but_not_enforced_by_default():
    od = OutlierDetector(range(20))
    events = _fail(od, 0, 5, code=503)
    assert [(e.action, e.reason) for e in events] == [
        ("not_enforced", "consecutive_gateway_failure"),
        ("eject", "consecutive_5xx"),
    ]
    # a non-gateway 5xx resets only the gateway count
    od2 = OutlierDetector(range(20), OutlierConfig(consecutive_5xx=0, enforcing_consecutive_gateway_failure=100))
    _fail(od2, 0, 4, code=502)
    od2.record(0, 500, 0.0)
    assert _fail(od2, 0, 4, code=504) == []
    assert [(e.action, e.reason) for e in _fail(od2, 0, 1, code=504)] == [("eject", "consecutive_gateway_failure")]


def test_local_origin_results_map_to_gateway_codes():
    assert [outlier_status(r) for r in ("connect-failure", "reset", "refused-stream", "per-try-timeout")] == [
        503,
        503,
        503,
        504,
    ]
    od = OutlierDetector(range(20))
    for _ in range(10):
        assert od.record(0, "overflow", 0.0) == []  # a local breaker's overflow is not charged
    assert [e.action for e in _fail(od, 0, 5, code="connect-failure")][-1] == "eject"
    with pytest.raises(ValueError, match="result"):
        outlier_status("timeout")
    with pytest.raises(ValueError, match="host"):
        od.record("nope", 500, 0.0)


def test_unejection_only_at_interval_ticks():
    od = OutlierDetector(range(20))
    _fail(od, 7, 5, t=3_000.0)
    for t in (10_000.0, 20_000.0, 30_000.0):
        assert od.on_interval(t) == [] and od.is_ejected(7)
    od.record(8, 200, 35_000.0)  # no tick: the host stays out past its 30 s
    assert od.is_ejected(7, now_ms=39_999.0)
    (e,) = od.on_interval(40_000.0)
    assert (e.action, e.host, e.time_ms) == ("uneject", 7, 40_000.0)
    assert not od.is_ejected(7) and od.active_ejections == 0


def test_second_ejection_lasts_60_s_then_decays():
    od = OutlierDetector(range(20))
    _fail(od, 1, 5, t=0.0)
    od.on_interval(30_000.0)  # exactly 30 s: due (<=)
    assert not od.is_ejected(1)
    (e,) = _fail(od, 1, 5, t=35_000.0)  # again before the next tick
    assert e.ejection_ms == 60_000 and od.num_ejections(1) == 2
    for t in (40_000.0, 50_000.0, 60_000.0, 70_000.0, 80_000.0, 90_000.0):
        od.on_interval(t)
        assert od.is_ejected(1)
    assert [x.action for x in od.on_interval(100_000.0)] == ["uneject"]  # 65 s after ejection
    # a full healthy interval after returning takes one step off the multiplier
    od.on_interval(110_000.0)
    assert od.ejection_time_ms(1) == 30_000
    (e,) = _fail(od, 1, 5, t=115_000.0)
    assert e.ejection_ms == 60_000  # back up by one: 2 x 30 s
    od.on_interval(180_000.0)
    for t in (190_000.0, 200_000.0):
        od.on_interval(t)
    (e,) = _fail(od, 1, 5, t=205_000.0)
    assert e.ejection_ms == 30_000  # two healthy intervals: down to 0, then 1 x 30 s


def test_ejection_time_capped_at_max_ejection_time():
    od = OutlierDetector(range(20))
    times, t = [], 0.0
    for _ in range(14):
        (e,) = _fail(od, 2, 5, t=t)
        times.append(e.ejection_ms)
        t += e.ejection_ms
        od.on_interval(t)
        assert not od.is_ejected(2)
    assert times[:10] == [30_000.0 * k for k in range(1, 11)]
    assert set(times[9:]) == {300_000.0}  # default max_ejection_time: max(300 s, base)
    assert OutlierConfig(base_ejection_time_ms=400_000).max_ejection_time_ms == 400_000


def test_max_ejection_percent_20_hosts_at_most_2():
    od = OutlierDetector(range(20))
    acts = [e.action for h in range(5) for e in _fail(od, h, 5)]
    assert acts == ["eject", "eject", "overflow", "overflow", "overflow"]
    assert od.ejected_hosts() == [0, 1] and od.stats["ejections_overflow"] == 3
    od.on_interval(30_000.0)
    assert od.ejected_hosts() == []
    assert [e.action for e in _fail(od, 2, 5, t=31_000.0)] == ["eject"]


def test_small_clusters_and_the_at_least_one_rule():
    """Envoy checks 100 * (ejected + 1) / hosts <= max since envoyproxy/envoy#27909 (2023); the old
    "eject at least one host regardless" is the opt-in always_eject_one_host (1.31, #34796)."""
    od = OutlierDetector(range(5))
    assert [e.action for e in _fail(od, 0, 5)] == ["overflow"] and od.ejected_hosts() == []
    od = OutlierDetector(range(5), OutlierConfig(always_eject_one_host=True))
    assert [e.action for h in (0, 1) for e in _fail(od, h, 5)] == ["eject", "overflow"]
    od = OutlierDetector(range(10))  # exactly 10 %: one host
    assert [e.action for h in (0, 1) for e in _fail(od, h, 5)] == ["eject", "overflow"]
    od = OutlierDetector(range(3), OutlierConfig(max_ejection_percent=50))  # issue 26877: 1 of 3, not 2
    assert [e.action for h in (0, 1) for e in _fail(od, h, 5)] == ["eject", "overflow"]


def _traffic(od, volume, failing, t=1.0, every=2):
    """``volume`` requests to every host; host ``failing`` fails one in ``every``."""
    for h in od.hosts:
        for i in range(volume):
            od.record(h, 500 if (h == failing and i % every == 0) else 200, t)


def test_success_rate_ejection_envoy_example():
    # outlier_detection_impl.cc comment: {50, 100, 100, 100, 100} -> mean 90, stdev 20, threshold 52
    od = OutlierDetector(range(5), OutlierConfig(max_ejection_percent=100, consecutive_5xx=0))
    _traffic(od, 100, failing=0)
    (e,) = od.on_interval(10_000.0)
    assert (e.action, e.host, e.reason) == ("eject", 0, "success_rate")


def test_success_rate_needs_volume_and_hosts():
    cfg = OutlierConfig(max_ejection_percent=100, consecutive_5xx=0)
    od = OutlierDetector(range(10), cfg)
    _traffic(od, 99, failing=9)  # below success_rate_request_volume = 100
    assert od.on_interval(10_000.0) == []
    od = OutlierDetector(range(10), cfg)
    _traffic(od, 100, failing=9)
    assert [e.host for e in od.on_interval(10_000.0)] == [9]
    od = OutlierDetector(range(4), cfg)  # fewer than success_rate_minimum_hosts = 5
    _traffic(od, 500, failing=0)
    assert od.on_interval(10_000.0) == []


def test_success_rate_ejection_uses_the_previous_interval():
    od = OutlierDetector(range(10), OutlierConfig(consecutive_5xx=0))
    _traffic(od, 100, failing=3, t=5_000.0)
    # mean 95, population stdev 15, threshold 95 - 1.9 * 15 = 66.5 > 50: eject host 3
    (e,) = od.on_interval(10_000.0)
    assert (e.action, e.host, e.reason, e.ejection_ms) == ("eject", 3, "success_rate", 30_000)
    assert od.on_interval(20_000.0) == []  # the next interval had no traffic


def test_istio_does_not_enforce_success_rate():
    od = OutlierDetector(range(10), OutlierConfig.profile("istio"))
    _traffic(od, 100, failing=3, every=4)
    (e,) = od.on_interval(10_000.0)
    assert (e.action, e.reason) == ("not_enforced", "success_rate") and od.ejected_hosts() == []


def test_failure_percentage():
    cfg = OutlierConfig(consecutive_5xx=0, enforcing_success_rate=0, enforcing_failure_percentage=100)
    od = OutlierDetector(range(10), cfg)
    for h in range(10):
        for i in range(60):
            od.record(h, 500 if (h == 4 and i % 10) else 200, 1.0)  # host 4: 90 % failures >= 85
    # 60 requests: enough for failure percentage (volume 50), not for success rate (100)
    events = od.on_interval(10_000.0)
    assert [(e.action, e.host, e.reason) for e in events] == [("eject", 4, "failure_percentage")]
    od = OutlierDetector(range(10), replace(cfg, enforcing_failure_percentage=0))
    for h in range(10):
        for i in range(60):
            od.record(h, 500 if (h == 4 and i % 10) else 200, 1.0)
    assert [(e.action, e.reason) for e in od.on_interval(10_000.0)] == [("not_enforced", "failure_percentage")]


def test_enforcing_chance_and_jitter_draw_from_rng():
    with pytest.raises(ValueError, match="rng"):
        OutlierDetector(range(20), OutlierConfig(enforcing_consecutive_5xx=50))
    with pytest.raises(ValueError, match="rng"):
        OutlierDetector(range(20), OutlierConfig(max_ejection_time_jitter_ms=1000))
    cfg = OutlierConfig(enforcing_consecutive_5xx=50, max_ejection_percent=100)
    od = OutlierDetector(range(400), cfg, rng=np.random.default_rng(2))
    acts = [e.action for h in range(400) for e in _fail(od, h, 5)]
    assert abs(acts.count("eject") / 400 - 0.5) < 0.1
    od = OutlierDetector(range(20), OutlierConfig(max_ejection_time_jitter_ms=1000), rng=np.random.default_rng(3))
    (e,) = _fail(od, 0, 5)
    assert 30_000 <= e.ejection_ms <= 31_000


def test_host_set_changes():
    od = OutlierDetector(["a", "b"] + [f"x{i}" for i in range(18)])
    _fail(od, "a", 5)
    od.set_hosts(["b"] + [f"x{i}" for i in range(18)] + ["c"])
    assert od.active_ejections == 0 and od.ejected_hosts() == [] and "c" in od.hosts
    with pytest.raises(ValueError, match="host"):
        od.is_ejected("a")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"max_ejection_percent": 101}, "max_ejection_percent"),
        ({"enforcing_consecutive_5xx": -1}, "enforcing_consecutive_5xx"),
        ({"interval_ms": 0}, "interval_ms"),
        ({"base_ejection_time_ms": -30}, "base_ejection_time_ms"),
        ({"max_ejection_time_ms": 10_000}, "max_ejection_time_ms"),
        ({"consecutive_5xx": -1}, "consecutive_5xx"),
        ({"success_rate_stdev_factor": 1.9}, "success_rate_stdev_factor"),
        ({"always_eject_one_host": 1}, "always_eject_one_host"),
    ],
)
def test_outlier_bad_configs(kwargs, name):
    with pytest.raises(ValueError, match=name):
        OutlierConfig(**kwargs)


_op = st.one_of(
    st.tuples(st.just("rec"), st.integers(0, 11), st.sampled_from([200, 500, 502, 503, "connect-failure", "overflow"])),
    st.tuples(st.just("tick"), st.just(0), st.just(0)),
)


@settings(max_examples=120, deadline=None)
@given(
    n=st.integers(1, 12),
    pct=st.integers(0, 100),
    one=st.booleans(),
    threshold=st.integers(1, 3),
    ops=st.lists(_op, max_size=120),
)
def test_ejections_never_exceed_max_percent(n, pct, one, threshold, ops):
    cfg = OutlierConfig(
        consecutive_5xx=threshold,
        consecutive_gateway_failure=threshold,
        enforcing_consecutive_gateway_failure=100,
        max_ejection_percent=pct,
        always_eject_one_host=one,
        interval_ms=1000,
        base_ejection_time_ms=2000,
        success_rate_minimum_hosts=1,
        success_rate_request_volume=1,
    )
    od = OutlierDetector(range(n), cfg)
    bound = max(math.floor(pct * n / 100 + 1e-9), 1 if one else 0)
    t = 0.0
    for kind, host, result in ops:
        t += 250.0
        before = set(od.ejected_hosts())
        if kind == "rec":
            events = od.record(host % n, result, t)
            assert set(od.ejected_hosts()) >= before  # nobody returns outside a tick
        else:
            events = od.on_interval(t)
        ejected = od.ejected_hosts()
        assert len(ejected) == od.active_ejections <= bound
        for e in events:
            assert e.action in ("eject", "uneject", "overflow", "not_enforced")
            if e.action == "eject":
                assert e.host in ejected and e.ejection_ms >= cfg.base_ejection_time_ms


# --------------------------------------------------------------------------- circuit breaker on the request path


@settings(max_examples=150, deadline=None)
@given(
    conns=st.integers(1, 4), pending=st.integers(0, 3), requests=st.integers(1, 6),
    ops=st.lists(st.sampled_from(["admit", "end", "drop", "retry", "retry_end"]), max_size=60),
)
def test_breaker_request_path_methods_keep_envoys_limits(conns, pending, requests, ops):
    """admit / release_request / start_pending: the route's use, checked against a plain model of the queue."""
    cb = CircuitBreaker(BreakerLimits(conns, pending, requests, 2, RetryBudget(50, 1)))
    active = queued = retries = 0
    overflow = pending_overflow = 0
    for op in ops:
        if op == "admit":
            verdict = cb.admit()
            if active >= requests:
                assert verdict == CircuitBreaker.OVERFLOW
                overflow += 1
            elif active >= conns:
                if queued >= pending:
                    assert verdict == CircuitBreaker.PENDING_OVERFLOW
                    pending_overflow += 1
                else:
                    assert verdict == CircuitBreaker.PENDING
                    queued += 1
            else:
                assert verdict == CircuitBreaker.START
                active += 1
        elif op == "end" and active:
            cb.release_request()
            active -= 1
            started = cb.start_pending()
            assert started == (queued > 0 and active < conns)
            if started:
                queued -= 1
                active += 1
        elif op == "drop" and queued:
            cb.drop_pending()
            queued -= 1
        elif op == "retry":
            allowed = cb.retry_allowed()
            assert allowed == (retries < max(int(0.5 * (active + queued)), 1))  # the budget replaces max_retries
            assert allowed == cb.can_acquire("retries")
            if allowed:
                cb.acquire_retry()
                retries += 1
        elif op == "retry_end" and retries:
            cb.release_retry()
            retries -= 1
        assert (cb.requests, cb.pending_requests, cb.retries) == (active, queued, retries)
        assert cb.count("requests") == active <= max(conns, 0) and queued <= pending
    assert cb.overflows.get("upstream_rq_pending_overflow", 0) == overflow + pending_overflow
