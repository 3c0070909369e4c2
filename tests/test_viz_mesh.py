"""Pictures of mesh runs: request waterfalls, metrics over time with faults, topology drawings.

The frames behind the figures are checked against the run's own tables
(span parts add up, parents come first, the outer row is the request's
latency, window counts add up to the requests, the crash shows as errors)
and the figures against their frames (what is drawn, not pixels).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

import meshsim
from meshsim.viz import fault_windows, over_time, topology, topology_frame, waterfall, waterfall_frame, windows_frame
from meshsim.viz.style import FAULT_COLOR, PART_COLORS
from meshsim.viz.spans import PARTS, pick_requests

# two services behind Istio sidecars; an api instance is down from 2 s to 4 s, so Istio's retries on
# connect-failure send second attempts to the other instances
MESH = {
    "run": {"duration": "6s"},
    "mesh": {"mode": "sidecar", "profile": "istio"},
    "topology": {"regions": {"r": ["a", "b"]}},
    "services": {
        "web": {"replicas": 2, "workers": 8, "service_time": "1ms", "calls": ["api"]},
        "api": {"replicas": 3, "workers": 4, "service_time": {"dist": "exponential", "mean": "2ms"}},
    },
    "workloads": {"u": {"rate": 300, "target": "web"}},
    "faults": [{"at": "2s", "until": "4s", "action": "crash", "instance": "api-1"}],
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def mesh_run():
    return meshsim.run(MESH, seed=3)


@pytest.fixture(scope="module")
def three_tier():
    # the shipped scenario, cut to 80 s: its api-1 crash (60 s to 75 s) is inside
    return meshsim.run(meshsim.example("three_tier"), overrides={"run.duration": "80s"})


def _retried_requests(res) -> np.ndarray:
    sp = res.spans
    return sp.loc[sp.duplicated(["request", "parent", "endpoint"], keep=False), "request"].unique()


def _retries_by_service(res) -> dict[str, int]:
    """Later attempts the routers sent, per target service (those that sent any)."""
    return {s: e["retries"] for s, e in res.summary["resilience"].items() if isinstance(e, dict) and e["retries"]}


# --------------------------------------------------------------------------- waterfall


def _check_frame(res, df) -> None:
    # each row's four parts sum to its length
    total = df[[f"{p}_ms" for p in PARTS]].sum(axis=1).to_numpy()
    assert np.allclose(total, (df["end_ms"] - df["send_ms"]).to_numpy(), rtol=0, atol=1e-9)
    assert (df[[f"{p}_ms" for p in PARTS]].to_numpy() > -1e-5).all()  # float32 parts: rounding only
    spans = res.spans
    for rid, g in df.groupby("request", sort=False):
        # the outer row is the request's latency, measured from its arrival
        outer = g[g["kind"] == "request"]
        assert len(outer) == 1 and outer.index[0] == g.index[0]
        lat = res.requests.loc[rid, "latency_ms"]
        assert outer["send_ms"].iloc[0] == 0.0
        assert outer["end_ms"].iloc[0] - outer["send_ms"].iloc[0] == pytest.approx(lat, abs=1e-9)
        # every recorded span of the request, once, parents before children, one level deeper
        mine = spans[spans["request"] == rid]
        calls = g[g["kind"] != "request"]
        assert sorted(calls["span"]) == sorted(mine["span"])
        row_of = dict(zip(calls["span"], calls["row"]))
        depth_of = dict(zip(calls["span"], calls["depth"]))
        row_of[-1], depth_of[-1] = outer["row"].iloc[0], 0
        for s in calls.itertuples(index=False):
            assert row_of[s.parent] < s.row
            assert s.depth == depth_of[s.parent] + 1
        # times are the spans' own, shifted to the request's arrival
        arr = res.requests.loc[rid, "arrival_ms"]
        m = mine.set_index("span").loc[calls["span"]]
        assert np.allclose(calls["send_ms"].to_numpy() + arr, m["send_ms"].to_numpy(), atol=1e-9)
        assert np.allclose(calls["end_ms"].to_numpy() + arr, m["end_ms"].to_numpy(), atol=1e-9)


def test_waterfall_frame_invariants_on_chosen_requests(mesh_run):
    chosen = pick_requests(mesh_run, n=4)
    assert list(chosen.values())[:3] == ["median", "p99", "slowest"]
    assert list(chosen.values())[3] == "retried"
    ok = mesh_run.requests.loc[list(chosen)[:3], "latency_ms"].to_numpy()
    assert ok[0] <= ok[1] <= ok[2] == mesh_run.requests.loc[mesh_run.requests["status"] == "ok", "latency_ms"].max()
    _check_frame(mesh_run, waterfall_frame(mesh_run, list(chosen)))


def test_every_retry_is_found(mesh_run):
    """The attempts told from sibling spans are exactly the retries the routers counted."""
    ids = _retried_requests(mesh_run)
    df = waterfall_frame(mesh_run, ids)
    _check_frame(mesh_run, df[df["request"].isin(ids[:15])])
    # the api's callers retried connection failures; the workload's sidecar retried a call to web
    assert _retries_by_service(mesh_run)["api"] > 50
    later = df[df["kind"] == "retry"]
    assert later.groupby("service").size().to_dict() == _retries_by_service(mesh_run)
    assert (df["kind"] == "hedge").sum() == 0
    # a retry follows a failed attempt of the same call (the crashed instance refused it)
    for rid, g in df.groupby("request", sort=False):
        for r in g[g["kind"] == "retry"].itertuples(index=False):
            sib = g[(g["parent"] == r.parent) & (g["endpoint"] == r.endpoint) & (g["send_ms"] < r.send_ms)]
            prev = sib.iloc[-1]
            assert prev["status"] != "ok" and prev["end_ms"] <= r.send_ms
            assert r.attempt == prev["attempt"] + 1


def test_hedges_are_told_from_retries():
    sc = {
        "run": {"duration": "4s"},
        "mesh": {"mode": "sidecar", "profile": "istio"},
        "services": {
            "web": {"workers": 8, "service_time": "1ms", "calls": ["api"]},
            "api": {"replicas": 3, "workers": 4, "service_time": {"dist": "lognormal", "median": "2ms", "p99": "30ms"},
                    "retries": {"attempts": 2, "per_try_timeout": "10ms"}, "hedge_on_per_try_timeout": True},
        },
        "workloads": {"u": {"rate": 300, "target": "web"}},
    }
    res = meshsim.run(sc, seed=2)
    df = waterfall_frame(res, _retried_requests(res))
    sent = res.summary["resilience"]["api"]["retries"]  # later attempts actually sent (hedges included)
    assert sent > 10
    assert (df["kind"] == "hedge").sum() == sent
    for rid, g in df.groupby("request", sort=False):  # sent after the per-try timeout of a first attempt that
        for r in g[g["kind"] == "hedge"].itertuples(index=False):  # had not failed (its reply came later or never)
            first = g[(g["parent"] == r.parent) & (g["attempt"] == 1) & (g["endpoint"] == r.endpoint)].iloc[0]
            assert first["send_ms"] + 10.0 <= r.send_ms
            assert first["status"] == "ok" or first["end_ms"] > r.send_ms


def test_a_second_call_of_the_same_endpoint_is_not_a_retry():
    """web calls api twice, one step after the other: only the router's retries are retries."""
    sc = {**MESH, "run": {"duration": "2s"},
          "faults": [{"at": "500ms", "until": "1500ms", "action": "crash", "instance": "api-1"}]}
    sc["services"] = {**MESH["services"], "web": {**MESH["services"]["web"], "calls": ["api", "api"]}}
    res = meshsim.run(sc, seed=5)
    df = waterfall_frame(res, _retried_requests(res))
    later = df[df["kind"] == "retry"]
    assert later.groupby("service").size().to_dict() == _retries_by_service(res)
    assert _retries_by_service(res)["api"] > 20
    # every successful web call made its two successful api calls, each a first attempt or a retry of one
    web_ok = df.loc[(df["service"] == "web") & (df["status"] == "ok"), "span"]
    api_ok = df[(df["service"] == "api") & (df["status"] == "ok") & df["parent"].isin(web_ok)]
    assert len(web_ok) > 100
    assert (api_ok.groupby("parent").size().reindex(web_ok, fill_value=0) == 2).all()


