"""The simulator against queueing theory.

Each test runs a scenario with a fixed seed and compares a measured quantity
with its closed form (meshsim.analytic).  Tolerances are a few standard errors
of the estimate for the run length used; every run here takes a few seconds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import meshsim
from meshsim import analytic
from meshsim.distributions import from_spec

DATA = Path(__file__).resolve().parents[1] / "data" / "scenarios"


def exp_ms(mean_ms: float) -> dict:
    return {"dist": "exponential", "mean": mean_ms}


def measured_spans(res: meshsim.Result) -> pd.DataFrame:
    """Spans of calls sent after warm-up."""
    sp = res.spans
    return sp[sp["send_ms"] >= res.summary["warmup_ms"]]


# ----------------------------------------------------------------------------- tandem reference


@pytest.fixture(scope="module")
def tandem() -> meshsim.Result:
    return meshsim.run(DATA / "tandem.yaml", seed=1)


def test_tandem_theory_value():
    # lam = 8/s, mu = 1/s, c = 10, three stations -> 3613.8 ms (in per-ms units)
    w = analytic.tandem_mmc(8e-3, 1e-3, 10, 3)
    assert w == pytest.approx(3613.8, abs=0.1)


def test_tandem_mean_latency(tandem):
    s = tandem.summary
    theory = analytic.tandem_mmc(8e-3, 1e-3, 10, 3)
    assert s["completed"] == s["requests"] > 190_000
    assert s["failed"] == 0
    assert s["latency_ms"]["mean"] == pytest.approx(theory, rel=0.03)


def test_tandem_confidence_interval_covers_theory(tandem):
    theory = analytic.tandem_mmc(8e-3, 1e-3, 10, 3)
    low, high = tandem.summary["latency_ms"]["ci95"]
    mean = tandem.summary["latency_ms"]["mean"]
    assert low < mean < high
    half = (high - low) / 2
    # a meaningful interval: narrower than 5% of the mean, wider than 0.1%
    assert 0.001 * theory < half < 0.05 * theory
    # contains the theoretical mean, or misses it by less than one half-width
    assert low - half <= theory <= high + half


def test_tandem_utilisation(tandem):
    for name in ("s1", "s2", "s3"):
        svc = tandem.summary["services"][name]
        assert svc["offered_utilisation"] == pytest.approx(0.8)
        assert svc["utilisation"] == pytest.approx(0.8, abs=0.02)


def test_tandem_per_station_sojourn(tandem):
    # Burke: each station is an M/M/10 with Poisson(8/s) arrivals
    station = analytic.mmc(8e-3, 1e-3, 10)
    sp = measured_spans(tandem)
    local = sp["end_ms"] - sp["arrive_ms"] - sp["downstream_ms"]  # queue + service at the station
    for name in ("s1", "s2", "s3"):
        sel = sp["service"] == name
        assert local[sel].mean() == pytest.approx(station.mean_sojourn, rel=0.03)
        assert (sp.loc[sel, "queue_ms"] > 0).mean() == pytest.approx(station.p_wait, abs=0.03)


# ----------------------------------------------------------------------------- M/M/c


def test_mmc_mean_sojourn_and_erlang_c():
    res = meshsim.run(DATA / "mmc.yaml", seed=3)
    theory = analytic.mmc(40e-3, 1 / 100, 5)  # per ms
    assert theory.mean_sojourn == pytest.approx(155.41, abs=0.01)
    s = res.summary
    assert s["latency_ms"]["mean"] == pytest.approx(theory.mean_sojourn, rel=0.03)
    sp = measured_spans(res)
    assert len(sp) == s["requests"]
    p_wait = float((sp["queue_ms"] > 0).mean())
    assert p_wait == pytest.approx(theory.p_wait, abs=0.03)
    assert sp["queue_ms"].mean() == pytest.approx(theory.mean_wait, rel=0.1)
    assert s["services"]["server"]["utilisation"] == pytest.approx(0.8, abs=0.02)
    # Little's law on the waiting room: Lq = lam Wq
    assert s["services"]["server"]["mean_queue_length"] == pytest.approx(theory.mean_queue_length, rel=0.1)


# ----------------------------------------------------------------------------- M/M/1 tail


def single_station(rate: str, service: dict, requests: int, warmup: str = "1m", workers: int = 1) -> dict:
    return {
        "run": {"requests": requests},
        "network": {"enabled": False},
        "metrics": {"warmup": warmup, "spans": False},
        "services": {"s": {"workers": workers, "service_time": service}},
        "workloads": {"w": {"type": "poisson", "rate": rate, "target": "s"}},
    }


def test_mm1_p99_latency():
    lam, mu = 0.06, 0.1  # per ms: rho = 0.6, mean service 10 ms
    res = meshsim.run(single_station("60/s", exp_ms(10), 300_000), seed=11)
    p99_theory = math.log(100) / (mu - lam)
    assert analytic.mm1(lam, mu).sojourn_quantile(0.99) == pytest.approx(p99_theory)
    lat = res.summary["latency_ms"]
    assert lat["p99"] == pytest.approx(p99_theory, rel=0.05)
    assert lat["mean"] == pytest.approx(1 / (mu - lam), rel=0.03)
    # the median too: W ~ Exp(mu - lam)
    assert lat["p50"] == pytest.approx(math.log(2) / (mu - lam), rel=0.05)


# ----------------------------------------------------------------------------- M/G/1


def test_mg1_lognormal_pollaczek_khinchine():
    spec = {"dist": "lognormal", "mean": 10.0, "sigma": 1.0}
    d = from_spec(spec)
    assert d.scv == pytest.approx(math.e - 1)
    lam = 0.065  # rho = 0.65
    theory = analytic.mg1(lam, d.mean, d.second_moment)
    res = meshsim.run(single_station("65/s", spec, 250_000), seed=5)
    assert res.summary["latency_ms"]["mean"] == pytest.approx(theory.mean_sojourn, rel=0.05)
    # the M/M/1 with the same mean would be far off (scv 1.72 vs 1)
    assert abs(analytic.mm1(lam, 1 / d.mean).mean_sojourn / theory.mean_sojourn - 1) > 0.15
    assert res.summary["services"]["s"]["utilisation"] == pytest.approx(0.65, abs=0.02)


# ----------------------------------------------------------------------------- open Jackson network


def jackson_scenario(requests: int) -> dict:
    """a -> b (p .6) nested -> d (p .5); then a -> c (p .25); plus external traffic to c.

    Each probability is drawn afresh, so routing is Markov:
    a->b .6, a->c .4*.25, b->d .5, b->c .5*.25, d->c .25.
    """
    return {
        "run": {"requests": requests},
        "network": {"enabled": False},
        "metrics": {"warmup": "1m"},
        "services": {
            "a": {"workers": 2, "service_time": exp_ms(24),
                  "calls": [{"service": "b", "probability": 0.6}, {"service": "c", "probability": 0.25}]},
            "b": {"workers": 1, "service_time": exp_ms(20), "calls": [{"service": "d", "probability": 0.5}]},
            "c": {"workers": 3, "service_time": exp_ms(60)},
            "d": {"workers": 1, "service_time": exp_ms(40)},
        },
        "workloads": {
            "main": {"type": "poisson", "rate": "50/s", "target": "a"},
            "direct": {"type": "poisson", "rate": "20/s", "target": "c"},
        },
    }


def test_jackson_network_mean_response_time():
    order = ["a", "b", "c", "d"]
    routing = np.zeros((4, 4))
    a, b, c, d = range(4)
    routing[a, b] = 0.6
    routing[a, c] = 0.4 * 0.25
    routing[b, d] = 0.5
    routing[b, c] = 0.5 * 0.25
    routing[d, c] = 0.25
    gamma = [0.05, 0.0, 0.02, 0.0]  # per ms
    mus = [1 / 24, 1 / 20, 1 / 60, 1 / 40]
    net = analytic.jackson(gamma, routing, mus, [2, 1, 3, 1])
    assert net.throughputs == pytest.approx([0.05, 0.03, 0.0325, 0.015])

    res = meshsim.run(jackson_scenario(200_000), seed=2)
    s = res.summary
    assert s["failed"] == 0
    # network response time (Little): sum L_i / sum gamma, over all requests
    assert s["latency_ms"]["mean"] == pytest.approx(net.mean_sojourn, rel=0.03)
    # per workload: main = W_a + .6 W_b + .3 W_d + .25 W_c ; direct = W_c
    w = [n.mean_sojourn for n in net.nodes]
    req = res.requests
    req = req[req["arrival_ms"] >= s["warmup_ms"]]
    main = req.loc[req["workload"] == "main", "latency_ms"].mean()
    direct = req.loc[req["workload"] == "direct", "latency_ms"].mean()
    assert main == pytest.approx(w[a] + 0.6 * w[b] + 0.3 * w[d] + 0.25 * w[c], rel=0.03)
    assert direct == pytest.approx(w[c], rel=0.05)
    # visit ratios and utilisations
    sp = measured_spans(res)
    n_main = int((req["workload"] == "main").sum())
    for i, name in enumerate(order):
        util = s["services"][name]["utilisation"]
        assert util == pytest.approx(net.nodes[i].utilisation, abs=0.02), name
        visits = (sp["service"] == name).sum() / n_main
        assert visits == pytest.approx(net.throughputs[i] / 0.05, rel=0.03), name


# ----------------------------------------------------------------------------- blocking vs async


def caller_scenario(semantics: str) -> dict:
    # caller: 4 workers, S ~ Exp(10 ms); downstream: constant 20 ms, never queues
    return {
        "run": {"requests": 60_000},
        "network": {"enabled": False},
        "metrics": {"warmup": "20s", "spans": False},
        "services": {
            "caller": {"workers": 4, "semantics": semantics, "service_time": exp_ms(10), "calls": ["down"]},
            "down": {"workers": 200, "service_time": {"dist": "constant", "value": 20}},
        },
        "workloads": {"w": {"type": "poisson", "rate": "80/s", "target": "caller"}},
    }


@pytest.mark.parametrize("semantics, expected", [("blocking", 0.08 * (10 + 20) / 4), ("async", 0.08 * 10 / 4)])
def test_blocking_holds_worker_during_downstream_call(semantics, expected):
    res = meshsim.run(caller_scenario(semantics), seed=4)
    svc = res.summary["services"]["caller"]
    assert svc["offered_utilisation"] == pytest.approx(0.2)  # local processing only
    assert svc["utilisation"] == pytest.approx(expected, rel=0.03)
    down = res.summary["services"]["down"]["utilisation"]
    assert down == pytest.approx(0.08 * 20 / 200, rel=0.03)
    lat = res.summary["latency_ms"]
    if semantics == "async":
        # caller is an M/M/4 at rho .2, the downstream adds exactly 20 ms
        assert lat["mean"] == pytest.approx(analytic.mmc(0.08, 0.1, 4).mean_sojourn + 20, rel=0.02)
    else:
        # holding time 10 + 20 ms on 4 workers at 60%: more waiting than async
        assert lat["mean"] > 30 * 1.02
