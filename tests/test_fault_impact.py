"""meshsim.experiments.fault_impact: phases before/during/after each fault window, and the shipped
fault_timeline example against simple counting arguments."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import meshsim
from meshsim.experiments.fault_impact import fault_impact


def _small(faults, duration="6s"):
    return {"run": {"duration": duration}, "network": {"enabled": False},
            "services": {"api": {"replicas": 2, "workers": 4, "service_time": "2ms",
                                 "load_balancer": {"policy": "round_robin"}}},
            "workloads": {"w": {"rate": 200, "target": "api"}},
            "faults": faults}


def test_windows_come_from_the_fault_timeline_and_can_be_given():
    res = meshsim.run(_small([{"at": "1s", "until": "2s", "action": "crash", "instance": "api-1"},
                              {"at": "4s", "action": "crash", "host": "h-api-0"}]), seed=2)
    t = fault_impact(res, settle_ms=0)
    during = t[t.phase == "during"]
    assert during["target"].tolist() == ["api-1", "h-api-0"]
    assert during["start_ms"].tolist() == [1000.0, 4000.0]
    assert during["end_ms"].tolist() == [2000.0, res.summary["sim_time_ms"]]   # never restarted: to the end
    assert t.loc[(t.fault == 1) & (t.phase == "after"), "requests"].item() == 0    # nothing after the end
    # api-0's host goes down for good: half the calls fail to the end
    assert during["error_pct"].iloc[1] == pytest.approx(50, abs=3)
    custom = pd.DataFrame([{"start_ms": 500.0, "end_ms": 1500.0, "kind": "mine", "target": "x"}])
    t2 = fault_impact(res, custom, settle_ms=0)
    assert t2["kind"].unique().tolist() == ["mine"] and len(t2) == 3
    assert t2.loc[t2.phase == "during", "error_pct"].item() == pytest.approx(25, abs=5)   # half the window is down


def test_no_faults_gives_an_empty_table():
    res = meshsim.run(_small([], duration="1s"), seed=1)
    assert len(fault_impact(res)) == 0


def test_phases_have_the_window_length_and_count_every_request_once():
    res = meshsim.run(_small([{"at": "2s", "until": "3s", "action": "crash", "instance": "api-1"}]), seed=3)
    t = fault_impact(res, settle_ms=500)
    assert (t["end_ms"] - t["start_ms"]).tolist() == [1000.0, 1000.0, 1000.0]
    assert t.loc[t.phase == "after", "start_ms"].item() == 3500.0
    req = res.requests
    during = req[(req.arrival_ms >= 2000) & (req.arrival_ms < 3000)]
    row = t[t.phase == "during"].iloc[0]
    assert row["requests"] == len(during)
    assert row["failed"] == int((during.status != "ok").sum())
    assert math.isclose(row["error_pct"], 100 * row["failed"] / row["requests"])
    # the crashed instance is one of two under round robin: half the calls fail, none before or after
    assert row["error_pct"] == pytest.approx(50, abs=3)
    assert t.loc[t.phase != "during", "failed"].sum() == 0


def test_workload_filter_keeps_one_workload():
    sc = _small([{"at": "1s", "until": "2s", "action": "crash", "instance": "api-1"}], duration="3s")
    sc["workloads"]["v"] = {"rate": 50, "target": "api"}
    res = meshsim.run(sc, seed=4)
    both = fault_impact(res, settle_ms=0)
    only_v = fault_impact(res, settle_ms=0, workload="v")
    assert (only_v["requests"] < both["requests"]).all()
    n_v = ((res.requests.workload == "v") & (res.requests.arrival_ms >= 1000) & (res.requests.arrival_ms < 2000)).sum()
    assert only_v.loc[only_v.phase == "during", "requests"].item() == n_v


def test_fault_timeline_example_matches_counting_and_retries_hide_errors():
    """Envoy without retries: a crash of 1 of 3 api instances fails 1/3 of requests; cutting the client's zone
    from the other fails the 1/2 sent to the far frontend plus 1/3 of the rest (2/3); a slow host adds its
    100 ms round trip to the tail.  Istio's retries hide nearly all of it."""
    envoy = fault_impact(meshsim.run(meshsim.example("fault_timeline"), seed=1))
    istio = fault_impact(meshsim.run(meshsim.example("fault_timeline"), seed=1, overrides={"mesh.profile": "istio"}))

    def pick(t, action, phase, col):
        return t[(t.kind == action) & (t.phase == phase)][col].item()

    assert pick(envoy, "crash", "during", "error_pct") == pytest.approx(100 / 3, abs=3)
    assert pick(envoy, "partition", "during", "error_pct") == pytest.approx(200 / 3, abs=3)
    assert pick(envoy, "degrade", "during", "error_pct") == 0
    assert pick(envoy, "degrade", "during", "p99_ms") > pick(envoy, "degrade", "before", "p99_ms") + 80
    for action in ("crash", "partition", "degrade"):
        assert pick(envoy, action, "after", "error_pct") < 0.5
        assert pick(envoy, action, "after", "p99_ms") < 1.3 * pick(envoy, action, "before", "p99_ms")
    assert pick(istio, "crash", "during", "failed") == 0
    assert pick(istio, "partition", "during", "failed") < 0.1 * pick(envoy, "partition", "during", "failed")
    # hiding costs time: the retried requests are slower
    assert pick(istio, "crash", "during", "p50_ms") > pick(envoy, "crash", "during", "p50_ms") + 2
