"""Consul's streaming beside blocking queries: the pure buffers and views, then the registry on 3 servers.

The core (meshsim.core.stream) is checked with hypothesis on random histories:
a subscriber's view equals the topic's state after every step, events reach it
in index order with no gap and no duplicate, and a subscriber that drops off
and resumes from its index ends exact, by events or by a new snapshot.  The
shell (meshsim.registry.streaming) is checked on a 3-server registry: snapshot
then every change once in order; across a crash of the serving server nothing
is missed or repeated; a follower's stream lags by its replication delay; the
load counters against N watchers and K changes, exactly.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import meshsim
from meshsim.core.raft import RaftConfig
from meshsim.core.stream import (Event, EventPublisher, MaterializedView, Snapshot, StreamOrderError,
                                 retry_wait_ms)
from meshsim.experiments.failure_modes import run_stale_endpoints, stale_endpoints_scenario
from meshsim.registry.catalog import Registry

# ---------------------------------------------------------------- the pure core

TOPICS = ("a", "b")
KEYS = ("k1", "k2", "k3")

op = st.one_of(
    st.tuples(st.just("publish"), st.integers(0, 2), st.sampled_from(TOPICS), st.sampled_from(KEYS),
              st.one_of(st.none(), st.integers(0, 5))),
    st.tuples(st.just("subscribe"), st.sampled_from(TOPICS)),
    st.tuples(st.just("drop"), st.integers(0, 10)),
    st.tuples(st.just("resume"), st.integers(0, 10)),
)


class _Sub:
    def __init__(self, topic):
        self.topic = topic
        self.view = MaterializedView()
        self.connected = True
        self.applied: list[Event] = []  # events since its last snapshot


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(op, max_size=60), max_events=st.integers(1, 6), rule=st.sampled_from(("consul", "buffer")))
def test_views_follow_their_topic_exactly_through_drops_and_resumes(ops, max_events, rule):
    pub = EventPublisher(max_events=max_events)
    state = {t: {} for t in TOPICS}
    tindex = {t: 0 for t in TOPICS}
    history = {t: [] for t in TOPICS}
    subs: list[_Sub] = []
    index = 0

    def deliver(sub, msgs):
        for m in msgs:
            sub.view.apply(m)  # raises StreamOrderError on a duplicate or a step back
            if isinstance(m, Snapshot):
                sub.applied = []
            else:
                sub.applied.append(m)

    for o in ops:
        if o[0] == "publish":
            _, step, topic, key, value = o
            index += step  # several keys may change at one index; a key at most once per index
            if any(e.index == index and e.key == key for e in history[topic]):
                continue
            if value is None and key not in state[topic]:
                continue
            ev, to = pub.publish(index, topic, key, value)
            history[topic].append(ev)
            tindex[topic] = index
            if value is None:
                state[topic].pop(key)
            else:
                state[topic][key] = value
            for sub in to:
                deliver(sub, [ev])
        elif o[0] == "subscribe":
            sub = _Sub(o[1])
            deliver(sub, pub.subscribe(sub.topic, 0, state[sub.topic], tindex[sub.topic], sub, rule))
            subs.append(sub)
        elif subs:
            sub = subs[o[1] % len(subs)]
            if o[0] == "drop" and sub.connected:
                pub.unsubscribe(sub.topic, sub)
                sub.connected = False
            elif o[0] == "resume" and not sub.connected:
                since = sub.view.index
                first = pub.subscribe(sub.topic, since, state[sub.topic], tindex[sub.topic], sub, rule)
                if first and isinstance(first[0], Event):
                    # a resume: exactly the events after its index, none missed, none twice, in order
                    assert first == [e for e in history[sub.topic] if e.index > since]
                elif first:
                    assert first[0].reset == (since > 0) and first[0].index == tindex[sub.topic]
                else:  # Consul's rule: already at the head
                    assert not [e for e in history[sub.topic] if e.index > since]
                deliver(sub, first)
                sub.connected = True
        for sub in subs:
            if sub.connected:
                assert sub.view.items == state[sub.topic]
                assert sub.view.index == tindex[sub.topic]
                # since its snapshot: the topic's events after the snapshot's index, in order
                idx = [e.index for e in sub.applied]
                assert idx == sorted(idx)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 30), max_events=st.integers(1, 8), since=st.integers(0, 30))
def test_resume_from_any_index_the_buffer_covers_is_exact(n, max_events, since):
    pub = EventPublisher(max_events=max_events)
    for i in range(1, n + 1):
        pub.publish(i, "web", f"k{i % 3}", i)
    state = {f"k{j % 3}": j for j in range(1, n + 1)}
    got = pub.subscribe("web", since, state, n, resume="buffer")
    covered = max(0, n - max_events) <= since <= n and since > 0
    if covered:
        assert got == [Event(i, "web", f"k{i % 3}", i) for i in range(since + 1, n + 1)]
    else:
        assert got == [Snapshot("web", n, tuple(sorted(state.items())), reset=since > 0)]


def test_view_rejects_duplicates_and_steps_back():
    v = MaterializedView()
    v.apply(Snapshot("web", 4, ()))
    v.apply(Event(5, "web", "a", 1))
    with pytest.raises(StreamOrderError):
        v.apply(Event(4, "web", "b", 1))
    with pytest.raises(StreamOrderError):
        v.apply(Event(5, "web", "a", 1))
    pub = EventPublisher()
    pub.publish(3, "web", "a", 1)
    with pytest.raises(ValueError):
        pub.publish(2, "web", "a", 1)


def test_retry_waits_as_consuls_streaming_views():
    # MinFailures 1, MinWait 0, factor 1 s, MaxWait 60 s, jitter up to 100 %
    assert [retry_wait_ms(n, 0.0) for n in range(1, 10)] == [0, 1e3, 2e3, 4e3, 8e3, 16e3, 32e3, 60e3, 60e3]
    assert retry_wait_ms(3, 0.999) == pytest.approx(2_000 * 1.999)


# ---------------------------------------------------------------- the registry on 3 servers

def _registry(clients=("app", "web-host"), seed=1, **hub):
    reg = Registry.standalone(servers=3, clients=list(clients), latency=1.0, seed=seed,
                              config=RaftConfig.profile("consul", raft_multiplier=1))
    if hub:
        reg.streaming_hub(**hub)
    reg.start()
    assert reg.run_until(lambda: reg.cluster.agreed_leader() is not None, 10_000)
    return reg


def _changes(reg, k, every_ms=100.0, host="web-host"):
    """k changes of service web, one every ``every_ms`` (registrations, then tag updates: each a change)."""
    c = reg.client(host)
    calls = []
    for _ in range(k):
        i = next(_TAGS)
        calls.append(c.register(f"web-{i % 3}", "web", tags=(f"v{i}",)))
        reg.run(every_ms)
    return calls


_TAGS = itertools.count()


def _view_of(reg, server):
    return {e.id: e for e in reg.catalog(server).service_instances("web", False)}


def test_a_subscriber_gets_the_snapshot_then_every_change_once_in_order():
    reg = _registry()
    _changes(reg, 2)  # web exists before the subscription: the snapshot carries it
    seen = []
    s = reg.client("app").stream("web", lambda now, entries, index: seen.append(index))
    reg.run(50)
    calls = _changes(reg, 6)
    reg.run(100)
    d = reg.streaming_hub().frame()
    assert list(d["kind"]) == ["snapshot"] + ["event"] * 6
    assert d["index"].iloc[0] == 3  # two registrations at indexes 2 and 3 (1: the leader's no-op)
    assert list(d["index"].iloc[1:]) == [c.reply.raft_index for c in calls]  # every change, in index order
    assert seen == list(d["index"])
    assert s.view.items == _view_of(reg, reg.leader())
    # one network hop (1 ms) after the serving server applied it
    assert ((d["time"] - d["sent_ms"]) == 1.0).all()


@pytest.mark.parametrize("rule", ["consul", "buffer"])
def test_nothing_missed_or_repeated_across_a_crash_of_the_serving_server(rule):
    reg = _registry(resume=rule)
    s = reg.client("app").stream("web", lambda *a: None)
    calls = _changes(reg, 4)
    served_by = s.conn.server
    reg.cluster.crash(served_by)
    calls += _changes(reg, 4, every_ms=1_500.0)  # through the election if it was the leader
    reg.run(3_000)
    reg.cluster.restart(served_by)
    calls += _changes(reg, 3)
    reg.run(2_000)
    assert all(c.ok for c in calls)
    d = reg.streaming_hub().frame()
    assert s.conn is not None and s.conn.server != served_by
    assert reg.streaming_hub().reconnects == 1
    # after the reconnect: a resume (the events it missed, from the new server) -- nothing re-sent
    assert list(d["kind"]) == ["snapshot"] + ["event"] * len(calls)
    assert list(d["index"].iloc[1:]) == [c.reply.raft_index for c in calls]
    assert s.view.items == _view_of(reg, reg.leader())
    load = reg.load()["servers"][s.conn.server]["streaming"]
    assert load["resumes"] == 1


def test_a_resume_the_server_cannot_serve_gets_a_new_snapshot():
    reg = _registry(resume="buffer", max_events=2)
    s = reg.client("app").stream("web", lambda *a: None)
    _changes(reg, 2)
    reg.network.set_host_up("app", False)  # the subscriber's host is away: its stream breaks, retries back off
    _changes(reg, 5, every_ms=1_000.0)  # 5 changes while away: more than the 2 events a server keeps
    reg.network.set_host_up("app", True)
    reg.run(20_000)
    d = reg.streaming_hub().frame()
    assert list(d["kind"]) == ["snapshot", "event", "event", "reset"]
    assert d["index"].iloc[-1] == reg.catalog(reg.leader()).index("web")
    assert s.view.items == _view_of(reg, reg.leader())
    assert reg.streaming_hub().reconnects >= 3  # each failed try while away counts


def test_a_stream_cut_off_from_its_server_moves_at_the_next_keepalive():
    reg = _registry()
    s = reg.client("app").stream("web", lambda *a: None)
    _changes(reg, 2)
    first = s.conn.server
    # the server's host stays up but unreachable from the subscriber: no reset, no lost message
    reachable = reg.network.reachable
    reg.network.reachable = lambda a, b: reachable(a, b) and {a, b} != {"app", reg.cluster.servers[first].host}
    reg.run(31_000)
    assert s.conn is not None and s.conn.server != first
    assert reg.streaming_hub().reconnects == 1
    _changes(reg, 2)
    assert s.view.items == _view_of(reg, reg.leader())


def test_a_follower_served_stream_lags_by_its_replication_delay():
    reg = _registry(clients=("app", "app2", "web-host"))
    lead = reg.leader()
    follower = next(n for n in reg.cluster.servers if n != lead)
    for host, server in (("app", lead), ("app2", follower)):
        c = reg.client(host)
        c.servers.remove(server)
        c.servers.insert(0, server)
        c.stream("web", lambda *a: None)
    reg.run(20)
    _changes(reg, 5)
    d = reg.streaming_hub().frame()
    ev = d[d["kind"] == "event"]
    on_lead, on_follower = ev[ev["server"] == lead], ev[ev["server"] == follower]
    assert len(on_lead) == len(on_follower) == 5
    commit = [reg.commit_times[i - 1] for i in on_lead["index"]]
    # the leader publishes at commit (the first apply anywhere); the follower when it learns the commit
    assert list(on_lead["sent_ms"]) == commit
    lag = on_follower["sent_ms"].to_numpy() - commit
    assert (lag > 0).all()
    assert (on_follower["delay_ms"].to_numpy() == pytest.approx(lag + 1.0))
    assert (on_lead["delay_ms"] == 1.0).all()


@pytest.mark.parametrize("n,k", [(3, 4), (5, 2)])
def test_load_blocking_queries_wake_every_watcher_streaming_sends_each_event_once(n, k):
    hosts = [f"w{i}" for i in range(n)]
    per_mode = {}
    for mode in ("watch", "stream"):
        reg = _registry(clients=(*hosts, "web-host"))
        reg.client("web-host").register("web-0", "web")
        reg.run(100)
        for h in hosts:
            c = reg.client(h)
            (c.watch if mode == "watch" else c.stream)("web", lambda *a: None)
        reg.run(100)
        for i in range(k):  # tag changes: one passing instance in every answer
            reg.client("web-host").register("web-0", "web", tags=(f"v{i}",))
            reg.run(100)
        per_mode[mode] = reg.load()["servers"]
    blocking = {n_: sum(v["blocking"][x] for v in per_mode["watch"].values()) for n_, x in
                (("requests", "requests"), ("instances", "instances"))}
    streaming = {x: sum(v["streaming"][x] for v in per_mode["stream"].values())
                 for x in ("subscriptions", "snapshots", "events", "instances")}
    # blocking: every watcher's first query, then one re-query per watcher per change, at the leader
    assert blocking == {"requests": n * (k + 1), "instances": n * (k + 1)}
    assert sum(v["streaming"]["subscriptions"] for v in per_mode["watch"].values()) == 0
    # streaming: one subscription and snapshot per watcher, then each change once per subscriber
    assert streaming == {"subscriptions": n, "snapshots": n, "events": n * k, "instances": n + n * k}
    assert sum(v["blocking"]["requests"] for v in per_mode["stream"].values()) == 0


def test_streaming_and_watch_callers_end_with_the_same_views():
    out = {}
    for mode in ("watch", "streaming"):
        sc = stale_endpoints_scenario("watch", crash_ms=5_000.0)
        sc["run"]["duration"] = "10s"
        sc["registry"]["discovery"] = mode
        r = run_stale_endpoints(sc, seed=3)
        views = {s: sorted(i.name for i in v) for s, v in r["component"].views.items()}
        out[mode] = (views, r["critical_ms"], r["refused_ms"].max(), r["result"].summary["registry"])
    (wv, wcrit, wlast, wsum), (sv, scrit, slast, ssum) = out["watch"], out["streaming"]
    assert wv == sv and "api-1" not in sv["api"]
    # the same check marks it critical; both stop calling it within a few ms of that
    assert wcrit == pytest.approx(scrit, abs=5.0)
    assert wlast < wcrit + 10.0 and slast < scrit + 10.0
    assert ssum["streaming"]["events"] > 0 and wsum["streaming"]["events"] == 0
    assert ssum["watch"]["deliveries"] == 0 and wsum["watch"]["deliveries"] > 0


def test_scenario_key_and_summary_keys():
    runs = [meshsim.run(meshsim.example("registry_failover"), seed=1,
                        overrides={"registry.discovery": "streaming", "run.duration": "35s"}) for _ in range(2)]
    r = runs[0]
    assert repr(r.summary) == repr(runs[1].summary)  # same seed, same run
    reg = r.summary["registry"]
    assert reg["control_plane"]["pushes"] >= 1 and reg["streaming"]["snapshots"] == 2  # api and frontend
    total = sum(v["streaming"]["subscriptions"] for v in reg["load"]["servers"].values())
    assert total == 2 + reg["streaming"]["reconnects"]
    assert reg["load"]["duration_ms"] > 30_000
    with pytest.raises(Exception):
        meshsim.run(meshsim.example("registry_failover"), overrides={"registry.discovery": "poll"})


class _Entry:
    __slots__ = ("id", "status")

    def __init__(self, iid: str, status: str):
        self.id, self.status = iid, status

    def __repr__(self) -> str:
        return f"{self.id}:{self.status}"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdefghij"), st.sampled_from(["passing", "critical", None])),
                max_size=60),
       st.booleans())
def test_patched_entries_equal_the_selection_rebuilt_from_the_whole_view(changes, passing_only):
    """Stream keeps its entries message by message (streaming.patched): after any sequence of upserts and
    removals they are what sorting and filtering the whole view gives."""
    from meshsim.registry.streaming import patched

    view, ids, entries = MaterializedView(), [], ()
    for n, (key, status) in enumerate(changes, start=1):
        value = None if status is None else _Entry(key, status)
        view.apply(Event(n, "web", key, value))
        entries = patched(ids, entries, key, value,
                          value is not None and (not passing_only or value.status == "passing"))
        items = view.items
        rebuilt = tuple(items[k] for k in sorted(items) if not passing_only or items[k].status == "passing")
        assert entries == rebuilt and ids == [e.id for e in rebuilt]


def test_a_snapshot_s_items_come_sorted_by_id():
    """What Stream relies on to select a snapshot's entries without sorting them again."""

    pub = EventPublisher()
    state = {k: k.upper() for k in ("web-10", "web-2", "api-1", "web-1")}
    (snap,) = pub.subscribe("web", 0, state, 5)
    assert [k for k, _v in snap.items] == sorted(state)
