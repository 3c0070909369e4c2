"""design_lab: the slow-instance scenario behaves as its theory says; replications, windows and pairs are exact."""

from __future__ import annotations

import math

import numpy as np
import pytest

import meshsim
from meshsim.experiments import design_lab, proxy_lab
from meshsim.experiments.design_lab import (paired_differences, quantile_after, replicate, slow_instance_scenario,
                                            window_means)


def _deterministic(service: str = "1ms", rate: float = 100, duration: str = "2s") -> dict:
    return {"run": {"duration": duration}, "network": {"enabled": False},
            "services": {"s": {"service_time": service}},
            "workloads": {"w": {"type": "deterministic", "rate": rate, "target": "s"}}}


def test_without_detection_p99_is_the_retry_theory():
    # 8 instances: 1/8 of the calls meet the slow one, wait the per-try timeout, a backoff and a fast retry
    sc = slow_instance_scenario(8, per_try_timeout_ms=40.0, duration="10s")
    p99 = replicate(sc, [1, 2, 3], quantile_after)
    theory = proxy_lab.outlier_theory_p99_ms(instances=8, per_try_ms=40.0, fast_ms=1.2)
    assert theory == pytest.approx(40.0 + 0.92 * 25.0 + 1.2)
    assert np.all(np.abs(p99 - theory) < 5.0), (p99, theory)


def test_no_per_try_timeout_means_no_error_and_no_ejection():
    sc = slow_instance_scenario(8, slow_extra_ms=300.0, outlier_detection={"max_ejection_percent": 50}, duration="6s")
    res = meshsim.run(sc, seed=1)
    assert len(res.mesh_events) == 0
    assert quantile_after(res) > 300.0                 # the caller just waits for the slow link


def test_ejection_needs_max_ejection_percent_of_one_host():
    # Envoy: eject only if 100 * (ejected + 1) / hosts <= max_ejection_percent; the default 10 % and 8 hosts never
    blocked = slow_instance_scenario(8, per_try_timeout_ms=20.0, outlier_detection={}, duration="12s")
    allowed = slow_instance_scenario(8, per_try_timeout_ms=20.0, outlier_detection={"max_ejection_percent": 12.5},
                                     duration="12s")
    r_blocked, r_allowed = meshsim.run(blocked, seed=2), meshsim.run(allowed, seed=2)
    assert len(r_blocked.mesh_events) == 0 and quantile_after(r_blocked) > 20.0
    ev = r_allowed.mesh_events
    assert ev["event"].tolist() == ["eject"] and ev["instance"].tolist() == ["api-3"]
    assert design_lab.FAULT_AT_MS < ev["time_ms"].iloc[0] < design_lab.FAULT_AT_MS + 1000.0   # 5 errors at 12.5/s
    assert quantile_after(r_allowed) < 10.0           # 5 slow calls out of ~1100 after the fault: under 1 %


def test_scenario_arguments_are_checked():
    with pytest.raises(ValueError, match="instances"):
        slow_instance_scenario(1)
    with pytest.raises(ValueError, match="slow_instance"):
        slow_instance_scenario(3, slow_instance=3)
    small = slow_instance_scenario(3)
    assert "per_try_timeout" not in small["services"]["api"]["retries"]
    assert small["faults"][0]["between"] == ["client", "h2"]         # api-3 does not exist: the last one


def test_quantile_after_counts_only_later_arrivals():
    res = meshsim.run(_deterministic(), seed=1)
    assert quantile_after(res, 0.0, 1.0) == 1.0
    assert math.isnan(quantile_after(res, 10_000.0))


def test_replicate_is_one_value_per_seed_and_reproducible():
    sc = {"run": {"requests": 500}, "network": {"enabled": False},
          "services": {"s": {"service_time": {"dist": "exponential", "mean": "5ms"}}},
          "workloads": {"w": {"rate": 100, "target": "s"}}}
    mean = lambda r: r.summary["latency_ms"]["mean"]  # noqa: E731
    a = replicate(sc, [1, 2, 3], mean)
    assert a.shape == (3,) and len(set(a.tolist())) == 3
    assert replicate(sc, [2], mean)[0] == a[1]
    # overrides reach the runs: a 1 ms constant service at 1 request in 100 ms never queues
    assert replicate(sc, [1], mean, overrides={"services.s.service_time": "1ms", "workloads.w.rate": 10,
                                                "workloads.w.type": "deterministic"}).tolist() == [1.0]


def test_window_means_select_by_arrival_time():
    slow = meshsim.run(_deterministic("3ms"), seed=1)
    fast = meshsim.run(_deterministic("1ms"), seed=1)
    assert window_means([slow, fast], 0.0, 500.0).tolist() == [3.0, 1.0]
    assert math.isnan(window_means([fast], 5_000.0, 100.0)[0])


def test_paired_differences_are_exact_for_identical_variants_and_antisymmetric():
    sc = {"run": {"requests": 1500}, "network": {"enabled": False},
          "services": {"s": {"workers": 2, "service_time": {"dist": "exponential", "mean": "10ms"}}},
          "workloads": {"w": {"rate": 150, "target": "s"}}}
    assert paired_differences(sc, None, {}, [1, 2, 3]).tolist() == [0.0, 0.0, 0.0]
    ab = paired_differences(sc, {}, {"services.s.workers": 3}, [4, 5])
    ba = paired_differences(sc, {"services.s.workers": 3}, {}, [4, 5])
    assert np.array_equal(ab, -ba)
    assert (ab > 0).all()                                 # common numbers: the third worker helps with every seed
