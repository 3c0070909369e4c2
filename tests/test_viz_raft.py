"""The Raft timeline (meshsim.viz.raft) and the message recording it draws (RaftCluster.record_messages)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import meshsim
from meshsim.core.raft import RaftConfig
from meshsim.registry.raft_shell import RaftCluster, make_network
from meshsim.rng import RandomStreams
from meshsim.sim.kernel import Kernel
from meshsim.viz.raft import ROLE_COLUMNS, cluster_of, raft_frames, raft_timeline
from meshsim.viz.style import ROLE_COLORS

HOSTS = [f"s{i}" for i in range(5)]
ROLES = set(ROLE_COLORS)


def build(seed: int = 3, loss: float = 0.02, record: bool = True) -> RaftCluster:
    k, streams = Kernel(), RandomStreams(seed)
    net = make_network(k, HOSTS, latency={"dist": "uniform", "low": 5, "high": 15}, streams=streams, loss=loss)
    c = RaftCluster(k, net, HOSTS, RaftConfig.profile("paper"), streams, disk_delay=1.0)
    if record:
        c.record_messages()
    return c


def crash_scenario(c: RaftCluster) -> dict:
    """Elect, crash the leader 300 ms later, restart it 1 s after that, run 1.5 s more."""
    c.start()
    assert c.run_until(lambda: c.leader() is not None, 5_000)
    old = c.leader()
    crash_at = c.kernel.now + 300.0
    c.at(crash_at, c.crash, old)
    c.at(crash_at + 1_000.0, c.restart, old)
    c.run_to(crash_at + 2_500.0)
    return {"old": old, "crash_at": crash_at, "restart_at": crash_at + 1_000.0}


@pytest.fixture(scope="module")
def run():
    c = build()
    info = crash_scenario(c)
    return c, info


def check_tiling(roles: pd.DataFrame, servers, lo: float, hi: float) -> None:
    assert list(roles.columns) == ROLE_COLUMNS
    assert set(roles["role"]) <= ROLES
    for s in servers:
        r = roles[roles["server"] == s].sort_values("start_ms")
        assert len(r) >= 1, s
        starts, ends = r["start_ms"].to_numpy(), r["end_ms"].to_numpy()
        assert starts[0] == lo and ends[-1] == hi
        assert np.all(ends > starts)                      # no empty bands
        assert np.array_equal(starts[1:], ends[:-1])      # no gaps, no overlaps
        # neighbouring bands differ (else they would be one band)
        same = (r["role"].to_numpy()[1:] == r["role"].to_numpy()[:-1]) & (r["term"].to_numpy()[1:] == r["term"].to_numpy()[:-1])
        assert not same.any()


def test_roles_tile_each_server_whole_run_and_window(run):
    c, info = run
    f = raft_frames(c)
    check_tiling(f["roles"], HOSTS, 0.0, c.kernel.now)
    lo, hi = info["crash_at"] - 200.0, info["restart_at"] + 100.0
    fw = raft_frames(c, lo, hi)
    check_tiling(fw["roles"], HOSTS, lo, hi)


def test_at_most_one_leader_per_term_and_leaders_agree(run):
    c, _ = run
    f = raft_frames(c)
    lead = f["roles"][f["roles"]["role"] == "leader"]
    assert lead.groupby("term")["server"].nunique().max() == 1  # election safety, as the core guarantees
    changes = c.frame("leader_changes")
    assert len(changes) >= 2  # the first election and the one after the crash
    # every leader band starts at a recorded leader change of that server and term, and vice versa
    first = lead.sort_values("start_ms").groupby(["server", "term"], as_index=False)["start_ms"].min()
    got = sorted(zip(first["server"], first["term"], first["start_ms"]))
    want = sorted(zip(changes["leader"], changes["term"], changes["time"]))
    assert got == want
    leaders = f["leaders"]
    assert leaders["leader"].tolist() == changes["leader"].tolist()
    assert leaders["term"].tolist() == changes["term"].tolist()
    assert np.array_equal(leaders["time_ms"].to_numpy(), changes["time"].to_numpy())
    # terms only grow along a server's row
    for s in HOSTS:
        t = f["roles"][f["roles"]["server"] == s].sort_values("start_ms")["term"].to_numpy()
        assert np.all(np.diff(t) >= 0)


def test_crashed_band_from_crash_to_restart(run):
    c, info = run
    f = raft_frames(c)
    down = f["roles"][f["roles"]["role"] == "crashed"]
    assert down["server"].tolist() == [info["old"]]
    assert down["start_ms"].iloc[0] == info["crash_at"]
    assert down["end_ms"].iloc[0] == info["restart_at"]
    before = f["roles"][(f["roles"]["server"] == info["old"]) & (f["roles"]["end_ms"] == info["crash_at"])]
    assert before["role"].tolist() == ["leader"]
    # a new leader in a higher term took over while it was down
    new = f["leaders"][(f["leaders"]["time_ms"] > info["crash_at"]) & (f["leaders"]["time_ms"] < info["restart_at"])]
    assert len(new) >= 1 and info["old"] not in set(new["leader"])


def test_messages_recorded_match_the_cluster_counters(run):
    c, _ = run
    m = c.frame("messages")
    assert len(m) == c.sent > 0  # recording started before the first message
    arrived = m[np.isfinite(m["arrive_ms"])]
    assert (arrived["arrive_ms"] >= arrived["send_ms"]).all()
    assert (m.loc[m["delivered"], "fate"] == "delivered").all()
    fate = m["fate"].value_counts()
    assert fate.get("delivered", 0) == c.delivered
    assert fate.get("server_down", 0) == c.dropped["server_down"] > 0  # the crashed leader was still sent to
    assert fate.get("network_loss", 0) == c.dropped["network_loss"] > 0
    assert m.loc[m["fate"] == "network_loss", "arrive_ms"].isna().all()
    assert set(m["kind"]) >= {"heartbeat", "AppendEntriesReply", "RequestVote", "RequestVoteReply"}
    # a heartbeat carries no entries, an AppendEntries at least one
    assert (m.loc[m["kind"] == "heartbeat", "entries"] == 0).all()
    assert (m.loc[m["kind"] == "AppendEntries", "entries"] >= 1).all()


def test_each_leader_won_a_majority_of_votes(run):
    c, _ = run
    f = raft_frames(c)
    votes = f["votes"]
    majority = len(HOSTS) // 2 + 1
    for t, lead, term in zip(f["leaders"]["time_ms"], f["leaders"]["leader"], f["leaders"]["term"]):
        msgs = f["messages"]
        got = msgs[(msgs["kind"] == "RequestVoteReply") & (msgs["dst"] == lead) & (msgs["term"] == term)
                   & msgs["ok"].astype(bool) & (msgs["arrive_ms"] <= t)]
        assert got["src"].nunique() >= majority - 1  # plus its own vote
        v = votes[(votes["candidate"] == lead) & (votes["term"] == term) & votes["granted"] & ~votes["pre_vote"]]
        assert set(v["voter"]) >= set(got["src"])


def test_recording_is_observation_only():
    a, b = build(seed=5, record=False), build(seed=5, record=True)
    ia, ib = crash_scenario(a), crash_scenario(b)
    assert ia == ib
    for table in ("events", "leader_changes", "commits", "terms"):
        assert getattr(a, table) == getattr(b, table), table
    # off: no hooks on the instances, an empty messages table
    assert a.message_log is None
    assert all("_deliver" not in vars(s) for s in a.servers.values()) and "_on_drop" not in vars(a)
    assert "_deliver" in vars(b.servers["s0"])
    assert a.frame("messages").empty and list(a.frame("messages").columns) == list(b.frame("messages").columns)


def test_recording_window_filters_by_send_time():
    c = build(seed=3, loss=0.0, record=False)
    log = c.record_messages(start_ms=500.0, end_ms=900.0)
    crash_scenario(c)
    m = c.frame("messages")
    assert len(m) == len(log) > 0
    assert m["send_ms"].between(500.0, 900.0).all()


def test_timeline_draws_a_row_per_server_and_an_arrow_per_message(run):
    from matplotlib.patches import FancyArrowPatch

    c, info = run
    lo, hi = info["crash_at"] - 100.0, info["crash_at"] + 600.0
    fig = raft_timeline(c, start_ms=lo, end_ms=hi)
    ax = fig.axes[0]
    f = raft_frames(c, lo, hi)
    bands = [col for col in ax.collections if str(col.get_gid()).startswith("raft-band:")]
    assert sorted(col.get_gid() for col in bands) == sorted(f"raft-band:{s}" for s in HOSTS)
    for col in bands:  # each band's colour is its role's
        s = col.get_gid().split(":", 1)[1]
        roles = f["roles"][f["roles"]["server"] == s]["role"]
        want = matplotlib.colors.to_rgba_array([ROLE_COLORS[r] for r in roles])
        assert np.allclose(col.get_facecolors(), want)
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch) and p.get_gid() == "raft-message"]
    m = f["messages"]
    assert len(arrows) == int(np.isfinite(m["arrive_ms"]).sum()) > 0
    lost = [ln for ln in ax.lines if ln.get_gid() == "raft-lost"]
    dropped = m["arrive_ms"].isna() & (m["fate"] != "in_flight")
    assert sum(len(ln.get_xdata()) for ln in lost) == int(dropped.sum()) > 0
    leader_lines = [ln for ln in ax.lines if ln.get_gid() == "raft-leader"]
    assert len(leader_lines) == len(f["leaders"]) >= 1
    assert ax.get_xlabel() == "simulated time (ms)"
    assert ax.get_xlim() == (lo, hi)
    rows = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks())}
    assert rows == {s: len(HOSTS) - 1 - i for i, s in enumerate(HOSTS)}  # the first server at the top
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"follower", "leader", "crashed", "candidate"} <= set(labels)
    assert "heartbeat (no entries)" in labels
    matplotlib.pyplot.close(fig)


def test_timeline_without_messages_and_on_a_given_axes():
    c = build(record=False)
    crash_scenario(c)
    fig = raft_timeline(c)
    assert "messages not recorded" in fig.axes[0].get_title()
    assert not [p for p in fig.axes[0].patches if p.get_gid() == "raft-message"]
    fig2, ax = matplotlib.pyplot.subplots()
    assert raft_timeline(c, messages=False, ax=ax) is fig2
    matplotlib.pyplot.close("all")


def test_result_and_registry_sources():
    res = meshsim.run(meshsim.example("registry_failover"), seed=1, overrides={
        "run.duration": "34s", "registry.record_messages": {"from": "30500ms", "until": "33s"}})
    comp = res.component("registry")
    assert cluster_of(res) is cluster_of(comp) is cluster_of(comp.registry) is comp.registry.cluster
    f = raft_frames(res, 30_000, 34_000)
    check_tiling(f["roles"], list(comp.registry.cluster.servers), 30_000, 34_000)
    down = f["roles"][f["roles"]["role"] == "crashed"]
    assert len(down) == 1 and down["start_ms"].iloc[0] == 31_000.0 and down["end_ms"].iloc[0] == 34_000.0
    m = f["messages"]
    assert len(m) > 0 and m["send_ms"].between(30_500, 33_000).all()
    assert len(f["leaders"]) == 1 and f["leaders"]["time_ms"].iloc[0] > 31_000
    fig = raft_timeline(res, 30_800, 32_600)
    assert len([p for p in fig.axes[0].patches if p.get_gid() == "raft-message"]) == \
        int(np.isfinite(raft_frames(res, 30_800, 32_600)["messages"]["arrive_ms"]).sum())
    matplotlib.pyplot.close(fig)
    plain = meshsim.run(meshsim.example("mmc"), seed=1, overrides={"run.requests": 100})
    with pytest.raises(ValueError, match="registry"):
        raft_frames(plain)
    assert math.isfinite(res.summary["latency_ms"]["mean"])
