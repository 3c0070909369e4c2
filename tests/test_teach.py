"""meshsim.teach: the classroom Raft cluster on the real core — elections, safety checked after every
action (and a broken node caught), exact rewind, restart from disk, the Raft paper's Figure 8, and the
widget driven headless by clicking its buttons."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshsim.core.raft import LEADER, RaftNode
from meshsim.teach import RaftClassroom, cluster, figure8
from meshsim.teach.harness import check_safety
from meshsim.teach.svg import VIOLATION_COLOR, draw


# --------------------------------------------------------------------------- broken nodes (to be caught)


class DoubleVoter(RaftNode):
    """Forgets its vote whenever asked again in the same term: votes twice in a term."""

    def _handle_vote(self, msg, now):
        if not msg.pre_vote and msg.term == self._term:
            self._voted_for, self._leader = None, None
        super()._handle_vote(msg, now)


class CountsOldTerms(RaftNode):
    """Commits by counting replicas whatever the entry's term: the rule Figure 8 shows to be unsafe."""

    def _maybe_commit(self, now):
        if self._commit >= self.last_index:
            return
        n = self._kth(self.last_index if p == self.id else self._match.get(p, 0) for p in self._voters)
        if n > self._commit:
            self._commit = n
            self._apply()
            for p in self._voters:
                if p != self.id:
                    self._send_append(p)


# --------------------------------------------------------------------------- elections


@pytest.mark.parametrize("seed", range(4))
def test_election_from_scratch_gives_exactly_one_leader(seed):
    c = cluster(5, seed=seed)
    lead = c.run_until_leader(5_000)
    assert lead is not None and c.leaders() == [lead]
    st_ = c.state().set_index("server")
    term = st_.loc[lead, "term"]
    assert (st_["term"] == term).all() and (st_["leader"] == lead).all()
    assert (st_["role"] == LEADER).sum() == 1
    # a majority voted for the leader in its term (its own vote included)
    assert (st_["voted_for"] == lead).sum() >= c.majority
    assert c.violations == []
    c.run(30)  # a few latencies more: its no-op is on a majority, committed
    assert c.committed_indices() == [1] and c.committed_entry(1).kind == "noop" and c.leaders() == [lead]


def test_election_by_hand_and_a_client_request():
    c = cluster(5, seed=0)
    c.timeout("s3")
    views = c.in_flight()
    assert [(v.src, v.dst, v.type, v.term) for v in views] == [
        ("s3", d, "RequestVote", 1) for d in ("s1", "s2", "s4", "s5")]
    assert c.deliver(dst="s1") == 1 and c.deliver(src="s1") == 1
    assert c.leader() is None and c.node("s3").role == "candidate"
    c.deliver(lambda m: m.type == "RequestVote")
    c.deliver(type="RequestVoteResponse")
    assert c.leader() == "s3"
    c.deliver_all()
    e = c.request("x")
    assert (e.index, e.term, e.data) == (2, 1, "x")
    assert c.request("y", to="s1") is None and "not leader" in c.events()["event"].iloc[-1]
    c.deliver_all()
    assert c.committed_indices() == [1, 2] and c.committed_entry(2).data == "x"
    assert all(c.node(s).commit_index == 2 for s in c.servers)
    lt = c.log_table(marks=False)
    assert lt.shape == (5, 2) and (lt[2] == 1).all()
    with pytest.raises(ValueError, match="no message 999 in flight"):
        c.deliver(999)
    with pytest.raises(ValueError, match="leader has no election timer"):
        c.timeout("s3")
    with pytest.raises(ValueError, match="unknown server"):
        c.crash("s9")


def test_advance_fires_timers_but_moves_no_message():
    c = cluster(3, seed=0)
    first = c.state()["deadline_ms"].min()
    c.advance(first + 0.5)
    cands = c.state().query("role == 'candidate'")
    assert len(cands) >= 1 and c.now_ms == pytest.approx(first + 0.5)
    assert len(c.in_flight()) == 2 * len(cands) and c.leader() is None


