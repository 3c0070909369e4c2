"""Registry clients: requests from any host to the registry servers over the simulated network.

A :class:`RegistryClient` (one per host, from :meth:`Registry.client
<meshsim.registry.catalog.Registry.client>`) sends each request to its
current server as an :class:`Rpc` message and gets a :class:`Reply` back,
both with the network's latency.  It keeps a server list (the server on its
own host first, the rest in a random order) and moves to the next server
when an attempt times out or its message is dropped, as Consul agents
rotate servers on RPC errors.  A request that gets no answer within
``timeout_ms`` completes with an error.

Every call returns a :class:`Call` handle (``done``, ``ok``, ``entries``,
``index``, ``latency_ms``...) and also calls ``callback(call)`` when done.
Reads take a consistency ``mode``: "stale" (any server answers from its own
catalog), "default" (the leader answers from its own catalog, no quorum round) or
"consistent" (the leader first confirms leadership with a quorum round), as
in Consul's HTTP API.  :meth:`RegistryClient.blocking_read` is a Consul
blocking query (long poll) and :meth:`RegistryClient.watch` a loop of them;
:meth:`RegistryClient.stream` subscribes to a service with Consul's streaming
instead (:mod:`meshsim.registry.streaming`).
See :mod:`meshsim.registry.catalog` for a runnable example.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.catalog import PASSING, Command, Deregister, Register, ServiceEntry, SetHealth
from ..sim.kernel import Timer

__all__ = ["Call", "DEFAULT_WAIT_MS", "MAX_WAIT_MS", "MODES", "RegistryClient", "Reply", "Rpc", "Watch"]

#: read consistency modes (Consul API docs, "Consistency Modes")
MODES = ("default", "consistent", "stale")
#: Consul blocking queries: the wait defaults to 5 minutes and is limited to 10 minutes
DEFAULT_WAIT_MS = 300_000.0
MAX_WAIT_MS = 600_000.0
#: yamux's default keepalive interval (Consul's server RPC connections use yamux defaults): a connection to
#: a server this host can no longer reach is found dead at the next keepalive
KEEPALIVE_MS = 30_000.0


@dataclass(slots=True)
class Rpc:
    """A request on the wire.  ``path`` lists the servers that forwarded it (the reply retraces it)."""

    rid: int
    attempt: int
    op: str  # "write", "read" or "block"
    client: str  # host of the client
    command: Any = None
    service: str = ""
    mode: str = "default"
    passing_only: bool = True
    min_index: int = 0
    wait_ms: float = 0.0
    path: tuple = ()
    first_seen: float = math.nan
    hops: int = 0
    #: the holding server's back-off state (Consul's ``retryCount`` and ``previousJitter`` in
    #: ``forwardRequestToLeader``, see :mod:`meshsim.registry.backoff`): waits so far and the last wait
    hold_tries: int = 0
    hold_wait_ms: float = 0.0

    def rerouted(self, path: tuple) -> Rpc:
        """A copy with forwarding ``path`` (``dataclasses.replace`` without its per-call introspection);
        the copy starts a fresh hold back-off, as the next server runs its own forwarding loop."""
        return Rpc(self.rid, self.attempt, self.op, self.client, self.command, self.service, self.mode,
                   self.passing_only, self.min_index, self.wait_ms, path, self.first_seen, len(path))


@dataclass(slots=True)
class Reply:
    """A server's answer.  ``index`` is the service's modify index (X-Consul-Index), ``applied`` the
    Raft index of the catalog state answered from, ``raft_index`` the index a write was committed at.
    ``lag_index``/``lag_ms`` say how stale that state was when the server answered."""

    rid: int
    attempt: int
    ok: bool
    client: str = ""
    error: str | None = None
    server: str | None = None
    entries: tuple[ServiceEntry, ...] = ()
    index: int = 0
    applied: int = 0
    raft_index: int = 0
    lag_index: int = 0
    lag_ms: float = 0.0
    answered_at: float = math.nan
    path: tuple = ()


class Call:
    """One client request and, once ``done``, its outcome."""

    __slots__ = ("rid", "op", "mode", "service", "command", "invoked", "completed", "done", "ok", "error",
                 "reply", "attempts", "callback", "deadline", "_rpc", "_inflight", "_server", "_timer")

    def __init__(self, rid: int, op: str, invoked: float, deadline: float, callback: Callable | None):
        self.rid, self.op, self.invoked, self.deadline, self.callback = rid, op, invoked, deadline, callback
        self.mode = "default"
        self.service = ""
        self.command: Command | None = None
        self.completed = math.nan
        self.done = False
        self.ok = False
        self.error: str | None = None
        self.reply: Reply | None = None
        self.attempts = 0
        self._inflight = 0
        self._server: str | None = None  # the server the attempt in flight went to
        self._rpc: Rpc | None = None
        self._timer: Timer | None = None  # the attempt in flight's timeout

    @property
    def latency_ms(self) -> float:
        return self.completed - self.invoked

    @property
    def entries(self) -> tuple[ServiceEntry, ...]:
        return self.reply.entries if self.reply is not None else ()

    @property
    def index(self) -> int:
        return self.reply.index if self.reply is not None else 0

    @property
    def applied(self) -> int:
        return self.reply.applied if self.reply is not None else 0

    @property
    def server(self) -> str | None:
        return self.reply.server if self.reply is not None else None

    def __repr__(self) -> str:
        state = ("ok" if self.ok else f"error={self.error!r}") if self.done else "pending"
        return f"Call({self.op} #{self.rid}, {state})"


class RegistryClient:
    """Talks to the registry servers from ``host`` (see module doc).  Built by ``Registry.client``."""

    def __init__(self, registry: Any, host: str, servers: list[str], *, attempt_timeout_ms: float,
                 timeout_ms: float, retry_backoff_ms: float):
        if not attempt_timeout_ms > 0 or not timeout_ms > 0 or not retry_backoff_ms > 0:
            raise ValueError("attempt_timeout_ms, timeout_ms and retry_backoff_ms must be positive")
        if not servers:
            raise ValueError("a RegistryClient needs at least one server")
        self.registry = registry
        self.host = host
        self.kernel = registry.kernel
        self.network = registry.network
        self.servers = list(servers)
        self.attempt_timeout_ms = float(attempt_timeout_ms)
        self.timeout_ms = float(timeout_ms)
        self.retry_backoff_ms = float(retry_backoff_ms)
        self._pending: dict[int, Call] = {}
        self._next_rid = 0
        self._keepalive_on = False

    @property
    def server(self) -> str:
        """The server requests go to now."""
        return self.servers[0]

    def __repr__(self) -> str:
        return f"RegistryClient({self.host!r}, server={self.server!r}, pending={len(self._pending)})"

    # ------------------------------------------------------------ writes
    def register(self, instance_id: str, service: str, *, host: str | None = None, zone: str | None = None,
                 tags: tuple[str, ...] = (), status: str = PASSING, output: str = "",
                 callback: Callable[[Call], Any] | None = None) -> Call:
        """Register ``instance_id`` of ``service`` (on this client's host unless ``host`` is given)."""
        host = self.host if host is None else host
        if zone is None:
            zone = self.network.host_zone.get(host, "")
        return self.write(Register(instance_id, service, host, zone, tuple(tags), status, output), callback)

    def deregister(self, instance_id: str, callback: Callable[[Call], Any] | None = None) -> Call:
        return self.write(Deregister(instance_id), callback)

    def set_health(self, instance_id: str, status: str, output: str = "",
                   callback: Callable[[Call], Any] | None = None) -> Call:
        return self.write(SetHealth(instance_id, status, output), callback)

    def write(self, command: Command, callback: Callable[[Call], Any] | None = None) -> Call:
        """Send a catalog command; it completes once the leader has applied it (committed)."""
        call = self._new("write", callback)
        call.command = command
        call._rpc = Rpc(call.rid, 1, "write", self.host, command=command)
        self._attempt(call)
        return call

    # ------------------------------------------------------------ reads
    def read(self, service: str, mode: str = "default", callback: Callable[[Call], Any] | None = None,
             passing_only: bool = True) -> Call:
        """Instances of ``service`` (passing only by default) in consistency ``mode``."""
        return self._read("read", service, mode, callback, passing_only, 0, 0.0)

    def blocking_read(self, service: str, min_index: int, wait_ms: float = DEFAULT_WAIT_MS,
                      callback: Callable[[Call], Any] | None = None, mode: str = "default",
                      passing_only: bool = True) -> Call:
        """A Consul blocking query: answered once the service's index exceeds ``min_index``, or after
        ``wait_ms`` plus the server's jitter (up to wait/16) with the unchanged state."""
        if not 0 < wait_ms <= MAX_WAIT_MS:
            raise ValueError(f"wait_ms must be in (0, {MAX_WAIT_MS:.0f}] (Consul limits waits to 10 minutes)")
        if min_index < 0:
            raise ValueError("min_index must be >= 0")
        return self._read("block", service, mode, callback, passing_only, int(min_index), float(wait_ms))

    def watch(self, service: str, callback: Callable[[float, tuple[ServiceEntry, ...], int], Any],
              mode: str = "default", passing_only: bool = True, wait_ms: float = DEFAULT_WAIT_MS) -> Watch:
        """Call ``callback(now_ms, entries, index)`` with the current instances, then on every change."""
        w = Watch(self, service, callback, mode, passing_only, wait_ms)
        w.start()
        return w

    def stream(self, service: str, callback: Callable[[float, tuple[ServiceEntry, ...], int], Any],
               passing_only: bool = True):
        """Subscribe to ``service`` with Consul's streaming: ``callback(now_ms, entries, index)`` with the
        snapshot, then after every change (a :class:`~meshsim.registry.streaming.Stream`)."""
        from .streaming import Stream

        s = Stream(self, service, callback, passing_only)
        s.start()
        return s

    def _read(self, op: str, service: str, mode: str, callback, passing_only: bool, min_index: int,
              wait_ms: float) -> Call:
        if mode not in MODES:
            raise ValueError(f"unknown read mode {mode!r}; valid: {', '.join(MODES)}")
        call = self._new(op, callback)
        call.mode, call.service = mode, service
        call._rpc = Rpc(call.rid, 1, op, self.host, service=service, mode=mode, passing_only=passing_only,
                        min_index=min_index, wait_ms=wait_ms)
        if op == "block":  # the server may hold it for wait + wait/16
            call.deadline += wait_ms * (1 + 1 / 16)
        self._attempt(call)
        return call

    # ------------------------------------------------------------ plumbing
    def _new(self, op: str, callback) -> Call:
        self._next_rid += 1
        now = self.kernel.now
        call = Call(self._next_rid, op, now, now + self.timeout_ms, callback)
        self._pending[call.rid] = call
        return call

    def _attempt(self, call: Call) -> None:
        call.attempts += 1
        call._inflight = call.attempts
        rpc = call._rpc
        if call.attempts == 1:  # the first attempt goes out as made (servers stamp it: first_seen)
            msg = rpc
        else:  # a retry: a fresh message, not the one the servers stamped
            msg = Rpc(rpc.rid, call.attempts, rpc.op, rpc.client, rpc.command, rpc.service, rpc.mode,
                      rpc.passing_only, rpc.min_index, rpc.wait_ms)
        server = call._server = self.servers[0]
        if not self._keepalive_on:
            self._keepalive_on = True
            self.kernel.call_later(KEEPALIVE_MS, self._keepalive)
        timeout = self.attempt_timeout_ms + (rpc.wait_ms * (1 + 1 / 16) if rpc.op == "block" else 0.0)
        call._timer = self.kernel.call_later(min(timeout, max(call.deadline - self.kernel.now, 0.0)),
                                             self._attempt_timeout, (call, call.attempts))
        self.registry._send_to_server(self.host, server, msg, self._dropped)

    def _dropped(self, msg: Rpc, reason: str) -> None:
        call = self._pending.get(msg.rid)
        if call is not None and call._inflight == msg.attempt:
            self._failed_attempt(call, f"request dropped ({reason})")

    def _keepalive(self, _arg: Any = None) -> None:
        """yamux keepalives on the connections to servers: a server this host cannot reach (either way)
        fails the attempts waiting on it, which go to the next server.  Runs while requests are pending."""
        net = self.network
        registry = self.registry
        for call in list(self._pending.values()):
            if call._inflight and call._server is not None:
                host = registry.cluster.servers[call._server].host
                if not (net.reachable(self.host, host) and net.reachable(host, self.host)):
                    self._failed_attempt(call, "connection lost (keepalive)")
        if self._pending:
            self.kernel.call_later(KEEPALIVE_MS, self._keepalive)
        else:
            self._keepalive_on = False

    def _reset(self, arg: tuple[int, int]) -> None:
        """The server's host answered an attempt with a connection reset (the server process is down)."""
        rid, attempt = arg
        call = self._pending.get(rid)
        if call is not None and call._inflight == attempt:
            self._failed_attempt(call, "connection reset (server down)")

    def _attempt_timeout(self, arg: tuple[Call, int]) -> None:
        call, attempt = arg
        if not call.done and call._inflight == attempt:
            self._failed_attempt(call, "request timed out")

    def _failed_attempt(self, call: Call, error: str) -> None:
        call._inflight = 0  # void this attempt's error replies
        call._timer.cancel()
        call.error = error
        self.servers.append(self.servers.pop(0))  # try the next server
        if self.kernel.now + self.retry_backoff_ms >= call.deadline:
            self._finish(call, None, error)
            return
        self.kernel.call_later(self.retry_backoff_ms, self._retry, call)

    def _retry(self, call: Call) -> None:
        if not call.done:
            self._attempt(call)

    def _on_reply(self, reply: Reply) -> None:
        call = self._pending.get(reply.rid)
        if call is None:
            return  # answered already (a late reply to an earlier attempt) or given up
        if reply.ok:
            self._finish(call, reply, None)
        elif reply.attempt == call._inflight:
            self._failed_attempt(call, reply.error or "error")

    def _finish(self, call: Call, reply: Reply | None, error: str | None) -> None:
        self._pending.pop(call.rid, None)
        if call._timer is not None:
            call._timer.cancel()  # a blocking query's timer would hold the call for minutes
        call.done = True
        call.completed = self.kernel.now
        call.reply = reply
        call.ok = reply is not None
        call.error = None if call.ok else error
        self.registry._record_call(self, call)
        if call.callback is not None:
            call.callback(call)


class Watch:
    """A loop of blocking reads on one service (see :meth:`RegistryClient.watch`); :meth:`stop` ends it.

    Like Consul's watch plans it delivers the first answer, then every answer whose index differs
    from the last one delivered; an index that goes backwards (another server, a restart) resets
    the loop.  After an error it retries after the client's backoff.
    """

    def __init__(self, client: RegistryClient, service: str, callback: Callable, mode: str, passing_only: bool,
                 wait_ms: float):
        if mode not in MODES:
            raise ValueError(f"unknown read mode {mode!r}; valid: {', '.join(MODES)}")
        self.client = client
        self.service = service
        self.callback = callback
        self.mode = mode
        self.passing_only = passing_only
        self.wait_ms = float(wait_ms)
        self.index = 0
        self.delivered = 0
        self.errors = 0
        self.stopped = False
        self.entries: tuple[ServiceEntry, ...] = ()

    def start(self) -> None:
        self._next()

    def stop(self) -> None:
        self.stopped = True

    def _next(self, _arg: Any = None) -> None:
        if self.stopped:
            return
        # index 0 would return at once: wait for anything newer than 1 instead (Consul clamps to 1 too)
        self.client.blocking_read(self.service, max(self.index, 1) if self.delivered else 0, self.wait_ms,
                                  self._on_answer, self.mode, self.passing_only)

    def _on_answer(self, call: Call) -> None:
        if self.stopped:
            return
        if not call.ok:
            self.errors += 1
            self.client.kernel.call_later(self.client.retry_backoff_ms, self._next)
            return
        index = call.index
        reset = index < self.index
        if reset:
            self.index = 0  # went backwards: reset and deliver what we got
        if self.delivered == 0 or index != self.index:
            first = self.delivered == 0 or reset  # no commit-to-callback delay for a first or reset answer
            self.index = index
            self.entries = call.entries
            self.delivered += 1
            now = self.client.kernel.now
            self.client.registry._record_watch(self, now, index, first)
            self.callback(now, call.entries, index)
        self._next()
