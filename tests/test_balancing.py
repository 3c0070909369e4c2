"""meshsim.experiments.balancing: supermarket formulas, per-instance load split, policy tables, the figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import meshsim
from meshsim.experiments.balancing import (load_split, load_split_figure, policy_table, queue_tail, workload_split,
                                           supermarket_sojourn, supermarket_tail)


def test_supermarket_tail_formula():
    assert supermarket_tail(0.9, 0) == 1.0
    assert supermarket_tail(0.9, 1, d=2) == pytest.approx(0.9)  # s_1 is the utilisation for every d
    assert supermarket_tail(0.9, 4, d=1) == pytest.approx(0.9**4)  # random choice: M/M/1
    assert supermarket_tail(0.9, 4, d=2) == pytest.approx(0.9**15)  # (2^4 - 1) / 1
    assert supermarket_tail(0.9, 3, d=3) == pytest.approx(0.9**13)  # (27 - 1) / 2
    with pytest.raises(ValueError, match="0 < lam < 1"):
        supermarket_tail(1.0, 2)
    with pytest.raises(ValueError, match="d \\(choices per job\\)"):
        supermarket_tail(0.5, 2, d=0)


def test_supermarket_sojourn_is_littles_law_on_the_tail():
    assert supermarket_sojourn(0.9) == pytest.approx(2.61, abs=0.01)  # Mitzenmacher's table
    assert supermarket_sojourn(0.5) == pytest.approx(1.27, abs=0.01)
    assert supermarket_sojourn(0.9, d=1) == pytest.approx(10.0)
    for lam in (0.3, 0.7, 0.95):
        for d in (1, 2, 3):
            mean_jobs = sum(supermarket_tail(lam, k, d) for k in range(1, 2000))
            assert supermarket_sojourn(lam, d) == pytest.approx(mean_jobs / lam, rel=1e-9)
        assert supermarket_sojourn(lam, 3) < supermarket_sojourn(lam, 2) < supermarket_sojourn(lam, 1)


def _farm(policy: str, *, replicas: int = 4, rate: float = 200, clients: int | None = None,
          requests: int = 4000, **extra) -> dict:
    sc = {"run": {"requests": requests}, "network": {"enabled": False}, "metrics": {"warmup": "1s"},
          "services": {"s": {"replicas": replicas, "service_time": {"dist": "exponential", "mean": "2ms"},
                             "load_balancer": {"policy": policy}}},
          "workloads": {"w": {"rate": rate, "target": "s"}}}
    if clients:
        sc["workloads"]["w"]["clients"] = clients
    sc.update(extra)
    return sc


def test_load_split_shares():
    rr = meshsim.run(_farm("round_robin"), seed=1)
    hot = meshsim.run(_farm("ring_hash", clients=1), seed=1)
    split = load_split({"rr": rr, "hash, one key": hot})
    assert list(split.index) == ["s-0", "s-1", "s-2", "s-3"]
    assert np.allclose(split.sum(), 1.0)
    assert split["rr"].tolist() == [0.25] * 4
    assert sorted(split["hash, one key"].tolist()) == [0.0, 0.0, 0.0, 1.0]  # one key, one instance
    util = load_split({"rr": [rr, rr]}, column="utilisation")
    assert util["rr"].tolist() == pytest.approx(rr.instances["utilisation"].tolist())


def test_queue_tail_is_mm1_for_random_choice():
    sc = _farm("random", replicas=4, rate=1200, requests=60_000)  # 300/s on 2 ms each: rho = 0.6
    sc["metrics"]["sample_interval"] = "7ms"
    tail = queue_tail(meshsim.run(sc, seed=3), k_max=4)
    assert tail["k"].tolist() == [1, 2, 3, 4]
    assert tail["fraction"].tolist() == pytest.approx([0.6**k for k in range(1, 5)], abs=0.03)
    assert tail["fraction"].is_monotonic_decreasing


def test_policy_table_numbers():
    crash = [{"at": "5s", "action": "crash", "instance": "s-0"}]
    runs = {"rr": [meshsim.run(_farm("round_robin", faults=crash), seed=s) for s in (1, 2)],
            "one key": meshsim.run(_farm("ring_hash", clients=1), seed=1)}
    t = policy_table(runs)
    assert list(t.index) == ["rr", "one key"]
    assert t.loc["rr", "runs"] == 2 and t.loc["one key", "runs"] == 1
    # s-0 is dead from 5 s to the end (20 s): a quarter of the requests after it fail under round robin
    assert t.loc["rr", "failed_fraction"] == pytest.approx(0.25 * 15 / 19, abs=0.02)
    assert t.loc["one key", "failed_fraction"] == 0.0
    assert t.loc["one key", "busiest_share"] == 1.0
    assert t.loc["one key", "max_utilisation"] == pytest.approx(0.4, abs=0.03)  # 200/s x 2 ms on one instance
    assert t.loc["rr", "p99_ci_low"] <= t.loc["rr", "p99_ms"] <= t.loc["rr", "p99_ci_high"]
    assert np.isnan(t.loc["one key", "p99_ci_low"])
    p99s = [r.summary["latency_ms"]["p99"] for r in runs["rr"]]
    assert t.loc["rr", "p99_ms"] == pytest.approx(np.mean(p99s))


def test_load_split_figure_draws_the_shares():
    rr = meshsim.run(_farm("round_robin"), seed=1)
    hot = meshsim.run(_farm("ring_hash", clients=1), seed=1)
    frame = load_split({"rr": rr, "hot": hot})
    fig = load_split_figure(frame)
    assert len(fig.axes) == 2
    for ax, label in zip(fig.axes, frame.columns):
        assert ax.get_title() == f"{label}\nbusiest {frame[label].max():.1%}"
        assert [p.get_height() for p in ax.patches] == pytest.approx(frame[label].tolist())
        even = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
        assert len(even) == 1 and even[0].get_ydata()[0] == pytest.approx(0.25)
    assert fig.axes[0].get_ylabel() == "share of arrivals"
    util = load_split_figure({"rr": rr}, column="utilisation")
    assert util.axes[0].get_ylabel() == "utilisation (fraction busy)"
    assert not [ln for ln in util.axes[0].get_lines() if ln.get_linestyle() == "--"]
    import matplotlib.pyplot as plt

    plt.close("all")


def test_workload_split_measures_key_affinity():
    def keyed(policy):
        return {"run": {"requests": 3000}, "network": {"enabled": False},
                "services": {"s": {"replicas": 5, "service_time": "1ms", "load_balancer": {"policy": policy}}},
                "workloads": {"bg": {"rate": 400, "target": "s", "clients": 100},
                              "hot": {"rate": 100, "target": "s", "clients": 1}}}

    runs = {p: meshsim.run(keyed(p), seed=2) for p in ("round_robin", "maglev")}
    hot = workload_split(runs, "hot")
    assert np.allclose(hot.sum(), 1.0)
    assert hot["maglev"].max() == 1.0  # one key, one instance
    assert hot["round_robin"].tolist() == pytest.approx([0.2] * 5, abs=0.01)  # the hot caller's own rotation
    everything = load_split(runs)
    n_hot = int((runs["maglev"].requests["workload"] == "hot").sum())
    n_all = len(runs["maglev"].requests)
    # the hot key's instance carries the key plus its share of the background
    top = hot["maglev"].idxmax()
    assert everything.loc[top, "maglev"] >= n_hot / n_all
    with pytest.raises(ValueError, match="no workload 'cold'"):
        workload_split(runs, "cold")