def test_waterfall_figure_draws_the_frame(mesh_run):
    chosen = pick_requests(mesh_run, n=4)
    fig = waterfall(mesh_run)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time since request arrival (ms)"
    df = waterfall_frame(mesh_run, list(chosen))
    bars = [p for p in ax.patches if (p.get_gid() or "").startswith("bar:")]
    drawn: dict[tuple[int, int], float] = {}
    for p in bars:
        _, rid, span, part = p.get_gid().split(":")
        drawn[(int(rid), int(span))] = drawn.get((int(rid), int(span)), 0.0) + p.get_width()
        if part in ("queue", "service", "downstream"):
            assert p.get_facecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb(PART_COLORS[part]))
    for r in df.itertuples(index=False):  # the bars of a row cover it exactly
        assert drawn[(r.request, r.span)] == pytest.approx(r.end_ms - r.send_ms, abs=1e-5)
    outlined = [p for p in ax.patches if (p.get_gid() or "").startswith("retry:")]
    assert len(outlined) == (df["kind"] == "retry").sum() >= 1
    assert len(ax.get_yticks()) == len(df)
    assert "slowest" in ax.get_yticklabels()[df.index[df["request"] == list(chosen)[2]][0]].get_text()


def test_viz_names_call_the_figures_after_their_modules_are_imported(mesh_run):
    import meshsim.viz as viz
    import meshsim.viz.graph  # noqa: F401 - importing the modules leaves the functions in place
    import meshsim.viz.spans  # noqa: F401

    assert viz.waterfall(mesh_run, [0]).axes[0].get_xlabel() == "time since request arrival (ms)"
    assert len(_drawn(viz.topology(mesh_run))[0]) == 3


