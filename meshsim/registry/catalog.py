"""A Consul-like service registry: a Raft cluster replicating a :class:`~meshsim.core.catalog.Catalog`.

:class:`Registry` composes a :class:`~meshsim.registry.raft_shell.RaftCluster`
and keeps one catalog per server, applied from that server's committed
entries (rebuilt from index 1 after a restart: there are no snapshots).
Clients (:class:`~meshsim.registry.client.RegistryClient`) on any host send
requests over the network; each server handles them as a Consul server does:

* writes go to the leader, which proposes the command and answers once it has
  applied it; a follower forwards them to the leader it knows and relays the
  answer back (Consul's RPC forwarding, one extra round trip);
* a "stale" read is answered by the contacted server from its own catalog;
* a "default" read is answered by a server that believes it is the leader
  (Raft role leader) from its own catalog at once, with no quorum round and
  no lease check: in hashicorp/consul only ``consistent`` reads call
  ``ConsistentRead`` (``raft.VerifyLeader`` and the ``isReadyForConsistentReads``
  barrier flag; ``agent/blockingquery/blockingquery.go`` ``Query``,
  ``agent/consul/rpc.go``), while ``forwardRequestToLeader`` lets a server
  whose Raft state is leader handle the request itself.  A deposed leader
  that has not yet stepped down, or a just-elected one that has not applied
  its predecessor's last entries, answers from the state it has;
* a "consistent" read is answered by the leader after a ReadIndex round
  (a quorum confirms its leadership first), lease or not;
* a server that knows no leader holds a request and tries again after
  waits that back off (Consul's ``forwardRequestToLeader`` since
  hashicorp/consul PR #16165; the schedule is in :mod:`meshsim.registry.backoff`):
  the n-th wait is uniform between the previous wait and
  ``(rpc_hold_timeout_ms // 16) * 2**(n-1)``; once more than
  ``rpc_hold_timeout_ms`` (Consul's ``rpc_hold_timeout``, default 7 s; plus
  ``wait + wait/16`` for a blocking read) has passed since the first server
  got it, the next try answers "no cluster leader";
* a blocking query parks at the answering server until the service's index
  exceeds the asked index or ``wait + U(0, wait/16)`` passes (Consul API
  docs, "Blocking Queries": "This adds up to wait / 16 additional time").

Every request, watch delivery, health transition and DNS lookup is recorded
as columns (:meth:`Registry.frame`) and summarized by :meth:`Registry.summary`.

>>> reg = Registry.standalone(servers=3, clients=["app"], latency=1.0, seed=1,
...                           config=RaftConfig.profile("consul", raft_multiplier=1))
>>> reg.start()
>>> reg.run_until(lambda: reg.cluster.agreed_leader() is not None, 10_000)
True
>>> c = reg.client("app")
>>> w = c.register("web-1", "web", tags=("v1",))
>>> r = c.read("web", mode="consistent")   # calls return handles; nothing happens until the kernel runs
>>> r.done
False
>>> reg.run(100)
>>> w.ok, w.reply.raft_index, r.ok, [e.id for e in r.entries]
(True, 2, True, ['web-1'])
>>> len({cat.digest() for cat in reg.catalogs().values()})  # every server holds the same catalog
1
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

import numpy as np

from ..core.catalog import Catalog, Command
from ..core.cpu import CpuQueue, ServeCost
from ..core.raft import FOLLOWER, LEADER, Entry, RaftConfig, Ready
from ..rng import RandomStreams, Uniforms
from ..sim.kernel import Kernel, Timer
from ..sim.network import Network
from .backoff import hold_budget_ms, next_hold_wait_ms
from .client import Call, RegistryClient, Reply, Rpc, Watch
from .raft_shell import RaftCluster, RaftServer, make_network

__all__ = ["Registry", "WriteEntry"]

#: Consul's rpc_hold_timeout default (7 s)
RPC_HOLD_TIMEOUT_MS = 7_000.0
#: a forwarded request may be forwarded again (stale leader knowledge) this many times
MAX_HOPS = 3


@dataclass(frozen=True)
class WriteEntry:
    """The data of a Raft entry carrying a catalog command; ``key`` = (client host, request id)."""

    key: tuple[str, int]
    command: Command


class _Waiter:
    __slots__ = ("rpc", "timer", "done")

    def __init__(self, rpc: Rpc):
        self.rpc = rpc
        self.timer: Timer | None = None
        self.done = False


class _ServerState:
    """What one server's registry process holds; reset when the server crashes."""

    def __init__(self, registry: Registry, server: RaftServer):
        self.name = server.name
        self.server = server
        self.incarnation = server.incarnation
        self.answers = registry._answers  # shared by the servers' catalogs (see Catalog.service_instances)
        self.catalog = Catalog(self.answers)
        self.pending_writes: dict[tuple[str, int], Rpc] = {}
        self.pending_reads: dict[int, Rpc] = {}
        self.index_waiters: list[tuple[int, Rpc]] = []  # reads confirmed at an index not yet applied here
        self.waiters: dict[str, list[_Waiter]] = {}
        name = server.name
        self.deliver = lambda rpc: registry._serve(name, rpc)
        self.relay = lambda reply: registry._relay(name, reply)

    def reset(self) -> None:
        for ws in self.waiters.values():
            for w in ws:
                w.done = True
                if w.timer is not None:
                    w.timer.cancel()
        self.incarnation = self.server.incarnation
        self.catalog = Catalog(self.answers)
        self.pending_writes, self.pending_reads, self.index_waiters, self.waiters = {}, {}, [], {}


