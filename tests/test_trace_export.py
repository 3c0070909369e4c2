"""Chrome trace export (meshsim.trace_export, Result.to_chrome_trace)."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict

import numpy as np
import pytest

import meshsim
from meshsim.trace_export import DEFAULT_REQUESTS, PARTS, chrome_trace
from meshsim.viz.raft import raft_frames

EPS_US = 1e-6  # float slack when comparing microsecond times


@pytest.fixture(scope="module")
def tier():
    return meshsim.run(meshsim.example("three_tier"), seed=1, overrides={"run.requests": 600})


@pytest.fixture(scope="module")
def failover():
    return meshsim.run(meshsim.example("registry_failover"), seed=1, overrides={
        "run.duration": "34s", "registry.record_messages": {"from": "30500ms", "until": "33s"}})


def load(res, tmp_path, name="trace.json", **kw):
    path = res.to_chrome_trace(tmp_path / name, **kw)
    assert path == tmp_path / name and path.exists()
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def check_well_formed(trace: dict) -> None:
    assert trace["displayTimeUnit"] == "ms"
    for e in trace["traceEvents"]:
        for key in ("ph", "ts", "pid", "tid"):
            assert key in e, (key, e)
        if e["ph"] == "X":
            assert e["dur"] >= 0
        if e["ph"] in ("s", "f"):
            assert "id" in e
        if e["ph"] == "i":
            assert e["s"] in ("g", "p", "t")


def check_nesting(events: list[dict]) -> None:
    """Complete events on one thread nest: each lies inside the open one before it, or after its end."""
    by_thread = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            by_thread[(e["pid"], e["tid"])].append((e["ts"], -e["dur"], e))
    for evs in by_thread.values():
        evs.sort(key=lambda x: (x[0], x[1]))
        stack: list[float] = []  # end times of the open slices
        for ts, neg, _ in evs:
            while stack and stack[-1] <= ts + EPS_US:  # closed before this one starts
                stack.pop()
            if stack:
                assert ts + (-neg) <= stack[-1] + EPS_US, "slices overlap without nesting"
            stack.append(ts + (-neg))


def test_spans_round_trip(tier, tmp_path):
    trace = load(tier, tmp_path)
    check_well_formed(trace)
    events = trace["traceEvents"]
    spans = tier.spans
    chosen = np.sort(spans["request"].unique())[:DEFAULT_REQUESTS]
    sel = spans[spans["request"].isin(chosen)]
    want = dict(zip(sel["span"], sel.to_dict("records")))
    got = [e for e in events if e.get("cat") == "span"]
    assert len(got) == len(want) > DEFAULT_REQUESTS  # three tiers: several calls per request
    assert {e["args"]["request"] for e in got} == set(chosen.tolist())
    for e in got:
        row = want[e["args"]["span"]]
        assert e["ts"] == pytest.approx(row["send_ms"] * 1000.0, abs=EPS_US)          # microseconds
        assert abs(e["dur"] / 1000.0 - (row["end_ms"] - row["send_ms"])) <= 1e-6      # latency, in ms
        assert e["name"] == row["endpoint"] and e["args"]["status"] == row["status"]
    # each span's parts lie inside it, in order, and add up to it
    parts = defaultdict(list)
    for e in events:
        if e.get("cat") == "span.part":
            parts[e["args"]["span"]].append(e)
    assert set(parts) <= {e["args"]["span"] for e in got}
    for e in got:
        ps = sorted(parts[e["args"]["span"]], key=lambda p: p["ts"])
        assert ps, e
        for p in ps:
            assert (p["pid"], p["tid"]) == (e["pid"], e["tid"])
            assert e["ts"] - EPS_US <= p["ts"] and p["ts"] + p["dur"] <= e["ts"] + e["dur"] + EPS_US
        assert sum(p["dur"] for p in ps) == pytest.approx(e["dur"], abs=EPS_US)
        # each part runs between its two columns of result.spans (clamped to the call: the parts are
        # stored in float32, so service_end_ms may pass end_ms by a float32 rounding)
        row = want[e["args"]["span"]]
        bounds = {name: (a, b) for name, a, b in PARTS}
        for p in ps:
            a, b = bounds[p["name"]]
            assert p["ts"] / 1000.0 == pytest.approx(max(row[a], row["send_ms"]), abs=1e-9)
            assert (p["ts"] + p["dur"]) / 1000.0 == pytest.approx(min(row[b], row["end_ms"]), abs=1e-9)
            assert p["dur"] / 1000.0 == pytest.approx(row[f"{p['name']}_ms"], abs=1e-5)
    check_nesting(events)


def test_processes_and_threads_are_named(tier, tmp_path):
    events = load(tier, tmp_path)["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    procs = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    assert set(procs.values()) == set(tier.spans["service"].cat.categories)
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    spans = tier.spans.set_index("span")
    inst_of, svc_of = spans["instance"].astype(str).to_dict(), spans["service"].astype(str).to_dict()
    for e in events:
        if e.get("cat") == "span":
            name, inst = threads[(e["pid"], e["tid"])], inst_of[e["args"]["span"]]
            assert name == inst or name.startswith(f"{inst} #")
            assert procs[e["pid"]] == svc_of[e["args"]["span"]]
    assert not any(e.get("cat", "").startswith("raft") for e in events)  # no registry in this run


def test_request_selection(tier):
    ids = [3, 17, 42]
    ev = chrome_trace(tier, requests=ids)["traceEvents"]
    spans = [e for e in ev if e.get("cat") == "span"]
    assert {e["args"]["request"] for e in spans} == set(ids)
    assert len(spans) == int(tier.spans["request"].isin(ids).sum())
    ev5 = chrome_trace(tier, requests=5)["traceEvents"]
    assert {e["args"]["request"] for e in ev5 if e.get("cat") == "span"} == set(range(5))


def test_raft_roles_events_and_flows(failover, tmp_path):
    trace = load(failover, tmp_path, "failover.json.gz")
    check_well_formed(trace)
    events = trace["traceEvents"]
    check_nesting(events)
    cluster = failover.component("registry").registry.cluster
    raft_pid = {e["pid"] for e in events if e.get("cat") == "raft.role"}
    assert len(raft_pid) == 1
    pid = raft_pid.pop()
    threads = {e["tid"]: e["args"]["name"] for e in events
               if e["ph"] == "M" and e["name"] == "thread_name" and e["pid"] == pid}
    assert sorted(threads.values()) == sorted(cluster.servers)
    # one instant event per role change, crash and restart of a server
    instants = [e for e in events if e["ph"] == "i" and e["cat"] == "raft.event"]
    ev = cluster.frame("events")
    ev = ev[ev["server"].notna()]
    assert len(instants) == len(ev) > 0
    assert sorted((e["ts"], threads[e["tid"]], e["name"]) for e in instants) == \
        sorted(zip(ev["time"] * 1000.0, ev["server"], ev["event"]))
    assert "crash" in {e["name"] for e in instants} and "leader" in {e["name"] for e in instants}
    # role bands: the timeline's bands, in microseconds
    roles = raft_frames(cluster)["roles"]
    bands = [e for e in events if e.get("cat") == "raft.role"]
    assert len(bands) == len(roles)
    assert sum(e["dur"] for e in bands) == pytest.approx(len(cluster.servers) * cluster.kernel.now * 1000.0)
    # messages: a flow from the sender at send time to the receiver at arrival
    msgs = cluster.frame("messages")
    arrived = msgs[np.isfinite(msgs["arrive_ms"])]
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    assert len(starts) == len(ends) == len(arrived) > 0
    assert sorted((threads[e["tid"]], e["ts"]) for e in starts.values()) == \
        sorted(zip(arrived["src"], arrived["send_ms"] * 1000.0))
    for k, s in starts.items():
        f = ends[k]
        assert f["ts"] >= s["ts"] and f["bp"] == "e" and f["name"] == s["name"]
    # each end binds to a zero-length slice of the same cat, pid, tid and ts
    bound = {(e["pid"], e["tid"], e["ts"]) for e in events if e["ph"] == "X" and e.get("cat") == "raft.message"}
    assert all((e["pid"], e["tid"], e["ts"]) in bound for e in list(starts.values()) + list(ends.values()))


def test_raft_can_be_left_out(failover):
    ev = chrome_trace(failover, requests=10, raft=False)["traceEvents"]
    assert not any(e.get("cat", "").startswith("raft") for e in ev)
    assert {e["args"]["request"] for e in ev if e.get("cat") == "span"} == set(range(10))
