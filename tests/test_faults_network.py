"""Faults, the network model, bounded queues, fan-out, determinism and streaming mode."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import meshsim
from meshsim.distributions import from_spec
from meshsim.errors import ScenarioWarning
from meshsim.scenario.spec import DEFAULT_LATENCY

DATA = Path(__file__).resolve().parents[1] / "data" / "scenarios"
CONST = {"dist": "constant", "value": 1.0}


def window(df: pd.DataFrame, col: str, lo: float, hi: float) -> pd.DataFrame:
    return df[(df[col] > lo) & (df[col] < hi)]


# ----------------------------------------------------------------------------- instance crash


def test_instance_crash_refused_and_in_flight():
    sc = {
        "run": {"duration": "12s"},
        "network": {"enabled": False},
        "services": {
            "front": {"workers": 50, "service_time": CONST, "calls": ["back"]},
            "back": {"workers": 4, "service_time": {"dist": "exponential", "mean": 50}},
        },
        "workloads": {"w": {"type": "poisson", "rate": "60/s", "target": "front"}},
        "faults": [{"at": "5s", "until": "8s", "action": "crash", "instance": "back-0"}],
    }
    res = meshsim.run(sc, seed=1)
    req = res.requests
    sent = req["arrival_ms"] + 1.0  # front calls back 1 ms after arrival
    crashed = req["status"] == "instance_crashed"
    refused = req["status"] == "connection_refused"
    # in flight at the crash (queued or in service at back-0): fail at the crash instant
    assert crashed.sum() >= 2
    assert (req.loc[crashed, "end_ms"] == 5000.0).all()
    assert (sent[crashed] <= 5000.0).all()
    # sent while down: refused at once (no network), with the downstream's reason
    down = (sent > 5000.0) & (sent < 8000.0)
    assert refused[down].all() and not refused[~down].any()
    assert np.allclose(req.loc[refused, "latency_ms"], 1.0)
    assert refused.sum() == pytest.approx(60 * 3, rel=0.2)
    # before the crash (finished) and after the restart everything succeeds
    assert (req.loc[req["end_ms"] < 5000.0, "status"] == "ok").all()
    assert (req.loc[sent >= 8000.0, "status"] == "ok").all()
    assert set(req["status"].unique()) == {"ok", "instance_crashed", "connection_refused"}
    s = res.summary
    assert s["failed_by_reason"] == {"connection_refused": int(refused.sum()), "instance_crashed": int(crashed.sum())}
    inst = res.instances.loc["back-0"]
    assert inst["crashes"] == 1 and inst["refused"] == refused.sum()
    assert [(f["time_ms"], f["event"]) for f in s["faults"]] == [(5000.0, "crash"), (8000.0, "restart")]
    # the back spans carry the reasons; front spans fail with the same reason
    sp = res.spans
    back = sp[sp["service"] == "back"]
    assert (back["status"] == "instance_crashed").sum() == crashed.sum()
    front = sp[sp["service"] == "front"]
    assert (front["status"] == "connection_refused").sum() == refused.sum()
    # back-0 runs at 0.06/ms x 50 ms / 4 = 0.75 while up, and is down 3 s of the 12 s
    assert inst["utilisation"] == pytest.approx(0.75 * 9 / 12, abs=0.08)
    busy = res.timeseries
    busy = busy[(busy["instance"] == "back-0") & (busy["time_ms"] > 5000) & (busy["time_ms"] < 8000)]
    assert len(busy) > 10 and (busy["busy"] == 0).all() and (busy["queue"] == 0).all()


# ----------------------------------------------------------------------------- host crash


def test_host_crash_fails_calls_to_its_instances_only():
    sc = {
        "run": {"duration": "12s"},
        "topology": {"regions": {"r": ["z"]}, "hosts": {"h1": "z", "h2": "z"}},
        "services": {"back": {"replicas": 2, "workers": 4, "placement": ["h1", "h2"],
                              "service_time": {"dist": "exponential", "mean": 20}}},
        "workloads": {"w": {"type": "poisson", "rate": "200/s", "target": "back", "source": "z"}},
        "faults": [{"at": "5s", "until": "8s", "action": "crash", "host": "h1"}],
    }
    res = meshsim.run(sc, seed=2)
    assert res.instances.loc["back-0", "host"] == "h1"
    sp = res.spans
    on_h2 = sp[sp["instance"] == "back-1"]
    assert (on_h2["status"] == "ok").all()
    on_h1 = sp[sp["instance"] == "back-0"]
    inside = window(on_h1, "send_ms", 5000.0, 8000.0)
    assert len(inside) > 250
    assert (inside["status"] == "host_down").all()
    assert inside["arrive_ms"].isna().all()  # never reached the host
    failed = on_h1[on_h1["status"] != "ok"]
    assert set(failed["status"].unique()) <= {"host_down", "instance_crashed"}
    assert (failed["send_ms"] <= 8000.0).all() and (failed["end_ms"] >= 5000.0).all()
    # round robin: every other request in the window goes to h1 and fails
    req = window(res.requests, "arrival_ms", 5000.0, 8000.0)
    assert (req["status"] != "ok").mean() == pytest.approx(0.5, abs=0.01)
    assert (res.requests.loc[res.requests["arrival_ms"] > 8100, "status"] == "ok").all()
    assert res.instances.loc["back-0", "crashes"] == 1
    assert res.instances.loc["back-1", "crashes"] == 0
    assert res.summary["network"]["dropped"] >= len(inside)


# ----------------------------------------------------------------------------- partitions


def two_zone_scenario(faults: list, duration: str = "15s") -> dict:
    """Clients in each zone call a service in the other zone."""
    return {
        "run": {"duration": duration},
        "topology": {"regions": {"r": ["za", "zb"]}},
        "services": {
            "svc_a": {"zones": ["za"], "workers": 20, "service_time": CONST},
            "svc_b": {"zones": ["zb"], "workers": 20, "service_time": CONST},
        },
        "workloads": {
            "wa": {"type": "poisson", "rate": "100/s", "target": "svc_b", "source": "za"},
            "wb": {"type": "poisson", "rate": "100/s", "target": "svc_a", "source": "zb"},
        },
        "faults": faults,
    }


@pytest.mark.parametrize("oneway", [False, True])
def test_zone_partition(oneway):
    part = {"at": "5s", "until": "10s", "action": "partition", "groups": [["za"], ["zb"]], "oneway": oneway}
    res = meshsim.run(two_zone_scenario([part]), seed=3)
    req = res.requests
    inside = window(req, "arrival_ms", 5100.0, 9900.0)
    outside = req[(req["arrival_ms"] < 4900.0) | (req["arrival_ms"] > 10100.0)]
    assert len(inside) > 800
    assert (outside["status"] == "ok").all()
    # za -> zb is blocked either way: requests dropped at once, svc_b never sees them
    a_in = inside[inside["workload"] == "wa"]
    assert (a_in["status"] == "partitioned").all()
    assert (a_in["latency_ms"] == 0.0).all()
    sp = res.spans
    b_spans = window(sp[sp["service"] == "svc_b"], "send_ms", 5100.0, 9900.0)
    assert (b_spans["status"] == "partitioned").all() and b_spans["arrive_ms"].isna().all()
    # zb -> za: the request gets through only when the partition is one-way; the
    # reply (za -> zb) is still blocked, so the client sees 'partitioned' in both cases
    b_in = inside[inside["workload"] == "wb"]
    assert (b_in["status"] == "partitioned").all()
    a_spans = window(sp[sp["service"] == "svc_a"], "send_ms", 5100.0, 9900.0)
    if oneway:
        assert (a_spans["status"] == "ok").all() and a_spans["arrive_ms"].notna().all()
        assert (b_in["latency_ms"] > 1.0).all()  # served, reply lost on the way back
    else:
        assert (a_spans["status"] == "partitioned").all() and a_spans["arrive_ms"].isna().all()
        assert (b_in["latency_ms"] == 0.0).all()
    assert res.summary["failed_by_reason"]["partitioned"] == pytest.approx(2 * 100 * 5, rel=0.1)


def test_oneway_partition_from_second_zone_spares_first():
    # groups[0] = zb: only zb -> za traffic is blocked
    part = {"at": "5s", "until": "10s", "action": "partition", "groups": [["zb"], ["za"]], "oneway": True}
    res = meshsim.run(two_zone_scenario([part]), seed=3)
    sp = res.spans
    b_spans = window(sp[sp["service"] == "svc_b"], "send_ms", 5100.0, 9900.0)
    a_spans = window(sp[sp["service"] == "svc_a"], "send_ms", 5100.0, 9900.0)
    assert (b_spans["status"] == "ok").all()  # za -> zb requests arrive and are served
    assert (a_spans["status"] == "partitioned").all()  # zb -> za requests are dropped


# ----------------------------------------------------------------------------- degrade


def test_degrade_extra_latency_on_crossing_calls():
    sc = {
        "run": {"duration": "15s"},
        "topology": {"regions": {"r": ["za", "zb"]}},
        "services": {
            "front": {"zones": ["za"], "workers": 50, "service_time": CONST, "calls": ["local", "remote"]},
            "local": {"zones": ["za"], "workers": 50, "service_time": CONST},
            "remote": {"zones": ["zb"], "workers": 50, "service_time": CONST},
        },
        "workloads": {"w": {"type": "poisson", "rate": "200/s", "target": "front", "source": "za"}},
        "faults": [{"at": "5s", "until": "10s", "action": "degrade", "between": ["za", "zb"],
                    "extra_latency": {"dist": "constant", "value": 50}}],
    }
    res = meshsim.run(sc, seed=4)
    sp = res.spans

    def shift(service: str) -> float:
        s = sp[sp["service"] == service]
        inside = window(s, "send_ms", 5000.0, 10000.0)["network_ms"].mean()
        outside = s.loc[(s["send_ms"] < 5000.0) | (s["send_ms"] > 10000.0), "network_ms"].mean()
        return inside - outside

    assert shift("remote") == pytest.approx(50.0, abs=0.5)
    assert shift("local") == pytest.approx(0.0, abs=0.05)
    assert shift("front") == pytest.approx(0.0, abs=0.05)
    # the request pays the extra latency on both legs of the crossing call
    req = res.requests
    inside = window(req, "arrival_ms", 5100.0, 9800.0)["latency_ms"].mean()
    outside = req.loc[(req["arrival_ms"] < 4800.0) | (req["arrival_ms"] > 10100.0), "latency_ms"].mean()
    assert inside - outside == pytest.approx(100.0, abs=1.0)
    assert res.summary["failed"] == 0
    assert [f["event"] for f in res.summary["faults"]] == ["degrade", "heal"]


def test_degrade_replacement_latency_and_loss():
    deg = {"at": "5s", "until": "10s", "action": "degrade", "between": ["za", "zb"],
           "latency": {"dist": "constant", "value": 20}, "loss": 0.3}
    res = meshsim.run(two_zone_scenario([deg]), seed=4)
    sp = res.spans
    inside = window(sp, "send_ms", 5000.0, 9900.0)
    arrived = inside[inside["arrive_ms"].notna()]
    assert np.allclose(arrived["network_ms"], 20.0)  # replaced, not added
    # a request crosses twice (request and reply); either message is lost with p = 0.3
    req = window(res.requests, "arrival_ms", 5000.0, 9900.0)
    assert (req["status"] != "ok").mean() == pytest.approx(1 - 0.7**2, abs=0.04)
    assert set(req["status"].unique()) == {"ok", "network_loss"}
    after = res.requests[res.requests["arrival_ms"] > 10_000]
    assert (after["status"] == "ok").all() and after["latency_ms"].max() < 15


# ----------------------------------------------------------------------------- latency classes


def classes_scenario(links: list | None = None) -> dict:
    return {
        "run": {"requests": 10_000},
        "topology": {"regions": {"r1": ["za", "zb"], "r2": ["zc"]},
                     "hosts": {"h1": "za", "h2": "za", "h3": "zb", "h4": "zc"}},
        "network": {"links": links or []},
        "services": {
            "router": {"placement": ["h1"], "workers": 50, "service_time": 0.1,
                       "calls": ["same_host", "same_zone", "cross_zone", "cross_region"]},
            "same_host": {"placement": ["h1"], "workers": 50, "service_time": 0.1},
            "same_zone": {"placement": ["h2"], "workers": 50, "service_time": 0.1},
            "cross_zone": {"placement": ["h3"], "workers": 50, "service_time": 0.1},
            "cross_region": {"placement": ["h4"], "workers": 50, "service_time": 0.1},
        },
        "workloads": {"w": {"type": "poisson", "rate": "100/s", "target": "router", "source": "za"}},
    }


def test_latency_classes_match_their_distributions():
    res = meshsim.run(classes_scenario(), seed=5)
    sp = res.spans
    assert (sp["status"] == "ok").all()
    means = {}
    for cls in ("same_host", "same_zone", "cross_zone", "cross_region"):
        d = from_spec(DEFAULT_LATENCY[cls])
        means[cls] = d.mean
        net = sp.loc[sp["service"] == cls, "network_ms"]
        assert len(net) == 10_000
        assert net.mean() == pytest.approx(d.mean, rel=0.03), cls
        if cls != "same_host":
            assert net.quantile(0.99) == pytest.approx(d.quantile(0.99), rel=0.08), cls
            assert net.median() == pytest.approx(d.quantile(0.5), rel=0.03), cls
    # client (its own host in za) -> router on h1 is a same-zone hop
    assert sp.loc[sp["service"] == "router", "network_ms"].mean() == pytest.approx(means["same_zone"], rel=0.03)
    # a request: two legs per hop, five 0.1 ms services
    expected = 2 * (means["same_zone"] + sum(means.values())) + 0.5
    assert res.summary["latency_ms"]["mean"] == pytest.approx(expected, rel=0.02)


def test_link_overrides_most_specific_wins():
    links = [
        {"between": ["za", "zc"], "latency": {"dist": "constant", "value": 5}},
        {"between": ["h1", "h4"], "latency": {"dist": "constant", "value": 7}},  # host beats zone
        {"between": ["h1", "h3"], "latency": {"dist": "constant", "value": 3}, "oneway": True},
    ]
    sc = classes_scenario(links)
    sc["run"]["requests"] = 500
    res = meshsim.run(sc, seed=5)
    sp = res.spans
    assert np.allclose(sp.loc[sp["service"] == "cross_region", "network_ms"], 7.0)
    assert np.allclose(sp.loc[sp["service"] == "cross_zone", "network_ms"], 3.0)
    # the reply leg of a call ends when the router sends its next call (steps are sequential)
    by = {name: g.set_index("request") for name, g in sp.groupby("service", observed=True)}
    reply_cz = by["cross_region"]["send_ms"] - by["cross_zone"]["end_ms"]
    reply_cr = by["router"]["end_ms"] - by["cross_region"]["end_ms"]
    assert np.allclose(reply_cr, 7.0)  # h4 -> h1: the host-level link, both ways
    # h3 -> h1 is not covered by the one-way link: default cross-zone latency
    assert reply_cz.min() > 0 and not np.allclose(reply_cz, 3.0)
    assert reply_cz.mean() == pytest.approx(from_spec(DEFAULT_LATENCY["cross_zone"]).mean, rel=0.1)
    assert sp.loc[sp["service"] == "same_zone", "network_ms"].mean() == pytest.approx(
        from_spec(DEFAULT_LATENCY["same_zone"]).mean, rel=0.1)


# ----------------------------------------------------------------------------- message loss


def test_loss_probability_per_message():
    p = 0.02
    sc = {
        "run": {"requests": 50_000},
        "network": {"loss": p},
        "services": {
            "a": {"workers": 50, "service_time": 0.1, "calls": ["b"]},
            "b": {"workers": 50, "service_time": 0.1},
        },
        "workloads": {"w": {"type": "poisson", "rate": "500/s", "target": "a"}},
    }
    res = meshsim.run(sc, seed=6)
    s = res.summary
    # four messages per request (request and reply on two calls); any loss fails it
    expected = 1 - (1 - p) ** 4
    assert s["failed"] / s["requests"] == pytest.approx(expected, rel=0.06)
    assert set(s["failed_by_reason"]) == {"network_loss"}
    assert s["network"]["dropped"] / s["network"]["messages"] == pytest.approx(p, rel=0.06)
    # a lost request message fails the call at once: the call never arrives
    sp = res.spans
    never = sp["arrive_ms"].isna()
    assert (sp.loc[never, "status"] == "network_loss").all()
    assert never.mean() == pytest.approx(p, rel=0.1)  # one request message per span
    # a lost reply: the callee finished fine but its caller failed
    b = sp[sp["service"] == "b"].set_index("span")
    a_failed = sp[(sp["service"] == "a") & (sp["status"] == "network_loss") & sp["arrive_ms"].notna()]
    assert len(a_failed) > 0
    child = sp[sp["parent"].isin(a_failed["span"])].set_index("parent")["span"]
    assert set(b.loc[child, "status"].unique()) <= {"ok", "network_loss"}
    assert (b.loc[child, "status"] == "ok").mean() == pytest.approx(0.5, abs=0.05)  # reply lost vs request lost


# ----------------------------------------------------------------------------- bounded queue (M/M/1/K)


def mm1k_loss(rho: float, k: int) -> float:
    return (1 - rho) * rho**k / (1 - rho ** (k + 1))


@pytest.mark.parametrize("rho, k", [(0.8, 5), (1.5, 3)])
def test_mm1k_blocking_probability(rho, k):
    sc = {
        "run": {"requests": 100_000},
        "network": {"enabled": False},
        "metrics": {"warmup": "10s", "spans": False},
        "services": {"s": {"workers": 1, "queue": k - 1, "service_time": {"dist": "exponential", "mean": 10}}},
        "workloads": {"w": {"type": "poisson", "rate": f"{rho * 100}/s", "target": "s"}},
    }
    if rho >= 1:
        with pytest.warns(ScenarioWarning):
            res = meshsim.run(sc, seed=7)
    else:
        res = meshsim.run(sc, seed=7)
    s = res.summary
    p_k = mm1k_loss(rho, k)
    assert set(s["failed_by_reason"]) == {"queue_full"}
    assert s["failed"] / s["requests"] == pytest.approx(p_k, rel=0.1)
    # carried load: utilisation = rho (1 - P_K)
    assert s["services"]["s"]["utilisation"] == pytest.approx(rho * (1 - p_k), rel=0.03)
    # the queue never holds more than k - 1
    assert res.timeseries["queue"].max() <= k - 1
    assert res.instances.loc["s-0", "rejected"] >= s["failed"]


# ----------------------------------------------------------------------------- fan-out


def fanout_scenario(wait) -> dict:
    shards = [f"sh{i}" for i in range(5)]
    services = {"front": {"workers": 100, "service_time": CONST, "calls": [{"parallel": shards, "wait": wait}]}}
    for sh in shards:
        services[sh] = {"workers": 50, "service_time": {"dist": "exponential", "mean": 20}}
    return {
        "run": {"requests": 15_000},
        "network": {"enabled": False},
        "services": services,
        "workloads": {"w": {"type": "poisson", "rate": "50/s", "target": "front"}},
    }


def test_fanout_first_k_versus_all():
    # no queueing (50 workers per shard at 2% load): latency = 1 ms + k-th smallest of 5 Exp(20 ms)
    means = {}
    for wait, k in ((1, 1), (3, 3), ("all", 5)):
        res = meshsim.run(fanout_scenario(wait), seed=8)
        assert res.summary["failed"] == 0
        theory = 1.0 + 20.0 * sum(1.0 / (5 - i) for i in range(k))
        means[wait] = res.summary["latency_ms"]["mean"]
        assert means[wait] == pytest.approx(theory, rel=0.03), wait
        # the shards answer the calls nobody waits for too (but the run stops at the last request)
        sp = res.spans
        shard = sp[sp["service"] != "front"]
        assert (shard["status"] == "ok").all()
        assert 5 * 15_000 - 10 <= len(shard) <= 5 * 15_000
        if k < 5:
            late = shard.merge(res.requests[["end_ms"]], left_on="request", right_index=True, suffixes=("", "_req"))
            assert (late["end_ms"] > late["end_ms_req"]).mean() == pytest.approx((5 - k) / 5, abs=0.01)
    assert means[1] < means[3] < means["all"]
    assert means["all"] / means[1] > 8


# ----------------------------------------------------------------------------- determinism


def three_tier(seed: int, mode: str = "full") -> meshsim.Result:
    return meshsim.run(
        DATA / "three_tier.yaml",
        seed=seed,
        overrides={"run.duration": "20s", "metrics.warmup": "2s", "metrics.mode": mode,
                   "faults[0].at": "8s", "faults[0].until": "11s"},
    )


def test_same_seed_same_tables_different_seed_differs():
    a, b, c = three_tier(5), three_tier(5), three_tier(6)
    assert a.summary["failed"] > 0  # the crash bites: a non-trivial run
    assert a.requests.to_csv() == b.requests.to_csv()
    assert a.spans.to_csv() == b.spans.to_csv()
    assert pd.util.hash_pandas_object(a.requests).equals(pd.util.hash_pandas_object(b.requests))
    assert a.summary == b.summary
    assert a.requests.to_csv() != c.requests.to_csv()
    assert a.summary["latency_ms"]["mean"] != c.summary["latency_ms"]["mean"]


# ----------------------------------------------------------------------------- streaming mode


def test_streaming_summary_matches_full_mode():
    full, stream = three_tier(9), three_tier(9, "streaming")
    f, s = full.summary, stream.summary
    assert s["mode"] == "streaming" and f["mode"] == "full"
    for key in ("requests", "completed", "failed", "failed_by_reason", "throughput_rps"):
        assert s[key] == f[key], key
    for q in ("mean", "p50", "p90", "p99"):
        assert s["latency_ms"][q] == pytest.approx(f["latency_ms"][q], rel=0.02), q
    assert s["latency_ms"]["max"] == pytest.approx(f["latency_ms"]["max"])
    low, high = s["latency_ms"]["ci95"]
    assert low < s["latency_ms"]["mean"] < high
    for name, svc in f["services"].items():
        assert stream.summary["services"][name]["utilisation"] == pytest.approx(svc["utilisation"])
        assert stream.summary["services"][name]["latency_ms"]["mean"] == pytest.approx(
            svc["latency_ms"]["mean"], rel=0.02), name
    with pytest.raises(ValueError, match="streaming"):
        stream.requests  # noqa: B018


def _streaming_run(n: int, mode: str = "streaming") -> tuple[meshsim.Result, int]:
    sc = {
        "run": {"requests": n},
        "network": {"enabled": False},
        "metrics": {"mode": mode, "warmup": "1s"},
        "services": {"s": {"workers": 2, "service_time": {"dist": "exponential", "mean": 10}}},
        "workloads": {"w": {"type": "poisson", "rate": "150/s", "target": "s"}},
    }
    tracemalloc.start()
    try:
        res = meshsim.run(sc, seed=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return res, peak


def test_streaming_memory_does_not_grow_with_run_length():
    small, peak_small = _streaming_run(10_000)
    large, peak_large = _streaming_run(40_000)
    assert large.summary["completed"] > 3.9 * small.summary["completed"]
    assert peak_large < 1.5 * peak_small
    # the measure is sensitive: full mode keeps every request and span
    _, full_small = _streaming_run(10_000, "full")
    _, full_large = _streaming_run(40_000, "full")
    assert full_large > 2.0 * full_small
    for res in (small, large):
        rec = res.record
        assert len(rec.requests["arrival"]) == 0 and len(rec.span_rows) == 0  # no per-request or per-span rows
        assert rec.in_flight == 0  # nothing left in flight after the drain
        assert 32 * 19 <= len(rec.stream.batch_sums) <= 32 * 21  # fixed number of fine batches (32 per metrics.batches = 20)
        assert len(rec.samples["time"]) <= 250  # ~200 samples whatever the run length


def test_slow_fault_scales_one_instance_with_the_same_draws():
    """action: slow multiplies an instance's service times from at to until: its busy time is exactly
    factor x the unslowed run's in that window (same draws), and every other instance is untouched."""
    base = {"run": {"requests": 20000}, "network": {"enabled": False},
            "services": {"farm": {"replicas": 4, "service_time": {"dist": "exponential", "mean": "10ms"}}},
            "workloads": {"u": {"rate": 100, "target": "farm"}}}
    plain = meshsim.run(base, seed=1)
    slow = meshsim.run({**base, "faults": [{"at": 0, "action": "slow", "instance": "farm-1", "factor": 3}]}, seed=1)
    u0, u1 = plain.instances["utilisation"], slow.instances["utilisation"]
    for name in ("farm-0", "farm-2", "farm-3"):
        assert u1[name] == u0[name]
    assert u1["farm-1"] == pytest.approx(3 * u0["farm-1"], rel=1e-3)
    spans0, spans1 = plain.spans, slow.spans
    s0 = spans0[spans0.instance == "farm-1"].service_ms.to_numpy()
    s1 = spans1[spans1.instance == "farm-1"].service_ms.to_numpy()
    assert s1 == pytest.approx(3 * s0, rel=1e-6)


