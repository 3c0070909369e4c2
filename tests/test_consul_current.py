"""The registry against current Consul's source (meshsim issue 13, item 4).

1. RPC hold back-off (hashicorp/consul ``agent/consul/rpc.go`` ``forwardRequestToLeader``,
   ``getWaitTime``, ``canRetry``; ``lib/cluster.go`` ``RandomStaggerWithRange``; PR #16165).
2. Anti-entropy retry jitter (``agent/ae/ae.go`` ``retryFullSync``).
3. ``default`` reads answered by the Raft leader from its own state, no quorum round
   (``agent/blockingquery/blockingquery.go`` ``Query`` calls ``ConsistentRead`` only for ``consistent``).
"""

from __future__ import annotations

import numpy as np
import pytest

from meshsim.core.raft import RaftConfig
from meshsim.registry.agent import AE_RETRY_MS, ae_retry_delay_ms
from meshsim.registry.backoff import (hold_budget_ms, hold_schedule, hold_wait_ceiling_ms,
                                      next_hold_wait_ms)
from meshsim.registry.catalog import Registry

L = 1.0
# explicit timings, so these tests do not move when the Raft profiles are retuned
STEADY = RaftConfig(heartbeat_interval_ms=100.0, election_timeout_min_ms=1000.0, election_timeout_max_ms=2000.0,
                    pre_vote=True, check_quorum=True, lease_reads=False)
# a leader that never steps down on its own (no check-quorum): a long window for a deposed leader
NO_STEP_DOWN = RaftConfig(heartbeat_interval_ms=100.0, election_timeout_min_ms=1000.0,
                          election_timeout_max_ms=2000.0, pre_vote=True, check_quorum=False, lease_reads=False)


def make(config=STEADY, servers=3, clients=(), seed=1, **kw) -> Registry:
    reg = Registry.standalone(servers=servers, clients=clients, latency=L, seed=seed, config=config, **kw)
    reg.start()
    assert reg.run_until(lambda: reg.cluster.agreed_leader() is not None, 30_000)
    reg.run(1_000)
    return reg


def done(reg, call, limit=60_000.0):
    assert reg.run_until(lambda: call.done, limit), call
    return call


def count_read_rounds(reg: Registry, server: str) -> list:
    """Wrap ``server``'s ReadIndex entry point; the list grows by one per quorum read round started."""
    srv = reg.cluster.servers[server]
    calls: list = []
    inner = srv.read_index

    def counted(request_id):
        calls.append(request_id)
        return inner(request_id)

    srv.read_index = counted
    return calls


# --------------------------------------------------------------------------- 1. hold back-off


def test_hold_ceilings_for_the_7s_default():
    # getWaitTime: (7000 // 16) ms = 437 ms, doubled each try, no cap
    assert [hold_wait_ceiling_ms(7_000.0, n) for n in range(1, 8)] == [437.0, 874.0, 1748.0, 3496.0, 6992.0,
                                                                       13984.0, 27968.0]
    assert hold_wait_ceiling_ms(2_000.0, 1) == 125.0
    assert hold_wait_ceiling_ms(10.0, 1) == 1.0  # 10 // 16 = 0: at least 1 ms
    with pytest.raises(ValueError):
        hold_wait_ceiling_ms(7_000.0, 0)


def test_each_wait_lies_between_the_previous_wait_and_its_ceiling():
    rng = np.random.default_rng(7)
    for _ in range(200):
        prev = 0.0
        for n in range(1, 8):
            hi = hold_wait_ceiling_ms(7_000.0, n)
            w = next_hold_wait_ms(7_000.0, n, prev, float(rng.random()))
            assert prev <= w < hi
            prev = w
    # the ends of the range
    assert next_hold_wait_ms(7_000.0, 2, 300.0, 0.0) == 300.0
    assert next_hold_wait_ms(7_000.0, 2, 300.0, 1.0 - 1e-12) == pytest.approx(874.0)


