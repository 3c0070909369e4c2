"""The request path's refactors change no number: shipped scenarios hash to the recorded values.

A set of runs covering every path a request can take (no mesh with and
without a network, sidecars with each resilience feature on, node proxies,
a registry that moves the views) is reduced to three fingerprints each: a
hash of the requests table, of the spans table and of the summary JSON.
``tests/data/route_before.json`` holds the values recorded before the
request path was rebuilt around :class:`meshsim.sim.route.Route`; the same
seed must give the same bytes.  A second test runs the same scenarios with
every route's lean path forced off and asserts identical tables: the lean
path is an optimisation, never a behaviour.

Regenerate the fixture (only for a change meant to move numbers, explained
in the commit) with ``python tests/test_route_equivalence.py --rewrite``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

import meshsim

FIXTURE = Path(__file__).parent / "data" / "route_before.json"

#: every resilience feature on, on a two-tier call graph with a crash, through Istio sidecars
RESILIENCE = {
    "name": "route-features",
    "run": {"duration": "6s"},
    "metrics": {"warmup": "500ms"},
    "mesh": {"mode": "sidecar", "profile": "istio", "client_sidecar": True},
    "services": {
        "frontend": {"replicas": 2, "workers": 8, "service_time": {"dist": "exponential", "mean": "2ms"},
                     "calls": ["api"], "timeout": "80ms"},
        "api": {"replicas": 3, "workers": 2, "queue": 6,
                "service_time": {"dist": "lognormal", "median": "6ms", "p99": "40ms"},
                "retries": {"attempts": 2, "retry_on": "5xx,connect-failure,reset", "per_try_timeout": "25ms",
                            "budget": {"percent": 40, "min_concurrency": 2}},
                "circuit_breaker": {"max_connections": 6, "max_pending_requests": 4, "max_requests": 5,
                                    "max_retries": 3},
                "outlier_detection": {"consecutive_5xx": 3, "interval": "300ms", "base_ejection_time": "500ms",
                                      "max_ejection_percent": 50}},
    },
    "workloads": {"w": {"rate": 500, "target": "frontend"}},
    "faults": [{"action": "crash", "instance": "api-1", "at": "2s", "until": "3s"}],
}

#: hedged per-try timeouts (and retries) with Envoy sidecars
HEDGING = {
    "name": "route-hedging",
    "run": {"duration": "5s"},
    "metrics": {"warmup": "500ms"},
    "mesh": {"mode": "sidecar", "profile": "envoy"},
    "services": {
        "api": {"replicas": 3, "workers": 4,
                "service_time": {"dist": "lognormal", "median": "4ms", "p99": "60ms"},
                "retries": {"attempts": 3, "retry_on": "5xx,reset", "per_try_timeout": "15ms", "backoff": "5ms"},
                "hedge_on_per_try_timeout": True},
    },
    "workloads": {"w": {"rate": 400, "target": "api"}},
}

#: name -> (scenario, overrides)
CASES: dict[str, tuple] = {
    "mmc": ("mmc", {}),
    "tandem": ("tandem", {}),
    "fault_timeline": ("fault_timeline", {"run.duration": "30s"}),
    "three_tier_istio_sidecar": ("three_tier", {"run.duration": "20s", "mesh.mode": "sidecar",
                                                "mesh.profile": "istio", "faults": []}),
    "three_tier_node": ("three_tier", {"run.duration": "20s", "mesh.mode": "node", "mesh.profile": "envoy"}),
    # two hosts for all instances: the callers on a host share their node proxy's route to each service
    "three_tier_node_packed": ("three_tier", {"run.duration": "10s", "mesh.mode": "node", "mesh.profile": "istio",
                                              "topology.hosts": {"node-a": "eu-a", "node-b": "eu-b"}}),
    "resilience": (RESILIENCE, {}),
    "hedging": (HEDGING, {}),
    "registry_failover": ("registry_failover", {"run.duration": "20s"}),
}


def _scenario(name: str):
    sc, overrides = CASES[name]
    if isinstance(sc, str):
        return meshsim.load_scenario(meshsim.example(sc), overrides or None)
    return meshsim.load_scenario(sc)


def _hash(df: pd.DataFrame) -> str:
    return str(int(pd.util.hash_pandas_object(df, index=True).sum()))


def fingerprint(name: str, lean: bool = True) -> dict[str, str]:
    """Hashes of the requests and spans tables and of the summary JSON of case ``name`` (seed 1)."""
    import hashlib

    from meshsim.sim import router

    old = getattr(router, "LEAN", True)
    router.LEAN = lean
    try:
        res = meshsim.run(_scenario(name), seed=1)
    finally:
        router.LEAN = old
    summary = json.dumps(res.summary, sort_keys=True, default=str)
    return {"requests": _hash(res.requests), "spans": _hash(res.spans),
            "summary": hashlib.sha256(summary.encode()).hexdigest(),
            "summary_json": json.loads(summary)}


@pytest.fixture(scope="module")
def before() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("name", list(CASES))
def test_same_seed_same_tables_as_before_the_refactor(name, before):
    got = fingerprint(name)
    assert got["requests"] == before[name]["requests"]
    assert got["spans"] == before[name]["spans"]
    # keys added to the summary since the fixture was recorded (by another change) are left out; every
    # value present in both must be the same, to the last digit
    mine, theirs = _common(got["summary_json"], before[name]["summary_json"])
    assert json.dumps(mine, sort_keys=True) == json.dumps(theirs, sort_keys=True)
    if got["summary_json"] == mine and before[name]["summary_json"] == theirs:
        assert got["summary"] == before[name]["summary"]


def _common(a, b):
    """``a`` and ``b`` cut down to the dict keys they share, at every depth."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = a.keys() & b.keys()
        pairs = {k: _common(a[k], b[k]) for k in keys}
        return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}
    return a, b


