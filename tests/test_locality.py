"""Zone-aware routing and locality failover through scenarios, against Envoy's documented arithmetic."""

from __future__ import annotations

import pytest

import meshsim


def _zone_of_callees(res) -> dict[str, dict[str, float]]:
    """For each front instance: the share of its calls that went to back instances in each zone."""
    sp = res.spans
    zone = res.instances["zone"]
    parents = sp.set_index("span")["instance"]
    back = sp[sp["service"] == "back"]
    caller = back["parent"].map(parents)
    table = back.assign(caller=caller.map(zone), callee=back["instance"].map(zone))
    shares = table.groupby("caller")["callee"].value_counts(normalize=True)
    return {z: shares[z].to_dict() for z in shares.index.get_level_values(0).unique()}


def test_zone_aware_routing_follows_envoys_residual_split():
    # front: one instance per zone (1/3 each); back: 4 in zone a, 1 in b, 1 in c (6 = min_cluster_size)
    hosts = {"fa": "a", "fb": "b", "fc": "c", "a1": "a", "a2": "a", "a3": "a", "a4": "a", "b1": "b", "c1": "c"}
    sc = {
        "run": {"duration": "30s"}, "metrics": {"warmup": 0},
        "topology": {"regions": {"r": ["a", "b", "c"]}, "hosts": hosts},
        "services": {
            "front": {"replicas": 3, "workers": 100, "placement": ["fa", "fb", "fc"],
                      "service_time": {"dist": "constant", "value": 0.1}, "calls": [{"service": "back"}]},
            "back": {"replicas": 6, "workers": 100, "placement": ["a1", "a2", "a3", "a4", "b1", "c1"],
                     "service_time": {"dist": "constant", "value": 0.1},
                     "load_balancer": {"policy": "round_robin", "zone_aware": True}},
        },
        "workloads": {"w": {"rate": 900, "target": "front"}},
    }
    shares = _zone_of_callees(meshsim.run(sc, seed=1))
    # zone a holds 2/3 of back but 1/3 of front: its front stays local.  Zones b and c hold 1/6 of back for
    # 1/3 of front: they keep (1/6)/(1/3) = 50% local and send the rest to the zone with spare capacity, a.
    assert shares["a"] == {"a": 1.0}
    for z in ("b", "c"):
        assert shares[z][z] == pytest.approx(0.5, abs=0.03)
        assert shares[z]["a"] == pytest.approx(0.5, abs=0.03)
    # below min_cluster_size zone awareness is off: plain round robin over all six
    sc["services"]["back"]["load_balancer"]["min_cluster_size"] = 7
    shares = _zone_of_callees(meshsim.run(sc, seed=1))
    assert shares["b"]["a"] == pytest.approx(4 / 6, abs=0.03)


def test_locality_failover_spills_to_the_region_when_the_zone_is_ejected():
    hosts = {"client": "a", "a1": "a", "a2": "a", "b1": "b", "b2": "b", "c1": "c", "c2": "c"}
    sc = {
        "run": {"duration": "20s"}, "metrics": {"warmup": 0},
        "topology": {"regions": {"east": ["a", "b"], "west": ["c"]}, "hosts": hosts},
        "mesh": {"mode": "sidecar"},
        "services": {
            "api": {"replicas": 6, "workers": 50, "placement": ["a1", "a2", "b1", "b2", "c1", "c2"],
                    "service_time": {"dist": "constant", "value": 1},
                    "load_balancer": {"policy": "round_robin", "locality_failover": True},
                    "outlier_detection": {"consecutive_5xx": 3, "max_ejection_percent": 100}},
        },
        "workloads": {"w": {"rate": 200, "target": "api", "source": "client"}},
        "faults": [{"action": "crash", "host": "a1", "at": "10s"}, {"action": "crash", "host": "a2", "at": "10s"}],
    }
    res = meshsim.run(sc, seed=2)
    sp = res.spans
    zone = res.instances["zone"]
    before = sp[sp["send_ms"] < 10_000]["instance"].map(zone).value_counts(normalize=True)
    after = sp[sp["send_ms"] > 12_000]["instance"].map(zone).value_counts(normalize=True)
    assert before.to_dict() == {"a": 1.0}  # all traffic stays in the caller's zone (P0)
    # both zone-a instances ejected: P0 has no healthy host, the same region (P1) takes everything, not west
    assert after.to_dict() == {"b": 1.0}
    assert res.summary["failed"] <= 10  # only the attempts before the ejections (retries cover most)