def test_the_schedule_answers_at_the_first_try_after_the_hold_timeout():
    hold = 7_000.0
    rng = np.random.default_rng(11)
    answered = []
    for _ in range(2_000):
        s = hold_schedule(hold, rng.random(64))
        starts = np.concatenate([[0.0], np.cumsum(s.waits_ms)[:-1]])
        # every wait starts while the hold budget is not spent (canRetry checks before each wait) ...
        assert (starts <= hold).all()
        # ... and the last one ends past it: the answer comes at most one (growing) wait late
        n = len(s.waits_ms)
        assert hold < s.answered_ms < hold + hold_wait_ceiling_ms(hold, n)
        assert list(s.waits_ms) == sorted(s.waits_ms)  # the waits never shrink
        answered.append(s.answered_ms)
    # no cap keeps it near 7 s: after a run of short waits the next ceiling (6992, 13984 ms...) can
    # push the answer far past the hold timeout (up to 30 s in these 2000 draws)
    assert 7_000.0 < min(answered) < 7_100.0 and max(answered) > 7_000.0 + 13_984.0
    assert 9_000.0 < np.mean(answered) < 12_000.0
    # draws near 1: four waits (437 + 874 + 1748 + 3496 = 6555 ms) and a fifth up to 6992 ms
    slow = hold_schedule(hold, [1.0 - 1e-9] * 10)
    assert len(slow.waits_ms) == 5 and slow.answered_ms == pytest.approx(6555.0 + 6992.0)


def test_a_blocking_read_may_be_held_for_its_wait_as_well():
    assert hold_budget_ms(7_000.0, "write") == 7_000.0
    assert hold_budget_ms(7_000.0, "read") == 7_000.0
    assert hold_budget_ms(7_000.0, "block", 32_000.0) == 7_000.0 + 32_000.0 + 2_000.0


def test_a_held_write_backs_off_at_the_server_then_fails():
    hold = 2_000.0
    reg = make(clients=["app"], rpc_hold_timeout_ms=hold, request_timeout_ms=15_000.0)
    lead = reg.leader()
    alone = next(s for s in reg.cluster.servers if s != lead)
    for s in reg.cluster.servers:
        if s != alone:
            reg.cluster.crash(s)  # one server of three left: no leader for good
    held: dict[int, tuple] = {}  # each attempt's Rpc at the server -> its tries
    answered: dict[int, float] = {}
    retry, reply = reg._retry_held, reg._reply
    reg._retry_held = lambda arg: (held.setdefault(id(arg[2]), (arg[2], []))[1].append(reg.now), retry(arg))

    def on_reply(st, rpc, rep):
        if not rep.ok:
            answered[id(rpc)] = reg.now
            assert rep.error == "no cluster leader" and st.name == alone
        reply(st, rpc, rep)

    reg._reply = on_reply
    w = done(reg, reg.client("app").register("x", "s"))
    assert not w.ok  # the client retries each "no cluster leader" until its own deadline
    complete = [(rpc, tries) for key, (rpc, tries) in held.items() if key in answered]
    assert len(complete) >= 3
    for rpc, tries in complete:
        waits = np.diff([rpc.first_seen, *tries])
        prev = 0.0
        for n, wait in enumerate(waits, start=1):
            assert prev - 1e-9 <= wait < hold_wait_ceiling_ms(hold, n)  # 125, 250, 500, 1000, 2000 ms ...
            prev = wait
        # the server answers at the first try past the hold timeout, and only then
        assert tries[-2] - rpc.first_seen <= hold < tries[-1] - rpc.first_seen
        assert answered[id(rpc)] == tries[-1]
        assert rpc.hold_tries == len(tries)


# --------------------------------------------------------------------------- 2. anti-entropy retry jitter


def test_ae_retry_delay_bounds():
    assert ae_retry_delay_ms(AE_RETRY_MS, 1, 0.0) == 15_000.0
    assert ae_retry_delay_ms(AE_RETRY_MS, 1, 1.0 - 1e-12) == pytest.approx(30_000.0)
    assert ae_retry_delay_ms(AE_RETRY_MS, 2, 0.5) == 30_000.0  # scale 2 (129..256 nodes): up to 45 s


@pytest.mark.parametrize("stagger,cluster_size", [(True, None), (True, 300), (False, 300)])
def test_a_failed_full_sync_is_retried_after_the_interval_plus_a_scaled_stagger(stagger, cluster_size):
    retry = 400.0
    reg = make(clients=["h1"], rpc_hold_timeout_ms=100.0, attempt_timeout_ms=300.0, request_timeout_ms=300.0)
    agent = reg.agent("h1", anti_entropy_ms=1_000.0, retry_ms=retry, stagger=stagger, cluster_size=cluster_size)
    agent.add_instance("web-1", "web")
    delays = []
    inner = agent._schedule_full_sync
    agent._schedule_full_sync = lambda delay=None: (delays.append(delay), inner(delay))
    reg.run(2_000)
    for s in list(reg.cluster.servers):
        reg.cluster.crash(s)  # every full sync now fails
    reg.run(30_000)
    retries = [d for d in delays if d is not None]
    assert len(retries) >= 10
    scale = 1 if cluster_size is None else 3  # 300 nodes: ceil(log2(300/128)) + 1 = 3
    if stagger:
        assert all(retry <= d < retry * (1 + scale) for d in retries)
        assert max(retries) - min(retries) > retry * scale / 4  # spread out, not a fixed retry
    else:
        assert retries == [retry] * len(retries)  # exact timings for tests


