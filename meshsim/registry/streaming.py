"""Consul's streaming subscriptions in the registry: servers publish, subscribers keep materialized views.

The pure buffers, resume rule and views are in :mod:`meshsim.core.stream`
(with what Consul does and the sources read); this module runs them on the
simulated network:

* every server keeps an :class:`~meshsim.core.stream.EventPublisher` and
  publishes its catalog's changes when *it* applies them (one event per
  changed instance, at the entry's Raft index), so a stream served by a
  follower lags by that follower's replication delay, as Consul's followers
  serve subscriptions from their own state store;
* a :class:`Stream` (from :meth:`RegistryClient.stream
  <meshsim.registry.client.RegistryClient.stream>`) subscribes to one
  service at the server its host's client uses now (the server list the
  client's RPCs use: Consul's client agents route streaming through their
  router the same way), gets a snapshot or the events after its index, then
  each event as a message of its own with the network's latency, in order
  (the messages of one subscription travel on one connection);
* when its server crashes (a reset from the server's host), a message of the
  stream is lost, or a keepalive finds the server unreachable, the stream
  moves to the next server and re-subscribes with its view's index after
  Consul's ``submatview`` retry wait (:func:`~meshsim.core.stream.retry_wait_ms`:
  none for the first failure, then 1-2 s, 2-4 s, ... up to 60-120 s; reset
  by every update received);
* each server counts what it serves (:meth:`StreamHub.load`): subscriptions,
  snapshots, events and instances sent, beside the blocking queries the
  registry counts (:meth:`Registry.summary <meshsim.registry.catalog.Registry.summary>` ``load``).

>>> from meshsim.registry.catalog import Registry
>>> from meshsim.core.raft import RaftConfig
>>> reg = Registry.standalone(servers=3, clients=["app", "web-host"], latency=1.0, seed=1,
...                           config=RaftConfig.profile("consul", raft_multiplier=1))
>>> reg.start()
>>> reg.run_until(lambda: reg.cluster.agreed_leader() is not None, 10_000)
True
>>> seen = []
>>> s = reg.client("app").stream("web", lambda now, entries, index: seen.append((index, [e.id for e in entries])))
>>> w = reg.client("web-host").register("web-1", "web")
>>> reg.run(200)
>>> seen, s.view.snapshots, s.view.events
([(0, []), (2, ['web-1'])], 1, 1)
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from ..core.catalog import PASSING, ServiceEntry
from ..core.stream import Event, EventPublisher, MaterializedView, Snapshot, retry_wait_ms
from ..rng import Uniforms

__all__ = ["KEEPALIVE_MS", "Stream", "StreamHub", "deliveries_frame"]

#: how often a client agent checks that the servers of its streams are reachable (one yamux keepalive per agent)
KEEPALIVE_MS = 30_000.0


class _Conn:
    """One subscription on one server: the connection its messages travel on (FIFO)."""

    __slots__ = ("stream", "server", "incarnation", "fifo", "dead", "service", "ready_at")

    def __init__(self, stream: Stream, server: str, incarnation: int):
        self.stream = stream
        self.server = server
        self.incarnation = incarnation
        self.service = stream.service
        self.fifo = [0.0]
        self.dead = False
        self.ready_at = 0.0  # when the server's processors finish its last message (with server_cores)


class _Request:
    __slots__ = ("conn", "index")

    def __init__(self, conn: _Conn, index: int):
        self.conn, self.index = conn, index


def _zero_load() -> dict[str, int]:
    return {"subscriptions": 0, "resumes": 0, "snapshots": 0, "events": 0, "instances": 0}


class _Session:
    """The streams of one client agent share its connection to the servers (Consul multiplexes them on
    one yamux session), so one keepalive every :data:`KEEPALIVE_MS` checks them all: a stream whose
    server the host cannot reach (either way) is broken and moves on."""

    __slots__ = ("client", "streams", "on")

    def __init__(self, client: Any):
        self.client = client
        self.streams: dict[Stream, None] = {}  # an ordered set: deterministic
        self.on = False

    @staticmethod
    def of(client: Any) -> _Session:
        sess = getattr(client, "_stream_session", None)
        if sess is None:
            sess = client._stream_session = _Session(client)
        return sess

    def add(self, stream: Stream) -> None:
        self.streams[stream] = None
        if not self.on:
            self.on = True
            self.client.kernel.call_later(KEEPALIVE_MS, self._keepalive)

    def _keepalive(self, _arg: Any = None) -> None:
        client = self.client
        reg = client.registry
        net = reg.network
        for stream in list(self.streams):
            if stream.stopped:
                del self.streams[stream]
                continue
            conn = stream.conn
            if conn is not None and not conn.dead:
                host = reg.cluster.servers[conn.server].host
                if not (net.reachable(client.host, host) and net.reachable(host, client.host)):
                    conn.dead = True
                    stream._broken(conn)
        if self.streams:
            client.kernel.call_later(KEEPALIVE_MS, self._keepalive)
        else:
            self.on = False


class StreamHub:
    """The servers' side of streaming for one :class:`~meshsim.registry.catalog.Registry` (see module doc).

    ``max_events``: events each server keeps per service; ``resume``: "consul" or "buffer"
    (:data:`~meshsim.core.stream.RESUME_RULES`); ``retry_factor_ms``: the subscribers' retry waiter
    factor (1 s, lib/retry's default, in current Consul; some 1.9/1.10 releases used 200 ms)."""

    def __init__(self, registry: Any, max_events: int = 4096, resume: str = "consul",
                 retry_factor_ms: float = 1_000.0):
        self.registry = registry
        self.kernel = registry.kernel
        self.network = registry.network
        self.max_events = int(max_events)
        self.resume = resume
        self.retry_factor_ms = float(retry_factor_ms)
        self._publishers: dict[str, tuple[int, EventPublisher]] = {}
        self._catalogs: dict[str, Any] = {}  # the catalog object each publisher follows
        #: per service, the last snapshot's items and the catalog answer they came from (the same tuple object
        #: while the service does not change: the subscribers of one service share one items tuple)
        self._state_items: dict[str, tuple[tuple, tuple]] = {}
        self._conns: dict[str, dict[_Conn, None]] = {n: {} for n in registry.cluster.servers}  # ordered sets
        self._load = {n: _zero_load() for n in registry.cluster.servers}
        self._rng = Uniforms(registry.streams.generator(f"{registry.name}/stream/retry"))
        #: deliveries to subscribers: (time, host, service, kind, index, delay_ms, server, sent_ms); kind is
        #: "snapshot", "reset" (a snapshot after a failed resume) or "event"; delay_ms from the index's commit
        self.deliveries: list[tuple] = []
        self.reconnects = 0
        for name in registry.cluster.servers:
            self.publisher(name)

    # ------------------------------------------------------------ server side
    def publisher(self, name: str, floor: int | None = None) -> EventPublisher:
        """The publisher of server ``name`` in its current incarnation (a crash starts a new one, which
        covers nothing below ``floor``: default the server's applied index when it is made)."""
        server = self.registry.cluster.servers[name]
        cur = self._publishers.get(name)
        if cur is None or cur[0] != server.incarnation:
            if floor is None:
                floor = self.registry._state(name).catalog.applied_index
            cur = self._publishers[name] = (server.incarnation, EventPublisher(self.max_events, floor=floor))
        return cur[1]

    def on_applied(self, name: str, index: int, command: Any, changed: tuple[str, ...], catalog: Any) -> None:
        """Server ``name`` applied ``command`` at ``index``, which moved ``changed`` services."""
        if not changed:
            return
        pub = self.publisher(name, index - 1)
        if self._catalogs.get(name) is not catalog:
            if name in self._catalogs:  # the catalog was replaced wholesale (restored): nothing before is resumable
                pub.truncate(index - 1)
            self._catalogs[name] = catalog
        if index <= pub.last_index:
            return  # a publisher made after this entry was applied (its floor covers it)
        iid = command.id
        entry = catalog.instance(iid)
        for service in changed:
            value = entry if entry is not None and entry.service == service else None
            ev, subs = pub.publish(index, service, iid, value)
            for conn in subs:
                self._send(conn, ev, 1)

    def server_crashed(self, name: str) -> None:
        """Every subscription on ``name`` breaks: its subscriber gets a reset from the server's host."""
        host = self.registry.cluster.servers[name].host
        conns = list(self._conns[name])  # in the order they subscribed: deterministic
        self._conns[name] = {}
        for conn in conns:
            if not conn.dead:
                conn.dead = True
                self.network.send(host, conn.stream.client.host, conn.stream._broken, conn)

    def _serve(self, req: _Request) -> None:
        conn = req.conn
        st = self.registry._state(conn.server)
        if st.server.node is None or conn.dead:
            if not conn.dead:
                conn.dead = True
                self.network.send(st.server.host, conn.stream.client.host, conn.stream._broken, conn)
            return
        conn.incarnation = st.server.incarnation
        self._conns[conn.server][conn] = None
        cat = st.catalog
        service = conn.service
        entries = cat.service_instances(service, False)  # sorted by id, shared by every catalog at this index
        cached = self._state_items.get(service)
        if cached is None or cached[0] is not entries:
            cached = self._state_items[service] = (entries, tuple([(e.id, e) for e in entries]))
        pub = self.publisher(conn.server)
        first = pub.subscribe(service, req.index, cached[1], cat.index(service), conn, self.resume)
        ld = self._load[conn.server]
        ld["subscriptions"] += 1
        if not first or isinstance(first[0], Event):
            ld["resumes"] += 1
        for msg in first:
            self._send(conn, msg, len(msg.items) if isinstance(msg, Snapshot) else 1)

    def _send(self, conn: _Conn, msg: Event | Snapshot, instances: int) -> None:
        if conn.dead:
            self.publisher(conn.server).unsubscribe(conn.service, conn)
            return
        ld = self._load[conn.server]
        ld["snapshots" if isinstance(msg, Snapshot) else "events"] += 1
        ld["instances"] += instances
        cpus = self.registry.cpus
        if cpus is not None:  # sent once encoded, after the connection's earlier messages
            now = self.kernel.now
            done = cpus[conn.server].admit(now, self.registry.serve_cost.work_ms(instances))
            if done < conn.ready_at:
                done = conn.ready_at
            conn.ready_at = done
            if done > now:
                self.kernel.call_at(done, self._send_served, (conn, msg, now))
                return
        self._transmit(conn, msg, self.kernel.now)

    def _send_served(self, arg: tuple) -> None:
        conn, msg, queued_at = arg
        if conn.dead or self.registry.cluster.servers[conn.server].incarnation != conn.incarnation:
            return
        self._transmit(conn, msg, queued_at)

    def _transmit(self, conn: _Conn, msg: Event | Snapshot, queued_at: float) -> None:
        server_host = self.registry.cluster.servers[conn.server].host
        self.network.send(server_host, conn.stream.client.host, conn.stream._receive, (conn, msg, queued_at),
                          self._lost, conn.fifo)

    def _lost(self, payload: tuple, _reason: str) -> None:
        """A message of a stream was lost: the connection is treated as broken at once."""
        conn = payload[0]
        if not conn.dead:
            conn.dead = True
            self._conns[conn.server].pop(conn, None)
            self.kernel.call_later(0.0, conn.stream._broken, conn)

    # ------------------------------------------------------------ load
    def load(self) -> dict[str, dict[str, int]]:
        """Per server: subscriptions served (resumes among them), snapshots, events and instances sent."""
        return {n: dict(v) for n, v in self._load.items()}

    def frame(self):
        """The deliveries as a DataFrame (columns as in :attr:`deliveries`)."""
        return deliveries_frame(self.deliveries)

    def summary(self) -> dict[str, Any]:
        from .catalog import _stats

        kinds = [d[3] for d in self.deliveries]
        return {"deliveries": len(self.deliveries), "snapshots": kinds.count("snapshot"),
                "reset_snapshots": kinds.count("reset"), "events": kinds.count("event"),
                "reconnects": self.reconnects,
                "delay_ms": _stats(d[5] for d in self.deliveries if d[3] == "event")}


class Stream:
    """A subscriber to one service (Consul's streaming materialized view behind a client agent).

    Calls ``callback(now_ms, entries, index)`` with the instances (passing only unless
    ``passing_only`` is False) once the first snapshot is in, then after every update
    (a snapshot that changes nothing is not delivered again).  Built by ``RegistryClient.stream``.
    """

    def __init__(self, client: Any, service: str, callback: Callable, passing_only: bool = True):
        self.client = client
        self.service = service
        self.callback = callback
        self.passing_only = passing_only
        self.hub: StreamHub = client.registry.streaming_hub()
        self.view = MaterializedView()
        self.conn: _Conn | None = None
        self.failures = 0
        self.stopped = False
        self.delivered = 0
        self.entries: tuple[ServiceEntry, ...] = ()
        self._last_sent: tuple | None = None
        #: the sorted ids of ``entries``, kept up to date message by message with them rather than rebuilt
        #: from the whole view (see :func:`patched`)
        self._ids: list[str] = []

    @property
    def index(self) -> int:
        return self.view.index

    def start(self) -> None:
        self._connect()

    def stop(self) -> None:
        self.stopped = True
        if self.conn is not None:
            self.conn.dead = True

    def _connect(self, _arg: Any = None) -> None:
        if self.stopped:
            return
        server = self.client.servers[0]
        conn = self.conn = _Conn(self, server, -1)
        hub = self.hub
        reg = self.client.registry
        reg.network.send(self.client.host, reg.cluster.servers[server].host, hub._serve,
                         _Request(conn, self.view.index), self._request_lost)
        _Session.of(self.client).add(self)

    def _request_lost(self, req: _Request, _reason: str) -> None:
        self.client.kernel.call_later(0.0, self._broken, req.conn)

    def _broken(self, conn: _Conn) -> None:
        conn.dead = True
        if conn is not self.conn or self.stopped:
            return
        self.conn = None
        self.failures += 1
        self.hub.reconnects += 1
        servers = self.client.servers
        if servers[0] == conn.server:
            servers.append(servers.pop(0))  # the next server, as the client's RPCs do
        wait = retry_wait_ms(self.failures, self.hub._rng.uniform(0.0, 1.0), factor_ms=self.hub.retry_factor_ms)
        self.client.kernel.call_later(wait, self._connect)

    def _receive(self, payload: tuple) -> None:
        conn, msg, sent_at = payload
        if conn is not self.conn or conn.dead or self.stopped:
            return
        self.view.apply(msg)
        self.failures = 0  # the Materializer resets its retry waiter on every update
        now = self.client.kernel.now
        reg = self.client.registry
        if isinstance(msg, Snapshot):
            kind = "reset" if msg.reset else "snapshot"
            delay = math.nan
        else:
            kind = "event"
            ct = reg.commit_times
            delay = now - ct[msg.index - 1] if 0 < msg.index <= len(ct) else math.nan
        self.hub.deliveries.append((now, self.client.host, self.service, kind, msg.index, delay, conn.server,
                                    sent_at))
        passing_only = self.passing_only
        if kind == "event":
            value = msg.value
            entries = patched(self._ids, self.entries, msg.key, value,
                              value is not None and (not passing_only or value.status == PASSING))
        else:  # a snapshot's items come sorted by id (EventPublisher.subscribe)
            kept = [kv for kv in msg.items if not passing_only or kv[1].status == PASSING]
            self._ids = [k for k, _v in kept]
            entries = tuple([v for _k, v in kept])
        if entries == self._last_sent and self.delivered:
            return  # the same instances as delivered last (and held in self.entries)
        self._last_sent = entries
        self.entries = entries
        self.delivered += 1
        self.callback(now, entries, self.view.index)


def patched(ids: list[str], entries: tuple, key: str, value: Any, keep: bool) -> tuple:
    """``entries`` (the values of the sorted ``ids``) after ``key`` changed to ``value``, kept if ``keep``;
    ``ids`` is updated in place.  The same tuple as rebuilding the selection from the whole view, with one
    bisection instead of a pass over every instance (tests/test_registry_streaming.py compares both).

    >>> ids = ["a", "c"]; e = patched(ids, ("A", "C"), "b", "B", True); e, ids
    (('A', 'B', 'C'), ['a', 'b', 'c'])
    >>> patched(ids, e, "a", None, False), ids
    (('B', 'C'), ['b', 'c'])
    """
    i = bisect_left(ids, key)
    present = i < len(ids) and ids[i] == key
    if keep:
        if present:
            return entries[:i] + (value,) + entries[i + 1:]
        ids.insert(i, key)
        return entries[:i] + (value,) + entries[i:]
    if present:
        del ids[i]
        return entries[:i] + entries[i + 1:]
    return entries


def deliveries_frame(rows: list[tuple]):
    """Deliveries to streaming subscribers as a DataFrame: time, host, service, kind, index, delay_ms, server,
    sent_ms (see :attr:`StreamHub.deliveries`)."""
    import pandas as pd

    return pd.DataFrame(rows, columns=["time", "host", "service", "kind", "index", "delay_ms", "server", "sent_ms"])
