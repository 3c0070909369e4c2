"""topology_lab: load grids put the busiest service where asked; the sweep stacks topologies."""

from __future__ import annotations

import math

import pytest

import meshsim
from meshsim.experiments import topology_lab


def test_load_grid_hits_the_requested_utilisation():
    scs = topology_lab.topology_scenarios()
    for name, sc in scs.items():
        grid = topology_lab.load_grid(sc, [0.4, 0.8])
        for i, u in enumerate((0.4, 0.8)):
            over = {path: vals[i] for path, vals in grid.items()}
            assert max(meshsim.load_scenario(sc, over).utilisation().values()) == pytest.approx(u, rel=1e-4), name


def test_social_network_has_poisson_readers_at_the_mean_rate_and_one_worker():
    sc = topology_lab.social_scenario()
    assert sc["workloads"]["readers"]["type"] == "poisson"
    assert sc["workloads"]["readers"]["rate"] == pytest.approx((900 * 5 + 300 * 10) / 15)
    assert {s["workers"] for s in sc["services"].values()} == {1}


def test_sweep_topologies_stacks_aggregates_and_finds_knees():
    scs = topology_lab.topology_scenarios("3s", "0.5s")
    scs = {k: scs[k] for k in ("chain", "fanout")}
    agg = topology_lab.sweep_topologies(scs, [0.3, 0.9], replications=2, backend="serial")
    assert agg["topology"].tolist() == ["chain", "chain", "fanout", "fanout"]
    assert agg["offered_rps"].tolist() == [300.0, 900.0, 300.0, 900.0]
    assert (agg["n"] == 2).all()
    assert (agg["latency_ms.p99_ci_low"] <= agg["latency_ms.p99"]).all()
    # the chain of five 2 ms services is slower at low load than one service plus the slowest of four
    low = agg[agg["utilisation"] == 0.3].set_index("topology")["latency_ms.p50"]
    assert low["chain"] > low["fanout"] + 5
    k = topology_lab.knees(agg, k=1.01)
    assert list(k.index) == ["chain", "fanout"] and all(0.3 < v <= 0.9 for v in k)
    assert math.isnan(topology_lab.knees(agg, k=100.0)["fanout"])
