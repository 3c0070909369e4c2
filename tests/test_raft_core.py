"""The pure Raft core (meshsim.core.raft): unit checks, readable scenarios on
the message-by-message harness (tests/raft_harness.py), and property tests
over random fault schedules that check the Raft safety properties and
liveness after the faults stop."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raft_harness import FAST, Cluster, check_safety

from meshsim.core.raft import (
    CANDIDATE,
    FOLLOWER,
    LEADER,
    PRECANDIDATE,
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    PersistentState,
    RaftConfig,
    RaftNode,
    RequestVote,
    RequestVoteResponse,
)

#: the Raft paper's basic algorithm: no Pre-Vote, no check-quorum
BASIC = replace(FAST, pre_vote=False, check_quorum=False)


def make_node(nid=1, voters=(1, 2, 3), config=BASIC, persisted=None, seed=0) -> RaftNode:
    return RaftNode(nid, voters, config, np.random.default_rng(seed), persisted)


def is_vote(e) -> bool:
    return isinstance(e.msg, (RequestVote, RequestVoteResponse))


def elect(c: Cluster, cand, voters, tries: int = 5) -> None:
    """Fire ``cand``'s timer and deliver only the election traffic between it
    and ``voters`` (other vote messages are dropped) until it leads; the new
    leader's first appends stay in flight."""
    allowed = {cand, *voters}
    for _ in range(tries):
        c.fire(cand)
        while True:
            c.drop_where(lambda e: is_vote(e) and not (e.src in allowed and e.dst in allowed))
            votes = [k for k, e in enumerate(c.queue) if is_vote(e)]
            if not votes:
                break
            c.deliver(votes[0])
        if c.nodes[cand].role == LEADER:
            return
    raise AssertionError(f"{cand} not elected")


# --------------------------------------------------------------------------- config and profiles


def test_profiles_have_the_documented_numbers():
    etcd = RaftConfig.profile("etcd")
    assert (etcd.heartbeat_interval_ms, etcd.election_timeout_min_ms, etcd.election_timeout_max_ms) == (100, 1000, 2000)
    assert etcd.pre_vote and etcd.check_quorum and not etcd.lease_reads
    consul = RaftConfig.profile("consul")
    assert (consul.heartbeat_interval_ms, consul.election_timeout_min_ms, consul.election_timeout_max_ms) == (500, 5000, 10000)
    assert consul.leader_lease_ms == consul.lease_ms == 2500 and not consul.lease_reads and consul.check_quorum
    assert consul.timers == "hashicorp" and consul.heartbeat_interval_max_ms == 1000 and consul.pre_vote
    old = RaftConfig.profile("hashicorp-raft-1.1")  # the measured library: DefaultConfig, no pre-vote
    assert (old.heartbeat_interval_ms, old.heartbeat_interval_max_ms, old.election_timeout_min_ms, old.lease_ms) == \
        (100, 200, 1000, 500)
    assert old.timers == "hashicorp" and not old.pre_vote and old.max_entries_per_append == 64
    fast_consul = RaftConfig.profile("consul", raft_multiplier=1)
    assert (fast_consul.heartbeat_interval_ms, fast_consul.election_timeout_min_ms, fast_consul.lease_ms) == (100, 1000, 500)
    paper = RaftConfig.profile("paper")
    assert (paper.heartbeat_interval_ms, paper.election_timeout_min_ms, paper.election_timeout_max_ms) == (75, 150, 300)
    assert not (paper.pre_vote or paper.check_quorum or paper.lease_reads)
    assert RaftConfig.profile("etcd", pre_vote=False).pre_vote is False
    assert RaftConfig() == etcd


def test_unknown_profile_names_the_valid_ones():
    with pytest.raises(ValueError, match="consul, etcd, hashicorp-raft-1.1, paper"):
        RaftConfig.profile("zookeeper")
    with pytest.raises(ValueError, match="unknown RaftConfig field"):
        RaftConfig.profile("etcd", heartbeat_ms=5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(heartbeat_interval_ms=100, election_timeout_min_ms=100, election_timeout_max_ms=200), "must be greater than heartbeat"),
    (dict(heartbeat_interval_ms=100, election_timeout_min_ms=50, election_timeout_max_ms=200), "must be greater than heartbeat"),
    (dict(election_timeout_min_ms=1000, election_timeout_max_ms=900), "must be >= election_timeout_min_ms"),
    (dict(heartbeat_interval_ms=0), "must be positive"),
    (dict(max_entries_per_append=0), "at least 1"),
    (dict(leader_lease_ms=1500), "leader_lease_ms"),
    (dict(lease_reads=True, check_quorum=False), "needs check_quorum"),
])
def test_configs_that_cannot_work_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RaftConfig(**kwargs)


def test_election_timeouts_are_drawn_in_range_and_fixed_when_min_equals_max():
    node = make_node(config=FAST)
    draws = [node.start(0.0).election_deadline for _ in range(200)]
    assert all(300 <= d < 600 for d in draws) and len(set(draws)) > 150
    fixed = make_node(config=replace(FAST, election_timeout_max_ms=300.0))
    assert {fixed.start(0.0).election_deadline for _ in range(5)} == {300.0}


# --------------------------------------------------------------------------- unit behaviour


