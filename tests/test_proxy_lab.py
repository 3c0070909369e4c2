"""proxy_lab: the short experiments of notebook 05 agree with their theory."""

from __future__ import annotations

import math

import pytest

from meshsim.experiments import proxy_lab


def test_overhead_table_orders_profiles_and_carries_references():
    t = proxy_lab.overhead_table([("sidecar", "istio"), ("sidecar", "linkerd")], requests=8_000)
    istio, linkerd = t.iloc[0], t.iloc[1]
    assert 0.1 < istio["added_p50_ms"] < 0.25
    assert linkerd["added_p99_ms"] < 0.6 * istio["added_p99_ms"]
    assert istio["reference_p99_ms"] == 0.298 and math.isnan(istio["reference_p50_ms"])


def test_timeout_fraction_is_the_mm1_sojourn_tail():
    t = proxy_lab.timeout_table([25.0, 50.0], duration="150s")
    assert t["theory_fraction"].tolist() == pytest.approx([math.exp(-1), math.exp(-2)])
    assert (abs(t["timed_out_fraction"] - t["theory_fraction"]) < 0.04).all()
    assert (t["max_latency_ms"] <= t["timeout_ms"]).all()


def test_breaker_overflow_is_erlang_b():
    t = proxy_lab.breaker_table([2, 4, 6], duration="40s")
    assert t["erlang_b"].iloc[0] == pytest.approx(9 / 17)  # B(2, 3) = (9/2) / (1 + 3 + 9/2)
    assert (abs(t["overflow_fraction"] - t["erlang_b"]) < 0.02 + 0.1 * t["erlang_b"]).all()


def test_outlier_detection_restores_p99_and_a_retried_request_is_found():
    runs = proxy_lab.outlier_runs(duration="12s")
    t = proxy_lab.outlier_table(runs).set_index("run")
    assert t.loc["without detection", "p99_ms"] == pytest.approx(proxy_lab.outlier_theory_p99_ms(), abs=10)
    assert t.loc["with detection", "p99_ms"] < 5 and t.loc["with detection", "ejections"] == 1
    assert t.loc["without detection", "slow_share"] == pytest.approx(0.1, abs=0.02)
    res = runs["without detection"]
    rid = proxy_lab.retried_request(res)
    spans = res.spans[(res.spans["request"] == rid) & (res.spans["parent"] == -1)]
    assert len(spans) == 2 and set(spans["instance"]) >= {"api-3"}
    # the request waited the per-try timeout (100 ms) plus a backoff below 25 ms plus a fast call
    assert 100 < res.requests.loc[rid, "latency_ms"] < 100 + 25 + 2


def test_outlier_theory_without_a_tail_group():
    assert proxy_lab.outlier_theory_p99_ms(instances=200) == 1.2  # 0.5% slow: p99 is a fast call