class _Cluster(RaftCluster):
    """The RaftCluster with its apply and read hooks routed to the registry."""

    registry: Registry

    def _applied(self, server: RaftServer, entries: list[Entry]) -> None:
        super()._applied(server, entries)
        self.registry._on_applied(server, entries)

    def _reads(self, server: RaftServer, ready: Ready) -> None:
        super()._reads(server, ready)
        self.registry._on_reads(server, ready)

    def _snapshot_data(self, server: RaftServer) -> tuple[Any, int]:
        cat = self.registry._state(server.name).catalog
        return cat.snapshot(), cat.applied_index

    def _restored(self, server: RaftServer, snapshot: Any) -> None:
        super()._restored(server, snapshot)
        self.registry._on_restored(server, snapshot)

    def _event(self, server: RaftServer | None, event: str) -> None:
        super()._event(server, event)
        if event == "crash" and server is not None:
            self.registry._server_crashed(server)


def _columns(*names: str) -> dict[str, list]:
    return {n: [] for n in names}


class _Rows:
    """A table recorded a row at a time (one append on the hot path) and read as columns:
    ``table["latency_ms"]`` or ``table.columns()``."""

    __slots__ = ("names", "rows", "_cols")

    def __init__(self, *names: str):
        self.names = names
        self.rows: list[tuple] = []
        self._cols: tuple[int, dict[str, list]] = (0, {n: [] for n in names})

    def append(self, row: tuple) -> None:
        self.rows.append(row)

    def columns(self) -> dict[str, list]:
        n, cols = self._cols
        if n != len(self.rows):
            cols = {name: list(col) for name, col in zip(self.names, zip(*self.rows))}
            self._cols = (len(self.rows), cols)
        return cols

    def __getitem__(self, name: str) -> list:
        return self.columns()[name]

    def __len__(self) -> int:
        return len(self.rows)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Rows):
            return NotImplemented
        return self.names == other.names and self.rows == other.rows

    __hash__ = None  # mutable


