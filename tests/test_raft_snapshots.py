"""Log compaction in the Raft core: snapshots taken by the shell (``RaftNode.compact``), the trailing log
kept, a restart from a snapshot, a lagging follower caught up by InstallSnapshot, and the safety properties
under random faults with compaction every few entries (the same checks as every other configuration)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshsim.core.raft import (
    AppendEntries,
    InstallSnapshot,
    PersistentState,
    RaftConfig,
    RaftNode,
    Snapshot,
)
from meshsim.teach.harness import FAST, Cluster, check_safety

#: compaction after 5 applied entries, keeping 2
SMALL = replace(FAST, snapshot_threshold=5, trailing_logs=2, max_entries_per_append=3)


def leader_of(c: Cluster):
    c.run_until(lambda: c.leader() is not None, 20_000)
    return c.leader()


def test_profiles_default_to_hashicorp_and_consul_snapshot_settings():
    assert RaftConfig().snapshot_threshold is None  # off unless asked for
    lib = RaftConfig.profile("hashicorp-raft-1.1")  # hashicorp/raft's DefaultConfig
    assert (lib.snapshot_threshold, lib.snapshot_interval_ms, lib.trailing_logs) == (8192, 120_000.0, 10240)
    consul = RaftConfig.profile("consul")  # Consul's DefaultConfig overrides two of them
    assert (consul.snapshot_threshold, consul.snapshot_interval_ms, consul.trailing_logs) == (16384, 30_000.0, 10240)
    with pytest.raises(ValueError, match="snapshot_threshold"):
        replace(FAST, snapshot_threshold=0)
    with pytest.raises(ValueError, match="trailing_logs"):
        replace(FAST, trailing_logs=-1)


def test_compaction_keeps_the_trailing_log_and_the_snapshot_covers_the_rest():
    c = Cluster(3, SMALL, seed=1)
    c.start()
    lead = leader_of(c)
    for k in range(12):
        c.propose(lead, f"x{k}")
        c.run(60)
    node = c.nodes[lead]
    snap = node.snapshot
    assert snap is not None and snap.index >= 5
    # hashicorp/raft's compactLogs: everything up to snapshot index - TrailingLogs goes
    assert node.first_index == snap.index - SMALL.trailing_logs + 1
    assert [e.index for e in node.log] == list(range(node.first_index, node.last_index + 1))
    assert [e.index for e in snap.data] == list(range(1, snap.index + 1))  # the state machine up to it
    assert snap.voters == (1, 2, 3)
    check_safety(c)


def test_restart_restores_the_state_machine_from_the_snapshot_then_the_log():
    c = Cluster(3, SMALL, seed=2)
    c.start()
    lead = leader_of(c)
    for k in range(9):
        c.propose(lead, f"x{k}")
        c.run(60)
    f = next(i for i in c.ids if i != lead)
    before = list(c.fsm[f])
    snap = c.nodes[f].snapshot
    assert snap is not None and c.disk[f].snapshot == snap
    c.restart(f)
    # the first Ready after a restart hands over the snapshot; the rest is applied from the log
    assert c.fsm[f][:snap.index] == list(snap.data)
    c.run(300)
    assert c.fsm[f] == before or c.fsm[f][:len(before)] == before
    check_safety(c)


def test_a_lagging_follower_is_caught_up_by_install_snapshot():
    c = Cluster(3, SMALL, seed=3)
    c.start()
    lead = leader_of(c)
    lag = next(i for i in c.ids if i != lead)
    c.isolate(lag)
    for k in range(20):
        c.propose(lead, f"x{k}")
        c.run(40)
    assert c.nodes[lead].first_index > c.nodes[lag].last_index + 1  # the leader no longer has what it needs
    n_trace = len(c.trace)
    c.heal()
    c.run(1_000)
    sent = [e for e in c.trace[n_trace:] if e.dst == lag]
    assert any(isinstance(e.msg, InstallSnapshot) for e in sent)
    assert c.fsm[lag] == c.fsm[lead]  # same state machine
    assert c.nodes[lag].commit_index == c.nodes[lead].commit_index
    check_safety(c)


def test_a_follower_still_holding_the_trailing_entries_is_caught_up_from_the_log():
    cfg = replace(SMALL, trailing_logs=50)
    c = Cluster(3, cfg, seed=4)
    c.start()
    lead = leader_of(c)
    lag = next(i for i in c.ids if i != lead)
    c.isolate(lag)
    for k in range(12):
        c.propose(lead, f"x{k}")
        c.run(40)
    assert c.nodes[lead].snapshot is not None and c.nodes[lead].first_index == 1
    n_trace = len(c.trace)
    c.heal()
    c.run(1_000)
    sent = [e.msg for e in c.trace[n_trace:] if e.dst == lag]
    assert not any(isinstance(m, InstallSnapshot) for m in sent) and any(isinstance(m, AppendEntries) for m in sent)
    assert c.fsm[lag] == c.fsm[lead]


def test_install_snapshot_replaces_a_divergent_uncommitted_suffix():
    """A follower whose log disagrees with the snapshot keeps nothing of it; one that agrees keeps the rest."""
    cfg = replace(SMALL, snapshot_threshold=None)
    from meshsim.core.raft import Entry

    log = tuple(Entry(i, 1, "command", f"a{i}") for i in range(1, 4)) + (Entry(4, 2, "command", "stale"),)
    f = RaftNode(2, (1, 2, 3), cfg, np.random.default_rng(0), PersistentState(term=2, log=log))
    f.start(0.0)
    snap = Snapshot(5, 3, (1, 2, 3), data="the leader's state")
    r = f.receive(InstallSnapshot(3, 1, snap), 1.0)
    assert r.snapshot == snap and r.persist and f.commit_index == f.applied_index == 5
    assert f.log == [] and f.first_index == 6 and f.last_index == 5
    (to, resp), = r.messages
    assert to == 1 and resp.success and resp.match_index == 5
    g = RaftNode(2, (1, 2, 3), cfg, np.random.default_rng(0), PersistentState(term=1, log=log[:3]))
    g.start(0.0)
    r = g.receive(InstallSnapshot(1, 1, Snapshot(2, 1, (1, 2, 3), "s")), 1.0)
    assert [e.index for e in g.log] == [3] and g.commit_index == 2  # the agreeing suffix stays
    # an old snapshot (at or below what is committed) changes nothing but is acknowledged
    r = g.receive(InstallSnapshot(1, 1, Snapshot(1, 1, (1, 2, 3), "older")), 2.0)
    assert r.snapshot is None and g.commit_index == 2 and r.messages[0][1].success


def test_persistent_state_round_trips_a_compacted_log():
    c = Cluster(3, SMALL, seed=5)
    c.start()
    lead = leader_of(c)
    for k in range(10):
        c.propose(lead, f"x{k}")
        c.run(60)
    ps = c.nodes[lead].persistent_state()
    assert ps.log_start[0] == c.nodes[lead].first_index - 1 > 0
    n = RaftNode(lead, (1, 2, 3), SMALL, np.random.default_rng(0), ps)
    assert (n.first_index, n.last_index, n.commit_index) == (c.nodes[lead].first_index, c.nodes[lead].last_index,
                                                             ps.snapshot.index)
    with pytest.raises(ValueError, match="snapshot that covers"):
        RaftNode(9, (1, 2, 3), SMALL, np.random.default_rng(0), replace(ps, snapshot=None))


ACTIONS = st.lists(st.tuples(st.sampled_from(["deliver"] * 6 + ["run"] * 3 + ["isolate", "heal", "restart",
                                                                             "propose", "propose", "drop"]),
                             st.integers(0, 2**16)), min_size=40, max_size=160)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.sampled_from([3, 5]), seed=st.integers(0, 2**16), actions=ACTIONS,
       timers=st.sampled_from(["etcd", "hashicorp"]))
def test_compaction_keeps_raft_safe_under_random_faults(n, seed, actions, timers):
    cfg = replace(SMALL, snapshot_threshold=3, trailing_logs=1)
    if timers == "hashicorp":
        cfg = RaftConfig.profile("hashicorp-raft-1.1", raft_multiplier=1, snapshot_threshold=3, trailing_logs=1,
                                 max_entries_per_append=2)
    c = Cluster(n, cfg, seed=seed)
    c.start()
    k = 0
    for kind, x in actions:
        q = len(c.queue)
        if kind == "deliver" and q:
            c.deliver(x % q)
        elif kind == "drop" and q:
            c.queue.pop(x % q)
        elif kind == "run":
            c.run(x % 700)
        elif kind == "isolate":
            c.isolate(c.ids[x % n])
        elif kind == "heal":
            c.heal()
        elif kind == "restart":
            c.restart(c.ids[x % n])
        elif kind == "propose" and c.leader() is not None:
            k += 1
            c.propose(c.leader(), f"w{k}")
    check_safety(c)
    c.heal()
    c.run_until(lambda: c.leader() is not None and all(
        c.nodes[i].commit_index == c.nodes[c.leader()].commit_index for i in c.up()), 60 * cfg.election_timeout_max_ms,
        strict=False)
    check_safety(c)


def test_the_random_fault_runs_do_install_snapshots():
    """The property above is only worth something if snapshots get installed in it."""
    installs = 0
    for seed in range(6):
        c = Cluster(3, replace(SMALL, snapshot_threshold=3, trailing_logs=1), seed=seed)
        c.start()
        lead = leader_of(c)
        lag = c.ids[(c.ids.index(lead) + 1) % 3]
        c.isolate(lag)
        for k in range(8):
            c.propose(c.leader() or lead, f"x{k}")
            c.run(50)
        c.heal()
        c.run(800)
        installs += sum(isinstance(e.msg, InstallSnapshot) for e in c.trace)
        check_safety(c)
    assert installs >= 6
