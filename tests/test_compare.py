"""meshsim.compare and run.common_random_numbers: variants paired by replication on draws keyed by request.

Issue 12: "each point gets independent seeds, so a sidecar-vs-no-mesh difference of ~1 ms needs many
replications to separate — there is no way to run variants on common random numbers".  On HEAD there was
no meshsim.compare and no run.common_random_numbers (the key was rejected), so every test here failed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import meshsim
from meshsim import stats
from meshsim.compare import METRICS, replication_seeds, run_variants, summarise, t_ci, welch_ci
from meshsim.sim.crn import KeyedInstance
from meshsim.sim.engine import Instance
from meshsim.sim.simulation import Simulation

# two tiers: api calls db always and cache with probability 0.5 (a keyed call choice), three replicas each
TWO_TIER = {
    "run": {"requests": 2000},
    "network": {"enabled": False},
    "services": {
        "api": {"replicas": 3, "workers": 2, "service_time": {"dist": "exponential", "mean": "5ms"},
                "calls": [{"service": "db"}, {"service": "cache", "probability": 0.5}]},
        "db": {"replicas": 3, "workers": 2, "service_time": {"dist": "exponential", "mean": "5ms"}},
        "cache": {"replicas": 2, "service_time": {"dist": "exponential", "mean": "1ms"}},
    },
    "workloads": {"w": {"rate": 600, "target": "api"}},
}
CRN = {"run.common_random_numbers": True}
POLICIES = ("round_robin", "least_request", "random")


def _policy(p: str) -> dict:
    return {f"services.{s}.load_balancer.policy": p for s in ("api", "db", "cache")}


def _service_draws(res: meshsim.Result) -> pd.Series:
    """Service time of each (request, service) call, sorted by key."""
    sp = res.spans
    return sp.set_index(["request", "service"])["service_ms"].astype(float).sort_index()


def test_option_is_off_by_default_and_keeps_every_seeded_number():
    sc = meshsim.load_scenario(TWO_TIER)
    assert sc.spec["run"]["common_random_numbers"] is False
    assert all(type(i) is Instance for i in Simulation(sc, seed=1).instances)
    on = meshsim.load_scenario(TWO_TIER, CRN)
    assert all(type(i) is KeyedInstance for i in Simulation(on, seed=1).instances)
    # off: per-instance streams, so the default numbers are those of before the option existed
    a, b = meshsim.run(sc, seed=4), meshsim.run(meshsim.load_scenario(TWO_TIER, {"run.common_random_numbers": False}), seed=4)
    assert a.to_json() == b.to_json()
    # on: another way of drawing, so other numbers (and still reproducible)
    c, d = meshsim.run(on, seed=4), meshsim.run(on, seed=4)
    assert c.to_json() == d.to_json() and c.summary["latency_ms"]["mean"] != a.summary["latency_ms"]["mean"]


def test_balancer_variants_see_the_same_arrivals_and_service_draws_with_the_option_on():
    runs = {p: meshsim.run(TWO_TIER, seed=7, overrides={**CRN, **_policy(p)}) for p in POLICIES}
    ref = runs["round_robin"]
    ref_draws = _service_draws(ref)
    assert len(ref.requests) == 2000 and set(ref_draws.index.get_level_values("service")) == {"api", "db", "cache"}
    for p in POLICIES[1:]:
        res = runs[p]
        # identical arrival times, request by request
        assert np.array_equal(res.requests["arrival_ms"].to_numpy(), ref.requests["arrival_ms"].to_numpy())
        # the routing really differs ...
        assert not res.spans["instance"].astype(str).equals(ref.spans["instance"].astype(str))
        # ... yet every request calls the same services (keyed call choices) and each call draws the same
        # service time, so each service sees the same multiset of draws
        draws = _service_draws(res)
        assert draws.index.equals(ref_draws.index)
        np.testing.assert_allclose(draws.to_numpy(), ref_draws.to_numpy(), rtol=1e-6, atol=1e-9)
        for service in ("api", "db", "cache"):
            np.testing.assert_allclose(np.sort(draws.xs(service, level="service").to_numpy()),
                                       np.sort(ref_draws.xs(service, level="service").to_numpy()), rtol=1e-6, atol=1e-9)
    # without the option the same seed gives a request other draws once it is routed elsewhere
    off = {p: _service_draws(meshsim.run(TWO_TIER, seed=7, overrides=_policy(p))) for p in ("round_robin", "random")}
    common = off["round_robin"].index.intersection(off["random"].index)
    same = np.isclose(off["round_robin"][common].to_numpy(), off["random"][common].to_numpy(), rtol=1e-6)
    assert same.mean() < 0.5


def test_repeated_visits_and_slow_faults_keep_their_keyed_draws():
    # api calls db twice in a row: the two visits of a request draw two different numbers (visit 0 and 1),
    # the same in both variants; a slow fault scales the draws of the calls db-0 starts in its window
    sc = {**TWO_TIER, "services": {
        "api": {"service_time": {"dist": "exponential", "mean": "1ms"}, "calls": [{"service": "db"}, {"service": "db"}]},
        "db": {"replicas": 2, "service_time": {"dist": "exponential", "mean": "2ms"}}},
        "workloads": {"w": {"rate": 100, "target": "api"}}, "run": {"requests": 300, "common_random_numbers": True}}
    slow = {"faults": [{"at": "1s", "until": "2s", "action": "slow", "instance": "db-0", "factor": 3}]}
    base, slowed = meshsim.run(sc, seed=2), meshsim.run(sc, seed=2, overrides=slow)
    for res in (base, slowed):
        db = res.spans[res.spans["service"] == "db"]
        assert db.groupby("request").size().eq(2).all()
    a = base.spans[base.spans["service"] == "db"].sort_values(["request", "start_ms"])
    b = slowed.spans[slowed.spans["service"] == "db"].sort_values(["request", "start_ms"])
    va = a["service_ms"].to_numpy().reshape(-1, 2)
    assert (va[:, 0] != va[:, 1]).all()  # two visits, two draws
    factor = np.where((b["instance"].astype(str) == "db-0") & (b["start_ms"] >= 1000) & (b["start_ms"] < 2000), 3.0, 1.0)
    assert 20 < (factor == 3).sum() < 200
    # the slow run delays later calls, so a request's two db visits may start in another order: compare per request
    np.testing.assert_allclose(np.sort((b["service_ms"].to_numpy() / factor).reshape(-1, 2), axis=1),
                               np.sort(va, axis=1), rtol=1e-6)


def test_paired_interval_for_a_small_effect_is_several_times_narrower():
    """Sidecars against no mesh (under a millisecond on two or three hops): 20 replications each.

    Over 40 replications the unpaired interval is 4.7 times as wide as the paired one; in blocks of 10
    replications the ratio ranges from about 2 to 8, so 20 keep the check clear of the noise.
    """
    n = 20
    cmp = meshsim.compare(TWO_TIER, {"no mesh": {}, "sidecars": {"mesh.mode": "sidecar"}},
                          replications=n, seed=1, metrics=["mean_ms"])
    row = cmp.table.loc[("sidecars", "mean_ms")]
    paired = row["diff_ci_high"] - row["diff_ci_low"]
    unpaired = row["unpaired_ci_high"] - row["unpaired_ci_low"]
    assert 0.2 < row["diff"] < 1.5 and row["diff_ci_low"] > 0  # a real, small effect, resolved
    assert unpaired > 3 * paired, (paired, unpaired)
    # the unpaired interval is what independent seeds would give: Welch on the two columns of runs
    wide = cmp.runs.pivot(index="seed", columns="variant", values="mean_ms")
    d, lo, hi = welch_ci(wide["sidecars"], wide["no mesh"])
    assert [lo, hi] == pytest.approx([row["unpaired_ci_low"], row["unpaired_ci_high"]])
    # and the paired one is the t interval of the per-replication differences
    diffs = (wide["sidecars"] - wide["no mesh"]).to_numpy()
    half = stats.t_quantile(0.975, n - 1) * diffs.std(ddof=1) / math.sqrt(n)
    assert [row["diff_ci_low"], row["diff_ci_high"]] == pytest.approx([diffs.mean() - half, diffs.mean() + half])
    # truly independent runs of the second variant (other seeds) vary as much as the table's unpaired CI says
    _, indep = run_variants(TWO_TIER, {"sidecars": {"mesh.mode": "sidecar"}}, seeds=range(101, 101 + n),
                            metrics=["mean_ms"], keep_results=False)
    _, lo_i, hi_i = welch_ci(indep["mean_ms"], wide["no mesh"])
    assert hi_i - lo_i > 3 * paired


def test_compare_api_seeds_metrics_and_errors():
    small = {"run": {"requests": 400}, "network": {"enabled": False},
             "services": {"s": {"service_time": {"dist": "exponential", "mean": "5ms"}}},
             "workloads": {"w": {"rate": 100, "target": "s"}}}

    def served(res):
        return float(res.summary["completed"])

    cmp = meshsim.compare(small, {"a": {}, "b": ["services.s.workers=2"]}, replications=3, seed=5,
                          metrics=["p99_ms", "latency_ms.p90", served], keep_results=True)
    assert cmp.seeds == [5, 6, 7] == replication_seeds(5, 3)
    assert cmp.variants == ["a", "b"]
    assert cmp.runs["seed"].tolist() == [5, 6, 7, 5, 6, 7] and cmp.runs["replication"].tolist() == [0, 1, 2] * 2
    assert list(cmp.table.index.get_level_values("metric")[:3]) == ["p99_ms", "latency_ms.p90", "served"]
    assert cmp.table.loc[("b", "served"), "diff"] == 0.0  # every request completes in both
    assert all(r.scenario.spec["run"]["common_random_numbers"] for rs in cmp.results.values() for r in rs)
    assert cmp.results["b"][1].summary["latency_ms"]["p99"] == cmp.runs.iloc[4]["p99_ms"]
    assert "over 3 paired replications" in repr(cmp) and "diff_ci_low" in repr(cmp)
    # a variant may turn the option off again; common_random_numbers=False leaves only the seeds common
    off = meshsim.compare(small, {"a": {}}, replications=2, common_random_numbers=False, keep_results=True)
    assert not off.results["a"][0].scenario.spec["run"]["common_random_numbers"]
    assert np.isnan(off.table["diff"]).all()
    with pytest.raises(ValueError, match="at least one variant"):
        meshsim.compare(small, {})
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        meshsim.compare(small, {"a": {}}, seed=-1)
    with pytest.raises(ValueError, match="replications must be an integer >= 1"):
        meshsim.compare(small, {"a": {}}, replications=0)
    with pytest.raises(KeyError, match="unknown metric 'latency_ms.p42'"):
        meshsim.compare(small, {"a": {}}, replications=1, metrics=["latency_ms.p42"])


def test_interval_helpers_use_the_stats_t_quantiles():
    x = np.array([3.0, 5.0, 4.0, 8.0])
    m, lo, hi = t_ci(x)
    assert m == 5.0 and hi - m == pytest.approx(stats.t_quantile(0.975, 3) * x.std(ddof=1) / 2)
    assert t_ci([2.0]) == (2.0, *[pytest.approx(math.nan, nan_ok=True)] * 2)
    # Welch with equal sizes and variances: t with 2n - 2 degrees of freedom
    d, lo, hi = welch_ci([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert d == 1.0 and hi - d == pytest.approx(stats.t_quantile(0.975, 4) * math.sqrt(2 / 3))
    runs = pd.DataFrame({"variant": ["a", "a", "b", "b"], "replication": [0, 1, 0, 1], "seed": [1, 2, 1, 2],
                         "m": [1.0, 3.0, 2.0, 5.0]})
    t = summarise(runs)
    assert t.loc[("b", "m"), "diff"] == 1.5 and t.loc[("b", "m"), "seeds"] == 2
    # the widget module delegates: the same functions, the same table
    from meshsim.widgets import comparison as wc

    assert wc.t_ci is t_ci and wc.METRICS is METRICS