def test_mesh_without_network_draws_proxy_time():
    """Without a network a span's network part is its two request proxy passes: drawn as proxy."""
    sc = {"run": {"requests": 200}, "network": {"enabled": False}, "mesh": {"mode": "sidecar", "profile": "istio"},
          "services": {"web": {"service_time": "1ms"}}, "workloads": {"u": {"rate": 50, "target": "web"}}}
    res = meshsim.run(sc, seed=1)
    df = waterfall_frame(res, [5])
    call = df[df["kind"] == "call"].iloc[0]
    assert call["network_ms"] > 0.03  # two Istio request passes (median 0.045 ms each)
    ax = waterfall(res, [5]).axes[0]
    net = [p for p in ax.patches if (p.get_gid() or "").endswith(":network")]
    assert net and all(p.get_facecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb(PART_COLORS["proxy"]))
                       for p in net)


# --------------------------------------------------------------------------- over time


def test_windows_add_up(mesh_run):
    w = windows_frame(mesh_run, window_ms=500)
    req = mesh_run.requests
    assert w["requests"].sum() == len(req)
    assert np.array_equal(w["window_start_ms"].to_numpy(), np.arange(len(w)) * 500.0)
    assert np.allclose(w["throughput_rps"], w["completed"] * 1000.0 / 500)
    last = len(w) * 500.0
    ok = req[(req["status"] == "ok") & (req["end_ms"] < last)]
    assert w["completed"].sum() == len(ok)
    assert w["errors"].sum() == (req["status"] != "ok").sum()
    # 300 requests/s offered: about 150 per half-second window
    assert w["requests"].iloc[1:-1].mean() == pytest.approx(150, rel=0.1)
    # the latency percentiles of a window are those of its successful arrivals
    i = 3
    sel = req[(req["arrival_ms"] >= 1500) & (req["arrival_ms"] < 2000) & (req["status"] == "ok")]
    assert w.loc[i, "p99_ms"] == pytest.approx(np.percentile(sel["latency_ms"], 99))


