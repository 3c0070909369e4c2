"""Timeouts, retries, breakers, outlier detection and hedging on the request path (meshsim.sim.router).

Each behaviour is pinned to a number that does not come from the simulator:
an exact identity with a run without the feature, a queueing formula
(Erlang B for a breaker in front of a loss system, Erlang C for requests
pending on a connection limit, the M/M/1/K fixed point of a retry storm), or
the order statistics of independent service times (fan-out and hedging), or
Envoy's documented ejection schedule.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

import meshsim
from meshsim.analytic import erlang_b, mmc
from meshsim.errors import ScenarioError
from meshsim.experiments.failure_modes import (
    fanout_p99_theory,
    fanout_scenario,
    fanout_tail,
    outlier_ejection,
    retry_storm,
    retry_storm_scenario,
    storm_fixed_point,
)


def _one_service(svc: dict, rate: float, duration: str = "60s", mesh: str = "none", **extra) -> dict:
    return {
        "run": {"duration": duration},
        "network": {"enabled": False},
        "metrics": {"warmup": "5s", "spans": False},
        "mesh": {"mode": mesh},
        "services": {"api": svc},
        "workloads": {"w": {"rate": rate, "target": "api"}},
        **extra,
    }


# ---------------------------------------------------------------- retries mask failures


def test_istio_retries_hide_a_crashed_instance_from_clients():
    sc = {
        "run": {"duration": "20s"}, "metrics": {"warmup": "2s"},
        "services": {"api": {"replicas": 3, "workers": 4, "service_time": {"dist": "exponential", "mean": "5ms"}}},
        "workloads": {"w": {"rate": 300, "target": "api"}},
        "faults": [{"action": "crash", "instance": "api-1", "at": "5s", "until": "15s"}],
    }
    plain = meshsim.run(sc, seed=1).summary
    # without a mesh a third of the requests in the crash window are refused...
    assert plain["failed_by_reason"]["connection_refused"] == pytest.approx(10 * 300 / 3, rel=0.05)
    meshed = meshsim.run(dict(sc, mesh={"mode": "sidecar"}), seed=1).summary
    # ... with Istio's default policy (2 retries on connect-failure, other hosts first) almost none fail.
    # Not quite none: Istio balances by least request, and a host that refuses at once always looks idle, so a
    # retry's host choice (5 tries to avoid hosts already tried) can land on it again.
    assert meshed["failed"] <= 0.01 * plain["failed_by_reason"]["connection_refused"]
    r = meshed["resilience"]["api"]
    assert r["retries"] >= plain["failed_by_reason"]["connection_refused"] * 0.95


def test_envoy_without_retry_policy_does_not_retry():
    sc = {
        "run": {"duration": "10s"}, "metrics": {"warmup": "1s"}, "mesh": {"mode": "sidecar", "profile": "envoy"},
        "services": {"api": {"replicas": 2, "service_time": {"dist": "exponential", "mean": "2ms"}}},
        "workloads": {"w": {"rate": 100, "target": "api"}},
        "faults": [{"action": "crash", "instance": "api-0", "at": "2s"}],
    }
    s = meshsim.run(sc, seed=4).summary
    assert s["resilience"]["api"]["retries"] == 0
    assert s["failed_by_reason"]["connection_refused"] == pytest.approx(8 * 100 / 2, rel=0.1)


# ---------------------------------------------------------------- timeouts


def test_route_timeout_fails_exactly_the_requests_that_would_take_longer():
    # no cancellation reaches the server, so the same requests meet the same service times with and
    # without the timeout: the timed-out ones are exactly those slower than it in the plain run
    svc = {"replicas": 2, "workers": 2, "service_time": {"dist": "exponential", "mean": "10ms"}}
    plain = meshsim.run(_one_service(svc, 300, "30s"), seed=5)
    timed = meshsim.run(_one_service(dict(svc, timeout="25ms"), 300, "30s"), seed=5)
    req = plain.requests
    slow = int((req["latency_ms"][req["arrival_ms"] >= 5000] > 25.0).sum())
    assert slow > 100
    assert timed.summary["failed_by_reason"]["timeout"] == slow
    assert timed.summary["latency_ms"]["max"] <= 25.0


# ---------------------------------------------------------------- breakers


def test_max_requests_breaker_is_an_erlang_loss_system():
    # one caller, max_requests k, enough workers for no queueing: overflow probability = Erlang B(k, a)
    k, mean_ms, rate = 4, 20.0, 150.0
    a = rate * mean_ms / 1000.0
    svc = {"replicas": 1, "workers": 64, "service_time": {"dist": "lognormal", "mean": f"{mean_ms}ms", "sigma": 1.0},
           "circuit_breaker": {"max_requests": k}}
    s = meshsim.run(_one_service(svc, rate, "200s"), seed=6).summary
    overflow = s["failed_by_reason"]["overflow"] / s["requests"]
    assert overflow == pytest.approx(erlang_b(k, a), rel=0.05)  # insensitive to the service distribution


def test_connection_limit_queues_pending_requests_like_mmc():
    # max_connections c with room for every pending request: the caller's pending FIFO makes an M/M/c queue
    c, mean_ms, rate = 3, 10.0, 240.0
    svc = {"replicas": 1, "workers": 64, "service_time": {"dist": "exponential", "mean": f"{mean_ms}ms"},
           "circuit_breaker": {"max_connections": c, "max_pending_requests": 100_000}}
    s = meshsim.run(_one_service(svc, rate, "300s"), seed=7).summary
    theory = mmc(rate / 1000.0, 1.0 / mean_ms, c).mean_sojourn
    assert s["failed"] == 0
    assert s["latency_ms"]["mean"] == pytest.approx(theory, rel=0.04)


def test_inbound_concurrency_limit_rejects_like_erlang_b():
    c, mean_ms, rate = 5, 10.0, 400.0
    svc = {"replicas": 1, "workers": 50, "max_concurrency": c,
           "service_time": {"dist": "exponential", "mean": f"{mean_ms}ms"}}
    s = meshsim.run(_one_service(svc, rate, "100s"), seed=8).summary
    assert s["failed_by_reason"]["rejected"] / s["requests"] == pytest.approx(erlang_b(c, rate * mean_ms / 1000), rel=0.05)


# ---------------------------------------------------------------- retry storm


@pytest.mark.filterwarnings("ignore::meshsim.errors.ScenarioWarning")
def test_retry_storm_multiplies_load_as_the_mm1k_fixed_point_predicts():
    # 4 x M/M/1/5 at offered load 1.1: every rejected attempt (503) is retried up to 3 times
    s = meshsim.run(retry_storm_scenario({"attempts": 3, "retry_on": "5xx"}), seed=2).summary
    r = s["resilience"]["api"]
    apr, fail = storm_fixed_point(1.1, 0.25, 5, 4, 3)
    assert apr == pytest.approx(2.05, abs=0.01)  # retries double the load on an overloaded service
    assert r["attempts"] / r["requests"] == pytest.approx(apr, rel=0.04)
    assert s["failed"] / s["requests"] == pytest.approx(fail, rel=0.10)
    assert s["services"]["api"]["utilisation"] > 0.97


@pytest.mark.filterwarnings("ignore::meshsim.errors.ScenarioWarning")
def test_retry_budget_caps_the_storm():
    s = meshsim.run(retry_storm_scenario({"attempts": 3, "retry_on": "5xx",
                                          "budget": {"percent": 20, "min_concurrency": 3}}), seed=2).summary
    r = s["resilience"]["api"]
    assert r["retry_overflow"] > 1000
    # retries at most 20% of active requests (and at least 3 at a time): far below the 1.05 extra of the storm
    assert r["retries"] / r["requests"] < 0.2
    s_env = meshsim.run(retry_storm_scenario({"attempts": 3, "retry_on": "5xx"}, profile="envoy"), seed=2).summary
    # Envoy's default retries breaker (3 concurrent retries) caps it too
    assert s_env["resilience"]["api"]["retry_overflow"] > 0
    assert s_env["resilience"]["api"]["retries"] / s_env["resilience"]["api"]["requests"] < 0.5


# ---------------------------------------------------------------- fan-out tail and hedging


@pytest.mark.parametrize("width", [1, 10])
def test_fanout_tail_is_the_max_of_independent_calls(width):
    s = meshsim.run(fanout_scenario(width), seed=9).summary
    # P(max <= t) = F(t)^width  ->  p99 = F^-1(0.99^(1/width)), F lognormal (median 10 ms, sigma 0.8)
    theory = 10.0 * math.exp(0.8 * NormalDist().inv_cdf(0.99 ** (1 / width)))
    assert fanout_p99_theory(width) == pytest.approx(theory)
    assert s["latency_ms"]["p99"] == pytest.approx(theory, rel=0.05)


def test_hedging_cuts_the_fanout_tail_as_order_statistics_predict():
    width, t0 = 10, 25.0
    hedged = meshsim.run(fanout_scenario(width, hedge_after_ms=t0), seed=9).summary
    plain = meshsim.run(fanout_scenario(width), seed=9).summary
    # one leaf call: T = min(X1, t0 + B + X2), B uniform on {0..24} ms (Envoy's first backoff), X lognormal
    assert hedged["latency_ms"]["p99"] == pytest.approx(fanout_p99_theory(width, t0), rel=0.05)
    assert hedged["latency_ms"]["p99"] < 0.7 * plain["latency_ms"]["p99"]


def test_failure_mode_tables_for_notebooks():
    tail = fanout_tail(widths=[1, 10], requests=20_000)
    assert list(tail.columns) == ["width", "hedged", "p50_ms", "p99_ms", "theory_p99_ms"]
    assert ((tail["p99_ms"] / tail["theory_p99_ms"] - 1).abs() < 0.08).all()
    storm = retry_storm(rates=[1100.0], duration="40s")
    by = storm.set_index("policy")
    assert by.loc["3 retries", "attempts_per_request"] > 1.9
    assert by.loc["3 retries, budget 20%", "attempts_per_request"] < 1.2
    assert by.loc["no retries", "attempts_per_request"] == 1.0


# ---------------------------------------------------------------- outlier detection


def test_outlier_detection_ejects_a_slow_instance_on_envoys_schedule():
    # from 1 s on, the link to api-3's host adds 500 ms: its attempts time out after 100 ms (504)
    frame, s = outlier_ejection(seed=10)
    assert list(frame.columns) == ["time_ms", "event", "caller", "instance"]
    events = [(e["time_ms"], e["event"]) for e in s["resilience"]["events"] if e["instance"] == "api-3"]
    kinds = [e for _, e in events]
    assert kinds[:4] == ["eject", "uneject", "eject", "uneject"]
    (t1, _), (u1, _), (t2, _), (u2, _) = events[:4]
    # round robin sends every 10th request to api-3: 5 timeouts need 5 visits (~0.1 s apart) + 100 ms
    assert 1000 < t1 < 1000 + 5 * 100 + 100 + 100
    # it returns at the first 10 s interval tick at or after 30 s, then the second ejection lasts 60 s
    assert t1 + 30_000 <= u1 < t1 + 40_000
    assert t2 + 60_000 <= u2 < t2 + 70_000
    assert (u2 - u1) % 10_000 == pytest.approx(0, abs=1e-6)  # both on the detector's interval grid
    assert s["failed"] == 0  # the retries went elsewhere


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "svc, message",
    [
        ({"retries": {"attempts": -1}}, "services.api.retries.attempts: must be an integer >= 0"),
        ({"retries": {"retry_on": "5xx,conect-failure"}}, "services.api.retries.retry_on: unknown retry condition"),
        ({"circuit_breaker": {"max_requets": 3}}, "services.api.circuit_breaker.max_requets: unknown key"),
        ({"outlier_detection": {"max_ejection_percent": 120}}, "services.api.outlier_detection.max_ejection_percent"),
        ({"timeout": "soon"}, "services.api.timeout"),
        ({"max_concurrency": 0}, "services.api.max_concurrency: must be an integer >= 1"),
    ],
)
def test_bad_policies_are_scenario_errors(svc, message):
    base = {"service_time": {"dist": "constant", "value": 1}}
    with pytest.raises(ScenarioError) as e:
        meshsim.load_scenario(_one_service({**base, **svc}, 10))
    assert message in str(e.value)
    if "conect" in message:
        assert "connect-failure" in str(e.value)


# ---------------------------------------------------------------- invariants


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def _policies(draw):
    svc: dict = {}
    if draw(st.booleans()):
        svc["timeout"] = f"{draw(st.integers(5, 60))}ms"
    if draw(st.booleans()):
        r = {"attempts": draw(st.integers(0, 3)), "retry_on": draw(st.sampled_from(["5xx", "connect-failure", "reset,5xx"]))}
        if draw(st.booleans()):
            r["per_try_timeout"] = f"{draw(st.integers(3, 30))}ms"
        if draw(st.booleans()):
            r["budget"] = {"percent": draw(st.floats(0, 100)), "min_concurrency": draw(st.integers(0, 3))}
        svc["retries"] = r
        svc["hedge_on_per_try_timeout"] = draw(st.booleans())
    if draw(st.booleans()):
        svc["circuit_breaker"] = {k: draw(st.integers(lo, 6)) for k, lo in
                                  (("max_connections", 1), ("max_pending_requests", 0), ("max_requests", 1),
                                   ("max_retries", 0))}
    if draw(st.booleans()):
        svc["outlier_detection"] = {"consecutive_5xx": draw(st.integers(1, 5)), "interval": "200ms",
                                    "base_ejection_time": "300ms", "max_ejection_percent": 50}
    if draw(st.booleans()):
        svc["max_concurrency"] = draw(st.integers(1, 4))
    return svc


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=_policies(), mesh=st.sampled_from(["none", "sidecar", "node"]), crash=st.booleans(),
       registry=st.booleans(), seed=st.integers(0, 1000))
def test_every_request_ends_once_and_routers_release_everything(policy, mesh, crash, registry, seed):
    from meshsim.scenario.load import load_scenario
    from meshsim.sim.simulation import Simulation

    sc = {
        "run": {"requests": 400}, "metrics": {"warmup": 0},
        "mesh": {"mode": mesh},
        "services": {
            "front": {"replicas": 2, "workers": 2, "service_time": {"dist": "exponential", "mean": "2ms"},
                      "calls": [{"parallel": [{"service": "back"}, {"service": "back"}], "wait": 1}]},
            "back": {"replicas": 3, "workers": 1, "queue": 3, "service_time": {"dist": "exponential", "mean": "4ms"},
                     "load_balancer": {"policy": "least_request"}, **policy},
        },
        "workloads": {"w": {"rate": 300, "target": "front"}},
        "faults": [{"action": "crash", "instance": "back-1", "at": "300ms", "until": "900ms"}] if crash else [],
    }
    if registry:  # views follow the registry: a probe every 200 ms, Raft with the paper's 150-300 ms timeouts
        sc["registry"] = {"servers": 3, "profile": "paper",
                          "health_check": {"type": "probe", "interval": "200ms", "timeout": "50ms"}}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = Simulation(load_scenario(sc), seed=seed)
    if registry:
        from meshsim.registry.discovery import attach_registry

        attach_registry(sim)
    sim.run()
    assert sim.inflight == 0  # every request reported exactly once (a second report would go negative)
    sim.env.run(until=sim.env.now + 5_000)  # let calls no longer awaited (wait: 1, abandoned attempts) end
    assert sim.inflight == 0
    for r in sim.routers:
        assert r.active == 0 and r.active_retries == 0 and not r.pending
        if r.tracks_load:  # the balancer's own active-request counts came back to zero too
            assert sum(r.balancer.active) == 0, r.balancer.active
        st_ = r.summary()
        assert st_["attempts"] <= st_["requests"] + st_["retries"]
    rec = sim.recorder.columns("r_")
    assert len(rec["status"]) == 400 and (rec["status"] >= 0).all()
