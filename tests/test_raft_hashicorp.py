"""hashicorp/raft's timers and vote rules in the pure core (``RaftConfig(timers="hashicorp")``, the
``consul`` and ``hashicorp-raft-1.1`` profiles), each rule pinned against raft.go's behaviour, and the
failover times they predict pinned against a real hashicorp/raft 1.1.2 cluster (data/hashicorp)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from meshsim.core.raft import (
    CANDIDATE,
    FOLLOWER,
    LEADER,
    PRECANDIDATE,
    AppendEntries,
    AppendEntriesResponse,
    RaftConfig,
    RaftNode,
    RequestVote,
    RequestVoteResponse,
)
from meshsim.examples import DATA_DIR as DATA
from meshsim.experiments import hashicorp_real
from meshsim.experiments.raft_elections import compare_hashicorp, hashicorp_config, hashicorp_prediction

#: hashicorp/raft's DefaultConfig: HeartbeatTimeout = ElectionTimeout = 1000 ms, LeaderLeaseTimeout 500 ms
HC = RaftConfig.profile("hashicorp-raft-1.1")
T = HC.election_timeout_min_ms


def node(nid=1, voters=(1, 2, 3), config=HC, seed=0) -> RaftNode:
    return RaftNode(nid, voters, config, np.random.default_rng(seed))


def heartbeat(n: RaftNode, leader, term, now, prev=0, prev_term=0, commit=0):
    return n.receive(AppendEntries(term, leader, prev, prev_term, (), commit), now)


def test_profiles_name_their_hashicorp_raft_version():
    consul, old = RaftConfig.profile("consul"), RaftConfig.profile("hashicorp-raft-1.1")
    assert consul.timers == old.timers == "hashicorp"
    assert consul.pre_vote and not old.pre_vote  # pre-vote is on by default from hashicorp/raft 1.7.0
    assert (consul.election_timeout_min_ms, consul.lease_ms) == (5000, 2500)  # Consul's raft_multiplier 5
    assert (old.election_timeout_min_ms, old.lease_ms) == (1000, 500)  # the library's DefaultConfig
    assert RaftConfig.profile("hashicorp-raft-1.1", raft_multiplier=3).election_timeout_min_ms == 3000
    with pytest.raises(ValueError, match="no lease reads"):
        replace(HC, lease_reads=True)
    with pytest.raises(ValueError, match="timers must be one of"):
        replace(HC, timers="zookeeper")
    with pytest.raises(ValueError, match="heartbeat_interval_max_ms"):
        replace(HC, heartbeat_interval_max_ms=T)


def test_follower_timer_is_free_running_and_only_checks_last_contact():
    """runFollower: heartbeats do not move the timer; when it fires with the leader heard within
    HeartbeatTimeout it re-arms in [T, 2T) and nothing else happens."""
    f = node()
    first = f.start(0.0).election_deadline
    assert T <= first < 2 * T
    for t in np.arange(50.0, first, 100.0):
        r = heartbeat(f, 2, 1, float(t))
        assert r.election_deadline == first  # etcd would push it to t + [T, 2T)
    r = f.on_timer(first)
    assert f.role == FOLLOWER and f.leader_id == 2 and not r.messages
    assert first + T <= r.election_deadline < first + 2 * T


def test_follower_campaigns_only_when_the_leader_is_unheard_for_the_heartbeat_timeout():
    f = node()
    first = f.start(0.0).election_deadline
    last = first - T + 1.0  # heard just inside the window ...
    heartbeat(f, 2, 1, last)
    second = f.on_timer(first).election_deadline
    assert f.role == FOLLOWER
    r = f.on_timer(second)  # ... and not again: now the window has passed
    assert f.role == CANDIDATE and f.term == 2 and f.leader_id is None
    assert sorted(to for to, m in r.messages if isinstance(m, RequestVote) and not m.pre_vote) == [2, 3]
    assert second + T <= r.election_deadline < second + 2 * T  # randomTimeout(ElectionTimeout)


def test_a_failed_append_is_not_contact():
    """appendEntries sets lastContact only on success: a follower whose log does not match keeps its clock."""
    f = node()
    first = f.start(0.0).election_deadline
    r = heartbeat(f, 2, 1, first - 1.0, prev=5, prev_term=1)  # we have no entry 5
    assert not [m for _, m in r.messages if isinstance(m, AppendEntriesResponse) and m.success]
    f.on_timer(first)
    assert f.role == CANDIDATE


def test_leader_stickiness_refuses_votes_and_keeps_the_term():
    """requestVote: a follower that knows another leader refuses before it looks at the term."""
    f = node()
    f.start(0.0)
    heartbeat(f, 2, 1, 10.0)
    r = f.receive(RequestVote(7, 3, 10, 1), 20.0)  # a far newer term and a longer log
    (to, resp), = r.messages
    assert to == 3 and not resp.granted and resp.term == 1
    assert f.term == 1 and f.voted_for is None and f.leader_id == 2
    r = f.receive(RequestVote(7, 3, 10, 1, pre_vote=True), 20.0)
    assert not r.messages[0][1].granted and f.term == 1
    # a node that knows no leader grants the same request and moves to its term
    g = node()
    g.start(0.0)
    r = g.receive(RequestVote(7, 3, 10, 1), 20.0)
    assert r.messages[0][1].granted and g.term == 7 and g.voted_for == 3


def test_a_granted_vote_counts_as_contact():
    f = node()
    first = f.start(0.0).election_deadline
    f.receive(RequestVote(2, 3, 0, 0), first - 1.0)
    assert f.voted_for == 3
    f.on_timer(first)
    assert f.role == FOLLOWER  # heard (a vote granted) within HeartbeatTimeout


def test_candidate_refused_by_a_majority_waits_for_its_timer_then_starts_a_new_term():
    c = node(voters=(1, 2, 3))
    d0 = c.start(0.0).election_deadline
    r = c.on_timer(d0)
    assert c.role == CANDIDATE and c.term == 1
    deadline = r.election_deadline
    c.receive(RequestVoteResponse(1, 2, False), d0 + 1.0)
    c.receive(RequestVoteResponse(1, 3, False), d0 + 2.0)
    assert c.role == CANDIDATE  # etcd would step down; hashicorp/raft waits
    c.on_timer(deadline)
    assert c.role == CANDIDATE and c.term == 2


def test_prevote_in_the_current_profile_and_its_refusal_by_a_sticky_follower():
    cfg = RaftConfig.profile("consul", raft_multiplier=1)
    c = node(config=cfg)
    r = c.on_timer(c.start(0.0).election_deadline)
    assert c.role == PRECANDIDATE and c.term == 0  # a pre-vote round does not move the term
    asks = [m for _, m in r.messages if isinstance(m, RequestVote)]
    assert asks and all(m.pre_vote and m.term == 1 for m in asks)
    # a refusal from a node that already moved to term 1 does not pull us into it (raft.go compares with term+1)
    c.receive(RequestVoteResponse(1, 2, False, pre_vote=True), 1.0)
    assert c.role == PRECANDIDATE and c.term == 0
    c.receive(RequestVoteResponse(1, 3, True, pre_vote=True), 2.0)
    assert c.role == CANDIDATE and c.term == 1


def _leader(config=HC) -> RaftNode:
    a = node(config=config)
    a.start(0.0)
    a.fire_election_timer(1.0)
    a.receive(RequestVoteResponse(a.term, 2, True), 2.0)
    assert a.role == LEADER
    return a


def test_leader_heartbeats_in_a_tenth_to_a_fifth_of_the_heartbeat_timeout():
    a = _leader()
    intervals = []
    for _ in range(200):
        now = a._heartbeat_deadline
        for p in (2, 3):  # both followers answer, so the lease holds
            a.receive(AppendEntriesResponse(a.term, p, True, match_index=a.last_index), now)
        a.on_timer(now)
        assert a.role == LEADER
        intervals.append(a._heartbeat_deadline - now)
    assert min(intervals) >= T / 10 and max(intervals) < T / 5
    assert np.std(intervals) > T / 100  # randomized, not fixed


def test_leader_steps_down_without_a_quorum_within_the_lease():
    """checkLeaderLease: contacted followers are those that answered within LeaderLeaseTimeout."""
    a = _leader()
    t0 = 2.0
    # follower 2 answers until 300 ms, then nobody does
    a.receive(AppendEntriesResponse(a.term, 2, True, match_index=1), t0 + 300.0)
    while a.role == LEADER:
        nxt = min(d for d in (a._heartbeat_deadline, a._lease_deadline) if d is not None)
        a.on_timer(nxt)
    stepped = nxt
    # stepped down after the last answer's lease ran out, and no later than one check after it
    assert t0 + 300.0 + HC.lease_ms <= stepped <= t0 + 300.0 + HC.lease_ms + 10.0
    assert a.role == FOLLOWER and a.leader_id is None


def test_forced_timeout_still_campaigns_in_the_classroom():
    f = node()
    f.start(0.0)
    heartbeat(f, 2, 1, 10.0)
    f.fire_election_timer(11.0)
    assert f.role == CANDIDATE


# --------------------------------------------------------------------------- against the real library


@pytest.fixture(scope="module")
def measured() -> pd.DataFrame:
    return pd.read_csv(DATA / "hashicorp" / "failover.csv")


@pytest.fixture(scope="module")
def comparison(measured) -> pd.DataFrame:
    return compare_hashicorp(measured, trials=300, seed=0)


@pytest.mark.parametrize("timing", ["1000/1000/500", "200/200/100"])
def test_prediction_matches_the_real_hashicorp_raft_cluster(comparison, timing):
    """The issue's bar: median within 20%, p95 within 25% of 100 real failovers per timing.  With 100
    trials the measured median's own 95% interval is about +-5% and the p95's about +-10%, so the
    tolerance is the model's, not the sample's."""
    m, p = comparison[comparison["config"] == timing].set_index("source").iloc[[0, 1]].itertuples()
    assert m.Index.startswith("hashicorp/raft") and p.Index.startswith("meshsim")
    assert abs(p.median_ms / m.median_ms - 1) <= 0.20
    assert abs(p.p95_ms / m.p95_ms - 1) <= 0.25
    assert p.min_ms >= 2 * int(timing.split("/")[0]) * 0.95  # detection alone takes at least T, then a refused round


def test_etcd_style_timers_would_miss_the_real_cluster(measured):
    """The test above can fail: the same durations on etcd's timers (the old consul profile) predict
    far faster failovers than hashicorp/raft shows."""
    cfg = replace(hashicorp_config(200, 200, 100), timers="etcd", heartbeat_interval_max_ms=None)
    from meshsim.experiments.raft_elections import failover_trial, trial_seed

    x = np.array([failover_trial(cfg, trial_seed(0, 200, i), servers=3, latency=0.1, disk=0.0)["elected_ms"]
                  for i in range(100)])
    real = measured[measured["heartbeat_ms"] == 200]["failover_ms"].median()
    assert np.median(x) < 0.6 * real


def test_prediction_is_reproducible_and_a_dataframe_like_the_data():
    a = hashicorp_prediction(200, 200, 100, trials=5, seed=3)
    b = hashicorp_prediction(200, 200, 100, trials=5, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert {"heartbeat_ms", "election_ms", "lease_ms", "failover_ms"} <= set(a.columns)
    assert set(a.columns) & set(hashicorp_real.COLUMNS) >= {"heartbeat_ms", "election_ms", "lease_ms", "failover_ms"}


def test_the_comparison_table_in_the_docs_reproduces(comparison):
    from meshsim.examples import DATA_DIR
    from meshsim.experiments.raft_elections import hashicorp_markdown

    doc = (DATA_DIR.parent.parent / "docs" / "hashicorp_failover.md").read_text()
    assert hashicorp_markdown(comparison) in doc