def test_split_vote_needs_a_second_term():
    c = cluster(5, seed=0)
    c.crash("s5")
    c.timeout("s1")
    c.timeout("s2")
    c.deliver(src="s1", dst="s3")
    c.deliver(src="s2", dst="s4")
    c.deliver_all()
    assert c.leader() is None
    assert sorted(c.state().query("role == 'candidate'")["server"]) == ["s1", "s2"]
    lead = c.run_until_leader(5_000)
    assert lead is not None and c.term(lead) >= 2 and c.violations == []


# --------------------------------------------------------------------------- restart, rewind


def test_restart_keeps_term_vote_and_log_from_disk():
    c = cluster(5, seed=1)
    c.run_until_leader()
    c.request("a")
    c.request("b")
    c.run(100)
    follower = next(s for s in c.servers if s != c.leader())
    before = (c.term(follower), c.node(follower).voted_for, c.log(follower))
    assert len(before[2]) == 3 and c.node(follower).commit_index == 3
    c.crash(follower)
    row = c.state().set_index("server").loc[follower]
    assert row["role"] == "crashed" and pd.isna(row["commit_index"]) and row["term"] == before[0]
    c.restart(follower)
    node = c.node(follower)
    assert (node.term, node.voted_for, node.log) == before
    assert node.role == "follower" and node.commit_index == 0  # volatile: learnt again from the leader
    c.run(100)
    assert c.node(follower).commit_index == 3 and c.violations == []


def test_rewind_restores_exactly_the_previous_state_and_messages():
    c = cluster(5, seed=3)
    c.timeout("s2")
    c.deliver(src="s2")
    snaps = [(c.state(), c.messages(), c.now_ms, c.history, c.events())]
    actions = [lambda: c.deliver_all(), lambda: c.crash("s2"), lambda: c.advance(400),
               lambda: c.partition({"s1", "s3"}), lambda: c.run(300), lambda: c.request("z")]
    for act in actions:
        act()
        snaps.append((c.state(), c.messages(), c.now_ms, c.history, c.events()))
    for k in range(len(actions), 0, -1):
        c.rewind()
        st_, msgs, now, hist, ev = snaps[k - 1]
        pd.testing.assert_frame_equal(c.state(), st_)
        pd.testing.assert_frame_equal(c.messages(), msgs)
        pd.testing.assert_frame_equal(c.events(), ev)
        assert c.now_ms == now and c.history == hist
    # the same actions again give the same cluster: timers come from the restored random streams
    for act in actions:
        act()
    pd.testing.assert_frame_equal(c.state(), snaps[-1][0])
    pd.testing.assert_frame_equal(c.messages(), snaps[-1][1])
    c.rewind(3)
    pd.testing.assert_frame_equal(c.state(), snaps[-4][0])
    with pytest.raises(ValueError, match="can be rewound"):
        c.rewind(100)


# --------------------------------------------------------------------------- safety, checked always

SERVERS = ("s1", "s2", "s3", "s4", "s5")
server_st = st.sampled_from(SERVERS)
_deliver = st.tuples(st.just("deliver"), st.integers(0, 30))
action_st = st.one_of(  # repeated branches weigh the mix towards what makes progress
    _deliver, _deliver, _deliver,
    st.tuples(st.just("drop"), st.integers(0, 30)),
    st.tuples(st.just("deliver_all")), st.tuples(st.just("deliver_all")),
    st.tuples(st.just("timeout"), server_st), st.tuples(st.just("timeout"), server_st),
    st.tuples(st.just("crash"), server_st),
    st.tuples(st.just("restart"), server_st),
    st.tuples(st.just("partition"), st.sets(server_st, min_size=1, max_size=4)),
    st.tuples(st.just("heal")),
    st.tuples(st.just("request"), st.one_of(st.none(), server_st)),
    st.tuples(st.just("request"), st.none()),
    st.tuples(st.just("rewind")),
    st.tuples(st.just("advance"), st.sampled_from([10.0, 60.0, 200.0])),
    st.tuples(st.just("run"), st.sampled_from([20.0, 150.0])),
)