def test_vote_needs_an_up_to_date_log():
    log = (Entry(1, 1), Entry(2, 2))
    voter = make_node(3, persisted=PersistentState(2, None, log))
    shorter_higher = voter.receive(RequestVote(3, 1, last_index=1, last_term=3), 0.0).messages
    assert shorter_higher == [(1, RequestVoteResponse(3, 3, True))]
    voter = make_node(3, persisted=PersistentState(2, None, log))
    longer_lower = voter.receive(RequestVote(3, 1, last_index=5, last_term=1), 0.0).messages
    assert longer_lower == [(1, RequestVoteResponse(3, 3, False))]
    same_term_shorter = make_node(3, persisted=PersistentState(2, None, log)).receive(RequestVote(3, 1, 1, 2), 0.0)
    assert same_term_shorter.messages[0][1].granted is False


def test_one_vote_per_term_survives_a_restart():
    voter = make_node(3)
    ready = voter.receive(RequestVote(5, 1, 0, 0), 0.0)
    assert ready.persist and ready.messages[0][1].granted and voter.voted_for == 1
    disk = voter.persistent_state()
    restarted = make_node(3, persisted=disk, seed=1)
    restarted.start(10.0)
    assert restarted.term == 5 and restarted.voted_for == 1
    assert restarted.receive(RequestVote(5, 2, 9, 4), 11.0).messages[0][1].granted is False
    assert restarted.receive(RequestVote(5, 1, 0, 0), 12.0).messages[0][1].granted is True  # a retry is fine
    assert restarted.receive(RequestVote(6, 2, 0, 0), 13.0).messages[0][1].granted is True  # new term, new vote


def test_a_vote_in_the_current_term_is_persisted_too():
    voter = make_node(3, persisted=PersistentState(1, None, (Entry(1, 1),)))
    refused = voter.receive(RequestVote(2, 1, 0, 0), 0.0)  # stale log: term moves, no vote
    assert refused.persist and not refused.messages[0][1].granted
    granted = voter.receive(RequestVote(2, 2, 1, 1), 1.0)  # same term now: only the vote changes
    assert granted.messages[0][1].granted and granted.persist
    assert voter.persistent_state() == PersistentState(2, 2, (Entry(1, 1),))


def test_append_consistency_check_and_conflict_hints():
    f = make_node(2, persisted=PersistentState(3, None, (Entry(1, 1), Entry(2, 1), Entry(3, 2), Entry(4, 2))))
    too_far = f.receive(AppendEntries(3, 1, prev_index=9, prev_term=3), 0.0).messages[0][1]
    assert (too_far.success, too_far.conflict_term, too_far.conflict_index) == (False, None, 5)
    wrong_term = f.receive(AppendEntries(3, 1, prev_index=4, prev_term=3), 0.0).messages[0][1]
    assert (wrong_term.success, wrong_term.conflict_term, wrong_term.conflict_index) == (False, 2, 3)
    ok = f.receive(AppendEntries(3, 1, 2, 1, (Entry(3, 3), Entry(4, 3), Entry(5, 3)), commit=2), 0.0)
    assert ok.messages[0][1].success and ok.messages[0][1].match_index == 5 and ok.persist
    assert [e.term for e in f.log] == [1, 1, 3, 3, 3] and f.commit_index == 2


def test_follower_commits_only_up_to_the_last_new_entry():
    f = make_node(2)
    ready = f.receive(AppendEntries(1, 1, 0, 0, (Entry(1, 1), Entry(2, 1), Entry(3, 1)), commit=10), 0.0)
    assert f.commit_index == 3 and [e.index for e in ready.committed] == [1, 2, 3]
    f.receive(AppendEntries(1, 1, 3, 1, (Entry(4, 1),), commit=3), 0.0)
    assert f.commit_index == 3  # never beyond what the leader says


def test_follower_never_commits_unverified_entries_past_the_message():
    # index 3 is a leftover of an old term; the leader's index 3 differs, and its commit covers it
    f = make_node(2, persisted=PersistentState(2, None, (Entry(1, 1), Entry(2, 1), Entry(3, 2, data="stale"))))
    ready = f.receive(AppendEntries(3, 1, 1, 1, (Entry(2, 1),), commit=3), 0.0)
    assert f.commit_index == 2 and [e.index for e in ready.committed] == [1, 2]


def test_a_stale_reordered_append_does_not_truncate():
    f = make_node(2)
    f.receive(AppendEntries(1, 1, 0, 0, (Entry(1, 1), Entry(2, 1), Entry(3, 1))), 0.0)
    old = f.receive(AppendEntries(1, 1, 0, 0, (Entry(1, 1),)), 1.0)  # arrives late
    assert len(f.log) == 3 and not old.persist and old.messages[0][1].match_index == 1


def test_committed_entries_are_never_truncated():
    f = make_node(2)
    f.receive(AppendEntries(1, 1, 0, 0, (Entry(1, 1), Entry(2, 1)), commit=2), 0.0)
    with pytest.raises(RuntimeError, match="overwrite committed"):
        f.receive(AppendEntries(2, 3, 1, 1, (Entry(2, 2),)), 1.0)