def _stats(values: Iterable[float]) -> dict[str, float]:
    a = np.asarray([v for v in values if v == v], dtype=float)
    if not a.size:
        return {"count": 0, "mean": math.nan, "p50": math.nan, "p99": math.nan, "max": math.nan}
    return {"count": int(a.size), "mean": float(a.mean()), "p50": float(np.percentile(a, 50)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


class Registry:
    """The registry component (see module doc).

    ``sim_or_kernel``, ``network``, ``servers``, ``config`` and ``streams`` are
    as for :class:`RaftCluster` (``config`` defaults to the "consul" Raft
    profile); other keyword arguments of RaftCluster (``disk_delay``,
    ``tick_ms``, ...) are passed on.  Clients give up on a request after
    ``request_timeout_ms``, retry a silent attempt after ``attempt_timeout_ms``
    and wait ``retry_backoff_ms`` between attempts.
    """

    def __init__(self, sim_or_kernel: Any, network: Network | None = None,
                 servers: Sequence[str] | Mapping[str, str] = ("consul-0", "consul-1", "consul-2"),
                 config: RaftConfig | None = None, streams: RandomStreams | None = None, *,
                 name: str = "registry", rpc_hold_timeout_ms: float = RPC_HOLD_TIMEOUT_MS,
                 request_timeout_ms: float = 30_000.0, attempt_timeout_ms: float = 10_000.0,
                 retry_backoff_ms: float = 250.0, server_cores: int | None = None,
                 serve_cost: ServeCost | None = None, **raft_options: Any):
        for v, what in ((rpc_hold_timeout_ms, "rpc_hold_timeout_ms"), (request_timeout_ms, "request_timeout_ms"),
                        (attempt_timeout_ms, "attempt_timeout_ms"), (retry_backoff_ms, "retry_backoff_ms")):
            if not v > 0 or not math.isfinite(v):
                raise ValueError(f"{what} must be a positive number of ms, got {v!r}")
        config = config if config is not None else RaftConfig.profile("consul")
        self.name = name
        self.cluster = _Cluster(sim_or_kernel, network, servers, config, streams, name=f"{name}/raft", **raft_options)
        self.cluster.registry = self
        self.cluster.observers.append(self._observe)
        self.kernel: Kernel = self.cluster.kernel
        self.network: Network = self.cluster.network
        self.streams: RandomStreams = self.cluster.streams
        self.rpc_hold_timeout_ms = float(rpc_hold_timeout_ms)
        self.request_timeout_ms = float(request_timeout_ms)
        self.attempt_timeout_ms = float(attempt_timeout_ms)
        self.retry_backoff_ms = float(retry_backoff_ms)
        self._no_lease = dataclasses.replace(config, lease_reads=False)
        self._hold_rng = Uniforms(self.streams.generator(f"{name}/hold"))
        self._wait_rng = Uniforms(self.streams.generator(f"{name}/wait"))
        self._answers: dict = {}  # query answers shared by the servers' catalogs
        self._states = {n: _ServerState(self, s) for n, s in self.cluster.servers.items()}
        self._clients: dict[str, RegistryClient] = {}
        self._agents: dict[str, Any] = {}
        self._read_ids = count(1)
        self._started = False
        #: commit time of every Raft index (position i = index i + 1): the first time any server applied it
        self.commit_times: list[float] = []
        self.writes = _Rows("invoked", "time", "host", "rid", "op", "instance", "ok", "error", "latency_ms",
                               "raft_index", "server", "attempts")
        self.reads = _Rows("invoked", "time", "host", "op", "mode", "service", "ok", "error", "latency_ms",
                              "index", "applied", "lag_index", "lag_ms", "server", "attempts", "n")
        self.watches = _columns("time", "host", "service", "index", "delay_ms", "first")
        self.health = _columns("time", "host", "instance", "service", "old", "new", "output")
        self.dns_lookups = _columns("time", "host", "service", "cached", "age_ms", "latency_ms")
        self.dropped = {"server_down": 0, "no_client": 0}
        #: per server: answers to reads and to blocking queries, and the instances in them (see load())
        self._load = {n: {"read": 0, "read_instances": 0, "block": 0, "block_instances": 0}
                      for n in self.cluster.servers}
        self._hub: Any = None  # the StreamHub, made by the first streaming subscription
        #: each server's processors for what it sends (answers, stream messages), or None: sending is free
        self.serve_cost = serve_cost if serve_cost is not None else (ServeCost() if server_cores else None)
        self.cpus: dict[str, CpuQueue] | None = (
            {n: CpuQueue(int(server_cores)) for n in self.cluster.servers} if server_cores else None)

    # ------------------------------------------------------------ building
    @classmethod
    def standalone(cls, servers: int | Sequence[str] = 3, clients: Iterable[str] = (), latency: Any = 1.0,
                   seed: int = 0, loss: float = 0.0, config: RaftConfig | None = None, **options: Any) -> Registry:
        """A registry on its own kernel and one-zone network: ``servers`` (a count or host names) and
        client ``hosts``, one-way ``latency`` (ms, Distribution or spec) and message ``loss``."""
        names = [f"consul-{i}" for i in range(servers)] if isinstance(servers, int) else list(servers)
        kernel, streams = Kernel(), RandomStreams(seed)
        hosts = names + [h for h in dict.fromkeys(clients) if h not in names]
        net = make_network(kernel, hosts, latency=latency, streams=streams, loss=loss)
        return cls(kernel, net, names, config, streams, **options)

    def client(self, host: str, zone: str | None = None) -> RegistryClient:
        """The client on ``host`` (made on first use; the host is added to the network in ``zone`` if new)."""
        c = self._clients.get(host)
        if c is None:
            if host not in self.network.host_zone:
                if zone is None:
                    raise ValueError(f"host {host!r} is not on the network; pass zone=... to add it")
                self.network.add_host(host, zone)
            names = list(self.cluster.servers)
            local = [n for n in names if self.cluster.servers[n].host == host]
            others = [n for n in names if n not in local]
            rng = self.streams.generator(f"{self.name}/client/{host}")
            order = local + [others[i] for i in rng.permutation(len(others))]
            c = RegistryClient(self, host, order, attempt_timeout_ms=self.attempt_timeout_ms,
                               timeout_ms=self.request_timeout_ms, retry_backoff_ms=self.retry_backoff_ms)
            self._clients[host] = c
        return c

    def agent(self, host: str, **options: Any):
        """The :class:`~meshsim.registry.agent.Agent` on ``host`` (made on first use with ``options``)."""
        from .agent import Agent

        a = self._agents.get(host)
        if a is None:
            a = self._agents[host] = Agent(self, host, **options)
            if self._started:
                a.start()
        elif options:
            raise ValueError(f"the agent on {host!r} exists already; options apply only when it is made")
        return a

    def streaming_hub(self, **options: Any):
        """The servers' :class:`~meshsim.registry.streaming.StreamHub` (made on first use with ``options``:
        ``max_events``, ``resume``); servers publish their changes from then on."""
        from .streaming import StreamHub

        if self._hub is None:
            self._hub = StreamHub(self, **options)
        elif options:
            raise ValueError("the stream hub exists already; options apply only when it is made")
        return self._hub

    def dns(self, host: str, ttl_ms: float = 0.0, **options: Any):
        """A :class:`~meshsim.registry.dns.DnsResolver` for the client on ``host``."""
        from .dns import DnsResolver

        return DnsResolver(self.client(host), ttl_ms, **options)

    def preload(self) -> int:
        """Start from a converged catalog: every instance its agent added with ``registered=True`` is in it,
        as a Raft snapshot that every server holds when it starts (as a cluster restarted from its snapshots
        would), one log index per instance, committed at time 0.  Call before :meth:`start`; returns the
        snapshot's index.  Skips the registration storm of a large cluster, whose cost is not the question.

        >>> from meshsim.core.health import ProbeCheck
        >>> from meshsim.core.raft import RaftConfig
        >>> reg = Registry.standalone(servers=3, clients=["h1"], latency=1.0, seed=1,
        ...                           config=RaftConfig.profile("consul", raft_multiplier=1))
        >>> reg.agent("h1").add_instance("web-1", "web", check=ProbeCheck(5_000, status="passing"),
        ...                              probe=lambda: True, registered=True)
        >>> reg.preload(), reg.committed_index
        (1, 1)
        >>> reg.start(); reg.run(3_000)
        >>> [e.id for e in reg.catalog(reg.leader()).service_instances("web")], len(reg.writes)
        (['web-1'], 0)
        """
        from ..core.catalog import Register
        from ..core.raft import PersistentState, Snapshot

        if self._started:
            raise RuntimeError("preload() must come before start()")
        if self.commit_times:
            raise RuntimeError("the registry has a log already")
        cat = Catalog()
        index = 0
        for host in sorted(self._agents):
            agent = self._agents[host]
            for inst in agent.instances.values():
                if inst.acked is None:
                    continue
                index += 1
                cat.apply(index, Register(inst.id, inst.service, host, inst.zone, inst.tags, inst.status,
                                          inst.output))
        if index:
            snap = Snapshot(index, 1, tuple(self.cluster.voters), cat.snapshot())
            for server in self.cluster.servers.values():
                server.persisted = PersistentState(term=1, snapshot=snap, log_start=(index, 1))
            self.commit_times.extend([0.0] * index)
        return index

    # ------------------------------------------------------------ component protocol
    def start(self, sim: Any = None) -> None:
        """Start the Raft servers and the agents (a Simulation calls this at the start of its run)."""
        if self._started:
            return
        self._started = True
        self.cluster.start(sim)
        for a in self._agents.values():
            a.start()

    def run(self, duration_ms: float) -> None:
        self.cluster.run(duration_ms)

    def run_until(self, pred: Callable[[], bool], limit_ms: float) -> bool:
        return self.cluster.run_until(pred, limit_ms)

    @property
    def now(self) -> float:
        return self.kernel.now

    def leader(self) -> str | None:
        return self.cluster.leader()

    def catalog(self, server: str) -> Catalog:
        """The catalog that ``server`` holds now (empty while it is down)."""
        return self._state(server).catalog

    def catalogs(self) -> dict[str, Catalog]:
        """Catalogs of the live servers."""
        return {n: self._state(n).catalog for n, s in self.cluster.servers.items() if s.up}

    @property
    def committed_index(self) -> int:
        """The highest Raft index known committed (applied by any server)."""
        return len(self.commit_times)

    # ------------------------------------------------------------ metrics
    def frame(self, which: str = "reads"):
        """A recorded table as a DataFrame: reads, writes, watches, health, dns_lookups, commit_times, streams
        (deliveries to streaming subscribers, :meth:`StreamHub.frame <meshsim.registry.streaming.StreamHub.frame>`),
        or any table of the Raft cluster (leader_changes, events, commits, proposals, windows)."""
        import pandas as pd

        if which == "streams":
            from .streaming import deliveries_frame

            return deliveries_frame(self._hub.deliveries if self._hub is not None else [])

        if which in ("reads", "writes"):
            return pd.DataFrame(getattr(self, which).columns())
        if which in ("watches", "health", "dns_lookups"):
            return pd.DataFrame(getattr(self, which))
        if which == "commit_times":
            return pd.DataFrame({"index": np.arange(1, len(self.commit_times) + 1), "time": self.commit_times})
        return self.cluster.frame(which)

    def summary(self) -> dict[str, Any]:
        """Raft summary plus client-side write/read latency, read staleness, watch delays, health transitions."""
        w = self.writes
        reads: dict[str, Any] = {}
        r = self.reads
        for mode in ("stale", "default", "consistent"):
            for op in ("read", "block"):
                rows = [i for i in range(len(r["time"])) if r["mode"][i] == mode and r["op"][i] == op]
                if not rows:
                    continue
                ok = [i for i in rows if r["ok"][i]]
                key = mode if op == "read" else f"{mode}/blocking"
                reads[key] = {
                    "count": len(rows), "errors": len(rows) - len(ok),
                    "latency_ms": _stats(r["latency_ms"][i] for i in ok),
                    "stale_answers": sum(1 for i in ok if r["lag_index"][i] > 0),
                    "lag_index": _stats(r["lag_index"][i] for i in ok),
                    "lag_ms": _stats(r["lag_ms"][i] for i in ok),
                }
        wt = self.watches
        trans: dict[str, int] = {}
        for new in self.health["new"]:
            trans[new] = trans.get(new, 0) + 1
        dns = self.dns_lookups
        return {
            "raft": self.cluster.summary(),
            "committed_index": self.committed_index,
            "catalogs_identical": len({(c.applied_index, c.digest()) for c in self.catalogs().values()}) <= 1,
            "writes": {"count": len(w["time"]), "errors": sum(1 for ok in w["ok"] if not ok),
                       "latency_ms": _stats(w["latency_ms"][i] for i in range(len(w["ok"])) if w["ok"][i])},
            "reads": reads,
            "watch": {"deliveries": len(wt["time"]),
                      "delay_ms": _stats(d for d, first in zip(wt["delay_ms"], wt["first"]) if not first)},
            "health_transitions": {"count": len(self.health["time"]), "to": trans},
            "dns": {"lookups": len(dns["time"]), "cached": sum(1 for c in dns["cached"] if c),
                    "age_ms": _stats(dns["age_ms"])},
            "dropped": dict(self.dropped),
            "streaming": self._streaming_summary(),
            "load": self.load(),
        }

    def _streaming_summary(self) -> dict[str, Any]:
        if self._hub is not None:
            return self._hub.summary()
        return {"deliveries": 0, "snapshots": 0, "reset_snapshots": 0, "events": 0, "reconnects": 0,
                "delay_ms": _stats(())}

    def load(self) -> dict[str, Any]:
        """What each server served, for blocking queries and for streaming, as counts and per second of
        the run so far (from the servers' start): ``{"duration_ms", "servers": {name: {"blocking":
        {"requests", "instances", "requests_per_s", "instances_per_s"}, "reads": {...},
        "streaming": {"subscriptions", "resumes", "snapshots", "events", "instances", "requests_per_s",
        "messages_per_s", "instances_per_s"}}}}``.  Instances sent are the "bytes-ish" unit: a blocking
        answer carries the service's instances, a snapshot all of them, an event one.  With ``server_cores``,
        each server also has ``"cpu"``: cores, jobs, busy_ms, utilisation, mean_wait_ms, max_wait_ms and
        backlog_ms (the wait of an answer asked now)."""
        started = self.cluster._started_at
        duration = self.kernel.now - started if started is not None else 0.0
        per_s = 1_000.0 / duration if duration > 0 else math.nan
        hub = self._hub.load() if self._hub is not None else {}
        servers: dict[str, Any] = {}
        for name, ld in self._load.items():
            sl = hub.get(name) or {"subscriptions": 0, "resumes": 0, "snapshots": 0, "events": 0, "instances": 0}
            msgs = sl["snapshots"] + sl["events"]
            servers[name] = {
                "blocking": {"requests": ld["block"], "instances": ld["block_instances"],
                             "requests_per_s": ld["block"] * per_s, "instances_per_s": ld["block_instances"] * per_s},
                "reads": {"requests": ld["read"], "instances": ld["read_instances"],
                          "requests_per_s": ld["read"] * per_s, "instances_per_s": ld["read_instances"] * per_s},
                "streaming": {**sl, "requests_per_s": sl["subscriptions"] * per_s, "messages_per_s": msgs * per_s,
                              "instances_per_s": sl["instances"] * per_s},
            }
            if self.cpus is not None:
                q = self.cpus[name]
                servers[name]["cpu"] = {"cores": q.cores, "jobs": q.jobs, "busy_ms": q.busy_ms,
                                        "utilisation": q.utilisation(duration),
                                        "mean_wait_ms": q.wait_ms / q.jobs if q.jobs else 0.0,
                                        "max_wait_ms": q.max_wait_ms,
                                        "backlog_ms": q.backlog_ms(self.kernel.now)}
        return {"duration_ms": duration, "servers": servers}

    def _record_call(self, client: RegistryClient, call: Call) -> None:
        rep = call.reply
        if call.op == "write":
            cmd = call.command
            row = (call.invoked, call.completed, client.host, call.rid, type(cmd).__name__.lower(), cmd.id, call.ok,
                   call.error, call.completed - call.invoked, rep.raft_index if rep else None,
                   rep.server if rep else None, call.attempts)
            self.writes.append(row)
        elif rep is not None:
            row = (call.invoked, call.completed, client.host, call.op, call.mode, call.service, call.ok, call.error,
                   call.completed - call.invoked, rep.index, rep.applied, rep.lag_index, rep.lag_ms, rep.server,
                   call.attempts, len(rep.entries))
            self.reads.append(row)
        else:
            row = (call.invoked, call.completed, client.host, call.op, call.mode, call.service, call.ok, call.error,
                   call.completed - call.invoked, None, None, None, math.nan, None, call.attempts, 0)
            self.reads.append(row)

    def _record_watch(self, watch: Watch, now: float, index: int, first: bool) -> None:
        wt = self.watches
        delay = now - self.commit_times[index - 1] if (not first and 0 < index <= len(self.commit_times)) else math.nan
        for col, v in (("time", now), ("host", watch.client.host), ("service", watch.service), ("index", index),
                       ("delay_ms", delay), ("first", first)):
            wt[col].append(v)

    def _record_health(self, host: str, instance: str, service: str, old: str | None, new: str, output: str) -> None:
        h = self.health
        for col, v in (("time", self.kernel.now), ("host", host), ("instance", instance), ("service", service),
                       ("old", old), ("new", new), ("output", output)):
            h[col].append(v)

    def _record_dns(self, host: str, service: str, cached: bool, age_ms: float, latency_ms: float) -> None:
        d = self.dns_lookups
        for col, v in (("time", self.kernel.now), ("host", host), ("service", service), ("cached", cached),
                       ("age_ms", age_ms), ("latency_ms", latency_ms)):
            d[col].append(v)

    # ------------------------------------------------------------ server side: plumbing
    def _state(self, name: str) -> _ServerState:
        st = self._states[name]
        if st.incarnation != st.server.incarnation:
            st.reset()  # the server crashed since: its registry process starts afresh
        return st

    def _send_to_server(self, src_host: str, server: str, msg: Rpc, on_drop: Callable[[Any, str], Any]) -> None:
        st = self._states[server]
        self.network.send(src_host, st.server.host, st.deliver, msg, on_drop)

    def _server_crashed(self, server: RaftServer) -> None:
        """Requests in flight at a crashed server: their connections break, clients see a reset."""
        if self._hub is not None:
            self._hub.server_crashed(server.name)
        for client in self._clients.values():
            for call in list(client._pending.values()):
                if call._inflight and call._server == server.name:
                    self._send_reset(server.host, client, call.rid, call._inflight)
        # requests other servers forwarded here: the forwarding server sees the reset and holds them again
        st = self._states[server.name]
        parked = [*st.pending_writes.values(), *st.pending_reads.values(), *(rpc for _, rpc in st.index_waiters),
                  *(w.rpc for ws in st.waiters.values() for w in ws if not w.done)]
        for rpc in parked:
            if rpc.path:
                prev = rpc.path[-1]
                back = rpc.rerouted(rpc.path[:-1])  # back at the forwarding server: a fresh hold loop there
                self.network.send(server.host, self.cluster.servers[prev].host, self._forward_reset, (prev, back))

    def _forward_reset(self, arg: tuple[str, Rpc]) -> None:
        name, rpc = arg
        st = self._state(name)
        if st.server.node is not None:
            self._hold(st, rpc)

    def _send_reset(self, server_host: str, client: RegistryClient, rid: int, attempt: int) -> None:
        self.network.send(server_host, client.host, client._reset, (rid, attempt))

    def _serve(self, name: str, rpc: Rpc) -> None:
        st = self._state(name)
        s = st.server
        if s.node is None:
            self.dropped["server_down"] += 1
            client = self._clients.get(rpc.client)
            if client is not None:  # the host is up, the process is not: connection refused
                self._send_reset(s.host, client, rpc.rid, rpc.attempt)
            return
        if rpc.first_seen != rpc.first_seen:  # NaN: first server to see it
            rpc.first_seen = self.kernel.now
        if rpc.op == "write":
            if s.node.role == LEADER:
                self._propose(st, rpc)
            else:
                self._forward(st, rpc)
        elif rpc.mode == "stale":
            self._answer(st, rpc)
        elif s.node.role != LEADER:
            self._forward(st, rpc)
        elif rpc.mode == "default":  # Consul: no ConsistentRead, the leader's own state store
            self._answer(st, rpc)
        else:
            self._quorum_read(st, rpc)

    def _forward(self, st: _ServerState, rpc: Rpc) -> None:
        s = st.server
        leader = s.node.leader_id if s.node is not None else None
        if leader is None or leader == st.name or leader not in self._states or rpc.hops >= MAX_HOPS:
            self._hold(st, rpc)
            return
        fwd = rpc.rerouted(rpc.path + (st.name,))
        inc = st.incarnation
        self.network.send(s.host, self.cluster.servers[leader].host, self._states[leader].deliver, fwd,
                          lambda _m, _r: self._hold_if_live(st, inc, rpc))

    def _hold_if_live(self, st: _ServerState, incarnation: int, rpc: Rpc) -> None:
        if st.incarnation == incarnation == st.server.incarnation and st.server.node is not None:
            self._hold(st, rpc)

    def _hold(self, st: _ServerState, rpc: Rpc) -> None:
        """No usable leader: try again after a backed-off wait (hashicorp/consul ``agent/consul/rpc.go``
        ``forwardRequestToLeader``; :func:`~meshsim.registry.backoff.next_hold_wait_ms`) while
        ``canRetry`` allows it (no more than the hold budget since the first try), else answer an error."""
        budget = hold_budget_ms(self.rpc_hold_timeout_ms, rpc.op, rpc.wait_ms)
        if self.kernel.now - rpc.first_seen > budget:
            self._reply(st, rpc, Reply(rpc.rid, rpc.attempt, False, rpc.client, error="no cluster leader",
                                       server=st.name))
            return
        rpc.hold_tries += 1
        rpc.hold_wait_ms = next_hold_wait_ms(self.rpc_hold_timeout_ms, rpc.hold_tries, rpc.hold_wait_ms,
                                             self._hold_rng.uniform(0.0, 1.0))
        self.kernel.call_later(rpc.hold_wait_ms, self._retry_held, (st, st.incarnation, rpc))

    def _retry_held(self, arg: tuple[_ServerState, int, Rpc]) -> None:
        st, inc, rpc = arg
        if inc == st.server.incarnation and st.server.node is not None:
            self._serve(st.name, rpc)

    def _propose(self, st: _ServerState, rpc: Rpc) -> None:
        key = (rpc.client, rpc.rid)
        st.pending_writes[key] = rpc
        ready = st.server.propose(WriteEntry(key, rpc.command))
        if ready is None or ready.entry is None:
            if st.pending_writes.get(key) is rpc:
                del st.pending_writes[key]
                self._forward(st, rpc)

    def _quorum_read(self, st: _ServerState, rpc: Rpc) -> None:
        rid = next(self._read_ids)
        st.pending_reads[rid] = rpc
        node = st.server.node
        saved = node.config
        node.config = self._no_lease  # a consistent read always confirms leadership with a quorum round
        try:
            ready = st.server.read_index(rid)
        finally:
            node.config = saved
        if ready is None or ready.rejected:
            if st.pending_reads.pop(rid, None) is not None:
                self._forward(st, rpc)

    def _answer(self, st: _ServerState, rpc: Rpc) -> None:
        cat = st.catalog
        if rpc.op == "block" and cat.index(rpc.service) <= rpc.min_index:
            w = _Waiter(rpc)
            wait = rpc.wait_ms + self._wait_rng.uniform(0.0, rpc.wait_ms / 16)
            w.timer = self.kernel.call_later(wait, self._wait_expired, (st, st.incarnation, w))
            st.waiters.setdefault(rpc.service, []).append(w)
            return
        self._reply_state(st, rpc)

    def _wait_expired(self, arg: tuple[_ServerState, int, _Waiter]) -> None:
        st, inc, w = arg
        if w.done or inc != st.server.incarnation or st.server.node is None:
            return
        w.done = True
        ws = st.waiters.get(w.rpc.service)
        if ws is not None:
            ws.remove(w)
        self._reply_state(st, w.rpc)

    def _reply_state(self, st: _ServerState, rpc: Rpc) -> None:
        cat = st.catalog
        now = self.kernel.now
        applied = cat.applied_index
        lag = len(self.commit_times) - applied
        entries = cat.service_instances(rpc.service, rpc.passing_only)
        ld = self._load[st.name]
        op = rpc.op
        ld[op] += 1
        ld["block_instances" if op == "block" else "read_instances"] += len(entries)
        reply = Reply(rpc.rid, rpc.attempt, True, rpc.client, server=st.name, entries=entries,
                      index=cat.index(rpc.service), applied=applied, lag_index=max(lag, 0),
                      lag_ms=now - self.commit_times[applied] if lag > 0 else 0.0)
        if self.cpus is not None:  # the answer goes out when the server's processors have encoded it
            done = self.cpus[st.name].admit(now, self.serve_cost.work_ms(len(entries)))
            if done > now:
                self.kernel.call_at(done, self._reply_served, (st, st.incarnation, rpc, reply))
                return
        self._reply(st, rpc, reply)

    def _reply_served(self, arg: tuple) -> None:
        st, inc, rpc, reply = arg
        if inc != st.server.incarnation or st.server.node is None:
            self.dropped["server_down"] += 1
            return
        self._reply(st, rpc, reply)

    def _reply(self, st: _ServerState, rpc: Rpc, reply: Reply) -> None:
        reply.answered_at = self.kernel.now
        reply.path = rpc.path
        self._route(st.server, reply)

    def _route(self, server: RaftServer, reply: Reply) -> None:
        if reply.path:
            nxt = reply.path[-1]
            reply.path = reply.path[:-1]
            self.network.send(server.host, self.cluster.servers[nxt].host, self._states[nxt].relay, reply)
            return
        client = self._clients.get(reply.client)
        if client is None:
            self.dropped["no_client"] += 1
            return
        self.network.send(server.host, client.host, client._on_reply, reply)

    def _relay(self, name: str, reply: Reply) -> None:
        st = self._state(name)
        if st.server.node is None:
            self.dropped["server_down"] += 1
            return
        self._route(st.server, reply)

    # ------------------------------------------------------------ server side: Raft hooks
    def _observe(self, server: RaftServer, call: str, ready: Ready) -> None:
        if ready.role_changes and FOLLOWER in ready.role_changes:
            st = self._state(server.name)
            if st.pending_writes:  # leadership lost: the writes go to the next leader (they are idempotent)
                pending = list(st.pending_writes.values())
                st.pending_writes.clear()
                for rpc in pending:
                    self._hold(st, rpc)

    def _on_restored(self, server: RaftServer, snapshot: Any) -> None:
        """The server's catalog becomes the snapshot's (hashicorp/raft restores the FSM from it).  Its
        streaming subscriptions break, as on a crash: they reconnect and get a fresh snapshot."""
        st = self._state(server.name)
        st.catalog = Catalog.restore(snapshot.data, st.answers)
        if self._hub is not None:
            self._hub.server_crashed(server.name)

    def _on_applied(self, server: RaftServer, entries: list[Entry]) -> None:
        st = self._state(server.name)
        cat = st.catalog
        now = self.kernel.now
        ct = self.commit_times
        changed: set[str] = set()
        acks: list[tuple[Rpc, int]] = []
        hub = self._hub
        for e in entries:
            if e.index > len(ct):
                ct.append(now)
            data = e.data
            if e.kind == "command" and isinstance(data, WriteEntry):
                ch = cat.apply(e.index, data.command)
                changed.update(ch)
                if hub is not None and ch:
                    hub.on_applied(st.name, e.index, data.command, ch, cat)
                rpc = st.pending_writes.pop(data.key, None)
                if rpc is not None:
                    acks.append((rpc, e.index))
            else:
                cat.advance(e.index)
        for rpc, index in acks:
            self._reply(st, rpc, Reply(rpc.rid, rpc.attempt, True, rpc.client, server=st.name, raft_index=index,
                                       applied=cat.applied_index))
        if st.index_waiters:
            ready_now = [rpc for i, rpc in st.index_waiters if i <= cat.applied_index]
            st.index_waiters = [(i, rpc) for i, rpc in st.index_waiters if i > cat.applied_index]
            for rpc in ready_now:
                self._answer(st, rpc)
        for service in sorted(changed):
            ws = st.waiters.get(service)
            if not ws:
                continue
            index = cat.index(service)
            keep = []
            for w in ws:
                if index > w.rpc.min_index:
                    w.done = True
                    w.timer.cancel()
                    self._reply_state(st, w.rpc)
                else:
                    keep.append(w)
            st.waiters[service] = keep

    def _on_reads(self, server: RaftServer, ready: Ready) -> None:
        st = self._state(server.name)
        for rs in ready.reads:
            rpc = st.pending_reads.pop(rs.request_id, None)
            if rpc is None:
                continue
            if rs.index <= st.catalog.applied_index:
                self._answer(st, rpc)
            else:
                st.index_waiters.append((rs.index, rpc))
        for rid in ready.failed_reads:
            rpc = st.pending_reads.pop(rid, None)
            if rpc is not None:
                self._hold(st, rpc)
