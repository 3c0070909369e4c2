"""Discovery through the registry on the request path: stale endpoints turn into errors until updates land.

A crashed instance keeps receiving calls until its agent's probe marks it
critical, the change commits through Raft and reaches callers: directly
(a watch through the host's agent), after the control plane's debounce and
push latency (sidecars), or when a DNS answer expires.  The error window is
pinned against those mechanisms' own numbers.
"""

from __future__ import annotations

import pytest

import meshsim
from meshsim.experiments.failure_modes import run_stale_endpoints, stale_endpoints, stale_endpoints_scenario

CRASH_MS = 20_000.0


def _scenario(mesh: str = "none", **registry) -> dict:
    """Envoy's profile (no retries), so stale endpoints show as errors; ``registry`` keys override."""
    sc = stale_endpoints_scenario("sidecar" if mesh == "sidecar" else "watch", crash_ms=CRASH_MS)
    sc["registry"].update(registry)
    return sc


def _run(sc: dict, seed: int = 3):
    out = run_stale_endpoints(sc, seed)
    return out["result"], out["component"], out["refused_ms"], out["critical_ms"]


def test_probe_detects_the_crash_within_interval_plus_timeout():
    res, comp, refused, critical = _run(_scenario())
    # the next probe after the crash (interval 2 s) times out after 1 s
    assert CRASH_MS + 1_000 <= critical <= CRASH_MS + 2_000 + 1_000
    assert res.summary["registry"]["catalogs_identical"]


def test_watch_callers_stop_calling_the_crashed_instance_once_the_change_commits():
    res, comp, refused, critical = _run(_scenario())
    assert refused.min() >= CRASH_MS
    # commit (a few sub-ms network hops) + blocking-query answer: well under 10 ms after the transition
    assert critical < refused.max() + 10.0 and refused.max() < critical + 10.0
    # every call to api-1 in that window failed: one third of 300/s
    assert len(refused) == pytest.approx(100.0 * (critical - CRASH_MS) / 1000.0, rel=0.2)


def test_sidecars_route_on_stale_endpoints_until_the_push_lands():
    res, comp, refused, critical = _run(_scenario("sidecar"))
    # the control plane waits 100 ms of quiet (debounce), then each proxy applies the push 30 ms later
    assert critical + 100.0 + 30.0 <= refused.max() + 5.0
    assert refused.max() < critical + 100.0 + 30.0 + 10.0
    assert res.summary["registry"]["control_plane"]["pushes"] >= 1


def test_dns_callers_keep_a_crashed_instance_up_to_the_ttl():
    res, comp, refused, critical = _run(_scenario(discovery="dns", dns_ttl="5s"))
    # answers are cached for 5 s: the last stale call is at most one TTL after the transition
    assert critical < refused.max() <= critical + 5_000.0 + 10.0
    assert refused.max() - CRASH_MS > 1_000.0


def test_istio_retries_hide_stale_endpoints():
    sc = _scenario("sidecar")
    sc["mesh"]["profile"] = "istio"
    res = meshsim.run(sc, seed=3)
    assert res.summary["failed_by_reason"].get("connection_refused", 0) == 0
    assert res.summary["resilience"]["api"]["retries"] > 100


def test_bad_registry_input():
    from meshsim.errors import ScenarioError, ScenarioWarning

    sc = _scenario()
    sc["registry"]["servers"] = 4
    with pytest.warns(ScenarioWarning, match="registry.servers: 4 servers"):
        meshsim.load_scenario(sc)
    sc = _scenario()
    sc["registry"]["profile"] = "zookeeper"
    with pytest.raises(ScenarioError, match="registry.profile"):
        meshsim.load_scenario(sc)
    sc = _scenario()
    sc["faults"].append({"action": "crash_server", "server": "registry-7", "at": "1s"})
    with pytest.raises(ScenarioError, match=r"faults\[1\].server: unknown registry server"):
        meshsim.load_scenario(sc)
    sc = _scenario()
    del sc["registry"]
    sc["faults"].append({"action": "crash_server", "server": "leader", "at": "1s"})
    with pytest.raises(ScenarioError, match="needs a registry"):
        meshsim.load_scenario(sc)