def test_higher_term_makes_any_role_step_down():
    c = Cluster(3, BASIC)
    c.start()
    c.run_until(lambda: c.leader() is not None, 5000)
    lead = c.leader()
    follower = next(i for i in c.ids if i != lead)
    c.nodes[follower]._term += 5  # as if it had campaigned alone for a while
    c.run(500)
    assert c.nodes[lead].term >= c.nodes[follower].term and len({n.term for n in c.nodes.values()}) == 1
    check_safety(c)


def test_requests_at_a_follower_are_refused_with_a_leader_hint():
    c = Cluster(3)
    c.start()
    c.run_until(lambda: c.leader() is not None, 5000)
    c.run(200)
    lead = c.leader()
    follower = next(i for i in c.ids if i != lead)
    for ready in (c.propose(follower, "x"), c.read(follower, "r"), c.add_server(follower, 9)):
        assert ready.rejected == "not leader" and ready.leader_hint == lead and ready.entry is None
    assert c.nodes[follower].persistent_state().log == c.nodes[lead].persistent_state().log


def test_ready_reports_the_right_timers():
    c = Cluster(3)
    c.start()
    c.run_until(lambda: c.leader() is not None, 5000)
    lead = c.leader()
    hb = c.nodes[lead].on_timer(c.now)  # not due: nothing happens
    assert hb.messages == [] and hb.election_deadline is None and hb.heartbeat_deadline > c.now
    follower = next(i for i in c.ids if i != lead)
    fr = c.nodes[follower].on_timer(c.now)
    assert fr.heartbeat_deadline is None and fr.election_deadline > c.now and fr.messages == []


def test_same_seed_same_history():
    def trace(seed):
        c = Cluster(5, seed=seed)
        c.start()
        c.run(3000)
        c.propose_at_leader("x")
        c.run(500)
        return [(s.node, s.call, s.role, s.term, s.commit) for s in c.history]
    assert trace(7) == trace(7)


# --------------------------------------------------------------------------- scenarios


def test_three_nodes_elect_exactly_one_leader_and_keep_it():
    c = Cluster(3)
    c.start()
    c.run_until(lambda: c.leader() is not None, 2 * FAST.election_timeout_max_ms)
    lead, term = c.leader(), c.nodes[c.leader()].term
    c.run(20 * FAST.election_timeout_max_ms)  # a healthy network: no further election
    assert c.leaders() == [lead] and c.nodes[lead].term == term
    assert all(n.leader_id == lead and n.term == term for n in c.nodes.values())
    assert all(n.commit_index == 1 and n.log[0].kind == "noop" for n in c.nodes.values())
    check_safety(c)


def test_partitioned_leader_rolls_back_its_uncommitted_entry():
    c = Cluster(5, BASIC, seed=3)  # basic Raft: the old leader does not notice it is cut off
    c.start()
    c.run_until(lambda: c.leader() is not None, 5000)
    c.run(200)
    old = c.leader()
    buddy = next(i for i in c.ids if i != old)
    majority = [i for i in c.ids if i not in (old, buddy)]
    c.partition([old, buddy], majority)
    lost = c.propose(old, "lost").entry
    c.run(100)
    assert c.nodes[buddy].log[-1] == lost and c.nodes[old].commit_index < lost.index  # kept, uncommitted
    c.run_until(lambda: any(c.nodes[i].role == LEADER for i in majority), 5000)
    new = next(i for i in majority if c.nodes[i].role == LEADER)
    kept = c.propose(new, "kept").entry
    c.run(200)
    assert all(c.nodes[i].commit_index >= kept.index for i in majority)
    assert c.nodes[old].role == LEADER  # still believes it leads its minority
    c.heal()
    c.run(500)
    assert c.nodes[old].role == FOLLOWER and c.nodes[old].leader_id == new
    for i in c.ids:
        assert lost not in c.nodes[i].log and kept in c.nodes[i].log
    assert all(cm.entry.data != "lost" for cm in c.commits)
    check_safety(c)


def test_figure_8_a_leader_does_not_commit_an_old_term_entry_by_counting_replicas():
    # Raft paper Figure 8, with terms shifted by one.  One entry per append so
    # the leader's no-op does not travel together with the old entry.
    c = Cluster(5, replace(BASIC, max_entries_per_append=1))
    c.start()
    elect(c, 1, [2, 3, 4, 5])
    c.deliver_all()
    assert all(n.commit_index == 1 for n in c.nodes.values())
    # (a) S1 (term 1) replicates index 2 to S2 only
    old = c.propose(1, "t1").entry
    c.deliver_where(lambda e: e.dst == 2)
    c.drop_where(lambda e: True)
    # (b) S1 crashes; S5 wins term 2 with S3, S4 and appends its own index 2 (its no-op), then crashes
    c.crash(1)
    elect(c, 5, [3, 4])
    assert c.nodes[5].log[1].term == 2
    c.crash(5)
    c.drop_where(lambda e: True)
    # (c) S1 restarts and wins term 3 with S2, S3; it gets index 2 onto S3: a majority holds it
    c.restart(1)
    elect(c, 1, [2, 3])
    term = c.nodes[1].term
    c.deliver_where(lambda e: e.dst in (2, 3))  # S2 takes the no-op, S3 rejects it
    c.deliver_where(lambda e: e.dst == 1)       # S1 rewinds S3 and sends it index 2 alone
    c.deliver_where(lambda e: e.dst == 3)
    c.deliver_where(lambda e: e.dst == 1)       # S3 now matches index 2
    stored = [i for i in (1, 2, 3) if len(c.nodes[i].log) >= 2 and c.nodes[i].log[1] == old]
    assert stored == [1, 2, 3] and c.nodes[1].role == LEADER and c.nodes[1].term == term
    assert c.nodes[1].commit_index < old.index, "an old-term entry on a majority must not be committed by counting"
    # (d) S1 crashes before its own-term no-op reaches a majority; S5 wins term 4 and overwrites index 2
    c.drop_where(lambda e: True)
    c.crash(1)
    c.restart(5)
    elect(c, 5, [3, 4])
    c.deliver_all()
    c.run(200)
    assert c.nodes[3].log[1].term == 2 and c.nodes[5].commit_index >= 2
    assert all(cm.entry != old for cm in c.commits)  # it was never reported committed: nothing is lost
    check_safety(c)