def _apply(c: RaftClassroom, a: tuple) -> None:
    kind = a[0]
    try:
        if kind in ("deliver", "drop"):
            views = c.in_flight()
            if views:
                getattr(c, kind)(views[a[1] % len(views)].id)
        elif kind in ("deliver_all", "heal"):
            getattr(c, kind)()
        elif kind in ("timeout", "crash", "restart"):
            getattr(c, kind)(a[1])
        elif kind == "partition":
            c.partition(a[1], set(SERVERS) - a[1])
        elif kind == "request":
            c.request(f"v{len(c.history)}", to=a[1])
        elif kind == "rewind":
            if c.rewindable:
                c.rewind()
        else:
            getattr(c, kind)(a[1])
    except ValueError:
        pass  # not possible now (e.g. time out the leader, crash a crashed server): the student is told why


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 3), actions=st.lists(action_st, min_size=20, max_size=60))
def test_random_actions_never_violate_safety_with_the_real_core(seed, actions):
    c = cluster(5, seed=seed)
    for a in actions:
        _apply(c, a)
        assert c.violations == [], (c.history, c.violations)
    check_safety(c._core)  # the harness's whole-history checkers agree


def test_the_random_actions_do_find_a_broken_node():
    """The same random actions, with two double-voting servers: some sequences must be caught
    (otherwise the property test above could not fail)."""
    import random

    kinds = ["deliver"] * 3 + ["deliver_all"] * 2 + ["timeout"] * 2 + ["crash", "restart", "request", "run"]
    caught = 0
    for k in range(40):
        rnd = random.Random(k)
        c = cluster(5, seed=k % 4, node_classes={"s3": DoubleVoter, "s4": DoubleVoter})
        for _ in range(30):
            kind = rnd.choice(kinds)
            arg = rnd.randrange(30) if kind == "deliver" else (150.0 if kind == "run" else rnd.choice(SERVERS))
            _apply(c, (kind,) if kind == "deliver_all" else (kind, arg))
        caught += bool(c.violations)
    assert caught >= 3, caught


def test_a_node_that_votes_twice_is_reported():
    c = cluster(3, seed=0, node_classes={"s3": DoubleVoter})
    c.timeout("s1")
    c.timeout("s2")
    c.deliver(src="s1", dst="s3")
    c.deliver(src="s3", dst="s1")
    assert c.leader() == "s1" and c.violations == []
    c.deliver(src="s2", dst="s3")   # s3 votes again in term 1
    c.deliver(src="s3", dst="s2")
    assert sorted(c.leaders()) == ["s1", "s2"]
    assert [v.property for v in c.violations] == ["election safety"]
    v = c.violations[0]
    assert v.term == 1 and "two leaders in term 1" in v.detail and v.action == "deliver(src='s3', dst='s2')"
    c.deliver_all()  # a leader receives the other's AppendEntries: the core refuses, that is recorded too
    assert any(x.property == "core invariant" for x in c.violations)
    svg = draw(c)
    assert 'class="violation"' in svg and VIOLATION_COLOR in svg and "election safety" in svg
    # rewinding past the fault removes its violations; they reappear when it is replayed
    c.rewind(3)
    assert c.violations == []


def test_committing_an_old_term_entry_by_counting_is_caught():
    c = figure8(stage="c", node_classes={"s1": CountsOldTerms})
    assert c.committed_entry(2).term == 2 and c.violations == []  # the broken leader committed #2 (term 2)
    d = figure8(stage="d", node_classes={"s1": CountsOldTerms})
    props = {v.property for v in d.violations}
    assert "state machine safety" in props, d.violations
    assert any("index 2" in v.detail for v in d.violations if v.property == "state machine safety")


# --------------------------------------------------------------------------- Figure 8


@pytest.mark.parametrize("n", [5, 7])
def test_figure8_old_term_entry_is_not_committed_by_counting(n):
    c = figure8(n, stage="c")
    lead = c.leader()
    assert lead == "s1" and c.term(lead) == 4
    holders = [s for s in c.servers if len(c.log(s)) >= 2 and c.log(s)[1].term == 2]
    assert len(holders) >= c.majority  # #2 of term 2 is on a majority ...
    assert c.node(lead).commit_index < 2 and c.committed_indices() == [1]  # ... and not committed
    # the way on (e): the leader's own-term entry reaches a majority and commits #2 with it
    e = figure8(n, stage="e")
    assert e.committed_indices() == [1, 2, 3]
    assert (e.committed_entry(2).term, e.committed_entry(3).term) == (2, 4)
    assert e.node("s1").commit_index == 3 and e.violations == []
    # the other way (d): the last server wins term 5 and replaces #2 with its term-3 entry, safely
    d = figure8(n, stage="d")
    assert d.leader() == c.servers[-1] and d.term(d.leader()) == 5
    assert d.committed_entry(2).term == 3 and d.violations == []
    assert all(d.log(s)[1].term == 3 for s in d.servers if d.is_up(s))


