"""The Consul Global Scale Benchmark's shape (meshsim.experiments.global_scale) on small clusters.

What is pinned: the shape is the benchmark's (tiers, nodes, servers) at every size; the registry starts
converged from a snapshot and writes nothing in steady state without churn; a sidecar's config holds a
deploy exactly Consul's proxycfg coalesce timeout after its agent's view got the last change (so the
propagation is the coalesce time plus the stream's delivery delay, under HashiCorp's published "under one
second"); streaming sends a watcher one event per change while a blocking query sends the whole service;
same seed, same results; bad parameters name the key and exit 2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from meshsim.core.health import ProbeCheck
from meshsim.core.raft import RaftConfig
from meshsim.errors import ScenarioError
from meshsim.experiments import global_scale as gs
from meshsim.registry.catalog import Registry

SMALL = dict(instances=1_500, steady_ms=10_000.0, settle_ms=8_000.0)


@pytest.fixture(scope="module")
def streaming():
    return gs.run(gs.ScaleShape.sized(**SMALL), seed=3)


def test_sizes_keep_the_benchmarks_proportions():
    full = gs.ScaleShape.sized(178_000)
    assert [t.services for t in full.tiers] == [1000, 1000, 1000]
    assert [t.instances for t in full.tiers] == [10, 83, 85]
    assert (full.hosts, full.servers, full.zones, full.instances) == (10_000, 5, 3, 178_001)
    for n in (10_000, 40_000):
        s = gs.ScaleShape.sized(n)
        assert abs(s.instances - n) / n < 0.01
        assert s.instances / s.hosts == pytest.approx(17.8, rel=0.02)


def test_the_parameter_file_is_the_benchmark_at_full_size():
    shape = gs.load_shape()
    assert shape == gs.ScaleShape.sized(178_000, raft_multiplier=5)
    assert gs.load_shape(overrides=["instances=40000", "discovery=blocking"]) == gs.ScaleShape.sized(
        40_000, discovery="blocking")


@pytest.mark.parametrize("overrides, path", [(["instance=10"], "instance"), (["discovery=watch"], "discovery"),
                                             (["check_interval=-1s"], "check_interval"),
                                             (["target=nope"], "")])
def test_bad_parameters_name_the_key(overrides, path):
    with pytest.raises(ScenarioError) as e:
        gs.load_shape(overrides=overrides)
    assert e.value.path == path


def test_the_command_exits_2_on_a_bad_parameter(capsys):
    assert gs.main(["--set", "instanc=3"]) == 2
    assert "did you mean 'instances'" in capsys.readouterr().err


def test_a_preloaded_registry_starts_converged():
    reg = Registry.standalone(servers=3, clients=["h1", "h2"], latency=0.5, seed=2,
                              config=RaftConfig.profile("consul", raft_multiplier=1))
    for h in ("h1", "h2"):
        for i in range(3):
            reg.agent(h).add_instance(f"{h}/web-{i}", "web", check=ProbeCheck(1_000, status="passing"),
                                      probe=lambda: True, registered=True)
    assert reg.preload() == 6
    reg.start()
    reg.run(10_000)
    cats = reg.catalogs()
    # nothing written; the elected leader's no-op entry follows the snapshot at index 7
    assert len(reg.writes) == 0 and reg.committed_index == 7
    assert all(len(c.service_instances("web")) == 6 and c.applied_index == 7 for c in cats.values())
    # and it goes on as a cluster: a write commits at index 8 on every server
    reg.agent("h1").remove_instance("h1/web-0")
    reg.run(2_000)
    assert reg.committed_index == 8
    assert {len(c.service_instances("web")) for c in reg.catalogs().values()} == {5}
    with pytest.raises(RuntimeError):
        reg.preload()


def test_steady_state_without_churn_writes_only_the_deploy(streaming):
    s = streaming.summary
    # the deploy: one deregistration, one registration (critical) and its first passing check
    assert s["writes"] == 3
    assert s["all_have_it"] and s["sidecars_watching"] == sum(t.services * t.instances for t in streaming.shape.tiers)


def test_a_sidecar_has_the_deploy_one_coalesce_after_its_agent(streaming):
    """Consul's proxycfg sends a sidecar its new config coalesce_ms after the first change it sees (no other
    change pending): the propagation is the coalesce time plus the stream's delivery delay of the deploy's
    last event to that node, exactly."""
    reg = streaming.registry
    d = reg.streaming_hub().frame()
    last_index = reg.committed_index
    last = d[(d["index"] == last_index) & (d["service"] == gs.SHARED_SERVICE)].set_index("host")
    p = streaming.propagation.set_index("host")
    assert len(p) == len(last.loc[p.index])
    np.testing.assert_allclose(p["propagation_ms"], gs.COALESCE_MS + last.loc[p.index, "delay_ms"], atol=1e-9)
    # the delivery delay is a follower's apply lag plus one hop across the zones: milliseconds
    assert 0.0 < last["delay_ms"].max() < 25.0
    per = streaming.sidecar_propagation_ms()
    # HashiCorp's published figure: every sidecar within one second
    assert gs.COALESCE_MS < per.min() and per.max() < 1_000.0


def test_streaming_sends_changes_and_blocking_sends_services():
    """With health churn, a change reaches each watcher of its service as one event of one instance with
    streaming, and as the whole service with a blocking query; every streaming view ends equal to the catalog."""
    kw = dict(SMALL, churn_per_s_per_1000=4.0)
    st = gs.run(gs.ScaleShape.sized(**kw), seed=5)
    bl = gs.run(gs.ScaleShape.sized(**kw, discovery="blocking"), seed=5)
    # streaming: a snapshot per subscription (the service's instances, constant here: churn changes health
    # only), then one instance per event
    placement = gs._placement(st.shape)
    size: dict[str, int] = {}
    subs: dict[int, set] = {}
    for _iid, svc, ups, h in placement:
        size[svc] = size.get(svc, 0) + 1
        if ups:
            subs.setdefault(h, set()).update(ups)
    load = st.registry.streaming_hub().load().values()
    events = sum(v["events"] for v in load)
    assert events > 1_000
    assert sum(v["snapshots"] for v in load) == sum(len(u) for u in subs.values())
    assert sum(v["instances"] for v in load) == sum(size[s] for u in subs.values() for s in u) + events
    leader = st.registry.catalog(st.registry.leader())
    assert len(st.subscriptions) == sum(len(u) for u in subs.values())
    for stream in st.subscriptions:
        assert stream.entries == leader.service_instances(stream.service)
    # blocking: after each watch's first answer, one answer per change and watcher (as many as streaming's
    # events: the same seed makes the same changes), each with the whole service's passing instances (b and
    # c services: 83-85, a few failing)
    lb = bl.registry.load()["servers"].values()
    answers = sum(v["blocking"]["requests"] for v in lb) - len(bl.subscriptions)
    instances = sum(v["blocking"]["instances"] for v in lb) - sum(size[s] for u in subs.values() for s in u)
    assert answers == pytest.approx(events, rel=0.02)
    assert 70 < instances / answers < 85
    assert st.summary["all_have_it"] and bl.summary["all_have_it"]


def test_same_seed_same_results():
    shape = gs.ScaleShape.sized(600, steady_ms=5_000.0, settle_ms=5_000.0, churn_per_s_per_1000=3.0)
    a, b = gs.run(shape, seed=9), gs.run(shape, seed=9)
    strip = ("wall_s", "build_s")
    assert {k: v for k, v in a.summary.items() if k not in strip} == {
        k: v for k, v in b.summary.items() if k not in strip}
    assert a.propagation.equals(b.propagation)
    c = gs.run(shape, seed=10)
    assert not math.isclose(c.summary["propagation_ms"]["p50"], a.summary["propagation_ms"]["p50"])


def test_inline_probe_outcomes_equal_the_general_path(monkeypatch):
    """The agent's fast path (a probe answered with no delay handled at once) gives the same health, write
    and delivery tables as an event at the same instant."""
    from meshsim.registry.agent import Agent

    shape = gs.ScaleShape.sized(800, steady_ms=8_000.0, settle_ms=6_000.0, churn_per_s_per_1000=8.0,
                                lazy_probes=False)  # every probe runs
    fast = gs.run(shape, seed=4)
    monkeypatch.setattr(Agent, "inline_outcomes", False)
    slow = gs.run(shape, seed=4)
    for table in ("health", "writes", "streams"):
        a, b = fast.registry.frame(table), slow.registry.frame(table)
        assert len(a) > 20 and a.equals(b), table
    assert fast.propagation.equals(slow.propagation)
    assert slow.summary["events"] > fast.summary["events"] + 1_000


@pytest.mark.parametrize("response_ms", [0.0, 30.0])
def test_lazy_probes_equal_probing_every_interval(monkeypatch, response_ms):
    """A passing check left unprobed until the churn wakes it (``lazy_probes``) gives the same health, write
    and delivery tables, to the last bit, as probing every instance every interval, with far fewer events;
    also with answers that take time (an outcome event after each probe, times that drift by it)."""
    from meshsim.registry.agent import Agent

    if response_ms:
        add = Agent.add_instance

        def slow(self, *a, **kw):  # every probe answers after response_ms
            return add(self, *a, **{**kw, "probe_response_ms": response_ms})

        monkeypatch.setattr(Agent, "add_instance", slow)
    shape = gs.ScaleShape.sized(800, steady_ms=12_000.0, settle_ms=8_000.0, churn_per_s_per_1000=8.0,
                                churn_down_ms=7_000.0)
    lazy = gs.run(shape, seed=4)
    eager = gs.run(gs.ScaleShape(**{**vars(shape), "lazy_probes": False}), seed=4)
    for table in ("health", "writes", "streams"):
        a, b = lazy.registry.frame(table), eager.registry.frame(table)
        assert len(a) > 20 and a.equals(b), table
    assert set(lazy.registry.frame("health")["new"]) >= {"critical", "passing"}  # the churn failed checks
    assert lazy.propagation.equals(eager.propagation)
    assert lazy.summary["events"] < 0.85 * eager.summary["events"]  # 800 instances, 3-4 probes each skipped
