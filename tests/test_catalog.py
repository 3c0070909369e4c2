"""The pure catalog state machine and the pure health-check cores."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshsim.core.catalog import CRITICAL, PASSING, WARNING, Catalog, Deregister, Register, SetHealth
from meshsim.core.health import (
    DEFAULT_PROBE_TIMEOUT_MS,
    MIN_DEREGISTER_AFTER_MS,
    REAP_INTERVAL_MS,
    ProbeCheck,
    TTLCheck,
)

# --------------------------------------------------------------------------- catalog


def test_register_query_and_per_service_index():
    c = Catalog()
    assert c.apply(1, Register("web-2", "web", "h2", "z1", ("v2",))) == ("web",)
    assert c.apply(2, Register("db-1", "db", "h3", "z2")) == ("db",)
    assert c.apply(3, Register("web-1", "web", "h1", "z1", ("v1",))) == ("web",)
    assert [e.id for e in c.service_instances("web")] == ["web-1", "web-2"]  # sorted by id
    assert (c.index("web"), c.index("db"), c.index("nope")) == (3, 2, 0)
    e = c.instance("web-1")
    assert (e.host, e.zone, e.tags, e.status, e.create_index, e.modify_index) == ("h1", "z1", ("v1",), PASSING, 3, 3)
    assert c.apply(4, SetHealth("web-2", WARNING, "slow")) == ("web",)
    assert [e.id for e in c.service_instances("web")] == ["web-1"]  # passing only
    assert [e.status for e in c.service_instances("web", passing_only=False)] == [PASSING, WARNING]
    w2 = c.instance("web-2")
    assert (w2.create_index, w2.modify_index, w2.output) == (1, 4, "slow")
    assert (c.index("web"), c.index("db"), c.applied_index) == (4, 2, 4)
    assert c.services() == ("db", "web") and len(c) == 3


def test_no_op_commands_do_not_move_the_index():
    c = Catalog()
    c.apply(1, Register("a", "s", "h"))
    assert c.apply(2, Register("a", "s", "h")) == ()  # identical re-registration
    assert c.apply(3, SetHealth("a", PASSING)) == ()
    assert c.apply(4, SetHealth("ghost", CRITICAL)) == ()
    assert c.apply(5, Deregister("ghost")) == ()
    c.advance(6)  # a no-op / config entry
    assert (c.index("s"), c.applied_index) == (1, 6)
    assert c.apply(7, Register("a", "s", "h", tags=("new",))) == ("s",)  # tags changed
    assert c.instance("a").create_index == 1 and c.index("s") == 7


def test_deregister_keeps_the_index_of_an_emptied_service():
    c = Catalog()
    c.apply(1, Register("a", "s", "h"))
    assert c.apply(2, Deregister("a")) == ("s",)
    assert c.service_instances("s", passing_only=False) == () and c.index("s") == 2
    assert c.services() == () and c.instance("a") is None


def test_moving_an_instance_to_another_service_changes_both():
    c = Catalog()
    c.apply(1, Register("x", "old", "h"))
    assert set(c.apply(2, Register("x", "new", "h"))) == {"old", "new"}
    assert c.service_instances("old") == () and [e.id for e in c.service_instances("new")] == ["x"]
    assert c.index("old") == c.index("new") == 2
    assert c.instance("x").create_index == 2  # a new registration in the new service


def test_indexes_must_increase_and_commands_are_validated():
    c = Catalog()
    c.apply(5, None)
    with pytest.raises(ValueError, match="out of order"):
        c.apply(5, Register("a", "s", "h"))
    with pytest.raises(ValueError, match="unknown health status"):
        SetHealth("a", "dead")
    with pytest.raises(ValueError, match="non-empty"):
        Register("", "s", "h")
    with pytest.raises(TypeError):
        c.apply(6, "register a")


def test_equality_and_digest_see_every_difference():
    a, b = Catalog(), Catalog()
    for cat in (a, b):
        cat.apply(1, Register("a", "s", "h"))
    assert a == b and a.digest() == b.digest()
    b.advance(2)
    assert a != b  # same entries, different applied index
    a.apply(2, SetHealth("a", PASSING, "now with output"))
    assert a.digest() != b.digest()


ids = st.sampled_from(["i0", "i1", "i2", "i3"])
commands = st.one_of(
    st.builds(Register, ids, st.sampled_from(["s0", "s1"]), st.sampled_from(["h0", "h1"]),
              st.just("z"), st.sampled_from([(), ("t",)]), st.sampled_from([PASSING, WARNING, CRITICAL])),
    st.builds(Deregister, ids),
    st.builds(SetHealth, ids, st.sampled_from([PASSING, WARNING, CRITICAL]), st.sampled_from(["", "x"])),
    st.none(),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(commands, max_size=40))
def test_replicas_agree_and_the_index_is_the_last_change(cmds):
    a, b = Catalog(), Catalog()
    last_change: dict[str, int] = {}
    for i, cmd in enumerate(cmds, start=1):
        before = {s: a.service_instances(s, passing_only=False) for s in ("s0", "s1")}
        changed = a.apply(i, cmd)
        assert b.apply(i, cmd) == changed
        for s in ("s0", "s1"):
            after = a.service_instances(s, passing_only=False)
            assert (s in changed) == (after != before[s])  # the index moves exactly when the answer changes
            if s in changed:
                last_change[s] = i
            assert a.index(s) == last_change.get(s, 0)
            assert all(e.status == PASSING for e in a.service_instances(s))
    assert a == b and a.digest() == b.digest() and a.applied_index == len(cmds)


# --------------------------------------------------------------------------- health checks


def test_consul_defaults():
    p = ProbeCheck(interval_ms=10_000)
    assert p.timeout_ms == DEFAULT_PROBE_TIMEOUT_MS == 10_000.0
    assert (p.status, p.success_before_passing, p.failures_before_critical, p.failures_before_warning) == (
        CRITICAL, 0, 0, 0)
    assert TTLCheck(ttl_ms=1).status == CRITICAL
    assert (MIN_DEREGISTER_AFTER_MS, REAP_INTERVAL_MS) == (60_000.0, 30_000.0)


def test_ttl_check_expires_exactly_ttl_after_the_last_heartbeat():
    c = TTLCheck(ttl_ms=1_000)
    assert c.start(0.0) == 1_000.0 and c.critical_since == 0.0
    assert c.expire(1_000.0) is None  # already critical: nothing changes, and the timer is spent
    assert c.deadline is None
    assert c.heartbeat(1_500.0) == PASSING and c.deadline == 2_500.0 and c.critical_since is None
    assert c.heartbeat(2_000.0) is None and c.deadline == 3_000.0
    assert c.expire(2_500.0) is None  # early call (a stale timer): no change
    assert c.expire(3_000.0) == CRITICAL and c.output == "TTL expired" and c.critical_since == 3_000.0
    assert c.heartbeat(3_100.0, WARNING, "degraded") == WARNING and c.output == "degraded"
    assert c.heartbeat(3_200.0, CRITICAL, "app says no") == CRITICAL


def test_thresholds_follow_consuls_status_handler():
    # counters start at the thresholds: the first result always applies
    p = ProbeCheck(interval_ms=100, timeout_ms=10, success_before_passing=2, failures_before_critical=3,
                   failures_before_warning=2)
    p.start(0.0)
    seq = [True, False, False, False, True, True, False, True, True]
    got = [p.result(ok, float(i)) for i, ok in enumerate(seq)]
    assert got == [PASSING, None, WARNING, CRITICAL, None, PASSING, None, None, None]
    assert p.status == PASSING


def test_probe_timing_and_outcomes():
    p = ProbeCheck(interval_ms=1_000, timeout_ms=200)
    assert p.start(50.0, delay_ms=300.0) == 350.0
    assert p.outcome_time(350.0, True, response_ms=5.0) == 355.0
    assert p.outcome_time(350.0, True, response_ms=500.0) == 550.0  # too slow: timed out
    assert p.outcome_time(350.0, False) == 550.0
    assert p.result(False, 550.0) is None and p.status == CRITICAL  # was critical already (initial status)
    assert p.next_probe == 1_550.0  # interval counted from the end of the probe
    with pytest.raises(ValueError):
        ProbeCheck(interval_ms=0)
    with pytest.raises(ValueError):
        ProbeCheck(interval_ms=1, failures_before_critical=1, failures_before_warning=2)
    with pytest.raises(ValueError):
        TTLCheck(ttl_ms=-1)


def test_deregister_critical_after_is_clamped_to_a_minute_and_reaped_after_it():
    c = TTLCheck(ttl_ms=1_000, deregister_critical_after_ms=5_000)
    assert c.deregister_critical_after_ms == 60_000.0
    c.start(0.0)
    c.heartbeat(0.0)
    c.expire(1_000.0)
    assert not c.reap_due(61_000.0) and c.reap_due(61_000.1)
    c.heartbeat(61_000.0)
    assert not c.reap_due(500_000.0)
    assert TTLCheck(ttl_ms=1, deregister_critical_after_ms=120_000).deregister_critical_after_ms == 120_000.0
