"""Generated call graphs: shapes, entry, sweepable, and latency laws on them."""

from __future__ import annotations

import pytest

import meshsim
from meshsim.analytic import mmc
from meshsim.errors import ScenarioError
from meshsim.topology import generate

DEFAULTS = {"replicas": 1, "workers": 1, "semantics": "async", "service_time": "1ms", "edge_probability": 0.3, "seed": 0}


def scenario(graph: dict, rate: float = 100.0, requests: int = 20000) -> dict:
    return {"run": {"requests": requests}, "network": {"enabled": False}, "metrics": {"warmup": "5s"},
            "graph": graph, "workloads": {"w": {"rate": rate, "target": "svc0"}}}


@pytest.mark.parametrize("graph, services, calls_per_request", [
    ({"kind": "chain", "n": 5}, 5, 5),
    ({"kind": "fanout", "width": 3, "depth": 2}, 1 + 3 + 9, 13),
    ({"kind": "tree", "width": 2, "depth": 3}, 1 + 2 + 4 + 8, 15),
])
def test_shapes(graph, services, calls_per_request):
    res = meshsim.run(scenario(graph, requests=500))
    assert len(res.scenario.services) == services
    assert len(res.spans) == 500 * calls_per_request


def test_random_dag_is_seeded_acyclic_and_reachable():
    a = generate(dict(DEFAULTS, kind="random_dag", n=30, seed=4))
    b = generate(dict(DEFAULTS, kind="random_dag", n=30, seed=4))
    c = generate(dict(DEFAULTS, kind="random_dag", n=30, seed=5))
    assert a == b and a != c
    for name, svc in a.items():
        assert all(int(t[3:]) > int(name[3:]) for t in svc["calls"])  # forward edges only: acyclic
    reach, todo = {"svc0"}, ["svc0"]
    while todo:
        for t in a[todo.pop()]["calls"]:
            if t not in reach:
                reach.add(t)
                todo.append(t)
    assert reach == set(a)
    edges = sum(len(s["calls"]) for s in generate(dict(DEFAULTS, kind="random_dag", n=200, seed=1)).values())
    # expected edges: sum over j of max(1, Binomial(j, p)) ~ p * n(n-1)/2
    assert edges == pytest.approx(0.3 * 200 * 199 / 2, rel=0.05)


def test_chain_latency_is_the_sum_of_mmc_sojourns():
    graph = {"kind": "chain", "n": 4, "workers": 3, "service_time": {"dist": "exponential", "mean": "10ms"}}
    res = meshsim.run(scenario(graph, rate=200, requests=60000), seed=3)
    theory = 4 * mmc(0.2, 0.1, 3).mean_sojourn  # per ms
    assert res.summary["latency_ms"]["mean"] == pytest.approx(theory, rel=0.03)


def test_explicit_services_override_generated_ones():
    sc = meshsim.load_scenario({**scenario({"kind": "chain", "n": 3}), "services": {"svc2": {"workers": 7, "service_time": "2ms"}}})
    assert sc.services["svc2"]["workers"] == 7 and sc.services["svc1"]["workers"] == 1


def test_graph_is_sweepable():
    res = meshsim.sweep(scenario({"kind": "chain", "n": 2}, requests=1500), {"graph.n": [1, 3, 6]},
                        metrics=["latency_ms.mean"], backend="serial", progress=False)
    lat = res.aggregate.set_index("graph.n")["latency_ms.mean"]
    assert lat[1] < lat[3] < lat[6]


def test_bad_graph_errors_name_the_path():
    with pytest.raises(ScenarioError, match=r"graph.kind: must be one of chain, fanout, tree, random_dag, got 'ring'"):
        meshsim.load_scenario(scenario({"kind": "ring"}))
    with pytest.raises(ScenarioError, match=r"graph.widht: unknown key"):
        meshsim.load_scenario(scenario({"kind": "fanout", "widht": 2}))
