"""Sidecar and node proxies: calibrated overhead, load dependence, connection reuse."""

from __future__ import annotations

import copy

import pytest

import meshsim
from meshsim.experiments.mesh_overhead import ISTIO_ADDED_P90_MS, ISTIO_ADDED_P99_MS, overhead, scenario


def test_istio_profile_reproduces_the_published_overhead():
    # Istio 1.20: client + server sidecar add 0.228 ms (p90) and 0.298 ms (p99) at 1000 rps
    row = overhead(requests=100_000, seed=3)
    assert row["added_p90_ms"] == pytest.approx(ISTIO_ADDED_P90_MS, rel=0.10)
    assert row["added_p99_ms"] == pytest.approx(ISTIO_ADDED_P99_MS, rel=0.10)


def test_linkerd_profile_reproduces_its_derived_target():
    from meshsim.experiments.mesh_overhead import LINKERD_ADDED_P50_MS, LINKERD_ADDED_P90_MS, LINKERD_ADDED_P99_MS

    assert (LINKERD_ADDED_P90_MS, LINKERD_ADDED_P99_MS) == (0.084, 0.109)
    row = overhead(mesh={"profile": "linkerd"}, requests=100_000, seed=3)
    assert row["added_p50_ms"] == pytest.approx(LINKERD_ADDED_P50_MS, rel=0.10)
    assert row["added_p90_ms"] == pytest.approx(LINKERD_ADDED_P90_MS, rel=0.10)
    assert row["added_p99_ms"] == pytest.approx(LINKERD_ADDED_P99_MS, rel=0.10)
    istio = overhead(requests=100_000, seed=3)
    assert row["added_p99_ms"] < 0.5 * istio["added_p99_ms"]


def test_no_mesh_is_the_plain_request_path():
    base = scenario(requests=5000)
    a = meshsim.run(base, seed=2)
    b = meshsim.run(dict(base, mesh={"mode": "none"}), seed=2)
    assert a.requests.equals(b.requests)
    assert "mesh" not in a.summary


def test_proxy_overhead_grows_with_load():
    # one proxy thread: the proxies queue as load rises (utilisation law holds)
    low = overhead({"workers": 1}, rps=500, requests=40_000, seed=1)
    high = overhead({"workers": 1}, rps=4000, requests=160_000, seed=1)
    assert high["added_mean_ms"] > low["added_mean_ms"] * 1.15
    res = meshsim.run(dict(scenario(rps=4000, requests=80_000), mesh={"mode": "sidecar", "workers": 1}), seed=1)
    mesh = res.summary["mesh"]
    # each request passes each of the two proxies twice: utilisation = rate x (E[req] + E[resp]) per proxy
    from meshsim.distributions import from_spec
    from meshsim.scenario.spec import MESH_PROFILES

    prof = MESH_PROFILES["istio"]
    work = from_spec(prof["request_processing"]).mean + from_spec(prof["response_processing"]).mean
    expected = 4000 / 1000 * work  # per ms
    assert mesh["mean_utilisation"] == pytest.approx(expected, rel=0.05)
    assert mesh["passes"] == 4 * 80_000


def test_node_proxies_are_shared_per_host():
    base = {
        "run": {"requests": 4000}, "network": {"enabled": False},
        "topology": {"regions": {"r": ["z"]}, "hosts": {"h1": "z", "h2": "z"}},
        "services": {"a": {"replicas": 2, "placement": ["h1", "h2"], "service_time": "1ms", "calls": ["b"]},
                     "b": {"replicas": 2, "placement": ["h1", "h2"], "service_time": "1ms"}},
        "workloads": {"w": {"rate": 200, "target": "a", "source": "h1"}},
    }
    side = meshsim.run(dict(base, mesh={"mode": "sidecar"}), seed=1).summary["mesh"]
    node = meshsim.run(dict(base, mesh={"mode": "node"}), seed=1).summary["mesh"]
    assert side["proxies"] == 4 + 1 and node["proxies"] == 2
    # every call passes its caller's proxy and its callee's proxy twice, even when both are one node proxy
    assert side["passes"] == node["passes"] == 4000 * 2 * 4
    assert node["mean_utilisation"] > side["mean_utilisation"]
    # like one Envoy, a node proxy keeps one view of each upstream for every caller on its host
    packed = copy.deepcopy(base)
    packed["services"]["a"]["placement"] = ["h1", "h1"]
    side_r = meshsim.run(dict(packed, mesh={"mode": "sidecar"}), seed=1).summary["resilience"]
    node_r = meshsim.run(dict(packed, mesh={"mode": "node"}), seed=1).summary["resilience"]
    assert side_r["b"]["callers"] == 2  # a-0's and a-1's sidecars, each with its own balancer
    assert node_r["b"]["callers"] == 1  # h1's node proxy, shared by a-0 and a-1
    assert node_r["b"]["requests"] == side_r["b"]["requests"] == 4000


def test_connections_are_reused_until_idle():
    base = scenario(rps=100, requests=2000)
    kept = meshsim.run(dict(base, mesh={"mode": "sidecar"}), seed=1).summary["mesh"]
    assert kept["handshakes"] == 1  # one client sidecar -> one upstream host, kept alive
    churn = meshsim.run(dict(base, mesh={"mode": "sidecar", "idle_timeout": "1ms"}), seed=1).summary["mesh"]
    # Poisson arrivals at 100/s: a gap exceeds the 1 ms idle timeout with probability exp(-0.1)
    import math

    assert churn["handshakes"] == pytest.approx(2000 * math.exp(-0.1), rel=0.03)
    off = meshsim.run(dict(base, mesh={"mode": "sidecar", "idle_timeout": "1ms", "mtls": False}), seed=1).summary["mesh"]
    assert off["handshakes"] == 0


def test_bad_mesh_settings_name_the_key():
    with pytest.raises(meshsim.ScenarioError, match=r"mesh.mode: must be one of none, sidecar, node, got 'ambient'"):
        meshsim.load_scenario(dict(scenario(), mesh={"mode": "ambient"}))
