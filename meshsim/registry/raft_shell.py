"""A SimPy shell around the pure Raft core (:mod:`meshsim.core.raft`).

:class:`RaftServer` gives one :class:`~meshsim.core.raft.RaftNode` a clock, a
disk and the simulated network: it delivers received messages with
``node.receive(msg, now)``, keeps ONE kernel timer armed at the node's
``Ready.next_deadline`` (cancelled and replaced when the deadline changes),
writes the node's persistent state when a ``Ready`` asks for it and only
then sends that ``Ready``'s messages and applies its committed entries.  Disk
writes take ``disk_delay`` (a constant, a :class:`~meshsim.distributions.Distribution`
or a distribution spec; default 0) and are sequential per server; the outputs
of later ``Ready``s queue behind a pending write, in order, as in etcd's
Ready loop.  A crash drops the node, its timer, its queued outputs and any
write not yet completed; the last completed write survives and a restart
builds a new node from it (volatile state reset).

On top of the network's own loss, partitions and latency a server can
duplicate a message (probability ``duplicate``; the copy arrives
``duplicate_delay`` later) or hold it back before handing it to the network
(probability ``reorder``, extra ``reorder_delay``) so that later messages
overtake it.  ``tick_ms`` switches to etcd's logical clock: the node sees
time only in whole ticks of its own (randomly phased) tick grid, its timers
fire on that grid and election timeouts are whole numbers of ticks
(``{k, ..., 2k-1}`` for ``[T, 2T)``), which is how etcd-io/raft counts
``electionElapsed``, also for CheckQuorum's "heard from a leader recently".

:class:`RaftCluster` builds the servers on given hosts, finds the leader,
proposes, crashes, restarts and partitions, and records what happened as
columnar lists (``leader_changes``, ``events``, ``terms``, ``commits``, ``proposals``,
unavailability ``windows``).  It runs on a bare :class:`~meshsim.sim.kernel.Kernel`
with a :class:`~meshsim.sim.network.Network` (see :func:`make_network`) or
inside a :class:`~meshsim.sim.simulation.Simulation` as a component
(``sim.attach(cluster)``).  A scenario's host faults only take a host off
the network; to crash the Raft process itself use :meth:`RaftCluster.crash`
(or schedule it with :meth:`RaftCluster.at`).  :meth:`RaftCluster.record_messages`
records every message with its arrival (off by default; see :class:`MessageLog`).  All randomness comes from named
streams (``"{name}/{server}/node{k}"``, ``.../net``, ``.../disk``, ``.../tick``).

>>> from meshsim.core.raft import RaftConfig
>>> from meshsim.rng import RandomStreams
>>> from meshsim.sim.kernel import Kernel
>>> k, streams = Kernel(), RandomStreams(1)
>>> hosts = ["a", "b", "c"]
>>> c = RaftCluster(k, make_network(k, hosts, latency=1.0, streams=streams), hosts,
...                 RaftConfig.profile("paper"), streams, disk_delay=1.0)
>>> c.start()
>>> c.run_until(lambda: c.leader() is not None, 5_000)
True
>>> index = c.propose("x")
>>> c.run(100.0)
>>> [c.servers[h].node.commit_index for h in hosts] == [index] * 3
True
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..core.raft import (LEADER, AppendEntries, AppendEntriesResponse, Entry, Message, PersistentState, RaftConfig,
                         RaftNode, Ready, RequestVote, RequestVoteResponse, TickElectionTimeout)
from ..distributions import Constant, Distribution, Exponential, from_spec
from ..rng import RandomStreams, Uniforms
from ..sim.kernel import Kernel, Timer
from ..sim.network import Network

__all__ = ["MessageLog", "RaftCluster", "RaftServer", "as_delay", "make_network"]

_INF = math.inf
_EPS = 1e-9

DelaySpec = float | int | Distribution | Mapping | str | None
#: observer(server, call, ready): called after every call into a node (ready is that call's output)
Observer = Callable[["RaftServer", str, Ready], Any]
#: intercept(src, dst, msg) -> msg to send instead, or None to drop it
Intercept = Callable[[str, str, Message], Message | None]


def as_delay(spec: DelaySpec, what: str = "delay") -> Distribution | None:
    """A delay given as ms (number), Distribution or distribution spec; None for "no delay".

    >>> as_delay(0) is None, as_delay(1.5), as_delay({"dist": "uniform", "low": 1, "high": 2}).mean
    (True, Constant(value=1.5), 1.5)
    """
    if spec is None:
        return None
    if isinstance(spec, Distribution):
        return spec
    if isinstance(spec, (int, float)):
        if spec < 0 or not math.isfinite(spec):
            raise ValueError(f"{what} must be a finite number of ms >= 0, got {spec!r}")
        return Constant(float(spec)) if spec > 0 else None
    return from_spec(spec, what)


def make_network(kernel: Kernel, hosts: Iterable[str], latency: DelaySpec = 0.1,
                 streams: RandomStreams | None = None, loss: float = 0.0,
                 zone: str = "zone-0", region: str = "region-0") -> Network:
    """A :class:`Network` of ``hosts`` in one zone with one-way ``latency`` (ms, Distribution or spec).

    Builds the spec dict that a scenario's ``network`` section would give,
    without a scenario file.  ``loss`` is the probability that any message is lost.

    >>> k = Kernel()
    >>> net = make_network(k, ["a", "b"], latency={"dist": "uniform", "low": 1, "high": 2})
    >>> 1.0 <= net.latency("a", "b") <= 2.0, net.relation("a", "b")
    (True, 'same_zone')
    """
    dist = as_delay(latency, "latency") or Constant(0.0)
    if not 0.0 <= loss <= 1.0:
        raise ValueError(f"loss must be a probability, got {loss!r}")
    spec = {"enabled": True, "latency": {"same_host": dist, "same_zone": dist}, "loss": float(loss), "links": []}
    hosts = list(hosts)
    return Network(kernel, {h: zone for h in hosts}, {zone: region}, spec,
                   streams if streams is not None else RandomStreams(0))


class RaftServer:
    """One Raft server on one host (see module doc).  Built by :class:`RaftCluster`."""

    def __init__(self, cluster: RaftCluster, name: str, host: str):
        self.cluster = cluster
        self.name = name
        self.host = host
        self.kernel = cluster.kernel
        self._kernel_time = cluster.kernel.clock  # Kernel.now without the property call
        self.node: RaftNode | None = None
        #: the last completed disk write (what a restart comes back with)
        self.persisted = PersistentState()
        #: bumped by every crash; outputs and timers of an older incarnation are void
        self.incarnation = 0
        self.starts = 0
        self.known_leader: str | None = None
        self.seen_term = -1  # the node's term when availability was last checked
        self.disk_writes = 0
        #: the last log index this server's state machine applied (a restart comes back from its snapshot)
        self.applied = 0
        #: snapshots taken (RaftNode.compact) and installed (from the leader)
        self.snapshots_taken = self.snapshots_installed = 0
        self._snap_rng: Any = None
        self._timer: Timer | None = None
        self._timer_at = 0.0  # kernel time the timer fires
        self._streams: dict[str, list[float]] = {}  # peer -> its connection's last arrival (Network.send)
        self._deadline: float | None = None
        self._disk_free = -_INF
        self._out_tail = -_INF
        self._queue: deque = deque()
        prefix = f"{cluster.name}/{name}"
        streams = cluster.streams
        self._net_rng = streams.generator(f"{prefix}/net") if (cluster.duplicate or cluster.reorder) else None
        self._disk = cluster.disk_delay.stream(streams.generator(f"{prefix}/disk"), 256) if cluster.disk_delay else None
        self._dup = cluster.duplicate_delay.stream(self._net_rng, 256) if cluster.duplicate else None
        self._hold = cluster.reorder_delay.stream(self._net_rng, 256) if cluster.reorder else None
        self.tick = cluster.tick_ms
        self.phase = float(streams.generator(f"{prefix}/tick").uniform(0.0, self.tick)) if self.tick else 0.0

    # ------------------------------------------------------------ views
    @property
    def up(self) -> bool:
        return self.node is not None

    @property
    def role(self) -> str | None:
        return self.node.role if self.node is not None else None

    @property
    def term(self) -> int:
        """The live node's term, else the persisted one."""
        return self.node.term if self.node is not None else self.persisted.term

    @property
    def timer_deadline(self) -> float | None:
        """The armed deadline in the node's clock (see :meth:`clock`; None when no timer is armed)."""
        return self._deadline

    @property
    def timer_time(self) -> float | None:
        """When the armed timer fires in kernel time (the deadline, or in tick mode the tick at or after it)."""
        return None if self._deadline is None else max(self.kernel.now, self._fire_time(self._deadline))

    def __repr__(self) -> str:
        return f"RaftServer({self.name!r}, {self.node!r})"

    # ------------------------------------------------------------ clock
    def clock(self) -> float:
        """The time the node sees: kernel time, or in tick mode ``tick * (ticks so far)``.

        Ticks fall at kernel times ``phase + i * tick``; the node's clock counts
        them in whole multiples of ``tick`` (exact for whole-ms ticks, so "10
        ticks since the heartbeat" compares equal to a 10-tick timeout as
        etcd's integer tick counters do)."""
        t = self._kernel_time()
        if not self.tick:
            return t
        return math.floor((t - self.phase) / self.tick + _EPS) * self.tick

    def _fire_time(self, deadline: float) -> float:
        """Kernel time at which a node deadline is due."""
        if not self.tick:
            return deadline
        return self.phase + math.ceil(deadline / self.tick - _EPS) * self.tick

    # ------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Boot (or reboot after :meth:`crash`) from the persisted state."""
        if self.node is not None:
            return
        c = self.cluster
        rng: Any = c.streams.generator(f"{c.name}/{self.name}/node{self.starts}")
        hook = TickElectionTimeout(rng, self.tick) if self.tick else None
        self.node = RaftNode(self.name, c.voters, c.config, Uniforms(rng), persisted=self.persisted,
                             election_timeout=hook)
        self._disk_free = self._out_tail = -_INF
        self.seen_term = -1
        c._event(self, "start" if self.starts == 0 else "restart")
        self.starts += 1
        self.applied = 0
        self._handle("start", self.node.start(self.clock()))
        if c.config.snapshot_threshold is not None:
            # hashicorp/raft's runSnapshots: every randomTimeout(SnapshotInterval), snapshot if the log grew
            # by SnapshotThreshold since the last one
            if self._snap_rng is None:
                self._snap_rng = Uniforms(c.streams.generator(f"{c.name}/{self.name}/snapshots"))
            self._arm_snapshot()

    def crash(self) -> None:
        """Lose the node, its timer, queued outputs and unfinished writes; keep :attr:`persisted`."""
        if self.node is None:
            return
        self.node = None
        self.incarnation += 1
        self._queue.clear()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._deadline = None
        self.known_leader = None
        self.cluster._event(self, "crash")
        self.cluster._check_available()

    def _arm_snapshot(self) -> None:
        iv = self.cluster.config.snapshot_interval_ms
        self.kernel.call_later(self._snap_rng.uniform(iv, 2.0 * iv), self._snapshot_tick, self.incarnation)

    def _snapshot_tick(self, incarnation: int) -> None:
        if incarnation != self.incarnation or self.node is None:
            return  # crashed since: the restart arms its own
        if self.node.should_snapshot():
            self.snapshot()
        self._arm_snapshot()

    def snapshot(self) -> Ready | None:
        """Take a snapshot of the state machine now (what the snapshot timer does when the log has grown)."""
        if self.node is None:
            return None
        data, index = self.cluster._snapshot_data(self)
        if index <= (self.node.snapshot.index if self.node.snapshot is not None else 0):
            return None
        self.snapshots_taken += 1
        return self._handle("compact", self.node.compact(data, self.clock(), index=index))

    def restart(self) -> None:
        """Crash (if up) and start again from the persisted state."""
        self.crash()
        self.start()

    # ------------------------------------------------------------ calls into the node
    def propose(self, data: Any) -> Ready | None:
        """``node.propose`` (None when down)."""
        if self.node is None:
            return None
        return self._handle("propose", self.node.propose(data, self.clock()))

    def read_index(self, request_id: Any) -> Ready | None:
        if self.node is None:
            return None
        return self._handle("read", self.node.read_index(request_id, self.clock()))

    def _deliver(self, msg: Message) -> None:
        if self.node is None:
            self.cluster.dropped["server_down"] += 1
            return
        self.cluster.delivered += 1
        self._handle("receive", self.node.receive(msg, self.clock()))

    def _on_timer(self, incarnation: int) -> None:
        if incarnation != self.incarnation or self.node is None:
            return
        self._timer = None
        if self._deadline is None:
            return  # disarmed since (the timer is left to fire: see _arm)
        due = self._fire_time(self._deadline)
        if due > self.kernel.now:  # the deadline moved later since the timer was set: follow it
            self._timer_at = due
            self._timer = self.kernel.call_at(due, self._on_timer, self.incarnation)
            return
        t = self.clock()
        if self._deadline > t:
            t = self._deadline
        self._deadline = None
        self._handle("timer", self.node.on_timer(t))

    def _arm(self, deadline: float | None) -> None:
        """Make the node's timer due at ``deadline``.

        A follower's election deadline moves later on every heartbeat; its
        timer is not replaced each time but left to fire and then set again
        for the new deadline, so a heartbeat costs no timer.  Only a deadline
        that moved earlier needs a new timer.
        """
        self._deadline = deadline
        if deadline is None:
            return
        due = self._fire_time(deadline)
        if self._timer is not None:
            if self._timer_at <= due:
                return
            self._timer.cancel()
        self._timer_at = due
        self._timer = self.kernel.call_at(due, self._on_timer, self.incarnation)

    # ------------------------------------------------------------ outputs
    def _handle(self, call: str, ready: Ready) -> Ready:
        node = self.node
        now = self._kernel_time()
        state = None
        if ready.persist:
            state = node.persistent_state()
            d = next(self._disk) if self._disk is not None else 0.0
            done = max(now, self._disk_free) + d
            self._disk_free = done
            release = max(done, self._out_tail)
        else:
            release = max(now, self._out_tail)
        self._out_tail = release
        # arm and record first: releasing may re-enter this server (a network with no latency)
        self._arm(ready.next_deadline)
        self.cluster._observe(self, call, ready)
        if release <= now and not self._queue:
            self._release(state, ready)
        else:  # behind a write, or behind outputs still waiting for one: keep the order
            self._queue.append((release, state, ready))
            self.kernel.call_at(release, self._drain, self.incarnation)
        return ready

    def _drain(self, incarnation: int) -> None:
        # one event per queued batch, scheduled in queue order at non-decreasing times: each releases the
        # head, so the order holds even when two equal release times round differently
        if incarnation != self.incarnation or not self._queue:
            return  # crashed before the write completed: the write and the outputs are lost
        _, state, ready = self._queue.popleft()
        self._release(state, ready)

    def _release(self, state: PersistentState | None, ready: Ready) -> None:
        if state is not None:
            self.persisted = state
            self.disk_writes += 1
        for to, msg in ready.messages:
            self._send(to, msg)
        if ready.snapshot is not None:  # restore the state machine (after a restart, or sent by the leader)
            self.applied = ready.snapshot.index
            self.cluster._restored(self, ready.snapshot)
        if ready.committed:
            self.applied = ready.committed[-1].index
            self.cluster._applied(self, ready.committed)
        if ready.reads or ready.failed_reads:
            self.cluster._reads(self, ready)

    def _send(self, to: Any, msg: Message) -> None:
        c = self.cluster
        dst = c.servers.get(to)
        if c.intercept is not None:
            msg = c.intercept(self.name, to, msg)
        if msg is None or dst is None:
            c.dropped["intercepted" if dst is not None else "unknown_server"] += 1
            return
        c.sent += 1
        if c.message_log is not None:  # opt-in (RaftCluster.record_messages): the only cost when off
            c.message_log.sent(self.name, to, msg)
        if self._hold is None and self._dup is None:  # no reorder or duplicate faults: onto the peer's stream
            stream = self._streams.get(to)
            if stream is None:
                stream = self._streams[to] = [0.0]
            c.network.send(self.host, dst.host, dst._deliver, msg, c._on_drop, stream)
            return
        extra = 0.0
        if self._hold is not None and self._net_rng.random() < c.reorder:
            extra = next(self._hold)
            c.reordered += 1
        self._transmit(dst, msg, extra)
        if self._dup is not None and self._net_rng.random() < c.duplicate:
            c.duplicated += 1
            self._transmit(dst, msg, extra + next(self._dup))

    def _transmit(self, dst: RaftServer, msg: Message, extra: float) -> None:
        if extra > 0:
            self.kernel.call_later(extra, self._transmit_now, (dst, msg))
        else:  # in order per peer, as over hashicorp/raft's and etcd's TCP streams
            stream = self._streams.get(dst.name)
            if stream is None:
                stream = self._streams[dst.name] = [0.0]  # the same streams as _send's
            self.cluster.network.send(self.host, dst.host, dst._deliver, msg, self.cluster._on_drop, stream)

    def _transmit_now(self, arg: tuple) -> None:
        # held back by the reorder fault: it overtakes the stream on purpose
        dst, msg = arg
        self.cluster.network.send(self.host, dst.host, dst._deliver, msg, self.cluster._on_drop)