def test_pre_vote_keeps_a_rejoining_node_from_disrupting_the_cluster():
    for pre_vote, disrupted in ((True, False), (False, True)):
        c = Cluster(3, replace(FAST, pre_vote=pre_vote), seed=1)
        c.start()
        c.run_until(lambda: c.leader() is not None, 5000)
        c.run(200)
        lead, term = c.leader(), c.nodes[c.leader()].term
        loner = next(i for i in c.ids if i != lead)
        c.isolate(loner)
        c.run(10 * FAST.election_timeout_max_ms)
        assert (c.nodes[loner].term > term) == disrupted
        c.heal()
        c.run(2 * FAST.election_timeout_max_ms)
        leader_changed = c.nodes[lead].term != term
        assert leader_changed == disrupted, f"pre_vote={pre_vote}"
        if not disrupted:
            assert c.leader() == lead and all(n.term == term for n in c.nodes.values())
        check_safety(c)


def test_check_quorum_isolated_leader_steps_down():
    c = Cluster(3, FAST)
    c.start()
    c.run_until(lambda: c.leader() is not None, 5000)
    c.run(200)
    lead = c.leader()
    c.isolate(lead)
    t0 = c.now
    c.run_until(lambda: c.nodes[lead].role != LEADER, FAST.lease_ms + 2 * FAST.heartbeat_interval_ms)
    assert c.nodes[lead].role == FOLLOWER and c.now - t0 >= FAST.lease_ms - FAST.heartbeat_interval_ms
    # without check-quorum it would lead its minority forever
    c2 = Cluster(3, BASIC)
    c2.start()
    c2.run_until(lambda: c2.leader() is not None, 5000)
    lead2 = c2.leader()
    c2.isolate(lead2)
    c2.run(10 * FAST.election_timeout_max_ms)
    assert c2.nodes[lead2].role == LEADER
    check_safety(c)
    check_safety(c2)


def test_read_index_needs_a_quorum_so_a_stale_leader_cannot_serve_reads():
    c = Cluster(5, BASIC, seed=2)
    c.start()
    c.run_until(lambda: c.leader() is not None, 5000)
    c.run(200)
    old = c.leader()
    ready = c.read(old, "fresh")
    assert ready.reads == [] and ready.messages  # a heartbeat round goes out first
    c.run(50)
    assert c.reads["fresh"].result.index == c.nodes[old].commit_index
    buddy = next(i for i in c.ids if i != old)
    majority = [i for i in c.ids if i not in (old, buddy)]
    c.partition([old, buddy], majority)
    c.run_until(lambda: any(c.nodes[i].role == LEADER for i in majority), 5000)
    new = next(i for i in majority if c.nodes[i].role == LEADER)
    write = c.propose(new, "w").entry
    c.run(100)
    assert c.nodes[new].commit_index >= write.index
    c.read(old, "stale")  # the old leader still believes it leads
    c.read(new, "good")
    c.run(1000)
    assert c.reads["stale"].result is None, "a stale leader must not confirm a read"
    assert c.reads["good"].result.index >= write.index
    c.heal()
    c.run(500)
    assert c.reads["stale"].failed and c.nodes[old].role == FOLLOWER
    check_safety(c)


def test_read_index_waits_for_the_new_leaders_first_commit():
    c = Cluster(3, FAST)
    c.start()
    elect(c, 1, [2, 3])
    assert c.nodes[1].commit_index == 0
    assert c.read(1, "early").reads == []
    c.deliver_all()
    assert c.reads["early"].result.index == 1 == c.nodes[1].commit_index  # after the no-op commits
    check_safety(c)


def test_lease_reads_are_local_while_the_lease_holds_and_stop_when_it_expires():
    cfg = replace(FAST, lease_reads=True)
    c = Cluster(3, cfg, seed=4)
    c.start()
    c.run_until(lambda: c.leader() is not None, 5000)
    c.run(200)
    lead = c.leader()
    ready = c.read(lead, "local")
    assert ready.messages == [] and ready.reads[0].index == c.nodes[lead].commit_index  # answered at once
    c.isolate(lead)
    cut = c.now
    c.run(cfg.lease_ms)
    ready = c.read(lead, "late")
    assert ready.reads == [] and not c.nodes[lead].lease_valid(c.now)
    # no one else can lead before the old lease is over: followers ignore votes meanwhile
    others = [i for i in c.ids if i != lead]
    c.run_until(lambda: any(c.nodes[i].role == LEADER for i in others), 10 * cfg.election_timeout_max_ms)
    assert c.now >= cut + cfg.election_timeout_min_ms
    assert c.reads["late"].result is None
    check_safety(c)