# --------------------------------------------------------------------------- 3. default reads


def test_a_default_read_on_a_healthy_leader_costs_no_raft_message():
    sent = {}
    for with_read in (False, True):
        reg = make(seed=5)
        lead = reg.leader()
        c = reg.client(lead)  # the client on the leader's host talks to the leader
        done(reg, c.register("web-1", "web"))
        reg.run(500)
        rounds = count_read_rounds(reg, lead)
        before = reg.cluster.summary()["messages_sent"]
        if with_read:
            r = done(reg, c.read("web", mode="default"))
            assert r.ok and [e.id for e in r.entries] == ["web-1"] and r.reply.server == lead
            assert r.latency_ms == pytest.approx(2 * L)  # a local round trip, nothing else
            assert rounds == []
        reg.run(300 - (reg.now % 1.0))
        sent[with_read] = (reg.now, reg.cluster.summary()["messages_sent"] - before)
    # the same run with and without the read sends exactly as many Raft messages
    assert sent[True][1] == sent[False][1]
    # a consistent read does start a quorum round
    reg = make(seed=5)
    lead = reg.leader()
    rounds = count_read_rounds(reg, lead)
    assert done(reg, reg.client(lead).read("web", mode="consistent")).ok and len(rounds) == 1


def test_a_partitioned_leader_answers_default_reads_from_stale_state_and_holds_consistent_ones():
    reg = make(config=NO_STEP_DOWN, rpc_hold_timeout_ms=3_000.0, attempt_timeout_ms=20_000.0,
               request_timeout_ms=20_000.0)
    old = reg.leader()
    others = [s for s in reg.cluster.servers if s != old]
    near = reg.client(old)
    done(reg, near.register("web-1", "web"))
    reg.run(200)
    reg.cluster.partition([old], others)  # the old leader (and the client on its host) cut off
    far = reg.client(others[0])
    w = done(reg, far.register("web-2", "web"))  # the majority elects a new leader and commits
    assert w.ok and w.reply.server != old
    new = w.reply.server
    assert reg.cluster.servers[old].node.role == "leader"  # without check-quorum it never steps down
    rounds = count_read_rounds(reg, old)
    sent_before = reg.cluster.sent
    r = done(reg, near.read("web", mode="default"))
    # answered by the deposed leader from its own catalog: web-2 is missing, the answer is stale
    assert r.ok and r.reply.server == old and [e.id for e in r.entries] == ["web-1"]
    assert r.reply.lag_index > 0 and r.latency_ms == pytest.approx(2 * L)
    assert rounds == []  # no quorum round
    assert reg.cluster.sent - sent_before <= 1  # at most a heartbeat that fell in the 2 ms
    # the new leader has the fresh state
    assert [e.id for e in reg.catalog(new).service_instances("web")] == ["web-1", "web-2"]
    # a consistent read at the old leader cannot confirm leadership: it is held and fails
    cr = done(reg, near.read("web", mode="consistent"))
    assert not cr.ok and len(rounds) >= 1
    s = reg.summary()["reads"]
    assert s["default"]["stale_answers"] == 1 and s["consistent"]["errors"] == 1


def test_a_just_partitioned_leader_still_answers_default_reads_under_check_quorum():
    reg = make(config=STEADY)
    old = reg.leader()
    near = reg.client(old)
    done(reg, near.register("web-1", "web"))
    reg.run(200)
    reg.cluster.isolate(old)
    rounds = count_read_rounds(reg, old)
    r = done(reg, near.read("web", mode="default"))
    assert r.ok and r.reply.server == old and r.latency_ms == pytest.approx(2 * L) and rounds == []
    cr = near.read("web", mode="consistent")
    reg.run(500)
    assert not (cr.done and cr.ok) and len(rounds) >= 1  # the quorum round cannot complete
