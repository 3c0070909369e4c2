"""The SimPy shell around the Raft core: elections, commits, crashes, partitions, disk, faults, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from meshsim.core.raft import LEADER, PersistentState, RaftConfig
from meshsim.registry.raft_shell import RaftCluster, as_delay, make_network
from meshsim.rng import RandomStreams
from meshsim.sim.kernel import Kernel

from raft_harness import (
    Commit,
    Snapshot,
    check_election_safety,
    check_leader_append_only,
    check_leader_completeness,
    check_log_matching,
    committed_entries,
)

PAPER = RaftConfig.profile("paper")
ETCD_FAST = RaftConfig.profile("etcd", heartbeat_interval_ms=50.0, election_timeout_min_ms=300.0,
                               election_timeout_max_ms=600.0)


def make(n=3, config=PAPER, seed=0, latency=1.0, loss=0.0, **kw) -> RaftCluster:
    k, streams = Kernel(), RandomStreams(seed)
    hosts = [f"h{i}" for i in range(n)]
    net = make_network(k, hosts, latency=latency, streams=streams, loss=loss)
    return RaftCluster(k, net, hosts, config, streams, **kw)


class Recorder:
    """Builds the harness's Snapshot / Commit history from the shell's observer hook."""

    def __init__(self, cluster: RaftCluster):
        self.history: list[Snapshot] = []
        self.commits: list[Commit] = []
        self.step = 0
        cluster.observers.append(self)

    def __call__(self, server, call, ready):
        n = server.node
        self.step += 1
        for e in ready.committed:
            self.commits.append(Commit(self.step, server.name, server.incarnation, n.term, e))
        self.history.append(Snapshot(self.step, server.kernel.now, server.name, call, n.role, n.term, n.leader_id,
                                     n.commit_index, tuple(n.log)))

    def check(self):
        check_election_safety(self.history)
        check_leader_append_only(self.history)
        check_log_matching(self.history)
        committed_entries(self.commits)
        check_leader_completeness(self.history, self.commits)


def elect(c: RaftCluster, limit=10_000.0) -> str:
    assert c.run_until(lambda: c.agreed_leader() is not None, limit), "no leader agreed"
    return c.agreed_leader()


# --------------------------------------------------------------------------- basics


@pytest.mark.parametrize("n", [1, 3, 5])
def test_elects_exactly_one_leader(n):
    c = make(n)
    rec = Recorder(c)
    c.start()
    lead = elect(c)
    c.run(2_000)
    assert c.agreed_leader() == lead  # stable: heartbeats keep it
    assert [s.role for s in c.servers.values()].count(LEADER) == 1
    assert c.leader_changes["leader"] == [lead]
    assert c.available
    rec.check()


def test_commits_proposals_everywhere_in_order():
    c = make(5, disk_delay=0.5)
    c.start()
    elect(c)
    idx = [c.propose(f"cmd{i}") for i in range(20)]
    assert idx == list(range(idx[0], idx[0] + 20))
    c.run(500)
    for s in c.servers.values():
        assert s.node.commit_index == idx[-1]
        data = [e.data for e in s.node.log if e.kind == "command"]
        assert data == [f"cmd{i}" for i in range(20)]
    per_server = c.frame("commits").groupby("server")["index"].apply(list)
    for indices in per_server:
        assert indices == list(range(1, idx[-1] + 1))  # applied once each, in order
    p = c.frame("proposals")
    assert p["commit_time"].notna().all() and (p["commit_time"] > p["time"]).all()
    assert c.summary()["committed"] == 20


def test_read_index_is_recorded():
    c = make(3, seed=2)
    c.start()
    lead = elect(c)
    c.run(100)
    c.servers[lead].read_index("r1")
    c.run(50)
    reads = c.frame("reads")
    assert list(reads["request_id"]) == ["r1"] and reads["ok"].all() and reads["server"].iloc[0] == lead


def test_propose_without_leader_is_refused():
    c = make(3)
    c.start()
    assert c.propose("x") is None
    assert c.servers["h0"].propose("x").rejected == "not leader"


def test_survives_leader_crash():
    c = make(5, seed=3)
    c.start()
    old = elect(c)
    c.propose("before")
    c.run(200)
    t0 = c.kernel.now
    c.crash(old)
    new = elect(c, 5_000)
    assert new != old
    # detection within the max election timeout after the last heartbeat, then a few vote rounds
    assert c.kernel.now - t0 < 2 * PAPER.election_timeout_max_ms + 100
    i = c.propose("after")
    c.run(200)
    for s in c.servers.values():
        if s.up:
            assert [e.data for e in s.node.log if e.kind == "command"] == ["before", "after"]
            assert s.node.commit_index == i
    s = c.summary()
    assert s["leader_changes"] == 2 and s["leader"] == new
    assert len(s["unavailability_windows"]) == 2  # boot, and the crash
    (a, b) = s["unavailability_windows"][1]
    assert a == pytest.approx(t0) and b > a


def test_crash_restart_keeps_persisted_state():
    c = make(3, seed=1)
    c.start()
    lead = elect(c)
    for i in range(5):
        c.propose(i)
    c.run(300)
    f = next(n for n in c.servers if n != lead)
    srv = c.servers[f]
    before = srv.node.persistent_state()
    assert before.term >= 1 and len(before.log) == 6
    c.crash(f)
    assert not srv.up and srv.persisted == before and srv.term == before.term
    c.restart(f)
    node = srv.node
    assert (node.term, node.voted_for, tuple(node.log)) == (before.term, before.voted_for, before.log)
    assert node.commit_index == 0 and node.role != LEADER  # volatile state starts afresh
    c.run(300)
    assert srv.node.commit_index == 6  # learns the commit index again from the leader
    assert c.events["event"].count("restart") == 1


def test_crash_loses_unfinished_disk_write():
    c = make(3, seed=2, disk_delay=5.0)
    c.start()
    lead = elect(c)
    c.run(100)
    f = next(n for n in c.servers if n != lead)
    srv = c.servers[f]
    persisted = srv.persisted
    c.propose("x")
    # the append reaches the follower after 5 ms (leader's write) + 1 ms; its own write needs 5 ms more
    c.run(5 + 1 + 2)
    assert srv.node.last_index == persisted_len(persisted) + 1  # in memory
    assert srv.persisted == persisted  # not yet on disk
    c.crash(f)
    c.restart(f)
    assert srv.node.last_index == persisted_len(persisted)


def persisted_len(p: PersistentState) -> int:
    return len(p.log)


# --------------------------------------------------------------------------- network faults


def test_partitioned_minority_cannot_commit():
    c = make(5, seed=4)
    rec = Recorder(c)
    c.start()
    old = elect(c)
    others = [n for n in c.servers if n != old]
    minority, majority = [old, others[0]], others[1:]
    c.partition(minority, majority)
    stale = c.propose("lost", server=old)
    assert stale is not None
    c.run(2_000)
    assert c.servers[old].node.commit_index < stale  # never committed in the minority
    new = c.leader()
    assert new in majority and c.servers[new].term > c.servers[old].term
    ok = c.propose("kept", server=new)
    c.run(200)
    assert all(c.servers[n].node.commit_index >= ok for n in majority)
    c.heal()
    c.run(1_000)
    assert c.agreed_leader() == new
    for s in c.servers.values():
        assert "lost" not in [e.data for e in s.node.log]
        assert "kept" in [e.data for e in s.node.log]
    assert "lost" not in c.commits["kind"] or all(k != "lost" for k in c.commits["kind"])
    rec.check()


def test_disk_delay_delays_commits_by_the_writes():
    lat = {}
    for disk in (0.0, 4.0):
        c = make(3, seed=5, latency=1.0, disk_delay=disk)
        c.start()
        elect(c)
        c.run(500)
        for i in range(10):
            c.propose(i)
            c.run(100)
        lat[disk] = np.array(c.proposals["commit_time"]) - np.array(c.proposals["time"])
    # leader writes, sends (1 ms), follower writes, answers (1 ms): 2 latencies + 2 writes
    assert lat[0.0] == pytest.approx(2.0)
    assert lat[4.0] == pytest.approx(2.0 + 2 * 4.0)


def test_disk_writes_are_sequential_per_server():
    c = make(1, disk_delay=3.0)
    c.start()
    elect(c)
    c.run(10)  # the leader's no-op is on disk
    t = c.kernel.now
    i1, i2, i3 = c.propose("a"), c.propose("b"), c.propose("c")
    c.run(20)
    p = c.frame("proposals").set_index("index")
    assert p.loc[i1, "commit_time"] - t == pytest.approx(3.0)
    assert p.loc[i2, "commit_time"] - t == pytest.approx(6.0)
    assert p.loc[i3, "commit_time"] - t == pytest.approx(9.0)


def test_duplication_and_reordering_happen():
    c = make(3, seed=6, duplicate=0.3, reorder=0.3, reorder_delay=5.0, duplicate_delay={"dist": "uniform",
                                                                                          "low": 1, "high": 3})
    c.start()
    elect(c)
    for i in range(20):
        c.propose(i)
        c.run(50)
    s = c.summary()
    assert s["duplicated"] > 0.2 * s["messages_sent"] and s["reordered"] > 0.2 * s["messages_sent"]
    assert s["messages_delivered"] > s["messages_sent"]
    assert s["committed"] == 20


def test_network_stream_keeps_send_order_datagrams_do_not():
    k = Kernel()
    net = make_network(k, ["a", "b"], latency={"dist": "uniform", "low": 0.3, "high": 1.5},
                       streams=RandomStreams(3))
    arrived = {"stream": [], "datagram": []}
    stream = [0.0]
    for i in range(500):
        k.call_at(i * 0.05, lambda i: net.send("a", "b", arrived["stream"].append, i, stream=stream), i)
        k.call_at(i * 0.05, lambda i: net.send("a", "b", arrived["datagram"].append, i), i)
    k.env.run()
    assert arrived["stream"] == list(range(500))
    assert arrived["datagram"] != list(range(500)) and sorted(arrived["datagram"]) == list(range(500))


def test_raft_messages_between_two_servers_arrive_in_order():
    """A write burst over links with random latency: no follower ever sees a gap (an AppendEntries
    ahead of one still in flight) and rejects, because each peer's messages travel on one stream,
    as over hashicorp/raft's and etcd's TCP connections.  Only the reorder fault breaks the order."""
    def rejections(**kw):
        c = make(5, seed=4, latency={"dist": "uniform", "low": 0.3, "high": 1.5}, **kw)
        seen = []
        c.intercept = lambda src, dst, msg: (seen.append(msg), msg)[1]
        c.start()
        elect(c)
        for i in range(300):
            c.propose(i)
            c.run(0.05)
        c.run(500)
        assert c.summary()["committed"] == 300
        return sum(1 for m in seen if type(m).__name__ == "AppendEntriesResponse" and not m.success)

    assert rejections() == 0
    assert rejections(reorder=0.3, reorder_delay=2.0) > 0


@pytest.mark.parametrize("config", [PAPER, ETCD_FAST], ids=["paper", "etcd-prevote-checkquorum"])
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_safety_under_loss_duplication_reordering_crashes_partitions(config, seed):
    c = make(5, config, seed=seed, latency={"dist": "uniform", "low": 0.5, "high": 5.0}, loss=0.05,
             duplicate=0.1, reorder=0.2, disk_delay={"dist": "uniform", "low": 0.0, "high": 2.0})
    rec = Recorder(c)
    rng = np.random.default_rng(seed)
    names = list(c.servers)
    c.start()
    k = 0
    for _ in range(150):
        r = rng.random()
        down = [n for n in names if not c.servers[n].up]
        if r < 0.5:
            if c.propose(f"v{k}") is not None:
                k += 1
        elif r < 0.6 and len(down) < 2:
            c.crash(str(rng.choice([n for n in names if c.servers[n].up])))
        elif r < 0.75 and down:
            c.restart(str(rng.choice(down)))
        elif r < 0.82:
            perm = list(rng.permutation(names))
            cut = int(rng.integers(1, 5))
            c.partition(perm[:cut], perm[cut:])
        elif r < 0.9:
            c.heal()
        c.run(float(rng.uniform(20, 300)))
    c.heal()
    for n in names:
        if not c.servers[n].up:
            c.restart(n)
    lead = elect(c, 30_000)
    final = c.propose("final")
    c.run(3_000)
    rec.check()
    assert k > 10 and c.summary()["messages_dropped"]["network_loss"] > 0
    assert c.servers[lead].node.commit_index >= final
    logs = {n: [e for e in c.servers[n].node.log[:final]] for n in names}
    assert all(v == logs[lead] for v in logs.values())  # all caught up on the same committed prefix


# --------------------------------------------------------------------------- determinism, ticks, simulation


def run_history(seed):
    c = make(5, seed=seed, latency={"dist": "lognormal", "median": 1.0, "p99": 5.0}, loss=0.02, duplicate=0.05,
             reorder=0.05, disk_delay={"dist": "exponential", "mean": 1.0})
    c.start()
    elect(c)
    for i in range(10):
        c.propose(i)
        c.run(37)
    c.crash(c.leader())
    elect(c)
    c.run(500)
    return c.leader_changes, c.events, c.commits, c.proposals


def test_deterministic_same_seed_same_history():
    a, b, other = run_history(7), run_history(7), run_history(8)
    assert a == b
    assert a != other


def test_tick_mode_quantizes_timers_to_the_grid():
    cfg = RaftConfig.profile("etcd", heartbeat_interval_ms=10.0, election_timeout_min_ms=100.0,
                             election_timeout_max_ms=200.0, pre_vote=False)
    c = make(3, cfg, seed=9, latency=0.1, tick_ms=10.0)
    fires = []
    c.observers.append(lambda s, call, r: fires.append((s, c.kernel.now)) if call == "timer" else None)
    c.start()
    elect(c)
    c.run(1_000)
    assert fires
    for s, t in fires:  # every timer fired on the server's own tick grid
        k = (t - s.phase) / 10.0
        assert abs(k - round(k)) < 1e-6
    for s in c.servers.values():
        assert 0.0 <= s.phase < 10.0
        ticks = s.clock() / 10.0
        assert ticks == int(ticks)  # the node counts whole ticks
        assert s.phase + s.clock() <= c.kernel.now < s.phase + s.clock() + 10.0
    # election timeouts are whole numbers of ticks in [10, 20)
    elapsed = [s.timer_deadline - s.clock() for s in c.servers.values() if s.role != LEADER]
    assert elapsed and all(v == int(v) and v % 10 == 0 and 10 <= v <= 200 for v in elapsed)


def test_as_delay_and_network_helpers():
    assert as_delay(None) is None and as_delay(0.0) is None
    with pytest.raises(ValueError):
        as_delay(-1.0)
    k = Kernel()
    net = make_network(k, ["a", "b"], latency=2.5)
    assert net.latency("a", "b") == 2.5
    with pytest.raises(ValueError, match="not on the network"):
        RaftCluster(k, net, ["a", "zz"], PAPER)
    c = RaftCluster(k, net, ["a", "zz"], PAPER, zone="zone-0")
    assert "zz" in net.host_zone and len(c.servers) == 2
    with pytest.raises(TypeError):
        RaftCluster(object(), net)


def test_runs_inside_a_simulation_as_a_component():
    from meshsim.result import Result
    from meshsim.sim.simulation import Simulation

    from raft_harness import service_beside_servers

    scenario = service_beside_servers("raft-beside-a-service", "3s")
    sim = Simulation(scenario, seed=3)
    cluster = sim.attach(RaftCluster(sim, servers=["h0", "h1", "h2"], config=PAPER))
    sim.kernel.call_at(1_000.0, lambda _a: cluster.propose("from-sim"))
    cluster.at(1_500.0, cluster.crash, cluster.servers["h0"].name)
    sim.run()
    summary = Result(sim).summary
    raft = summary["raft"]
    assert raft["servers"] == 3 and raft["leader"] is not None
    assert raft["committed"] == 1 and raft["commit_latency_ms"]["max"] == pytest.approx(2.0)
    assert raft["leader_changes"] >= 1 and raft["unavailable_ms"] < 3_000
    assert summary["completed"] > 50