LEASE_NO_PREVOTE = replace(FAST, lease_reads=True, pre_vote=False, leader_lease_ms=250.0)


def _lease_cluster_with_a_cut_candidate():
    """3 nodes: a leader with a lease, a follower F that hears it, and a node C
    that is cut off from the leader only, whose election timer has just fired."""
    c = Cluster(3, LEASE_NO_PREVOTE, seed=8)
    c.start()
    c.run_until(lambda: c.leader() is not None, 5000)
    c.run(200)
    lead = c.leader()
    f, cand = [i for i in c.ids if i != lead]
    c.cut(lead, cand)
    c.run_until(lambda: c.nodes[cand].role == CANDIDATE, 2 * FAST.election_timeout_max_ms)
    return c, lead, f, cand


def test_lease_followers_ignore_candidates_while_they_hear_a_leader():
    c, lead, f, cand = _lease_cluster_with_a_cut_candidate()
    term = c.nodes[lead].term
    c.run(5 * FAST.election_timeout_max_ms)  # C keeps campaigning; F keeps hearing the leader
    assert c.nodes[f].term == term and c.nodes[lead].role == LEADER and c.leader() == lead
    assert c.nodes[lead].lease_valid(c.now) and c.read(lead, "r").reads  # still served locally, correctly
    check_safety(c)


def test_lease_a_restarted_follower_does_not_vote_before_a_minimum_election_timeout():
    c, lead, f, cand = _lease_cluster_with_a_cut_candidate()
    term = c.nodes[f].term
    c.restart(f)  # F forgets it was hearing the leader
    c.deliver_where(lambda e: e.src == cand and e.dst == f and isinstance(e.msg, RequestVote))
    assert c.nodes[f].term == term and not any(e.src == f for e in c.queue)  # ignored, not granted
    assert c.nodes[lead].lease_valid(c.now)
    c.run(1000)
    check_safety(c)


def test_lease_counts_from_when_the_heartbeat_was_sent_not_when_the_ack_came_back():
    cfg = replace(FAST, lease_reads=True, leader_lease_ms=250.0)
    lead = make_node(1, config=cfg)
    first = lead.start(0.0).election_deadline
    pre = lead.on_timer(first)
    for p in (2, 3):
        lead.receive(RequestVoteResponse(1, p, True, pre_vote=True), first)
    assert lead.role == CANDIDATE
    lead.receive(RequestVoteResponse(1, 2, True), first)
    assert lead.role == LEADER
    lead.receive(AppendEntriesResponse(1, 2, True, match_index=1, round=1), first + 1)
    assert lead.commit_index == 1 and lead.lease_valid(first + 1)
    t = first + cfg.heartbeat_interval_ms
    sent = lead.on_timer(t)  # round 2 goes out at t ...
    assert {m.round for _, m in sent.messages} == {2}
    lead.receive(AppendEntriesResponse(1, 2, True, match_index=1, round=2), t + 200)  # ... its ack is slow
    assert lead.lease_valid(t + cfg.lease_ms - 1)
    assert not lead.lease_valid(t + cfg.lease_ms), "the lease must run from the send time of the acked round"
    assert not lead.read_index("late", t + cfg.lease_ms).reads  # falls back to ReadIndex


def test_lease_reads_a_restarted_follower_does_not_vote_right_away():
    cfg = replace(FAST, lease_reads=True)
    f = make_node(3, config=cfg)
    f.start(1000.0)
    ignored = f.receive(RequestVote(4, 1, 0, 0), 1000.0 + cfg.election_timeout_min_ms - 1)
    assert ignored.messages == [] and f.term == 0
    granted = f.receive(RequestVote(4, 1, 0, 0), 1000.0 + cfg.election_timeout_min_ms)
    assert granted.messages[0][1].granted


def test_pre_vote_is_refused_while_a_leader_is_heard_and_never_moves_terms():
    f = make_node(2, config=FAST)
    f.start(0.0)
    f.receive(AppendEntries(3, 1, 0, 0), 10.0)
    busy = f.receive(RequestVote(4, 3, 0, 0, pre_vote=True), 20.0).messages[0][1]
    assert busy == RequestVoteResponse(3, 2, False, True) and f.term == 3
    free = f.receive(RequestVote(4, 3, 0, 0, pre_vote=True), 10.0 + FAST.election_timeout_min_ms).messages[0][1]
    assert free == RequestVoteResponse(4, 2, True, True) and f.term == 3 and f.voted_for is None


def test_pre_vote_then_vote_roles():
    c = Cluster(3, FAST)
    c.start()
    ready = c.fire(2)
    assert ready.role_changes == [PRECANDIDATE] and c.nodes[2].term == 0
    assert all(m.pre_vote and m.term == 1 for _, m in ready.messages)
    c.deliver_where(lambda e: e.dst != 2)  # pre-votes to the peers
    c.deliver_where(lambda e: e.dst == 2)  # grants come back: a real campaign starts
    assert c.nodes[2].role in (CANDIDATE, LEADER) and c.nodes[2].term == 1
    c.deliver_all()
    assert c.nodes[2].role == LEADER
    check_safety(c)