def test_crash_window_and_its_errors(three_tier):
    faults = fault_windows(three_tier)
    assert faults.to_dict("records") == [{"start_ms": 60000.0, "end_ms": 75000.0, "kind": "crash", "target": "api-1"}]
    w = windows_frame(three_tier, window_ms=1000)
    inside = (w["window_start_ms"] >= 60000) & (w["window_start_ms"] < 75000)
    outside = ~inside & (w["window_start_ms"] >= 10000)
    rate_in = w.loc[inside, "errors"].sum() / w.loc[inside, "requests"].sum()
    rate_out = w.loc[outside, "errors"].sum() / w.loc[outside, "requests"].sum()
    # one of three api instances is down and nothing retries: about a third of requests fail
    assert 0.2 < rate_in < 0.45
    assert rate_out < 0.01
    assert w.loc[inside, "error_rate"].min() > 10 * max(rate_out, 1e-3)


def test_over_time_figure_shades_faults(three_tier):
    fig = over_time(three_tier, window_ms=2000)
    assert len(fig.axes) == 3
    assert fig.axes[2].get_xlabel() == "simulated time (s)"
    assert [a.get_ylabel() for a in fig.axes] == ["latency (ms)", "throughput (req/s)", "errors (requests / window)"]
    for ax in fig.axes:
        spans = [p for p in ax.patches if p.get_gid() == "fault:crash:api-1"]
        assert len(spans) == 1
        x0 = spans[0].get_x()
        assert (x0, x0 + spans[0].get_width()) == pytest.approx((60.0, 75.0))
        assert spans[0].get_facecolor()[:3] == pytest.approx(matplotlib.colors.to_rgb(FAULT_COLOR))
    assert any(t.get_text() == "crash api-1" for t in fig.axes[0].texts)
    w = windows_frame(three_tier, window_ms=2000)
    (line,) = [ln for ln in fig.axes[1].lines if ln.get_gid() == "line:throughput"]
    assert np.allclose(line.get_ydata(), w["throughput_rps"])


def test_fault_pairing():
    sc = {
        "run": {"duration": "5s"},
        "topology": {"regions": {"r": ["a", "b"]}},
        "services": {"web": {"replicas": 2, "service_time": "1ms"}},
        "workloads": {"u": {"rate": 20, "target": "web"}},
        "faults": [
            {"at": "1s", "action": "crash", "instance": "web-0"},
            {"at": "3s", "action": "restart", "instance": "web-0"},
            {"at": "2s", "until": "2500ms", "action": "degrade", "between": ["a", "b"], "loss": 0.5},
            {"at": "4s", "action": "partition", "groups": [["a"], ["b"]]},
        ],
    }
    res = meshsim.run(sc, seed=1)
    end = res.summary["sim_time_ms"]
    got = fault_windows(res).to_dict("records")
    assert got == [
        {"start_ms": 1000.0, "end_ms": 3000.0, "kind": "crash", "target": "web-0"},
        {"start_ms": 2000.0, "end_ms": 2500.0, "kind": "degrade", "target": "a <-> b"},
        {"start_ms": 4000.0, "end_ms": end, "kind": "partition", "target": "a | b"},
    ]


def test_registry_leader_loss_windows():
    res = meshsim.run(meshsim.example("registry_failover"), overrides={"run.duration": "33s", "metrics.warmup": "1s"})
    f = fault_windows(res)
    lost = f[f["kind"] == "no_leader"]
    expected = res.summary["registry"]["raft"]["unavailability_windows"]
    assert np.allclose(lost[["start_ms", "end_ms"]].to_numpy(), np.array(expected, dtype=float))
    # the leader's crash at 31 s opens one, closed by the next election (well under the run's end)
    after = lost[lost["start_ms"] == 31000.0]
    assert len(after) == 1 and 31000.0 < after["end_ms"].iloc[0] < 33000.0
    # "server: leader" is named after the server the crash hit
    crash = f[f["kind"] == "crash_server"].iloc[0]
    hit = [e["target"] for e in res.summary["faults"] if e["event"] == "crash_server"]
    assert crash["target"] == hit[0] and crash["target"].startswith("registry-")


# --------------------------------------------------------------------------- topology


def _expected(sc):
    pairs = {(name, w["target"]) for name, w in sc.workloads.items()}
    for s, svc in sc.services.items():
        for ep in svc["endpoints"].values():
            for step in ep["calls"]:
                for c in step["parallel"] if "parallel" in step else [step]:
                    pairs.add((s, c["service"]))
    n_nodes = len(sc.services) + len(sc.workloads) + (sc.spec.get("registry") is not None)
    return n_nodes, pairs