def test_slow_fault_window_and_checks():
    base = {"run": {"duration": "4s"}, "network": {"enabled": False},
            "services": {"web": {"replicas": 2, "service_time": "10ms"}},
            "workloads": {"u": {"type": "deterministic", "rate": 10, "target": "web"}}}
    res = meshsim.run({**base, "faults": [{"at": "1s", "until": "2s", "action": "slow", "instance": "web-0",
                                           "factor": 5}]}, seed=1)
    sp = res.spans[res.spans.instance == "web-0"]
    inside = sp[(sp.start_ms >= 1000) & (sp.start_ms < 2000)].service_ms
    outside = sp[(sp.start_ms < 1000) | (sp.start_ms >= 2000)].service_ms
    assert inside.to_numpy() == pytest.approx(50.0) and outside.to_numpy() == pytest.approx(10.0)
    assert [e["event"] for e in res.summary["faults"]] == ["slow", "unslow"]
    for bad, msg in (({"action": "slow", "instance": "web-0"}, "factor: is required for slow"),
                     ({"action": "crash", "instance": "web-0", "factor": 2}, "factor: does not apply to action crash"),
                     ({"action": "slow", "factor": 2}, "slow needs exactly one of instance or host"),
                     ({"action": "slow", "instance": "web-0", "factor": 0}, "factor")):
        with pytest.raises(meshsim.ScenarioErrors, match=msg):
            meshsim.load_scenario({**base, "faults": [{"at": "1s", **bad}]})
