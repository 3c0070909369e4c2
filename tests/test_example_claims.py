"""Every shipped scenario and sweep says what it shows in its opening comment; these tests check each claim.

Runs are shortened where the claim allows it (fewer requests, a shorter
duration, one replication), so the file runs in well under a minute.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import meshsim
from meshsim import analytic
from meshsim.examples import SCENARIOS
from meshsim.plots import knee
from meshsim.scenario.load import load_scenario
from meshsim.sweep import load_sweep

SWEEPS = SCENARIOS.parent / "sweeps"


def run(name: str, seed: int = 1, **overrides: object) -> meshsim.Result:
    return meshsim.run(meshsim.example(name), seed=seed, overrides=overrides or None)


def opening_comment(path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for ln in lines:
        if not ln.startswith("#"):
            break
        out.append(ln.lstrip("# "))
    return " ".join(out)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")) + sorted(SWEEPS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_opens_with_what_it_shows(path) -> None:
    comment = opening_comment(path)
    assert len(comment) > 80, f"{path.name} has no opening comment saying what it shows"
    assert "show" in comment.lower(), f"{path.name}'s opening comment does not say what it shows"


def test_every_example_has_a_claim_test() -> None:
    names = {p.stem for p in SCENARIOS.glob("*.yaml")} | {f"sweeps/{p.stem}" for p in SWEEPS.glob("*.yaml")}
    tested = {"mmc", "tandem", "fanout", "three_tier", "social_network", "hotel_reservation", "registry_failover",
              "fault_timeline", "sweeps/mmc_load", "sweeps/three_tier_load"}
    assert names == tested, f"examples without a claim test: {sorted(names - tested)}"


# -- scenarios -----------------------------------------------------------------------------


def test_mmc_matches_erlang_c() -> None:
    theory = analytic.mmc(lam=0.04, mu=0.01, c=5)  # per ms
    assert theory.mean_sojourn == pytest.approx(155.4, abs=0.05)  # the number in the comment
    res = run("mmc", **{"run.requests": 60000})
    s = res.summary
    assert s["services"]["server"]["utilisation"] == pytest.approx(0.8, abs=0.015)
    assert s["latency_ms"]["mean"] == pytest.approx(theory.mean_sojourn, rel=0.06)


def test_tandem_mean_is_three_mm10_sojourns() -> None:
    station = analytic.mmc(lam=8.0, mu=1.0, c=10)  # per second
    assert 3 * station.mean_sojourn * 1000 == pytest.approx(3613.8, abs=0.05)
    s = run("tandem", **{"run.requests": 40000, "metrics.warmup": "2m"}).summary
    assert {n: round(e["utilisation"], 1) for n, e in s["services"].items()} == {"s1": 0.8, "s2": 0.8, "s3": 0.8}
    assert s["latency_ms"]["mean"] == pytest.approx(3613.8, rel=0.05)


def test_fanout_median_is_a_single_shards_tail() -> None:
    res = run("fanout", **{"run.duration": "30s", "metrics.warmup": "2s"})
    spans = res.spans
    shard = spans[spans["service"].astype(str).str.startswith("shard") & (spans["status"] == "ok")]
    shard_latency = (shard["end_ms"] - shard["send_ms"]).to_numpy()
    p50 = res.summary["latency_ms"]["p50"]
    # waiting for the slowest of 10 puts the request's median at a shard's p93 (0.933^10 = 0.5), plus rank
    assert 0.95 < p50 / np.percentile(shard_latency, 93) < 1.3
    assert p50 > 3 * np.percentile(shard_latency, 50)
    # answering from the first 9 replies shrinks the tail
    nine = run("fanout", **{"run.duration": "30s", "metrics.warmup": "2s",
                            "services.search.endpoints.query.calls[0].wait": 9}).summary["latency_ms"]
    assert nine["p99"] < 0.7 * res.summary["latency_ms"]["p99"]
    assert nine["p50"] < p50


def test_three_tier_failures_come_from_the_crash() -> None:
    res = run("three_tier")
    s = res.summary
    assert [(f["time_ms"], f["event"], f["target"]) for f in s["faults"]][:1] == [(60000.0, "crash", "api-1")]
    assert s["failed"] > 0 and set(s["failed_by_reason"]) <= {"instance_crashed", "connection_refused"}
    req = res.requests
    failed = req[(req["status"] != "ok") & (req["status"] != "incomplete")]
    assert failed["arrival_ms"].min() >= 60000 - 1000 and failed["end_ms"].max() <= 75000 + 1000
    # the api reads the database with probability 0.7; frontends block, so their span covers the api call
    calls = {n: e["calls"] for n, e in s["services"].items()}
    done = {n: e["completed"] for n, e in s["services"].items()}
    assert done["db"] / done["api"] == pytest.approx(0.7, abs=0.01)
    assert s["services"]["frontend"]["latency_ms"]["mean"] > s["services"]["api"]["latency_ms"]["mean"]


def test_three_tier_bounded_db_queue_rejects_overflow() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the database is overloaded on purpose
        # (with the example's 2 x 16 blocking frontend workers at most 32 requests are in flight, fewer than
        # the queue's 64, so more frontend workers are needed to overflow it)
        s = meshsim.run(load_scenario(meshsim.example("three_tier"), {"services.db.workers": 2, "services.frontend.workers": 64,
                                                                       "run.duration": "10s",
                                                                       "metrics.warmup": "1s", "faults": []}, warn=False),
                        seed=1).summary
    assert s["services"]["db"]["rejected"] > 0
    assert s["failed_by_reason"].get("queue_full", 0) > 0


def test_social_network_graph_and_cache_misses() -> None:
    s = run("social_network", **{"run.duration": "15s", "metrics.warmup": "1s"}).summary
    calls = {n: e["calls"] for n, e in s["services"].items()}
    # compose fans out to text, media, user and unique-id in parallel: one call each per compose
    for name in ("text", "media", "unique-id"):
        assert calls[name] == pytest.approx(calls["compose-post"], rel=0.01), name
    # probabilistic cache misses: 10% of user reads reach the store, 30% of shortened urls
    assert calls["user-store"] / calls["user"] == pytest.approx(0.1, abs=0.02)
    assert calls["url-store"] / calls["url-shorten"] == pytest.approx(0.3, abs=0.04)
    # placement spans the three zones
    inst = meshsim.run(meshsim.example("social_network"), seed=1,
                       overrides={"run.duration": "1s", "metrics.warmup": 0}).instances
    assert set(inst["zone"]) == {"use-a", "use-b", "use-c"}


def test_hotel_reservation_mix_and_cache_misses() -> None:
    res = run("hotel_reservation", **{"run.duration": "20s", "metrics.warmup": "1s"})
    share = res.requests["workload"].value_counts(normalize=True)
    assert share["search"] == pytest.approx(0.60, abs=0.02)
    assert share["recommend"] == pytest.approx(0.39, abs=0.02)
    assert share["login"] < 0.015 and share["reserve"] < 0.015
    calls = {n: e["calls"] for n, e in res.summary["services"].items()}
    assert calls["mongodb-rate"] / calls["rate"] == pytest.approx(0.1, abs=0.02)
    assert calls["mongodb-profile"] / calls["profile"] == pytest.approx(0.1, abs=0.02)
    # the tail comes from the misses: a store is 10x slower than its cache
    lat = {n: e["latency_ms"]["mean"] for n, e in res.summary["services"].items()}
    assert min(lat[n] for n in calls if n.startswith("mongodb") and calls[n]) > 10 * max(
        lat[n] for n in calls if n.startswith("memcached"))


def test_registry_failover_claims() -> None:
    res = run("registry_failover", **{"run.duration": "40s"})
    s = res.summary
    raft = s["registry"]["raft"]
    # the leader's crash at 31 s costs a second election; the health update waits for the new leader
    assert raft["leader_changes"] >= 2
    late = [w for w in raft["unavailability_windows"] if w[0] >= 30000]
    assert late and late[0][0] == pytest.approx(31000, abs=1)
    assert s["registry"]["health_transitions"]["to"].get("critical", 0) >= 1
    # calls to the crashed instance fail; Istio's retries hide most of it
    assert s["services"]["api"]["failed"] > 0 and s["resilience"]["api"]["retries"] > 0
    assert s["failed"] <= 0.1 * s["services"]["api"]["failed"]
    envoy = run("registry_failover", **{"run.duration": "40s", "mesh.profile": "envoy"}).summary
    assert envoy["failed"] > 10 * max(s["failed"], 1) / 2 and envoy["failed"] > 20
    slow = run("registry_failover", **{"run.duration": "40s", "registry.raft_multiplier": 5}).summary
    slow_late = [w for w in slow["registry"]["raft"]["unavailability_windows"] if w[0] >= 30000]
    assert slow_late[0][1] - slow_late[0][0] > 2 * (late[0][1] - late[0][0])


def test_fault_timeline_errors_fall_in_the_fault_windows() -> None:
    res = run("fault_timeline")
    req = res.requests
    failed = req[(req["status"] != "ok") & (req["status"] != "incomplete")]
    t = failed["arrival_ms"].to_numpy()
    in_crash = (t >= 10000 - 200) & (t < 15000 + 500)  # a request that arrived just before can fail too
    in_partition = (t >= 25000 - 200) & (t < 30000 + 500)
    assert in_crash.sum() > 100 and in_partition.sum() > 100
    assert (in_crash | in_partition).all()  # no retries: every error shows, and only there
    # the slow links (40-45 s) show as latency, not errors
    ok = req[req["status"] == "ok"]
    slow = ok[(ok["arrival_ms"] >= 40000) & (ok["arrival_ms"] < 45000)]["latency_ms"].mean()
    calm = ok[(ok["arrival_ms"] >= 46000) & (ok["arrival_ms"] < 55000)]["latency_ms"].mean()
    assert slow > calm + 10
    istio = run("fault_timeline", **{"mesh.profile": "istio"}).summary
    assert istio["failed"] < 0.2 * res.summary["failed"]


# -- sweeps --------------------------------------------------------------------------------


def test_mmc_load_sweep_follows_erlang_c_and_a_6th_worker_moves_the_knee() -> None:
    sw = load_sweep(SWEEPS / "mmc_load.yaml")
    base = load_scenario(sw.base, {"run.requests": 12000, "metrics.warmup": "20s"})
    params = {k: v for k, v in sw.parameters.items() if k != "run.requests"}
    agg = meshsim.sweep(base, params, mode=sw.mode, replications=1, seed=sw.seed, metrics=sw.metrics,
                        backend="serial", progress=False).aggregate
    knees = {}
    for c, g in agg.groupby("services.server.workers"):
        g = g.sort_values("workloads.arrivals.rate")
        rates = g["workloads.arrivals.rate"].to_numpy()
        mean = g["latency_ms.mean"].to_numpy()
        theory = np.array([analytic.mmc(lam=r / 1000, mu=0.01, c=int(c)).mean_sojourn for r in rates])
        assert np.all(np.abs(mean / theory - 1) < 0.15), (c, mean, theory)
        assert np.all(np.diff(mean) > 0)
        knees[int(c)] = knee(rates, mean, k=1.5)
    assert math.isfinite(knees[5]) and (not math.isfinite(knees[6]) or knees[6] > knees[5] + 3)


def test_three_tier_load_sweep_has_a_knee_that_a_4th_replica_moves() -> None:
    sw = load_sweep(SWEEPS / "three_tier_load.yaml")
    assert not sw.base.spec.get("faults")  # failures could only come from load
    base = load_scenario(sw.base, {"run.duration": "15s", "metrics.warmup": "3s"})
    agg = meshsim.sweep(base, sw.parameters, mode=sw.mode, replications=2, seed=sw.seed, metrics=sw.metrics,
                        backend="serial", progress=False).aggregate
    knees = {}
    for reps, g in agg.groupby("services.api.replicas"):
        g = g.sort_values("workloads.users.rate")
        p99 = g["latency_ms.p99"].to_numpy()
        assert p99[-1] >= 3 * p99[0], (reps, p99)
        assert (g["failed"] == 0).all()
        knees[int(reps)] = knee(g["workloads.users.rate"], p99)
    assert math.isfinite(knees[3]) and math.isfinite(knees[4])
    assert 1.15 < knees[4] / knees[3] < 1.7, knees  # 4 replicas have 4/3 the capacity
