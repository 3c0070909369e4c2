"""One leader crash kept whole (meshsim.experiments.raft_lab): the numbers agree with the cluster's own records."""

from __future__ import annotations

import math

import pytest

from meshsim.experiments import raft_elections as re_
from meshsim.experiments.raft_lab import crash_leader


def test_quick_election_with_wide_timeouts():
    run = crash_leader(150, 300, seed=3)
    c = run.cluster
    assert run.old_leader not in c.up() and run.new_leader in c.up()
    assert c.agreed_leader() == run.new_leader
    # nobody can time out before the minimum timeout minus the crash offset (half a heartbeat = 37.5 ms)
    assert 150 - 37.5 <= run.elected_ms <= run.leader_ms < 300 + 37.5 + 20
    assert run.terms == 1 and run.split_votes == 0
    lc = c.frame("leader_changes")
    last = lc.iloc[-1]
    assert last["leader"] == run.new_leader and last["term"] == run.old_term + 1
    assert last["time"] - run.crash_ms == pytest.approx(run.elected_ms)
    ev = c.frame("events")
    crash = ev[ev["event"] == "crash"]
    assert crash["server"].tolist() == [run.old_leader] and crash["time"].iloc[0] == run.crash_ms


def test_split_votes_counted_like_the_experiment():
    run = crash_leader(150, 155, seed=1)
    assert run.split_votes >= 1 and run.terms == run.split_votes + 1
    ev = run.cluster.frame("events")
    after = ev[(ev["time"] > run.crash_ms) & (ev["event"] == "candidate")]
    per_term = after.groupby("term")["server"].nunique()
    assert (per_term.loc[per_term.index < run.old_term + run.terms] >= 2).all()
    # each lost term costs about one more election timeout: at least 150 ms per extra term
    assert run.elected_ms > 150 * run.split_votes


def test_narrow_range_takes_many_terms():
    run = crash_leader(150, 151, seed=3)
    assert run.terms >= 5 and run.leader_ms > 1_000


def test_crash_offset_and_window():
    run = crash_leader(150, 300, seed=2, crash_offset_ms=10.0, tail_ms=0.0)
    start, end = run.window_ms
    assert start == pytest.approx(run.crash_ms - 75.0)
    assert end == pytest.approx(run.crash_ms + run.leader_ms)
    with pytest.raises(ValueError):
        crash_leader(150, 300, crash_offset_ms=80.0)


def test_messages_recorded_from_before_the_crash():
    run = crash_leader(150, 300, seed=4)
    c = run.cluster
    if not hasattr(c, "record_messages"):
        pytest.skip("RaftCluster cannot record messages in this checkout")
    m = c.frame("messages")
    assert len(m) > 0
    assert m["send_ms"].min() >= run.crash_ms - 75.0 - 1e-6
    votes = m[(m["kind"] == "RequestVote") & (m["send_ms"] > run.crash_ms)]
    assert set(votes["src"]) <= set(c.servers) - {run.old_leader}
    # messages to the crashed leader arrive at a dead process
    to_old = m[(m["dst"] == run.old_leader) & (m["send_ms"] > run.crash_ms)]
    assert (to_old["fate"] != "delivered").all()


def test_paper_profile_heartbeat():
    run = crash_leader(100, 200, seed=5, record_messages=False)
    assert run.cluster.config.heartbeat_interval_ms == 50.0
    assert run.cluster.config == re_.paper_config(100, 200)
    assert not math.isnan(run.leader_ms)