def test_membership_add_and_remove_one_server_at_a_time():
    c = Cluster(3, FAST, seed=5)
    c.start()
    c.run_until(lambda: c.leader() is not None, 5000)
    c.run(200)
    lead = c.leader()
    for k in range(5):
        c.propose(lead, f"before-{k}")
    c.add_node(4)
    assert c.nodes[4].voters == (1, 2, 3)  # not a voter yet: it never campaigns
    change = c.add_server(lead, 4).entry
    assert change.kind == "config" and change.data == (1, 2, 3, 4) and c.nodes[lead].voters == (1, 2, 3, 4)
    assert c.add_server(lead, 5).rejected == "a configuration change is still uncommitted"
    c.run(300)
    assert all(n.voters == (1, 2, 3, 4) and n.commit_index >= change.index for n in c.nodes.values())
    assert c.add_server(lead, 4).rejected == "4 is already a voter"
    # the leader removes itself: it steps down once the change is committed
    removal = c.remove_server(lead, lead).entry
    assert c.remove_server(lead, 2).rejected == "a configuration change is still uncommitted"
    c.run_until(lambda: c.nodes[lead].role == FOLLOWER, 1000)
    rest = tuple(i for i in (1, 2, 3, 4) if i != lead)
    c.crash(lead)  # gone for good
    c.run_until(lambda: c.leader() is not None and c.leader() != lead, 10 * FAST.election_timeout_max_ms)
    new = c.leader()
    assert new in rest and c.nodes[new].voters == rest
    after = c.propose(new, "after").entry
    c.run(300)
    assert all(c.nodes[i].commit_index >= after.index for i in rest)
    assert all(c.nodes[i].log[removal.index - 1] == removal for i in rest)
    assert c.remove_server(new, 9).rejected == "9 is not a voter"
    check_safety(c)


def test_a_removed_leader_still_campaigns_until_its_removal_commits():
    # thesis Figure 4.6: S1 removes itself from {S1, S2} and is cut off before S2 gets the entry.
    # S2 alone cannot win (it needs S1's vote, refused for its shorter log), so S1 must campaign.
    c = Cluster(2, FAST, seed=9)
    c.start()
    c.run_until(lambda: c.leader() is not None, 5000)
    c.run(200)
    s1 = c.leader()
    s2 = next(i for i in c.ids if i != s1)
    c.cut(s1, s2)
    removal = c.remove_server(s1, s1).entry
    assert removal.data == (s2,) and c.nodes[s1].voters == (s2,)
    c.restart(s1)  # it forgets the commit index too
    c.heal()
    c.run_until(lambda: c.leader() == s2 and c.nodes[s2].voters == (s2,), 10 * FAST.election_timeout_max_ms)
    assert c.nodes[s2].commit_index >= removal.index
    term = c.nodes[s2].term
    c.run(5 * FAST.election_timeout_max_ms)  # S1, knowing it is out, stays quiet
    assert c.leader() == s2 and c.nodes[s2].term == term and c.nodes[s1].role == FOLLOWER
    check_safety(c)


def test_membership_change_waits_for_a_commit_in_the_new_term():
    c = Cluster(3, FAST)
    c.start()
    elect(c, 1, [2, 3])
    assert c.add_server(1, 4).rejected == "leader has not yet committed an entry in its term"
    c.deliver_all()
    assert c.add_server(1, 4).entry is not None


def test_fast_backtracking_repairs_a_long_divergent_log_in_few_round_trips():
    cfg = replace(BASIC, max_entries_per_append=8)
    c = Cluster(5, cfg, seed=6)
    c.start()
    c.run_until(lambda: c.leader() is not None, 5000)
    c.run(200)
    old = c.leader()
    buddy = next(i for i in c.ids if i != old)
    majority = [i for i in c.ids if i not in (old, buddy)]
    c.partition([old, buddy], majority)
    for k in range(60):
        c.propose(old, f"stale-{k}")
    c.run(300)
    assert len(c.nodes[buddy].log) >= 60  # a long divergent suffix on the follower
    c.run_until(lambda: any(c.nodes[i].role == LEADER for i in majority), 5000)
    new = next(i for i in majority if c.nodes[i].role == LEADER)
    for k in range(40):
        c.propose(new, f"good-{k}")
    c.run(300)
    c.heal()
    mark = len(c.trace)
    c.run(1000)
    assert c.nodes[buddy].log == c.nodes[new].log and c.nodes[old].log == c.nodes[new].log
    # the rejections the new leader had to process from the divergent follower
    rejects = c.rejected_appends(since=mark, leader=new, follower=buddy)
    assert rejects >= 1
    assert rejects <= 3, f"{rejects} rejections: backtracking one entry at a time would need ~60"
    check_safety(c)


# --------------------------------------------------------------------------- property tests

#: a fault schedule is a list of (kind, parameter); the parameter picks a message, node, duration,
#: partition or burst size.  Besides random faults it aims some at the leader, as a nemesis would.
KINDS = (["deliver"] * 6 + ["flush"] * 2 + ["run"] * 3 + ["advance"] * 2
         + ["drop", "dup", "crash", "restart", "bounce", "partition", "isolate", "cut", "heal", "heal"]
         + ["crash_leader", "isolate_leader"] + ["propose"] * 4 + ["burst"] + ["read"] * 3)
