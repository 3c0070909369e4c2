"""slow_instance: heterogeneous instances, the split of round robin and least request against theory."""

from __future__ import annotations

import math

import numpy as np
import pytest

from meshsim.experiments.balancing import load_split
from meshsim.experiments.slow_instance import run_with_slow_instances, slow_farm_scenario
from meshsim.stats import t_quantile


def _ci(x: list[float]) -> tuple[float, float]:
    a = np.array(x)
    return float(a.mean()), t_quantile(0.975, a.size - 1) * float(a.std(ddof=1)) / math.sqrt(a.size)


def test_service_times_of_the_slow_instance_are_scaled():
    sc = slow_farm_scenario(requests=6_000)
    sc["metrics"]["spans"] = True
    res = run_with_slow_instances(sc, {"farm-0": 3.0}, seed=4)
    means = res.spans.groupby("instance")["service_ms"].mean()
    # exponential, mean 10 ms: 1500 samples per instance give a standard error of 2.6%
    assert means["farm-0"] == pytest.approx(30.0, rel=0.1)
    assert means.drop("farm-0").to_numpy() == pytest.approx([10.0] * 3, rel=0.1)
    # the same seed without slow-down: every other stream is untouched
    plain = run_with_slow_instances(sc, {}, seed=4).spans.groupby("instance")["service_ms"].mean()
    assert plain["farm-0"] == pytest.approx(means["farm-0"] / 3.0)
    assert plain["farm-1"] == pytest.approx(means["farm-1"])


def test_round_robin_loads_the_slow_instance_factor_times_more():
    util = []
    for seed in (1, 2, 3):
        res = run_with_slow_instances(slow_farm_scenario("round_robin"), {"farm-0": 3.0}, seed=seed)
        inst = res.instances
        assert inst["arrivals"].nunique() == 1  # exactly 1/n each
        util.append(float(inst.loc["farm-0", "utilisation"]))
    mean, half = _ci(util)
    assert abs(mean - 3.0 * 100.0 / 4 * 0.010) <= half + 0.01  # factor * rate / n * mean service


def test_least_request_share_lies_between_capacity_share_and_even_share():
    n, factor = 4, 3.0
    runs = [run_with_slow_instances(slow_farm_scenario("least_request", replicas=n), {"farm-0": factor}, seed=s)
            for s in (1, 2, 3)]
    shares = [float(load_split({"lr": r})["lr"]["farm-0"]) for r in runs]
    mean, half = _ci(shares)
    capacity = (1 / factor) / (n - 1 + 1 / factor)  # 0.1: the share proportional to speed
    assert capacity + half < mean < 1 / n - half


def test_bad_slow_down_factor():
    with pytest.raises(ValueError, match="must be > 0"):
        run_with_slow_instances(slow_farm_scenario(requests=10), {"farm-0": 0.0})
