"""Registry scenarios reach Raft timing: ``registry.raft`` keys, their checks, sweeps over them,
and the start-up election reported apart from later failovers."""

from __future__ import annotations

import pytest

import meshsim
from meshsim.errors import ScenarioError
from meshsim.registry.discovery import raft_config, split_windows
from meshsim.scenario.load import load_scenario
from meshsim.sweep import make_sweep, run_sweep

EXAMPLE = meshsim.example("registry_failover")
CRASH_MS = 31_000.0  # the example's leader crash


def _reg(overrides: dict) -> dict:
    return load_scenario(EXAMPLE, overrides).spec["registry"]


def test_keys_override_the_profile_and_accept_units():
    reg = _reg({"registry.raft": {"heartbeat": "50ms", "election_timeout_min": "300ms",
                                  "election_timeout_max": "0.9s", "lease": "200ms",
                                  "pre_vote": False, "check_quorum": False}})
    c = raft_config(reg)
    assert (c.heartbeat_interval_ms, c.election_timeout_min_ms, c.election_timeout_max_ms) == (50.0, 300.0, 900.0)
    assert c.leader_lease_ms == 200.0 and not c.pre_vote and not c.check_quorum
    assert not c.lease_reads  # no check-quorum, no lease: reads take a quorum round


def test_no_keys_is_the_profile_and_min_alone_moves_the_range():
    from meshsim.core.raft import RaftConfig

    assert raft_config(_reg({})) == RaftConfig.profile("consul", raft_multiplier=1)
    c = raft_config(_reg({"registry.raft.election_timeout_min": "250ms"}))
    # the maximum keeps consul's 2x ratio; the lease (500 ms at multiplier 1) is cut to the minimum
    assert (c.election_timeout_min_ms, c.election_timeout_max_ms, c.leader_lease_ms) == (250.0, 500.0, 250.0)
    # hashicorp/raft's heartbeat is U[HT/10, HT/5): it follows the heartbeat timeout
    assert (c.heartbeat_interval_ms, c.heartbeat_interval_max_ms) == (25.0, 50.0)
    c = raft_config(_reg({"registry.raft.heartbeat": "40ms"}))
    assert (c.heartbeat_interval_ms, c.heartbeat_interval_max_ms, c.election_timeout_min_ms) == (40.0, 80.0, 1000.0)
    etcd = raft_config(_reg({"registry.profile": "etcd", "registry.raft_multiplier": None,
                             "registry.raft.election_timeout_min": "250ms"}))
    assert etcd.heartbeat_interval_ms == 100.0  # etcd's heartbeat is its own setting


@pytest.mark.parametrize("overrides, path, words", [
    ({"registry.raft": {"election_timeout_min": "80ms", "heartbeat": "100ms"}}, "registry.raft.election_timeout_min",
     "heartbeat interval (100ms"),
    ({"registry.raft.heartbeat": "1.5s"}, "registry.raft.heartbeat", "(1000ms, the consul profile's)"),
    ({"registry.raft": {"election_timeout_min": "1s", "election_timeout_max": "400ms"}},
     "registry.raft.election_timeout_max", "maximum (400ms)"),
    ({"registry.raft.lease": "1.2s"}, "registry.raft.lease", "lease (1200ms)"),
    ({"registry.raft.heartbeat": "-5ms"}, "registry.raft.heartbeat", "negative"),
    ({"registry.raft.electon_timeout_min": "1s"}, "registry.raft.electon_timeout_min", "unknown key"),
])
def test_inconsistent_timing_is_an_error_at_the_key(overrides, path, words):
    with pytest.raises(ScenarioError) as e:
        load_scenario(EXAMPLE, overrides)
    assert path in str(e.value) and words in str(e.value)


def test_split_windows_keeps_the_startup_election_apart():
    s = split_windows([(0.0, 1200.0), (31000.0, 32300.0)], started_at=0.0)
    assert s["startup_election_ms"] == 1200.0
    assert s["failover_windows"] == [(31000.0, 32300.0)] and s["failover_unavailable_ms"] == 1300.0
    none = split_windows([(0.0, 900.0)], 0.0)
    assert none["startup_election_ms"] == 900.0 and none["failover_windows"] == [] and none["max_failover_ms"] == 0.0


def test_summary_separates_the_startup_election_from_the_leader_crash():
    res = meshsim.run(EXAMPLE, seed=1, overrides={"run.duration": "36s"})
    raft = res.summary["registry"]["raft"]
    windows = raft["unavailability_windows"]
    assert len(windows) == 2 and windows[0][0] == 0.0 and windows[1][0] == CRASH_MS
    assert raft["startup_election_ms"] == pytest.approx(windows[0][1] - windows[0][0])
    assert [tuple(w) for w in raft["failover_windows"]] == [tuple(windows[1])]
    failover = windows[1][1] - windows[1][0]
    assert raft["failover_unavailable_ms"] == pytest.approx(failover) == pytest.approx(raft["max_failover_ms"])
    # unavailable_ms stays the total over every window, start-up included
    assert raft["unavailable_ms"] == pytest.approx(raft["startup_election_ms"] + raft["failover_unavailable_ms"])
    # consul x1: a follower waits at least one election timeout minimum (1 s) minus a heartbeat after the crash
    assert 900.0 <= failover <= 2 * 2_000.0
    assert 0 < raft["startup_election_ms"] <= 2_000.0 + 500.0


def test_a_sweep_of_election_timeouts_lengthens_the_failover(tmp_path):
    base = load_scenario(EXAMPLE, {"run.duration": "40s"}, warn=False)
    sw = make_sweep(base, {"registry.raft.election_timeout_min": ["300ms", "3s"]},
                    replications=1, seed=2, metrics=["registry.raft.failover_unavailable_ms",
                                                     "registry.raft.startup_election_ms",
                                                     "registry.raft.leader_changes"])
    res = run_sweep(sw, tmp_path, backend="serial", progress=False)
    assert res.runs["error"].isna().all()
    by = {row["registry.raft.election_timeout_min"]: row for _, row in res.runs.iterrows()}
    short, long = by["300ms"], by["3s"]
    # each failover is at least the minimum timeout less one heartbeat, at most about two maxima
    assert 200.0 <= short["registry.raft.failover_unavailable_ms"] <= 1_500.0
    assert 2_900.0 <= long["registry.raft.failover_unavailable_ms"] <= 13_000.0
    assert long["registry.raft.failover_unavailable_ms"] > 3 * short["registry.raft.failover_unavailable_ms"]
    assert long["registry.raft.startup_election_ms"] >= 3_000.0 > short["registry.raft.startup_election_ms"]
