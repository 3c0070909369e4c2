"""Heterogeneous instances: a service whose instances are not equally fast.

meshsim's instances of a service share one service-time distribution; the
fault ``{action: slow, instance: NAME, factor: F}`` multiplies one instance's
service times.  :func:`run_with_slow_instances` runs a scenario with such a
fault from the start for each named instance (a host with a slower CPU, a
noisy neighbour), so load balancers can be compared on heterogeneous
instances.  :func:`slow_farm_scenario` is the classroom case: ``replicas``
single-worker M/M/1 instances behind one caller with a given policy.

Round robin gives every instance the same share 1/n of the requests, so an
instance ``factor`` times slower runs ``factor`` times as busy as the others:
utilisation ``factor * rate / n * mean``.  A policy that looks at the load
(least request) sends it less.

>>> sc = slow_farm_scenario("round_robin", replicas=4, rate_rps=100.0, requests=4_000)
>>> res = run_with_slow_instances(sc, {"farm-0": 3.0}, seed=1)
>>> res.instances["arrivals"].tolist()
[1000, 1000, 1000, 1000]
>>> u = res.instances["utilisation"]   # theory: 3 x 100/s / 4 x 10 ms = 0.75, the others 0.25
>>> round(float(u.iloc[0]), 1), bool(u.iloc[1:].between(0.2, 0.3).all())
(0.8, True)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..result import Result
    from ..scenario.load import Scenario

__all__ = ["run_with_slow_instances", "slow_farm_scenario"]


def slow_farm_scenario(policy: str = "round_robin", *, replicas: int = 4, rate_rps: float = 100.0,
                       mean_ms: float = 10.0, requests: int = 20_000, warmup: str = "2s") -> dict[str, Any]:
    """``replicas`` single-worker instances of service ``farm`` (exponential service, mean ``mean_ms``),
    Poisson arrivals at ``rate_rps`` from one caller using ``policy``; no network, no mesh, no spans.

    >>> sc = slow_farm_scenario("least_request", replicas=3)
    >>> sc["services"]["farm"]["replicas"], sc["services"]["farm"]["load_balancer"]
    (3, {'policy': 'least_request'})
    """
    return {
        "name": f"slow-farm-{policy}",
        "run": {"requests": int(requests)},
        "network": {"enabled": False},
        "metrics": {"warmup": warmup, "spans": False},
        "services": {"farm": {"replicas": int(replicas), "workers": 1, "load_balancer": {"policy": policy},
                              "service_time": {"dist": "exponential", "mean": f"{mean_ms}ms"}}},
        "workloads": {"users": {"rate": float(rate_rps), "target": "farm"}},
    }


def run_with_slow_instances(scenario: Scenario | dict | str | os.PathLike, slow: Mapping[str, float],
                            seed: int | None = None, overrides: list[str] | dict[str, Any] | None = None) -> Result:
    """Run ``scenario`` like :func:`meshsim.run`, with each service time of instance ``name`` multiplied by
    ``slow[name]`` (> 0; 3.0: three times slower).  Instance names are ``<service>-<index>``.

    >>> run_with_slow_instances(slow_farm_scenario(requests=10), {"farm-9": 2.0})
    Traceback (most recent call last):
    ...
    ValueError: no instance 'farm-9'; instances: farm-0, farm-1, farm-2, farm-3
    """
    from ..api import run
    from ..scenario.load import load_scenario

    sc = load_scenario(scenario, overrides)
    names = sc.instances()
    faults = list(sc.spec["faults"])
    for name, factor in slow.items():
        if name not in names:
            raise ValueError(f"no instance {name!r}; instances: {', '.join(names)}")
        if not float(factor) > 0.0:
            raise ValueError(f"slow-down factor of {name!r} must be > 0, got {factor!r}")
        faults.append({"at": 0, "action": "slow", "instance": name, "factor": float(factor)})
    return run(sc, seed=seed, overrides={"faults": faults} if slow else None)
