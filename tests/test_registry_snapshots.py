"""The registry's Raft log is compacted as hashicorp/raft does it: each server snapshots its catalog every
SnapshotInterval once the log grew by SnapshotThreshold, keeps TrailingLogs entries, restarts from its
snapshot, and a server that fell behind the leader's log is caught up by InstallSnapshot."""

from __future__ import annotations

from dataclasses import replace

from meshsim.core.catalog import Catalog, Register
from meshsim.core.raft import RaftConfig
from meshsim.registry.catalog import Registry

L = 1.0
#: Consul at raft_multiplier 1 with a tiny threshold, a short interval and a short trailing log
SMALL = replace(RaftConfig.profile("consul", raft_multiplier=1), snapshot_threshold=20, snapshot_interval_ms=500.0,
                trailing_logs=5)


def make(config=SMALL, seed=1) -> Registry:
    reg = Registry.standalone(servers=3, latency=L, seed=seed, config=config)
    reg.start()
    assert reg.run_until(lambda: reg.cluster.agreed_leader() is not None, 30_000)
    reg.run(1_000)
    return reg


def write_many(reg: Registry, n: int, start: int = 0) -> None:
    client = reg.client(reg.leader())
    calls = [client.register(f"web-{k}", "web") for k in range(start, start + n)]
    assert reg.run_until(lambda: all(c.done for c in calls), 60_000)
    assert all(c.ok for c in calls)


def digests(reg: Registry) -> dict:
    return {name: (cat.applied_index, cat.digest()) for name, cat in reg.catalogs().items()}


def test_the_log_stays_short_and_every_catalog_agrees():
    reg = make()
    write_many(reg, 120)
    reg.run(2_000)  # a few snapshot intervals
    for name, server in reg.cluster.servers.items():
        node = server.node
        assert server.snapshots_taken >= 1 and node.snapshot is not None
        # compaction keeps at most TrailingLogs before the snapshot, plus what arrived since
        assert node.first_index >= node.snapshot.index - SMALL.trailing_logs + 1
        assert len(node.log) < 20 + SMALL.trailing_logs + 20
        assert isinstance(node.snapshot.data, type(reg.catalogs()[name].snapshot()))
    assert len(set(digests(reg).values())) == 1


def test_a_restarted_server_comes_back_from_its_snapshot():
    reg = make()
    write_many(reg, 60)
    reg.run(2_000)
    f = next(s for s in reg.cluster.servers if s != reg.leader())
    before = reg.catalogs()[f].digest()
    snap = reg.cluster.servers[f].node.snapshot
    assert snap is not None
    reg.cluster.restart(f)
    reg.run(2_000)
    assert reg.catalogs()[f].digest() == before == reg.catalogs()[reg.leader()].digest()
    ev = reg.cluster.frame("events")
    assert ((ev.server == f) & (ev.event == "snapshot")).any()


def test_a_server_behind_the_leaders_log_is_caught_up_by_install_snapshot():
    reg = make()
    write_many(reg, 10)
    f = next(s for s in reg.cluster.servers if s != reg.leader())
    reg.cluster.crash(f)
    write_many(reg, 120, start=10)
    reg.run(2_000)
    lead = reg.cluster.servers[reg.leader()].node
    assert lead.first_index > reg.cluster.servers[f].persisted.log[-1].index + 1  # its next entry is gone
    reg.cluster.start(servers=[f])
    reg.run(3_000)
    server = reg.cluster.servers[f]
    assert server.snapshots_installed >= 1
    assert reg.catalogs()[f].digest() == reg.catalogs()[reg.leader()].digest()
    assert len(reg.catalogs()[f].service_instances("web")) == 130


def test_snapshot_and_restore_round_trip_the_catalog():
    cat = Catalog()
    for k in range(1, 30):
        cat.apply(k, Register(f"i-{k}", f"svc-{k % 3}", "h"))
    back = Catalog.restore(cat.snapshot())
    assert back == cat and back.digest() == cat.digest() and back.applied_index == 29
    assert cat.snapshot().instances == 29


def test_without_a_threshold_nothing_is_compacted():
    reg = make(config=replace(SMALL, snapshot_threshold=None))
    write_many(reg, 60)
    reg.run(2_000)
    assert all(s.node.snapshot is None and s.node.first_index == 1 for s in reg.cluster.servers.values())
