"""One Raft leader crash, kept whole for pictures: the cluster, the crash time and what followed.

:func:`meshsim.experiments.raft_elections.failover_trial` runs thousands of
crashes and keeps one row of numbers each; a notebook that wants to *look* at
one failover (a Raft timeline, the messages of a split vote) needs the
:class:`~meshsim.registry.raft_shell.RaftCluster` itself.  :func:`crash_leader`
builds a fresh cluster with the ``paper`` profile (timeouts in
[min, max) ms, heartbeat min/2, no Pre-Vote), elects a leader, crashes it
``crash_offset_ms`` after one of its heartbeats and runs until every survivor
follows a new leader, plus ``tail_ms``.  Messages are recorded from one
heartbeat before the crash when the cluster can record them
(``RaftCluster.record_messages``).

>>> run = crash_leader(150, 300, seed=3)
>>> run.new_leader != run.old_leader, run.terms >= 1, run.leader_ms > 75
(True, True, True)
>>> run.cluster.frame("events").query("event == 'crash'")["server"].tolist() == [run.old_leader]
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..registry.raft_shell import DelaySpec, RaftCluster, make_network
from ..rng import RandomStreams
from ..sim.kernel import Kernel
from .raft_elections import DEFAULT_DISK, DEFAULT_LATENCY, paper_config

__all__ = ["Failover", "crash_leader"]


@dataclass
class Failover:
    """A crashed leader and the election after it (times in ms of simulated time)."""

    cluster: RaftCluster
    crash_ms: float  #: when the leader was crashed
    old_leader: str
    new_leader: str | None  #: None when no leader was agreed within ``max_ms``
    old_term: int
    elected_ms: float  #: crash until a survivor became leader (NaN if none)
    leader_ms: float  #: crash until every survivor followed it (the paper's measure; NaN if none)
    terms: int  #: terms used after the crash (1 = the first election won)
    split_votes: int  #: terms after the crash with two or more candidates and no leader

    @property
    def window_ms(self) -> tuple[float, float]:
        """(start, end) of a window that shows the failover: one heartbeat before the crash to the end."""
        hb = self.cluster.config.heartbeat_interval_ms
        return self.crash_ms - hb, float(self.cluster.kernel.now)


def crash_leader(timeout_min_ms: float = 150.0, timeout_max_ms: float = 300.0, seed: int = 1, *,
                 servers: int = 5, latency: DelaySpec = DEFAULT_LATENCY, disk: DelaySpec = DEFAULT_DISK,
                 crash_offset_ms: float | None = None, tail_ms: float | None = None,
                 record_messages: bool = True, max_ms: float = 60_000.0, **config: Any) -> Failover:
    """Crash the leader of a fresh ``servers``-member cluster once and keep the cluster (see module doc).

    ``crash_offset_ms`` is the crash time after the leader's heartbeat
    broadcast (default: half a heartbeat interval); ``tail_ms`` how long to
    run after every survivor follows the new leader (default: one heartbeat
    interval).  ``config`` overrides fields of the ``paper`` profile.
    """
    cfg = paper_config(timeout_min_ms, timeout_max_ms, **config)
    hb = cfg.heartbeat_interval_ms
    streams = RandomStreams(seed)
    kernel = Kernel()
    hosts = [f"s{i}" for i in range(servers)]
    cluster = RaftCluster(kernel, make_network(kernel, hosts, latency, streams), hosts, cfg, streams,
                          disk_delay=disk)
    # s0 boots first so that it wins the first election even with barely randomized timeouts
    cluster.start(servers=hosts[:1])
    kernel.call_at(cfg.election_timeout_min_ms / 2.0, lambda _a: cluster.start(servers=hosts[1:]))
    if not cluster.run_until(lambda: cluster.agreed_leader() is not None, 100 * cfg.election_timeout_max_ms + 5_000):
        raise RuntimeError(f"no initial leader with {cfg}")
    old = cluster.agreed_leader()
    cluster.run(2 * hb)  # settle: a few heartbeats
    t_hb = cluster.servers[old].timer_time  # the leader's next heartbeat broadcast
    cluster.run_to(t_hb)
    offset = hb / 2.0 if crash_offset_ms is None else float(crash_offset_ms)
    if not 0.0 <= offset < hb:
        raise ValueError(f"crash_offset_ms must be in [0, heartbeat={hb:g} ms), got {offset!r}")
    if record_messages and hasattr(cluster, "record_messages"):
        cluster.record_messages(start_ms=t_hb - 1e-9)
    cluster.run_to(t_hb + offset)
    t_crash = kernel.now
    old_term = cluster.servers[old].term
    n_events = len(cluster.events["time"])
    cluster.crash(old)

    def done() -> bool:
        lead = cluster.agreed_leader()
        return lead is not None and cluster.servers[lead].term > old_term

    ok = cluster.run_until(done, max_ms)
    t_done = kernel.now
    new = cluster.agreed_leader() if ok else None
    lc = cluster.leader_changes
    firsts = [t for t, term in zip(lc["time"], lc["term"]) if term > old_term]
    cands: dict[int, set] = {}
    leader_terms = set(term for term in lc["term"] if term > old_term)
    ev = cluster.events
    for i in range(n_events, len(ev["time"])):
        if ev["event"][i] == "candidate":
            cands.setdefault(ev["term"][i], set()).add(ev["server"][i])
    top = max(s.term for name, s in cluster.servers.items() if name != old)
    cluster.run(hb if tail_ms is None else float(tail_ms))
    return Failover(
        cluster=cluster, crash_ms=t_crash, old_leader=old, new_leader=new, old_term=old_term,
        elected_ms=(firsts[0] - t_crash) if firsts else math.nan,
        leader_ms=(t_done - t_crash) if ok else math.nan,
        terms=top - old_term,
        split_votes=sum(1 for t, v in cands.items() if len(v) >= 2 and t not in leader_terms),
    )
