"""A small chainable builder for scenarios, handy in notebook cells.

It only assembles the same mapping a YAML file would hold; :meth:`build`
checks it with :func:`~meshsim.scenario.load.load_scenario`, so errors carry
the same paths.  Keyword names are scenario keys.

>>> from meshsim.scenario.builder import ScenarioBuilder, exponential
>>> sc = (ScenarioBuilder("demo")
...       .run(requests=1000)
...       .service("web", workers=4, service_time=exponential("10ms"), calls=["db"])
...       .service("db", workers=2, service_time="2ms")
...       .workload("users", rate="100/s", target="web")
...       .build())
>>> sorted(sc.services), round(sc.utilisation()["web"], 3)
(['db', 'web'], 0.25)
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from .load import load_scenario
from .model import Scenario


def exponential(mean: float | str) -> dict:
    """``{dist: exponential, mean: ...}``"""
    return {"dist": "exponential", "mean": mean}


def constant(value: float | str) -> dict:
    return {"dist": "constant", "value": value}


def uniform(low: float | str, high: float | str) -> dict:
    return {"dist": "uniform", "low": low, "high": high}


def lognormal(*, mean: float | str | None = None, sigma: float | None = None,
              median: float | str | None = None, p99: float | str | None = None) -> dict:
    """By mean and sigma (of the log), or by median and p99."""
    spec: dict[str, Any] = {"dist": "lognormal"}
    for k, v in (("mean", mean), ("sigma", sigma), ("median", median), ("p99", p99)):
        if v is not None:
            spec[k] = v
    return spec


def call(service: str, endpoint: str | None = None, probability: float = 1.0) -> dict:
    spec: dict[str, Any] = {"service": service, "probability": probability}
    if endpoint is not None:
        spec["endpoint"] = endpoint
    return spec


def parallel(*calls: str | dict, wait: str | int = "all") -> dict:
    """A fan-out step: ``parallel("a", "b", wait=1)``."""
    return {"parallel": list(calls), "wait": wait}


class ScenarioBuilder:
    """Chainable construction of a scenario mapping; see the module example."""

    def __init__(self, name: str = "scenario", seed: int | None = None, description: str | None = None):
        self.data: dict[str, Any] = {"name": name}
        if seed is not None:
            self.data["seed"] = seed
        if description:
            self.data["description"] = description

    def _section(self, key: str, values: dict[str, Any]) -> ScenarioBuilder:
        self.data.setdefault(key, {}).update(values)
        return self

    def run(self, **keys: Any) -> ScenarioBuilder:
        """``run(duration="1m")``, ``run(requests=10000, drain=True)``"""
        return self._section("run", keys)

    def metrics(self, **keys: Any) -> ScenarioBuilder:
        return self._section("metrics", keys)

    def network(self, **keys: Any) -> ScenarioBuilder:
        return self._section("network", keys)

    def mesh(self, **keys: Any) -> ScenarioBuilder:
        """``mesh(mode="sidecar", profile="istio", control_plane={"debounce_after": "100ms"})``"""
        return self._section("mesh", keys)

    def registry(self, **keys: Any) -> ScenarioBuilder:
        """``registry(servers=3, raft_multiplier=1, health_check={"type": "probe", "interval": "2s"})``

        >>> sc = (ScenarioBuilder().run(duration="5s").registry(servers=5, profile="etcd")
        ...       .service("web", service_time="1ms", retries={"attempts": 2}, timeout="50ms")
        ...       .workload("u", rate=10, target="web").build())
        >>> sc.spec["registry"]["servers"], sc.services["web"]["retries"]["attempts"]
        (5, 2)
        """
        return self._section("registry", keys)

    def region(self, name: str, zones: list[str]) -> ScenarioBuilder:
        self.data.setdefault("topology", {}).setdefault("regions", {})[name] = list(zones)
        return self

    def host(self, name: str, zone: str) -> ScenarioBuilder:
        self.data.setdefault("topology", {}).setdefault("hosts", {})[name] = {"zone": zone}
        return self

    def link(self, a: str, b: str, **keys: Any) -> ScenarioBuilder:
        self.data.setdefault("network", {}).setdefault("links", []).append({"between": [a, b], **keys})
        return self

    def service(self, name: str, **keys: Any) -> ScenarioBuilder:
        """``service("api", replicas=3, workers=8, service_time="5ms", calls=["db"])``"""
        self.data.setdefault("services", {})[name] = keys
        return self

    def endpoint(self, service: str, name: str, service_time: Any, calls: list | None = None) -> ScenarioBuilder:
        svc = self.data.setdefault("services", {}).setdefault(service, {})
        svc.setdefault("endpoints", {})[name] = {"service_time": service_time, "calls": list(calls or [])}
        return self

    def workload(self, name: str, **keys: Any) -> ScenarioBuilder:
        """``workload("users", type="poisson", rate="100/s", target="web")``"""
        self.data.setdefault("workloads", {})[name] = keys
        return self

    def fault(self, **keys: Any) -> ScenarioBuilder:
        """``fault(at="30s", until="40s", action="crash", instance="api-0")``"""
        self.data.setdefault("faults", []).append(keys)
        return self

    def to_dict(self) -> dict:
        return copy.deepcopy(self.data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.data, sort_keys=False)

    def build(self) -> Scenario:
        """Check and return the Scenario (raises ScenarioErrors naming every problem)."""
        return load_scenario(self.to_dict())