@pytest.mark.parametrize("multiplier", [1, 3])
def test_a_lost_leader_delays_the_update_until_a_new_one_commits_it(multiplier):
    sc = _scenario(raft_multiplier=multiplier)
    sc["faults"].append({"action": "crash_server", "server": "leader", "at": "20500ms"})
    res, comp, refused, critical = _run(sc)
    elected = comp.registry.cluster.frame("leader_changes")["time"].iloc[-1]
    # consul profile: election timeouts from 1000 ms x multiplier, so no leader until well after the check
    # fired; parked requests are reset to the servers that forwarded them and retried against the new leader
    assert critical < elected
    assert elected < refused.max() < elected + 500.0
    assert res.summary["registry"]["raft"]["leader_changes"] == 2
    plain = _run(_scenario(raft_multiplier=multiplier))[2]
    assert refused.max() - plain.max() > 0.5 * (elected - critical)


def test_slow_disk_slows_registry_writes():
    def last_write_ms(sc: dict) -> float:
        w = _run(sc)[1].registry.frame("writes")
        return float(w["latency_ms"].iloc[-1])  # the critical transition of api-1 after its crash

    fast = last_write_ms(_scenario())
    sc = _scenario()
    sc["faults"] += [{"action": "slow_disk", "server": f"registry-{i}", "at": "10s",
                      "latency": {"dist": "constant", "value": 40}} for i in range(3)]
    slow = last_write_ms(sc)
    # the leader persists the entry before sending it, a follower persists it before acknowledging: 2 x 40 ms
    assert slow - fast == pytest.approx(80.0, abs=5.0)


def test_stale_endpoints_table_for_notebooks():
    t = stale_endpoints().set_index("discovery")
    assert list(t.index) == ["watch", "sidecar", "dns"]
    # the later the update lands, the more calls the crashed instance refuses
    assert t.loc["watch", "refused"] < t.loc["sidecar", "refused"] < t.loc["dns", "refused"]
    delay = t["last_refused_after_ms"] - t["critical_after_ms"]
    assert delay["watch"] < 10 and 130 <= delay["sidecar"] + 5 and delay["dns"] <= 5_010


def test_a_partition_of_the_registry_holds_stale_endpoints_until_it_heals():
    sc = _scenario()
    others = ["h-api-0", "h-api-1", "h-api-2", "client-w"]
    sc["faults"].append({"action": "partition", "groups": [["registry-0", "registry-1", "registry-2"], others],
                         "at": "19s", "until": "26s"})
    res, comp, refused, critical = _run(sc)
    # the agent's health write cannot reach any server: the callers' views stay stale until the heal
    assert 26_000.0 < refused.max() < 26_000.0 + 1_000.0
    plain = _run(_scenario())[2]
    assert refused.max() > plain.max() + 2_000.0


def test_registry_messages_duplicated_and_reordered_keep_catalogs_identical():
    sc = _scenario(duplicate=0.2, reorder=0.2)
    res = meshsim.run(sc, seed=4)
    raft = res.summary["registry"]["raft"]
    assert raft["duplicated"] > 50 and raft["reordered"] > 50
    assert res.summary["registry"]["catalogs_identical"]
    assert res.summary["registry"]["health_transitions"]["to"].get("critical") == 1


def test_a_watch_cut_off_from_its_server_recovers_at_the_next_keepalive():
    from meshsim.registry.client import KEEPALIVE_MS
    from meshsim.scenario.load import load_scenario
    from meshsim.sim.simulation import Simulation
    from meshsim.registry.discovery import attach_registry

    sc = _scenario()
    sc["run"]["duration"] = "80s"
    probe = Simulation(load_scenario(sc), seed=3)
    first = attach_registry(probe).registry.client("client-w").servers[0]  # where the caller's watch goes
    # from 15 s on the caller's host and that server cannot talk: replies to its parked watch are lost
    sc["faults"].append({"action": "partition", "groups": [["client-w"], [first]], "at": "15s"})
    res, comp, refused, critical = _run(sc)
    assert refused.max() > critical + 1_000.0  # the update did not arrive by the watch...
    # ... until a keepalive found the connection dead (every 30 s from the first request at ~1 s)
    assert refused.max() < critical + KEEPALIVE_MS + 1_000.0
    assert refused.max() < 70_000.0
