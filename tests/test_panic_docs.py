"""The panic threshold does what docs/background.md and docs/proxy_features.md say.

Envoy: 50% by default, per priority level by host count, no panic when the
levels' overprovisioned health adds up to 100%, 0 disables panic.  Istio:
with outlier detection on a DestinationRule it writes ``minHealthPercent``
(default 0) as the threshold, so a caller with an Istio proxy uses 0 unless
``load_balancer.healthy_panic_threshold`` is set.
"""

from __future__ import annotations

import pytest

import meshsim
from meshsim.core.balancers import Endpoint, NoHealthyUpstream, RingHash, WeightedRoundRobin, priority_loads
from meshsim.sim.simulation import Simulation


def hosts(healthy: int, total: int) -> list[Endpoint]:
    return [Endpoint(f"h{i}", healthy=i < healthy) for i in range(total)]


@pytest.mark.parametrize("healthy, panic", [(1, True), (2, False), (3, False), (4, False)])
def test_default_threshold_is_50_percent_of_hosts(healthy, panic):
    lb = WeightedRoundRobin(hosts(healthy, 4))
    assert lb.healthy_panic_threshold == 50.0
    assert lb.priority_load.panic == (panic,)
    picked = {lb.pick(0.0) for _ in range(40)}
    # in panic every host gets traffic, healthy or not; otherwise only the healthy ones
    assert picked == (set(range(4)) if panic else set(range(healthy)))


def test_no_panic_when_the_levels_together_are_fully_healthy():
    # P0 1/3 healthy (below 50%) but P0 + P1 health = 46 + 100 >= 100: P0 is not in panic, the rest spills to P1
    assert priority_loads([(1, 3), (4, 4)]).panic == (False, False)
    assert priority_loads([(1, 3), (1, 4)]).panic == (True, True)  # 46 + 35 < 100: both below 50% panic


def test_threshold_zero_never_panics_and_fails_with_no_healthy_host():
    lb = RingHash(hosts(1, 4), healthy_panic_threshold=0)
    assert lb.priority_load.panic == (False,)
    assert {lb.pick(0.0, key=k) for k in range(50)} == {0}
    lb.update(hosts(0, 4))
    with pytest.raises(NoHealthyUpstream):
        lb.pick(0.0, key=1)


def scenario(profile: str, outlier: bool, threshold: float | None = None) -> dict:
    back = {"replicas": 4, "service_time": {"dist": "constant", "value": 1}}
    if outlier:
        back["outlier_detection"] = {"consecutive_5xx": 3}
    if threshold is not None:
        back["load_balancer"] = {"healthy_panic_threshold": threshold}
    return {
        "run": {"requests": 10},
        "mesh": {"mode": "sidecar", "profile": profile},
        "services": {"front": {"replicas": 1, "service_time": {"dist": "constant", "value": 1},
                               "calls": [{"service": "back"}]},
                     "back": back},
        "workloads": {"w": {"rate": 100, "target": "front"}},
    }


@pytest.mark.parametrize("profile, outlier, threshold, expected", [
    ("istio", True, None, 0.0),     # Istio + outlier detection: minHealthPercent, default 0
    ("istio", True, 30.0, 30.0),    # set explicitly: kept
    ("istio", False, None, 50.0),   # no outlier detection: Envoy's default
    ("envoy", True, None, 50.0),    # plain Envoy keeps 50% with outlier detection
])
def test_scenario_panic_threshold(profile, outlier, threshold, expected):
    sim = Simulation(meshsim.load_scenario(scenario(profile, outlier, threshold)), seed=1)
    caller = sim.services["front"].instances[0]
    assert caller.proxy is not None
    _view, lb = sim.make_balancer(caller, sim.services["back"], need_health=outlier)
    assert lb.healthy_panic_threshold == expected