def _columns(*names: str) -> dict[str, list]:
    return {n: [] for n in names}


class MessageLog:
    """The Raft messages a cluster sent in a window (:meth:`RaftCluster.record_messages`).

    One row per message handed to the network: ``[send_ms, arrive_ms, src, dst, msg, fate]``;
    ``fate`` is ``"in_flight"`` until it arrives (``"delivered"``, or ``"server_down"`` when the
    receiving process is crashed) or the network drops it (``"partitioned"``, ``"network_loss"``,
    ``"host_down"``; ``arrive_ms`` stays NaN).  Copies made by the ``duplicate`` fault are not rows.
    Arrivals and drops are caught by per-instance hooks installed here, so a cluster that does not
    record pays nothing but the ``message_log is None`` check in ``RaftServer._send``.
    """

    COLUMNS = ("send_ms", "arrive_ms", "src", "dst", "kind", "term", "entries", "ok", "delivered", "fate")

    def __init__(self, cluster: RaftCluster | None, start_ms: float | None = None, end_ms: float | None = None):
        self.cluster = cluster
        self.start_ms = cluster.kernel.now if start_ms is None and cluster is not None else (start_ms or 0.0)
        self.end_ms = _INF if end_ms is None else float(end_ms)
        self.rows: list[list] = []
        self._pending: dict[int, deque] = {}  # id(msg) -> rows waiting for it (the row keeps msg alive)
        if cluster is None:
            return
        for s in cluster.servers.values():
            s._deliver = self._arrival_hook(s)  # shadows the method on this instance only
        cluster._on_drop = self._drop_hook(cluster)

    def sent(self, src: str, dst: str, msg: Message) -> None:
        now = self.cluster.kernel.now
        if self.start_ms <= now <= self.end_ms:
            self._pending.setdefault(id(msg), deque()).append(len(self.rows))
            self.rows.append([now, math.nan, src, dst, msg, "in_flight"])

    def _take(self, msg: Message) -> list | None:
        q = self._pending.get(id(msg))
        if not q:
            return None
        row = self.rows[q.popleft()]
        if not q:
            del self._pending[id(msg)]
        return row if row[4] is msg else None

    def _arrival_hook(self, server: RaftServer) -> Callable[[Message], None]:
        deliver = RaftServer._deliver

        def arrive(msg: Message) -> None:
            row = self._take(msg)
            if row is not None:
                row[1] = self.cluster.kernel.now
                row[5] = "delivered" if server.node is not None else "server_down"
            deliver(server, msg)
        return arrive

    def _drop_hook(self, cluster: RaftCluster) -> Callable[[Any, str], None]:
        on_drop = type(cluster)._on_drop

        def drop(msg: Any, reason: str) -> None:
            row = self._take(msg)
            if row is not None:
                row[5] = reason
            on_drop(cluster, msg, reason)
        return drop

    def __len__(self) -> int:
        return len(self.rows)

    def frame(self):
        """The rows as a DataFrame with columns :attr:`COLUMNS`; ``kind`` is RequestVote, PreVote,
        RequestVoteReply, PreVoteReply, AppendEntries (with entries), heartbeat (without) or
        AppendEntriesReply; ``ok`` is the vote granted / append accepted (None for requests)."""
        import pandas as pd

        out = []
        for send, arrive, src, dst, m, fate in self.rows:
            entries, ok = 0, None
            if isinstance(m, AppendEntries):
                entries = len(m.entries)
                kind = "AppendEntries" if entries else "heartbeat"
            elif isinstance(m, AppendEntriesResponse):
                kind, ok = "AppendEntriesReply", bool(m.success)
            elif isinstance(m, RequestVote):
                kind = "PreVote" if m.pre_vote else "RequestVote"
            elif isinstance(m, RequestVoteResponse):
                kind, ok = ("PreVoteReply" if m.pre_vote else "RequestVoteReply"), bool(m.granted)
            else:
                kind = type(m).__name__
            out.append((send, arrive, src, dst, kind, getattr(m, "term", None), entries, ok,
                        fate == "delivered", fate))
        return pd.DataFrame(out, columns=list(self.COLUMNS))


