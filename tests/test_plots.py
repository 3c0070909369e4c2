"""Comparison plots are produced (PNG and SVG) from real sweeps; the knee is where theory puts it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import meshsim
from meshsim import plots
from meshsim.analytic import mm1

BASE = {
    "run": {"requests": 4000},
    "network": {"enabled": False},
    "metrics": {"warmup": "2s"},
    "services": {"s": {"workers": 1, "service_time": {"dist": "exponential", "mean": "10ms"}}},
    "workloads": {"w": {"rate": 10, "target": "s"}},
}


@pytest.fixture(scope="module")
def sweep():
    return meshsim.sweep(BASE, {"workloads.w.rate": [10, 30, 50, 70, 85], "services.s.workers": [1, 2]},
                         replications=2, seed=1, backend="serial", progress=False,
                         metrics=["latency_ms.mean", "latency_ms.p99", "throughput_rps"])


def test_knee_of_mm1_mean_matches_theory():
    # M/M/1 mean sojourn 1/(mu - lam): doubles its low-load value where lam = (mu + lam0) / 2
    mu = 0.1
    lams = np.linspace(0.001, 0.095, 400)
    w = [mm1(l, mu).mean_sojourn for l in lams]
    assert plots.knee(lams, w, k=2.0) == pytest.approx((mu + lams[0]) / 2, rel=1e-3)


def test_comparison_plots_are_written(sweep, tmp_path):
    agg = sweep.aggregate
    figs = {
        "latency_vs_load": plots.latency_vs_load(agg, "workloads.w.rate", "latency_ms.p99", by="services.s.workers"),
        "throughput": plots.throughput_vs_offered(agg, "workloads.w.rate", by="services.s.workers"),
        "heatmap": plots.heatmap(agg, "workloads.w.rate", "services.s.workers", "latency_ms.mean"),
        "cdf": plots.cdf_overlay({f"rate {r}": meshsim.run(BASE, overrides={"workloads.w.rate": r}) for r in (10, 70)}),
    }
    for name, fig in figs.items():
        for p in plots.save(fig, tmp_path / name):
            assert p.stat().st_size > 1000, p
    ax = figs["latency_vs_load"].axes[0]
    assert "(ms)" in ax.get_ylabel() and "(req/s)" in ax.get_xlabel()
    # one worker saturates first: its knee lies at a lower load than two workers'
    one = agg[agg["services.s.workers"] == 1]
    two = agg[agg["services.s.workers"] == 2]
    k1 = plots.knee(one["workloads.w.rate"], one["latency_ms.p99"])
    k2 = plots.knee(two["workloads.w.rate"], two["latency_ms.p99"])
    assert k1 < 70 and (np.isnan(k2) or k2 > k1)