ACTIONS = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 2**16)), min_size=60, max_size=200)

#: Liveness bounds, in maximum election timeouts, once every fault stops (network healed, crashed
#: nodes restarted): a leader that every node follows exists within LEADER_BOUND; then, within
#: CLIENT_BOUND more, a client write (retried at the current leader if leadership moves, which
#: check-quorum may do right after healing) is committed on every node and a read is confirmed.
LEADER_BOUND = 10
CLIENT_BOUND = 3

PROPERTY_CONFIGS = {
    "etcd": RaftConfig.profile("etcd"),
    "paper": RaftConfig.profile("paper", max_entries_per_append=3),
    # hashicorp/raft's timers and leader stickiness, with pre-vote (current Consul) and without (1.1.x)
    "consul": RaftConfig.profile("consul", raft_multiplier=1, max_entries_per_append=4),
    "hashicorp-raft-1.1": RaftConfig.profile("hashicorp-raft-1.1", max_entries_per_append=4),
    # lease reads where only the vote-refusal rule (not Pre-Vote) protects the lease
    "lease-no-prevote": RaftConfig.profile("etcd", lease_reads=True, leader_lease_ms=500.0, pre_vote=False,
                                           max_entries_per_append=4),
    # log compaction at every few entries, so that lagging and restarted nodes go through snapshots
    "compacting": RaftConfig.profile("etcd", snapshot_threshold=3, trailing_logs=1, max_entries_per_append=2),
    "consul-compacting": RaftConfig.profile("consul", raft_multiplier=1, snapshot_threshold=4, trailing_logs=0,
                                            max_entries_per_append=4),
}


def _play(c: Cluster, actions, cfg: RaftConfig) -> None:
    down: set = set()
    n = len(c.ids)
    ops = 0
    for kind, x in actions:
        q = len(c.queue)
        nid = c.ids[x % n]
        if kind == "deliver" and q:
            c.deliver(x % q)
        elif kind == "flush":
            for _ in range(min(len(c.queue), 5 * n)):
                c.deliver(0)
        elif kind == "run":  # messages flow (in order, with latency) for a while; partitions still cut
            c.run(x % int(cfg.election_timeout_max_ms))
        elif kind == "advance":  # time passes while every message in flight is held back
            c.advance(x % int(cfg.election_timeout_max_ms))
        elif kind == "drop" and q:
            c.queue.pop(x % q)
        elif kind == "dup" and q:
            c.duplicate(x % q)
        elif kind in ("crash", "crash_leader"):
            victim = c.leader() if kind == "crash_leader" else nid
            if victim is not None and victim not in down and len(down) < n - 1:
                c.crash(victim)
                down.add(victim)
        elif kind == "restart" and nid in down:
            c.restart(nid)
            down.discard(nid)
        elif kind == "bounce" and nid not in down:  # crash and come straight back
            c.restart(nid)
        elif kind == "partition":
            side = [i for k, i in enumerate(c.ids) if x >> k & 1]
            c.partition(side, [i for i in c.ids if i not in side])
        elif kind == "cut":
            a, b = c.ids[x % n], c.ids[(x // n) % n]
            if a != b:
                c.cut(a, b)
        elif kind in ("isolate", "isolate_leader"):
            victim = c.leader() if kind == "isolate_leader" else nid
            if victim is not None:
                c.isolate(victim)
        elif kind == "heal":
            c.heal()
        elif kind in ("add", "remove"):
            lead = c.leader()
            if lead is not None:
                if kind == "add":
                    c.add_server(lead, nid)
                else:
                    c.remove_server(lead, nid)
        elif kind in ("propose", "burst", "read"):
            leaders = c.leaders()  # a client finds some node that believes it leads (maybe a stale one)
            target = leaders[x % len(leaders)] if leaders else (nid if nid not in down else None)
            if target is None:
                continue
            for _ in range(1 + x % 8 if kind == "burst" else 1):
                ops += 1
                if kind == "read":
                    c.read(target, f"r{ops}")
                else:
                    c.propose(target, f"w{ops}")
    c.heal()
    for nid in sorted(down):
        c.restart(nid)


def _members(c: Cluster) -> list:
    """The nodes that matter for liveness: the voters of the current leader's configuration."""
    lead = c.leader()
    return [c.nodes[i] for i in c.nodes[lead].voters] if lead is not None else []


def _stable(c: Cluster) -> bool:
    lead = c.leader()
    if lead is None or lead not in c.nodes[lead].voters:
        return False
    t = c.nodes[lead].term
    return all(m.term == t and m.leader_id == lead for m in _members(c))


def _check_run(n: int, profile: str, seed: int, actions, voters: tuple | None = None) -> None:
    cfg = PROPERTY_CONFIGS[profile]
    c = Cluster(n, cfg, seed=seed, voters=voters)
    c.start()
    _play(c, actions, cfg)
    check_safety(c)
    # liveness once every fault has stopped and messages flow
    c.run_until(lambda: _stable(c), LEADER_BOUND * cfg.election_timeout_max_ms)
    deadline = c.now + CLIENT_BOUND * cfg.election_timeout_max_ms
    final = _client_write(c, "final", deadline)
    _client_read(c, "final-read", deadline)
    check_safety(c)
    # no committed write is lost, and everything the leader holds up to "final" is on every member
    c.run_until(lambda: _stable(c), LEADER_BOUND * cfg.election_timeout_max_ms)
    lead = c.nodes[c.leader()]
    held = {e.index: e for e in lead.log}  # (a compacted prefix lives in the leader's snapshot)
    for cm in c.commits:
        assert held.get(cm.entry.index, cm.entry) == cm.entry and cm.entry.index <= lead.last_index
    for m in _members(c):
        mine = {e.index: e for e in m.log}
        assert all(mine[i] == held[i] for i in range(max(m.first_index, lead.first_index), final.index + 1))
        assert c.fsm[m.id][:final.index] == c.fsm[lead.id][:final.index]  # the state machines agree


def _client_write(c: Cluster, data, deadline: float) -> Entry:
    """Propose at the leader; propose again if leadership moves and the entry is gone."""
    tried = None
    while c.now <= deadline:
        lead = c.leader()
        if lead is not None and tried != (lead, c.nodes[lead].term):
            if not any(e.data == data for e in c.nodes[lead].log):
                c.propose(lead, data)
            tried = (lead, c.nodes[lead].term)
        done = [cm.entry for cm in c.commits if cm.entry.data == data]
        if done and _stable(c) and all(m.commit_index >= done[0].index for m in _members(c)):
            return done[0]
        c.run(c.config.heartbeat_interval_ms)
    raise AssertionError(f"write {data!r} not committed everywhere in time")


def _client_read(c: Cluster, rid, deadline: float) -> None:
    """Ask the leader; ask again (new id) if the read fails or leadership moves."""
    k, asked = 0, None
    while c.now <= deadline:
        lead = c.leader()
        r = c.reads.get(asked)
        if r is not None and r.result is not None:
            return
        if lead is not None and (r is None or r.failed or r.node != lead):
            k += 1
            asked = f"{rid}-{k}"
            c.read(lead, asked)
            continue
        c.run(c.config.heartbeat_interval_ms)
    raise AssertionError(f"read {rid!r} not confirmed in time")


MEMBERSHIP_ACTIONS = st.lists(st.tuples(st.sampled_from(KINDS + ["add", "remove"] * 2), st.integers(0, 2**16)),
                              min_size=60, max_size=200)


@pytest.mark.parametrize("profile", ["etcd", "consul", "hashicorp-raft-1.1", "compacting"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), actions=MEMBERSHIP_ACTIONS)
def test_membership_changes_under_random_faults(profile, seed, actions):
    """5 running nodes, 3 of them bootstrap voters; servers are added and removed one at a time.
    (Basic Raft without check-quorum is left out: a removed server that never learns of its
    removal disrupts it forever, thesis §4.2.3.)"""
    _check_run(5, profile, seed, actions, voters=(1, 2, 3))


@pytest.mark.parametrize("profile", sorted(PROPERTY_CONFIGS))
@pytest.mark.parametrize("n", [3, 5, 7])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), actions=ACTIONS)
def test_random_faults_keep_raft_safe_and_live(n, profile, seed, actions):
    _check_run(n, profile, seed, actions)


