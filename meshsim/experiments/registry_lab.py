"""Registry reads and watches as small experiments: read modes under a partition, watch delays.

:func:`partition_reads` runs a standalone :class:`~meshsim.registry.catalog.Registry`
(3 servers, constant one-way latency, Consul's Raft timing with
``raft_multiplier=1``) with a writer that changes service ``web`` every
``write_every_ms`` and one reader per consistency mode that reads it every
``read_every_ms``.  Every reader talks to the same follower first.  During
``partition`` that follower cannot reach the leader (it still reaches the
other follower and the clients): its catalog stops advancing, so its *stale*
answers get older and older, while *default* and *consistent* reads must
reach the leader and wait for the hold timeout before the client moves on.
With latency L and no fault the theory is stale 2L, default 4L,
consistent 6L (``tests/test_registry.py``), see :func:`read_theory_ms`.

:func:`watch_delays` measures blocking-query watches: the delay from the
commit of a change (the leader applying it) to each watcher's callback.

>>> lab = partition_reads(duration_ms=6_000, partition=(2_000, 4_000), seed=2)
>>> t = lab.table().set_index(["mode", "phase"])
>>> bool(t.loc[("stale", "partition"), "stale_fraction"] > 0.5), int(t.loc[("consistent", "partition"), "stale_answers"])
(True, 0)
>>> read_theory_ms(1.0)
{'stale': 2.0, 'default': 4.0, 'consistent': 6.0}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..core.raft import RaftConfig
from ..registry.catalog import Registry
from ..registry.client import MODES

__all__ = ["PartitionReads", "partition_reads", "plot_partition_reads", "read_theory_ms", "watch_delays", "WATCH_LATENCY"]

#: one-way latency of :func:`watch_delays` (ms): uniform 0.5-1.5 ms, so a two-hop delay is triangular on 1-3 ms
WATCH_LATENCY: dict[str, Any] = {"dist": "uniform", "low": 0.5, "high": 1.5}

#: the network fault key this module uses for its partition
_FAULT = ("registry_lab", "partition")


def read_theory_ms(latency_ms: float) -> dict[str, float]:
    """Read latency per mode with a constant one-way latency L, client talking to a follower, no fault:
    stale 2L (there and back), default 4L (forwarded to the leader, which trusts its lease),
    consistent 6L (the leader first confirms leadership with a heartbeat round)."""
    return {"stale": 2.0 * latency_ms, "default": 4.0 * latency_ms, "consistent": 6.0 * latency_ms}


@dataclass
class PartitionReads:
    """What :func:`partition_reads` returns (times in ms)."""

    registry: Registry
    reads: pd.DataFrame  #: one row per read: the registry's read table plus ``phase``
    follower: str  #: the partitioned follower (every reader's first server)
    leader: str
    start_ms: float  #: the partition starts
    end_ms: float  #: and heals
    latency_ms: float

    def table(self) -> pd.DataFrame:
        """Per mode and phase (before, partition, after): reads, errors, latency p50/p99/max, stale answers
        (index lag > 0), their fraction, and the largest index and time lag."""
        rows = []
        for (mode, phase), g in self.reads.groupby(["mode", "phase"], sort=False):
            ok = g[g["ok"]]
            lat = ok["latency_ms"].to_numpy(float)
            stale = int((ok["lag_index"] > 0).sum())
            rows.append({"mode": mode, "phase": phase, "reads": len(g), "errors": int((~g["ok"]).sum()),
                         "p50_ms": float(np.median(lat)) if lat.size else math.nan,
                         "p99_ms": float(np.percentile(lat, 99)) if lat.size else math.nan,
                         "max_ms": float(lat.max()) if lat.size else math.nan,
                         "stale_answers": stale, "stale_fraction": stale / len(ok) if len(ok) else math.nan,
                         "max_lag_index": int(ok["lag_index"].max()) if len(ok) else 0,
                         "max_lag_ms": float(ok["lag_ms"].max()) if len(ok) else math.nan})
        order = {m: i for i, m in enumerate(("stale", "default", "consistent"))}
        phases = {"before": 0, "partition": 1, "after": 2}
        out = pd.DataFrame(rows)
        return out.sort_values(["mode", "phase"], key=lambda s: s.map(order if s.name == "mode" else phases),
                               ignore_index=True)


def partition_reads(seed: int = 1, *, latency_ms: float = 1.0, duration_ms: float = 30_000.0,
                    partition: tuple[float, float] = (10_000.0, 20_000.0), write_every_ms: float = 100.0,
                    read_every_ms: float = 100.0, modes: tuple[str, ...] = ("stale", "default", "consistent"),
                    disk_delay_ms: float = 0.5, raft_multiplier: int = 1, **registry: Any) -> PartitionReads:
    """Reads in each consistency mode while a follower is cut off from the leader (see module doc).

    Time 0 is when the first leader is agreed.  ``registry`` passes options on
    to :class:`Registry` (e.g. ``rpc_hold_timeout_ms``).
    """
    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown read mode {m!r}; valid: {', '.join(MODES)}")
    start, end = float(partition[0]), float(partition[1])
    if not 0.0 <= start <= end <= duration_ms:
        raise ValueError(f"partition must be 0 <= start <= end <= duration_ms, got {partition!r}")
    readers = {m: f"reader-{m}" for m in modes}
    reg = Registry.standalone(servers=3, clients=["writer", *readers.values()], latency=float(latency_ms), seed=seed,
                              config=RaftConfig.profile("consul", raft_multiplier=raft_multiplier),
                              disk_delay=disk_delay_ms, **registry)
    reg.start()
    if not reg.run_until(lambda: reg.cluster.agreed_leader() is not None, 60_000):
        raise RuntimeError("no leader elected")
    leader = reg.cluster.agreed_leader()
    follower = sorted(s for s in reg.cluster.servers if s != leader)[0]
    writer = reg.client("writer")
    writer.servers = [leader] + [s for s in writer.servers if s != leader]  # the writer is not cut off
    writer.register("web-0", "web", tags=("v0",))
    reg.run(200.0)
    t0 = reg.now
    kernel = reg.kernel
    clients = {}
    for m, host in readers.items():
        c = clients[m] = reg.client(host)
        c.servers = [follower] + [s for s in c.servers if s != follower]  # every reader starts at the follower

    def write(i: int) -> None:
        writer.register(f"web-{i % 5}", "web", tags=(f"v{i}",))
        if kernel.now + write_every_ms < t0 + duration_ms:
            kernel.call_later(write_every_ms, write, i + 1)

    def read(_arg: Any = None) -> None:
        for m in modes:
            clients[m].read("web", mode=m)
        if kernel.now + read_every_ms < t0 + duration_ms:
            kernel.call_later(read_every_ms, read)

    net = reg.network
    f_host, l_host = reg.cluster.servers[follower].host, reg.cluster.servers[leader].host
    kernel.call_at(t0 + start, lambda _a: net.partition(_FAULT, {"groups": [[f_host], [l_host]], "oneway": False}))
    kernel.call_at(t0 + end, lambda _a: net.heal(_FAULT))
    kernel.call_later(write_every_ms / 2.0, write, 1)
    kernel.call_later(read_every_ms, read)
    n_before = len(reg.reads)
    # run to the end, then long enough for reads held by the follower (rpc_hold_timeout) to finish
    reg.run(duration_ms + reg.rpc_hold_timeout_ms + reg.request_timeout_ms)
    df = reg.frame("reads").iloc[n_before:].reset_index(drop=True)
    df = df[df["host"].isin(set(readers.values()))].copy()
    df["invoked"] = df["invoked"] - t0
    df["time"] = df["time"] - t0
    df["phase"] = np.where(df["invoked"] < start, "before", np.where(df["invoked"] < end, "partition", "after"))
    df["ok"] = df["ok"].astype(bool)
    df = df.sort_values("invoked", kind="stable", ignore_index=True)
    return PartitionReads(reg, df, follower, leader, start, end, float(latency_ms))


def plot_partition_reads(lab: PartitionReads, ax=None):
    """Two panels over time (ms since the first leader): read latency per mode (log scale) and the index lag
    of each answer; the partition is shaded.  Returns the Figure."""
    from ..viz.style import FAULT_ALPHA, FAULT_COLOR, color_for, new_figure

    if ax is None:
        fig, axes = new_figure(2, 1, figsize=(8, 5.5), sharex=True)
    else:
        axes = ax
        fig = axes[0].figure
    df = lab.reads[lab.reads["ok"]]
    for i, (mode, g) in enumerate(df.groupby("mode", sort=False)):
        c = color_for(i)
        axes[0].plot(g["invoked"], g["latency_ms"], ".", ms=3, color=c, label=mode)
        axes[1].plot(g["invoked"], g["lag_index"], ".", ms=3, color=c, label=mode)
    for a in axes:
        a.axvspan(lab.start_ms, lab.end_ms, color=FAULT_COLOR, alpha=FAULT_ALPHA, lw=0,
                  label=f"{lab.follower} cut off from leader {lab.leader}")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("read latency (ms)")
    axes[0].set_title("reads served first by the follower; theory without fault: "
                      + ", ".join(f"{m} {v:g} ms" for m, v in read_theory_ms(lab.latency_ms).items()), fontsize=9)
    axes[1].set_ylabel("index lag of the answer (entries)")
    axes[1].set_xlabel("time (ms)")
    axes[0].legend(loc="upper left", markerscale=3)
    fig.tight_layout()
    return fig


def watch_delays(seed: int = 1, *, modes: tuple[str, ...] = ("stale", "default"), watchers: int = 6,
                 changes: int = 100, change_every_ms: float = 250.0, latency: Any = WATCH_LATENCY,
                 disk_delay_ms: float = 0.5, raft_multiplier: int = 1) -> pd.DataFrame:
    """Watch delays: ``watchers`` hosts per mode watch service ``web`` (blocking queries, their first server
    a follower) while a writer changes it ``changes`` times, every ``change_every_ms``; one-way
    ``latency`` in ms (a number or a distribution spec).

    One row per delivered change: mode, host, time, index, delay_ms (commit at the leader to the callback).
    A change reaches a parked query in two network hops whatever the mode: stale, leader -> follower
    (the commit) -> client; default, the query parks at the leader, whose answer goes leader ->
    follower (relay) -> client.  So the delay is the sum of two one-way latencies.

    >>> d = watch_delays(changes=20, watchers=2, latency=1.0)
    >>> sorted(d["delay_ms"].round(6).unique().tolist()), len(d)
    ([2.0], 80)
    """
    hosts = {m: [f"watch-{m}-{i}" for i in range(watchers)] for m in modes}
    allh = [h for hs in hosts.values() for h in hs]
    reg = Registry.standalone(servers=3, clients=["writer", *allh], latency=latency, seed=seed,
                              config=RaftConfig.profile("consul", raft_multiplier=raft_multiplier),
                              disk_delay=disk_delay_ms)
    reg.start()
    if not reg.run_until(lambda: reg.cluster.agreed_leader() is not None, 60_000):
        raise RuntimeError("no leader elected")
    leader = reg.cluster.agreed_leader()
    followers = sorted(s for s in reg.cluster.servers if s != leader)
    writer = reg.client("writer")
    writer.register("web-0", "web", tags=("v0",))
    reg.run(200.0)
    for m, hs in hosts.items():
        for i, h in enumerate(hs):
            c = reg.client(h)
            first = followers[i % len(followers)]
            c.servers = [first] + [s for s in c.servers if s != first]
            c.watch("web", lambda now, entries, index: None, mode=m)
    reg.run(100.0)
    for i in range(1, changes + 1):
        reg.kernel.call_later(i * change_every_ms, lambda k: writer.register("web-0", "web", tags=(f"v{k}",)), i)
    reg.run((changes + 1) * change_every_ms + 1_000.0)
    w = reg.frame("watches")
    w = w[~w["first"].astype(bool) & w["host"].str.startswith("watch-")].copy()
    w["mode"] = w["host"].str.split("-").str[1]
    return w[["mode", "host", "time", "index", "delay_ms"]].reset_index(drop=True)