class RaftCluster:
    """Raft servers on hosts of a simulated network; see the module doc.

    ``sim_or_kernel`` is a :class:`~meshsim.sim.simulation.Simulation` (its
    kernel, network and streams are used; call ``sim.attach(cluster)`` so the
    servers start with the run) or a :class:`Kernel` (then pass ``network``
    and ``streams`` and call :meth:`start`).  ``servers`` are host names
    (each server is named after its host) or a ``{server: host}`` mapping.
    """

    def __init__(self, sim_or_kernel: Any, network: Network | None = None,
                 servers: Sequence[str] | Mapping[str, str] = ("raft-0", "raft-1", "raft-2"),
                 config: RaftConfig | None = None, streams: RandomStreams | None = None, *,
                 disk_delay: DelaySpec = 0.0, duplicate: float = 0.0, duplicate_delay: DelaySpec = None,
                 reorder: float = 0.0, reorder_delay: DelaySpec = None, tick_ms: float | None = None,
                 name: str = "raft", zone: str | None = None):
        if isinstance(sim_or_kernel, Kernel):
            self.kernel = sim_or_kernel
            self.sim = None
        elif hasattr(sim_or_kernel, "kernel") and hasattr(sim_or_kernel, "network"):
            self.sim = sim_or_kernel
            self.kernel = sim_or_kernel.kernel
            network = network if network is not None else sim_or_kernel.network
            streams = streams if streams is not None else sim_or_kernel.streams
        else:
            raise TypeError(f"RaftCluster needs a Simulation or a Kernel, got {type(sim_or_kernel).__name__}")
        if network is None:
            raise ValueError("a RaftCluster on a bare Kernel needs a network (see make_network)")
        self.network = network
        self.streams = streams if streams is not None else RandomStreams(0)
        self.config = config if config is not None else RaftConfig.profile("etcd")
        self.name = name
        for p, what in ((duplicate, "duplicate"), (reorder, "reorder")):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{what} must be a probability, got {p!r}")
        if tick_ms is not None and not tick_ms > 0:
            raise ValueError(f"tick_ms must be positive, got {tick_ms!r}")
        self.disk_delay = as_delay(disk_delay, "disk_delay")
        self.duplicate, self.reorder = float(duplicate), float(reorder)
        self.duplicate_delay = as_delay(duplicate_delay, "duplicate_delay") or Exponential(10.0)
        self.reorder_delay = as_delay(reorder_delay, "reorder_delay") or Exponential(10.0)
        self.tick_ms = float(tick_ms) if tick_ms else None
        mapping = dict(servers) if isinstance(servers, Mapping) else {s: s for s in servers}
        if len(mapping) < 1:
            raise ValueError("a RaftCluster needs at least one server")
        for host in mapping.values():
            if host not in network.host_zone:
                if zone is None:
                    known = ", ".join(sorted(network.host_zone)[:10])
                    raise ValueError(f"host {host!r} is not on the network (hosts: {known}); "
                                     "pass zone=... to add it")
                network.add_host(host, zone)
        self.voters = tuple(mapping)
        self.majority = len(self.voters) // 2 + 1
        self.intercept: Intercept | None = None
        #: the messages recorded since :meth:`record_messages` (None: not recording)
        self.message_log: MessageLog | None = None
        self.observers: list[Observer] = []
        self.sent = self.delivered = self.duplicated = self.reordered = 0
        self.dropped: dict[str, int] = {"network_loss": 0, "partitioned": 0, "host_down": 0,
                                        "server_down": 0, "intercepted": 0, "unknown_server": 0}
        #: one row per server that became leader: time, leader, term
        self.leader_changes = _columns("time", "leader", "term")
        #: role changes, crashes, restarts, partitions: time, server, event, term
        self.events = _columns("time", "server", "event", "term")
        #: a server's term at each start and whenever it changed: time, server, term
        self.terms = _columns("time", "server", "term")
        #: every entry applied on every server: time, server, index, term, kind
        self.commits = _columns("time", "server", "index", "term", "kind")
        #: proposals accepted by a leader: time, server, index, term, commit_time (when that server applied it)
        self.proposals = _columns("time", "server", "index", "term", "commit_time")
        #: ReadIndex reads (RaftServer.read_index) answered or abandoned: time, server, request_id, index, ok
        self.reads = _columns("time", "server", "request_id", "index", "ok")
        #: intervals without a live leader followed by a majority of its term: [start, end] (end None = open)
        self.windows: list[list] = []
        self._proposal_row: dict[tuple, int] = {}
        self._available = False
        self._started_at: float | None = None
        self.servers: dict[str, RaftServer] = {s: RaftServer(self, s, h) for s, h in mapping.items()}

    # ------------------------------------------------------------ component protocol
    def start(self, sim: Any = None, servers: Iterable[str] | None = None) -> None:
        """Start every server (or only ``servers``) now; a Simulation calls this at the start of its run."""
        if self._started_at is None:
            self._started_at = self.kernel.now
            self.windows.append([self.kernel.now, None])
        for name in (self.servers if servers is None else servers):
            self.servers[name].start()

    def summary(self) -> dict[str, Any]:
        """Leader changes, elections, unavailability windows, commit latency, message counts."""
        now = self.kernel.now
        windows = [(a, now if b is None else b) for a, b in self.windows]
        durations = np.array([b - a for a, b in windows], dtype=float)
        lat = np.array(self.proposals["commit_time"], dtype=float) - np.array(self.proposals["time"], dtype=float)
        lat = lat[np.isfinite(lat)]
        pct = (lambda q: float(np.percentile(lat, q))) if lat.size else (lambda q: math.nan)
        lead = self.leader()
        return {
            "servers": len(self.servers),
            "leader": lead,
            "term": max(s.term for s in self.servers.values()),
            "leader_changes": len(self.leader_changes["time"]),
            "elections": sum(1 for e in self.events["event"] if e == "candidate"),
            "unavailable_ms": float(durations.sum()) if durations.size else 0.0,
            "unavailability_windows": [(float(a), float(b)) for a, b in windows],
            "max_unavailable_ms": float(durations.max()) if durations.size else 0.0,
            "proposals": len(self.proposals["time"]),
            "committed": int(lat.size),
            "commit_latency_ms": {"mean": float(lat.mean()) if lat.size else math.nan,
                                  "p50": pct(50), "p99": pct(99), "max": float(lat.max()) if lat.size else math.nan},
            "messages_sent": self.sent,
            "messages_delivered": self.delivered,
            "messages_dropped": dict(self.dropped),
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "disk_writes": sum(s.disk_writes for s in self.servers.values()),
        }

    # ------------------------------------------------------------ views
    def leader(self) -> str | None:
        """The live server that is leader in the highest term, if any."""
        best = None
        for s in self.servers.values():
            if s.node is not None and s.node.role == LEADER and (best is None or s.node.term > best.node.term):
                best = s
        return best.name if best is not None else None

    def up(self) -> list[str]:
        return [n for n, s in self.servers.items() if s.node is not None]

    def agreed_leader(self) -> str | None:
        """The leader every live server follows (same term, known as leader), else None."""
        lead = self.leader()
        if lead is None:
            return None
        term = self.servers[lead].node.term
        for s in self.servers.values():
            if s.node is not None and (s.node.term != term or s.node.leader_id != lead):
                return None
        return lead

    @property
    def available(self) -> bool:
        """A live leader exists and a majority of servers are live in its term."""
        return self._available

    def frame(self, which: str = "events"):
        """One of the recorded tables (leader_changes, events, commits, proposals, windows) as a DataFrame."""
        import pandas as pd

        if which == "windows":
            return pd.DataFrame([(a, b) for a, b in self.windows], columns=["start", "end"])
        if which == "messages":
            return (self.message_log or MessageLog(None)).frame()
        return pd.DataFrame(getattr(self, which))

    # ------------------------------------------------------------ actions
    def propose(self, data: Any, server: str | None = None) -> int | None:
        """Propose ``data`` at ``server`` (default: the leader); the entry's index, or None if refused."""
        name = server if server is not None else self.leader()
        if name is None:
            return None
        ready = self.servers[name].propose(data)
        if ready is None or ready.entry is None:
            return None
        return ready.entry.index

    def crash(self, server: str) -> None:
        self.servers[server].crash()

    def restart(self, server: str) -> None:
        self.servers[server].restart()

    def partition(self, *groups: Iterable[str]) -> None:
        """Only servers in the same group can talk; servers in no group are each alone.  Replaces any
        partition this cluster made before."""
        listed = [list(self.servers[s].host for s in g) for g in groups]
        seen = {h for g in listed for h in g}
        listed += [[s.host] for s in self.servers.values() if s.host not in seen]
        self.network.partition((self.name, "partition"), {"groups": listed, "oneway": False})
        self._event(None, "partition")

    def isolate(self, server: str) -> None:
        self.partition([s for s in self.servers if s != server], [server])

    def heal(self) -> None:
        self.network.heal((self.name, "partition"))
        self._event(None, "heal")

    def record_messages(self, start_ms: float | None = None, end_ms: float | None = None) -> MessageLog:
        """Record every message sent from ``start_ms`` to ``end_ms`` (default: from now on) with its
        arrival; read them with ``cluster.frame("messages")``.  Call before or during the run."""
        self.message_log = MessageLog(self, start_ms, end_ms)
        return self.message_log

    def at(self, time_ms: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Call ``fn(*args)`` at simulated time ``time_ms`` (e.g. ``cluster.at(5000, cluster.crash, "a")``)."""
        return self.kernel.call_at(time_ms, lambda _a: fn(*args))

    # ------------------------------------------------------------ running standalone
    def run(self, duration_ms: float) -> None:
        """Run the kernel for ``duration_ms`` more (standalone use)."""
        self.run_to(self.kernel.now + duration_ms)

    def run_to(self, time_ms: float) -> None:
        """Process every event up to and including ``time_ms``; the clock ends at ``time_ms``."""
        env = self.kernel.env
        while env.peek() <= time_ms:
            env.step()
        if time_ms > env.now:
            env.run(until=time_ms)

    def run_until(self, pred: Callable[[], bool], limit_ms: float) -> bool:
        """Step until ``pred()`` holds (True) or ``limit_ms`` passed (False)."""
        env = self.kernel.env
        end = env.now + limit_ms
        while not pred():
            if env.peek() > end:
                if end > env.now:
                    env.run(until=end)
                return pred()
            env.step()
        return True

    # ------------------------------------------------------------ bookkeeping
    def _event(self, server: RaftServer | None, event: str) -> None:
        ev = self.events
        ev["time"].append(self.kernel.now)
        ev["server"].append(server.name if server is not None else None)
        ev["event"].append(event)
        ev["term"].append(server.term if server is not None else None)

    def _observe(self, server: RaftServer, call: str, ready: Ready) -> None:
        node = server.node
        now = self.kernel.now
        if ready.role_changes:
            ev = self.events
            for role in ready.role_changes:
                ev["time"].append(now)
                ev["server"].append(server.name)
                ev["event"].append(role)
                ev["term"].append(node.term)
            if LEADER in ready.role_changes and node.role == LEADER:
                lc = self.leader_changes
                lc["time"].append(now)
                lc["leader"].append(server.name)
                lc["term"].append(node.term)
        server.known_leader = node.leader_id
        if ready.entry is not None and call == "propose":
            p = self.proposals
            self._proposal_row[(server.name, server.incarnation, ready.entry.index, ready.entry.term)] = len(p["time"])
            p["time"].append(now)
            p["server"].append(server.name)
            p["index"].append(ready.entry.index)
            p["term"].append(ready.entry.term)
            p["commit_time"].append(math.nan)
        for obs in self.observers:
            obs(server, call, ready)
        if ready.role_changes or node.term != server.seen_term:  # availability can change only then
            if node.term != server.seen_term:
                tc = self.terms
                tc["time"].append(now)
                tc["server"].append(server.name)
                tc["term"].append(node.term)
            server.seen_term = node.term
            self._check_available()

    def _applied(self, server: RaftServer, entries: list[Entry]) -> None:
        now = self.kernel.now
        c = self.commits
        for e in entries:
            c["time"].append(now)
            c["server"].append(server.name)
            c["index"].append(e.index)
            c["term"].append(e.term)
            c["kind"].append(e.kind)
            row = self._proposal_row.pop((server.name, server.incarnation, e.index, e.term), None)
            if row is not None:
                self.proposals["commit_time"][row] = now

    def _snapshot_data(self, server: RaftServer) -> tuple[Any, int]:
        """(state machine data, the index it is at) for a snapshot of ``server``; a bare cluster has no
        state machine: nothing, at the last index the server applied."""
        return None, server.applied

    def _restored(self, server: RaftServer, snapshot: Any) -> None:
        """``server`` restored its state machine from ``snapshot``: its own after a restart, or the leader's
        (InstallSnapshot).  A hook for the registry's catalog; recorded as a "snapshot" event."""
        self._event(server, "snapshot")
        server.snapshots_installed += 1

    def _reads(self, server: RaftServer, ready: Ready) -> None:
        r = self.reads
        now = self.kernel.now
        for rs in ready.reads:
            for col, v in zip(("time", "server", "request_id", "index", "ok"),
                              (now, server.name, rs.request_id, rs.index, True)):
                r[col].append(v)
        for rid in ready.failed_reads:
            for col, v in zip(("time", "server", "request_id", "index", "ok"), (now, server.name, rid, None, False)):
                r[col].append(v)

    def _check_available(self) -> None:
        ok = False
        for s in self.servers.values():
            n = s.node
            if n is not None and n.role == LEADER:
                t = n.term
                if sum(1 for o in self.servers.values() if o.node is not None and o.node.term == t) >= self.majority:
                    ok = True
                    break
        if ok != self._available:
            self._available = ok
            now = self.kernel.now
            if ok:
                if self.windows and self.windows[-1][1] is None:
                    self.windows[-1][1] = now
            else:
                self.windows.append([now, None])

    def _on_drop(self, msg: Any, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