def _drawn(fig):
    ax = fig.axes[0]
    nodes = [p for p in ax.patches if (p.get_gid() or "").startswith("node:")]
    edges = [t for t in ax.texts if (t.get_gid() or "").startswith("edge:")]
    return nodes, edges


GRAPHS = [
    {"kind": "chain", "n": 5},
    {"kind": "fanout", "width": 3, "depth": 2},
    {"kind": "tree", "width": 2, "depth": 3},
    {"kind": "random_dag", "n": 12, "edge_probability": 0.3, "seed": 4},
]


@pytest.mark.parametrize("source", [*meshsim.examples(), *(f"graph:{g['kind']}" for g in GRAPHS)])
def test_topology_of_every_example(source):
    if source.startswith("graph:"):
        g = next(g for g in GRAPHS if g["kind"] == source[6:])
        scenario = meshsim.load_scenario({"run": {"requests": 10}, "graph": g,
                                          "workloads": {"w": {"rate": 10, "target": "svc0"}}})
    else:
        scenario = meshsim.load_scenario(meshsim.example(source))
    nodes, edges = topology_frame(scenario)
    n_nodes, pairs = _expected(scenario)
    assert len(nodes) == n_nodes and nodes["node"].is_unique
    assert len(edges) == len(pairs)
    # callers are always drawn left of the services they call (longest-path layers; call graphs are acyclic)
    layer = dict(zip(nodes["node"], nodes["layer"]))
    assert all(layer[c] < layer[d] for c, d in zip(edges["caller"], edges["callee"]))
    assert (nodes.loc[nodes["kind"] == "workload", "layer"] == 0).all()
    # no two nodes on top of each other
    assert not nodes.duplicated(["x", "y"]).any()
    fig = topology(scenario)
    drawn_nodes, drawn_edges = _drawn(fig)
    assert len(drawn_nodes) == n_nodes
    assert sorted(t.get_gid() for t in drawn_edges) == sorted(f"edge:{c}->{d}" for c, d in zip(edges["caller"],
                                                                                                  edges["callee"]))


def test_topology_labels_three_tier_and_chain_layers():
    nodes, edges = topology_frame(meshsim.example("three_tier"))
    fig = topology(meshsim.example("three_tier"))
    probs = [t.get_text() for t in fig.axes[0].texts if (t.get_gid() or "").startswith("prob:")]
    assert probs == ["p=0.7"]
    svc = nodes.set_index("node")
    assert svc.loc["api", "replicas"] == 3 and svc.loc["api", "zones"] == "eu-a,eu-b"
    assert svc.loc["db", "zones"] == "eu-a"
    res = meshsim.run({"run": {"requests": 10}, "graph": {"kind": "chain", "n": 4},
                       "workloads": {"w": {"rate": 10, "target": "svc0"}}})
    nodes, _ = topology_frame(res)  # a Result works too
    assert dict(zip(nodes["node"], nodes["layer"])) == {"w": 0, "svc0": 1, "svc1": 2, "svc2": 3, "svc3": 4}


def test_topology_marks_fanout_groups_proxies_and_registry():
    nodes, edges = topology_frame(meshsim.example("fanout"))
    par = edges[edges["mode"] == "parallel"]
    assert len(par) == 10 and par["group"].nunique() == 1 and set(par["wait"]) == {"all"}
    assert edges.loc[edges["callee"] == "rank", "mode"].item() == "sequential"
    fig = topology(meshsim.example("fanout"))
    assert [t.get_text() for t in fig.axes[0].texts if (t.get_gid() or "").startswith("group:")] == \
        ["parallel x10, wait all"]
    nodes, _ = topology_frame(meshsim.example("registry_failover"))
    reg = nodes[nodes["kind"] == "registry"]
    assert len(reg) == 1 and reg["replicas"].item() == 3
    assert set(nodes.loc[nodes["kind"] == "service", "proxy"]) == {"sidecar"}
    fig = topology(meshsim.example("registry_failover"))
    badges = [p for p in fig.axes[0].patches if (p.get_gid() or "").startswith("proxy:")]
    assert len(badges) == (nodes["proxy"] != "").sum() >= 2