#: a nemesis for leader leases: small time steps, held-back acks, bridge cuts next to the leader,
#: restarts, and reads at every node that believes it leads
LEASE_KINDS = (["deliver"] * 8 + ["run"] * 4 + ["advance"] * 3
               + ["bounce", "cut", "cut_leader", "cut_leader", "drop", "propose"] + ["read"] * 4)
LEASE_ACTIONS = st.lists(st.tuples(st.sampled_from(LEASE_KINDS), st.integers(0, 2**16)), min_size=30, max_size=150)


@pytest.mark.parametrize("pre_vote", [True, False], ids=["prevote", "no-prevote"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.sampled_from([3, 5]), seed=st.integers(0, 2**16), actions=LEASE_ACTIONS)
def test_lease_reads_stay_linearizable_under_a_lease_nemesis(pre_vote, n, seed, actions):
    cfg = RaftConfig.profile("etcd", lease_reads=True, leader_lease_ms=500.0, pre_vote=pre_vote)
    c = Cluster(n, cfg, seed=seed)
    c.start()
    c.run_until(lambda: c.leader() is not None, LEADER_BOUND * cfg.election_timeout_max_ms)
    c.run(300)
    ops = 0
    for kind, x in actions:
        q = len(c.queue)
        if kind == "deliver" and q:
            c.deliver(x % q)
        elif kind == "drop" and q:
            c.queue.pop(x % q)
        elif kind == "run":
            c.run(x % 600)
        elif kind == "advance":
            c.advance(x % 400)
        elif kind == "bounce":
            c.restart(c.ids[x % n])
        elif kind in ("cut", "cut_leader"):
            a = c.leader() if kind == "cut_leader" else c.ids[x % n]
            b = c.ids[(x // n) % n]
            if a is not None and a != b:
                c.cut(a, b)
        elif kind in ("read", "propose"):
            leaders = c.leaders()
            if leaders:
                ops += 1
                target = leaders[x % len(leaders)]
                c.read(target, f"r{ops}") if kind == "read" else c.propose(target, f"w{ops}")
    check_safety(c)