def test_figure8_stages_a_b():
    a = figure8(stage="a")
    assert a.leader() == "s1" and a.term("s1") == 2
    assert [s for s in a.servers if len(a.log(s)) == 2] == ["s1", "s2"]
    b = figure8(stage="b")
    assert b.leader() == "s5" and b.term("s5") == 3 and not b.is_up("s1")
    assert b.log("s5")[1].term == 3 and b.log("s2")[1].term == 2
    with pytest.raises(ValueError):
        figure8(stage="z")


# --------------------------------------------------------------------------- the widget, headless


def test_widget_buttons_drive_the_cluster_and_redraw():
    W = pytest.importorskip("ipywidgets")
    c = cluster(5, seed=0)
    w = c.widget()
    assert isinstance(w, W.VBox) and w.message_buttons == {}
    svg0 = w.picture.value
    w.server.value = "s2"
    w.timeout_button.click()
    assert c.node("s2").role == "candidate" and sorted(w.message_buttons) == [1, 2, 3, 4]
    assert w.picture.value != svg0 and w.picture.value.count('class="msg"') == 4
    deliver, drop = w.message_buttons[1]
    deliver.click()            # s2 -> s1 RequestVote arrives; s1's vote is now in flight
    assert 1 not in w.message_buttons and c.node("s1").voted_for == "s2"
    w.message_buttons[2][1].click()  # drop s2 -> s3
    assert 2 not in w.message_buttons and c.node("s3").voted_for is None
    w.deliver_all_button.click()
    assert c.leader() == "s2" and 'data-role="leader"' in w.picture.value
    w.request_text.value = "hello"
    w.request_button.click()
    w.deliver_all_button.click()
    assert c.committed_entry(2).data == "hello"
    w.server.value = "s4"
    w.crash_button.click()
    assert c.state().set_index("server").loc["s4", "role"] == "crashed" and 'data-role="crashed"' in w.picture.value
    w.restart_button.click()
    assert c.is_up("s4")
    w.side.value = ("s2",)
    w.partition_button.click()
    assert c.groups() == (frozenset({"s2"}), frozenset({"s1", "s3", "s4", "s5"})) and "partition:" in w.picture.value
    w.heal_button.click()
    assert c.groups() is None
    t0 = c.now_ms
    w.advance_ms.value = 50
    w.advance_button.click()
    assert c.now_ms == t0 + 50 and len(c.in_flight()) == 4  # s2's heartbeats, waiting
    w.speed.value = 20
    w.play.value += 1          # one tick of play, network on: the heartbeats arrive
    assert c.now_ms == t0 + 70 and c.history[-1] == "run(20)"
    n = len(c.history)
    w.step_back_button.click()
    assert len(c.history) == n - 1 and c.now_ms == t0 + 50
    w.server.value = "s2"
    w.timeout_button.click()   # the leader has no election timer: told, nothing changes
    assert "leader has no election timer" in w.alert.value and len(c.history) == n - 1
    assert "servers" in w.children[5].value and "<table" in w.table.value


def test_widget_shows_violations_in_red():
    pytest.importorskip("ipywidgets")
    c = cluster(3, seed=0, node_classes={"s3": DoubleVoter})
    w = c.widget()
    assert w.alert.value == ""
    for a in [lambda: c.timeout("s1"), lambda: c.timeout("s2"), lambda: c.deliver(src="s1", dst="s3"),
              lambda: c.deliver(src="s3", dst="s1"), lambda: c.deliver(src="s2", dst="s3"),
              lambda: c.deliver(src="s3", dst="s2")]:
        a()
    w.refresh()
    assert VIOLATION_COLOR in w.alert.value and "election safety" in w.alert.value