@pytest.mark.parametrize("name", list(CASES))
def test_lean_path_forced_off_gives_identical_tables(name, before):
    got = fingerprint(name, lean=False)
    assert got["requests"] == before[name]["requests"]
    assert got["spans"] == before[name]["spans"]


def _routes(name: str, lean: bool = True) -> list:
    from meshsim.sim import router
    from meshsim.sim.simulation import Simulation

    old, router.LEAN = router.LEAN, lean
    try:
        sim = Simulation(_scenario(name), seed=1)
        sim.run()
    finally:
        router.LEAN = old
    callers = [*sim.instances, *sim.workloads]
    return list({id(r): r for c in callers for r in c.routes.values()}.values())


def test_every_caller_reaches_every_service_through_one_route_whose_path_fits_its_policy():
    # no mesh: bare (the engine's old fast path); Istio's defaults: lean; breakers and timers: full
    assert {(r.bare, r.lean) for r in _routes("tandem")} == {(True, False)}
    assert {(r.bare, r.lean) for r in _routes("three_tier_istio_sidecar")} == {(False, True)}
    full = _routes("resilience")
    assert {(r.bare, r.lean) for r in full} == {(False, False)}
    # every route gave back every slot: its breaker's gauges are the route's
    for r in full:
        assert r.active == r.breaker.requests and r.active_retries == r.breaker.retries
    # forced off, no route takes a short path (and the tables above stayed the same)
    assert {(r.bare, r.lean) for r in _routes("three_tier_istio_sidecar", lean=False)} == {(False, False)}
    assert {(r.bare, r.lean) for r in _routes("tandem", lean=False)} == {(False, False)}


def test_node_proxies_share_one_route_per_host_and_service():
    from meshsim.sim.simulation import Simulation

    sim = Simulation(_scenario("three_tier_node_packed"), seed=1)
    sim.run()
    api = sim.services["api"].instances
    db = sim.services["db"]
    by_host: dict = {}
    for inst in api:
        by_host.setdefault(inst.host, set()).add(id(inst.routes[db]))
    assert len(api) == 3 and len(by_host) == 2
    # one route (view, balancer, breakers) per node proxy and service, not one per caller
    assert all(len(ids) == 1 for ids in by_host.values())
    routes = {id(i.routes[db]): i.routes[db] for i in api}.values()
    assert all(r.lean for r in routes)
    # every call to db went through one of them (istio: a route with a policy, counted in its summary)
    assert sum(r.summary()["requests"] for r in routes) == sum(i.arrivals for i in db.instances)


if __name__ == "__main__" and "--rewrite" in sys.argv:
    FIXTURE.write_text(json.dumps({name: fingerprint(name) for name in CASES}, indent=1) + "\n")
    print(FIXTURE.read_text())
