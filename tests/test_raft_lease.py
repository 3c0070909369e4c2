"""Lease reads hold their promise (issue 13, item 7).

A leader that answers reads from its lease relies on a promise its followers
keep: having heard the leader at time t, a follower grants no vote (and no
pre-vote) before t + election_timeout_min, whether or not it still *names* a
leader.  The first test is the message-by-message trace that broke that promise
(a late refusal of an old vote request made a follower forget its leader, vote,
and let a second leader commit while the first still answered lease reads).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest

from meshsim.core.raft import (
    CANDIDATE,
    FOLLOWER,
    LEADER,
    AppendEntries,
    AppendEntriesResponse,
    RaftConfig,
    RaftNode,
    RequestVote,
    RequestVoteResponse,
)
from meshsim.teach.harness import FAST, Cluster, check_reads, check_safety

#: 3 servers, no pre-vote, check-quorum and lease reads (lease = the default window)
LEASE = replace(FAST, pre_vote=False, check_quorum=True, lease_reads=True)


def _handle(c: Cluster, nid, ready):
    return c._handle(nid, "timeout", ready)


def _play_the_late_refusal_trace(c: Cluster) -> None:
    """1 leads term 1 with a lease; 2 follows it; 3 has been cut off and campaigned alone to a higher term."""
    c.start()
    c.now = LEASE.election_timeout_min_ms  # past the start-up vote guard (no deadline falls before it)
    # 1 and 2 time out together: both are candidates in term 1.
    _handle(c, 1, c.nodes[1].fire_election_timer(c.now))
    _handle(c, 2, c.nodes[2].fire_election_timer(c.now))
    old = next(e for e in c.queue if e.src == 2 and e.dst == 3 and isinstance(e.msg, RequestVote))
    c.queue.remove(old)  # 2's vote request to 3 is delayed in the network
    c.deliver_all()  # 3 votes for 1; 1 leads term 1 and its no-op commits; 2 follows 1
    assert c.nodes[1].role == LEADER and c.nodes[1].term == 1 and c.nodes[1].commit_index == 1
    assert c.nodes[2].leader_id == 1 and c.nodes[3].leader_id == 1
    # 3 is cut off for a while: it campaigns alone, term after term; 1 and 2 keep up their heartbeats.
    c.partition([1, 2], [3])
    c.run(3 * LEASE.election_timeout_max_ms)
    assert c.nodes[3].role == CANDIDATE and c.nodes[3].term >= 3
    assert c.nodes[1].role == LEADER and c.nodes[1].term == 1 and c.nodes[2].leader_id == 1
    c.heal()
    # The clock stops here: everything below happens at the same instant.  2 heard 1 at most one
    # heartbeat ago and 1's lease is valid.
    assert c.nodes[1].lease_valid(c.now)
    c.queue = [old]  # (the heartbeat traffic still in flight is lost)
    c.deliver(0)  # 3 refuses the old term-1 request, at its own higher term ...
    refusal = c.queue[0]
    assert isinstance(refusal.msg, RequestVoteResponse) and not refusal.msg.granted
    assert refusal.msg.term == c.nodes[3].term > 1
    c.deliver(0)  # ... and 2 adopts that term, naming no leader
    assert c.nodes[2].term == c.nodes[3].term and c.nodes[2].leader_id is None
    # 3 times out again and asks for votes; from now on 1 hears nothing (slow links).
    c.isolate(1)
    _handle(c, 3, c.nodes[3].fire_election_timer(c.now))
    c.deliver_all()


def test_a_late_vote_refusal_does_not_let_a_follower_break_the_lease():
    c = Cluster(3, LEASE, seed=0)
    _play_the_late_refusal_trace(c)
    # Before the fix 2 granted its vote here, 3 led the new term and committed a write ...
    if c.leader() == 3:
        assert c.propose(3, "w").entry.index == 3
        c.deliver_all()
        assert c.max_committed == 3
    # ... while 1 still answered a lease read at the older index: not linearizable.
    ready = c.read(1, "lease-read")
    assert c.nodes[1].lease_valid(c.now) and ready.reads[0].index == 1
    check_reads(c)
    # With the promise kept, 2 refused (ignored) the vote request and 3 is still a candidate.
    assert c.nodes[3].role == CANDIDATE and c.nodes[2].voted_for is None and c.max_committed == 1
    c.heal()
    # Once the promise has run out a new leader is elected, 1 steps down, and nothing unsafe happened.
    c.run(5 * LEASE.election_timeout_max_ms)
    lead = c.leader()
    assert lead is not None and c.nodes[lead].term > 1 and c.nodes[1].role == FOLLOWER or lead == 1
    entry = c.propose_at_leader("w").entry
    c.run(200)
    c.read(c.leader(), "after")
    c.run(200)
    assert c.reads["after"].result.index >= entry.index
    check_safety(c)


def test_the_promise_runs_from_the_last_contact_not_from_naming_a_leader():
    """Unit level: a follower that forgot its leader (higher-term refusal) still refuses votes and pre-votes
    until election_timeout_min after it last heard that leader, and grants right after."""
    cfg = replace(LEASE, pre_vote=True)
    f = RaftNode(2, (1, 2, 3), cfg, np.random.default_rng(0))
    f.start(0.0)
    f.receive(AppendEntries(1, 1, 0, 0, (), 0, 1), 100.0)  # hears leader 1 at t = 100
    assert f.leader_id == 1
    f.receive(RequestVoteResponse(5, 3, False), 150.0)  # a late refusal, term 5
    assert (f.term, f.leader_id) == (5, None)
    promise_end = 100.0 + cfg.election_timeout_min_ms
    # a vote request of the term it just adopted (3's own, arriving late) is refused as well
    same = f.receive(RequestVote(5, 3, 0, 0), promise_end - 1)
    assert [m.granted for _, m in same.messages] == [False] and f.voted_for is None
    pre = f.receive(RequestVote(6, 3, 0, 0, pre_vote=True), promise_end - 1)
    assert [m.granted for _, m in pre.messages] == [False]
    assert f.receive(RequestVote(6, 3, 0, 0), promise_end - 1).messages == [] and f.term == 5
    pre = f.receive(RequestVote(6, 3, 0, 0, pre_vote=True), promise_end)
    assert [m.granted for _, m in pre.messages] == [True]
    ready = f.receive(RequestVote(6, 3, 0, 0), promise_end)
    assert [m.granted for _, m in ready.messages] == [True] and f.voted_for == 3


def test_the_leader_lease_is_shorter_than_the_followers_promise_by_the_drift_bound():
    cfg = LEASE
    assert cfg.lease_clock_drift == 0.1
    assert cfg.read_lease_ms == pytest.approx(cfg.election_timeout_min_ms / 1.1)
    assert cfg.lease_ms == cfg.election_timeout_min_ms  # the check-quorum window is unchanged
    consul = RaftConfig.profile("consul")
    assert consul.read_lease_ms == consul.leader_lease_ms == 2500  # LeaderLeaseTimeout is already shorter
    # A follower clock up to (1 + drift) times as fast as the leader's still keeps the promise:
    # its election_timeout_min of local time lasts at least read_lease_ms of the leader's time.
    assert cfg.election_timeout_min_ms / (1 + cfg.lease_clock_drift) >= cfg.read_lease_ms
    # A clock 25% fast breaks a lease equal to the minimum election timeout, not one with a 25% bound.
    assert cfg.election_timeout_min_ms / 1.25 < cfg.election_timeout_min_ms
    assert replace(cfg, lease_clock_drift=0.25).read_lease_ms == pytest.approx(cfg.election_timeout_min_ms / 1.25)
    with pytest.raises(ValueError, match="lease_clock_drift"):
        replace(cfg, lease_clock_drift=-0.1)


def test_a_lease_read_is_served_only_within_the_drift_shortened_lease():
    c = Cluster(3, LEASE, seed=4)
    c.start()
    c.run_until(lambda: c.leader() is not None, 5000)
    c.run(200)
    lead = c.leader()
    c.isolate(lead)
    t_cut = c.now
    c.run(LEASE.read_lease_ms)  # no ack comes back after the cut: the lease ends read_lease_ms after the last round
    assert not c.nodes[lead].lease_valid(c.now)
    assert not c.read(lead, "late").reads
    assert c.now - t_cut <= LEASE.election_timeout_min_ms


def test_fixed_election_timeouts_warn():
    from meshsim.core.raft import RaftConfigWarning

    with pytest.warns(RaftConfigWarning, match="split"):
        RaftConfig(heartbeat_interval_ms=50, election_timeout_min_ms=300, election_timeout_max_ms=300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RaftConfig(heartbeat_interval_ms=50, election_timeout_min_ms=300, election_timeout_max_ms=600)


def test_reads_pending_at_a_leader_that_cannot_reach_a_quorum_fail_after_an_election_timeout():
    cfg = replace(FAST, check_quorum=False, pre_vote=False)  # nothing else would ever end them
    c = Cluster(3, cfg, seed=1)
    c.start()
    c.run_until(lambda: c.leader() is not None, 5000)
    c.run(200)
    lead = c.leader()
    c.isolate(lead)
    t0 = c.now
    assert c.read(lead, "r").reads == []
    c.run(cfg.election_timeout_min_ms - cfg.heartbeat_interval_ms)
    assert not c.reads["r"].failed  # still waiting
    c.run(2 * cfg.heartbeat_interval_ms)
    assert c.reads["r"].failed and c.nodes[lead].role == LEADER
    assert c.now - t0 <= cfg.election_timeout_min_ms + cfg.heartbeat_interval_ms
    check_safety(c)


def test_concurrent_read_index_requests_share_one_heartbeat_round():
    c = Cluster(3, FAST, seed=2)
    c.start()
    c.run_until(lambda: c.leader() is not None, 5000)
    c.run(200)
    c.deliver_all()
    lead = c.leader()
    first = c.read(lead, "a")
    (r,) = {m.round for _, m in first.messages}
    assert len(first.messages) == 2  # a's round goes to both followers
    assert c.read(lead, "b").messages == [] and c.read(lead, "c").messages == []  # they wait for the next one
    # a round sent before b and c were asked cannot confirm them: only a is served by round r ...
    c.deliver_where(lambda e: isinstance(e.msg, AppendEntries) and e.msg.round == r)
    mark = len(c.history)
    c.deliver_where(lambda e: isinstance(e.msg, AppendEntriesResponse) and e.msg.round == r)
    assert c.reads["a"].result is not None and c.reads["b"].result is None and c.reads["c"].result is None
    # ... and its acknowledgement starts one round for both of them.
    later = {e.msg.round for e in c.queue if isinstance(e.msg, AppendEntries) and e.src == lead}
    assert later == {r + 1} and len(c.queue) == 2
    c.deliver_all()
    assert c.reads["b"].result.index == c.reads["c"].result.index == c.reads["a"].result.index
    assert len(c.history) - mark == 2 + 2 + 2  # 2 acks of r, 2 appends of r + 1, 2 acks of r + 1: no third round
    check_safety(c)
