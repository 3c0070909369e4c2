"""Service discovery through the registry: what a scenario's ``registry:`` section builds.

:func:`attach_registry` adds to a :class:`~meshsim.sim.simulation.Simulation`:

* a :class:`~meshsim.registry.catalog.Registry` (Raft servers on hosts
  ``registry-0``, ``registry-1``, ...);
* an agent on every host with instances, which registers them and runs their
  health check (a probe of the instance, or a TTL kept alive by the running
  instance), writing every transition to the catalog;
* the way callers learn instances:

  - callers with a proxy (``mesh.mode`` sidecar or node) get them from the
    :class:`ControlPlane`: it watches each service from host
    ``control-plane``, debounces changes as istiod does and pushes the
    passing instances to every proxy, each after its own push latency;
  - callers without a proxy watch the service through their host's agent
    (``discovery: watch``, or its synonym ``blocking``: Consul blocking
    queries), subscribe to it through their host's agent (``discovery:
    streaming``, Consul's streaming, :mod:`meshsim.registry.streaming`), or
    resolve it with a
    DNS lookup cached for ``dns_ttl`` (``discovery: dns``): a call made
    when the cached answer is older than the TTL starts a refresh and goes
    on with the old answer;
  - with ``discovery: streaming`` the control plane subscribes to every
    service with streaming too (as Consul's own xDS server does once
    ``use_streaming_backend`` is on); otherwise it watches with blocking
    queries in ``mesh.control_plane.read_mode``.

Every caller starts with every instance (the registry converged before the
run); from then on it routes on what it last learnt, so a crashed instance
receives calls until a check, a push or outlier detection removes it.

Simplifications: agents have no gossip layer (Consul's serf): a host that
goes down takes its agent with it and its instances stay in the catalog as
they were; instances are checked by their own host's agent only.
"""

from __future__ import annotations

from typing import Any

from ..core.health import PASSING, ProbeCheck, TTLCheck
from ..core.raft import RaftConfig
from ..distributions import Exponential, from_spec
from ..scenario.raft_keys import raft_config_fields
from .catalog import Registry


def raft_config(reg: dict[str, Any]) -> RaftConfig:
    """The RaftConfig of a checked ``registry:`` section: its profile (and raft_multiplier), then ``registry.raft``.

    >>> c = raft_config({"profile": "consul", "raft_multiplier": 1, "raft": {"election_timeout_min": 300.0}})
    >>> c.election_timeout_min_ms, c.election_timeout_max_ms, c.heartbeat_interval_ms, c.leader_lease_ms
    (300.0, 600.0, 30.0, 300.0)
    """
    return RaftConfig(**raft_config_fields(reg))


def split_windows(windows: list, started_at: float | None = 0.0) -> dict[str, Any]:
    """Split the cluster's windows without a leader into the start-up election and the later ones.

    The first window opens when the servers start (``started_at``) and closes
    when the first leader is elected: that is the start-up election, not an
    outage.  Every later window (a leader crashed, a partition, a step-down)
    is a failover window.  If the first leader is lost before it is elected,
    both are one window, counted as the start-up election.

    >>> s = split_windows([(0.0, 1218.5), (31000.0, 32289.5), (40000.0, 40500.0)])
    >>> s["startup_election_ms"], s["failover_windows"], s["failover_unavailable_ms"], s["max_failover_ms"]
    (1218.5, [(31000.0, 32289.5), (40000.0, 40500.0)], 1789.5, 1289.5)
    """
    ws = [(float(a), float(b)) for a, b in windows]
    startup = None
    if ws and started_at is not None and ws[0][0] <= float(started_at):
        startup, ws = ws[0], ws[1:]
    durations = [b - a for a, b in ws]
    return {
        "startup_election_ms": (startup[1] - startup[0]) if startup is not None else 0.0,
        "failover_windows": ws,
        "failover_unavailable_ms": float(sum(durations)),
        "max_failover_ms": float(max(durations)) if durations else 0.0,
    }


def attach_registry(sim: Any) -> RegistryDiscovery:
    """Build the scenario's registry, agents and discovery on ``sim`` (before it runs)."""
    comp = RegistryDiscovery(sim)
    sim.attach(comp)
    return comp


class RegistryDiscovery:
    """The registry component of a simulation (see module doc)."""

    name = "registry"

    def __init__(self, sim: Any):
        spec = sim.scenario.spec
        reg = spec["registry"]
        self.sim = sim
        self.spec = reg
        #: the Raft timing the servers run: the profile's, then the scenario's ``registry.raft`` keys
        self.raft_config = config = raft_config(reg)
        servers = {f"registry-{i}": f"registry-{i}" for i in range(reg["servers"])}
        self.registry = Registry(sim, None, servers, config, name="registry", disk_delay=reg["disk_delay"] or 0.0,
                                 duplicate=reg["duplicate"], reorder=reg["reorder"])
        window = reg["record_messages"]
        if window is not None:
            self.registry.cluster.record_messages(window["from"], window["until"])
        hc = reg["health_check"]
        for inst in sim.instances:
            agent = self.registry.agent(inst.host, anti_entropy_ms=reg["anti_entropy"])
            agent.add_instance(inst.name, inst.service.name, **self._check(hc, inst))
        #: (caller host or proxy, service) -> upstreams to update; filled as callers make their routes
        self.upstreams: dict[str, list[Any]] = {}
        self.views: dict[str, list[Any]] = {}  # service -> last passing instances learnt by anyone (for stats)
        self.start_ms: dict[str, dict[str, float]] = {}  # service -> instance -> when it (re)joined a view
        self.watches: dict[tuple[str, str], Any] = {}
        self.resolvers: dict[str, Any] = {}
        self.updates = 0
        self._booted = False
        mesh = spec["mesh"]
        self.control_plane = ControlPlane(self, mesh["control_plane"]) if mesh["mode"] != "none" else None
        sim.discovery = self

    @staticmethod
    def _check(hc: dict, inst: Any) -> dict[str, Any]:
        kind = hc["type"]
        thresholds = {}
        if hc["failures_before_critical"] is not None:
            thresholds["failures_before_critical"] = hc["failures_before_critical"]
        if hc["success_before_passing"] is not None:
            thresholds["success_before_passing"] = hc["success_before_passing"]
        if hc["deregister_critical_after"] is not None:
            thresholds["deregister_critical_after_ms"] = hc["deregister_critical_after"]
        if kind == "probe":
            timeout = hc["timeout"] if hc["timeout"] is not None else min(10_000.0, hc["interval"])
            return {"check": ProbeCheck(hc["interval"], timeout, status=PASSING, **thresholds),
                    "probe": lambda: inst.up}
        if kind == "ttl":
            return {"check": TTLCheck(hc["ttl"], status=PASSING, **thresholds), "alive": lambda: inst.up}
        return {}

    # ------------------------------------------------------------ component protocol
    def start(self, sim: Any) -> None:
        self.registry.start(sim)
        if self.control_plane is not None:
            self.control_plane.start()

    def summary(self) -> dict[str, Any]:
        """The registry's summary; ``raft`` gains the start-up election apart from the failover windows
        (:func:`split_windows`; ``unavailable_ms`` stays the total over every window, start-up included)."""
        out = self.registry.summary()
        raft = out.get("raft")
        if isinstance(raft, dict) and "unavailability_windows" in raft:
            raft.update(split_windows(raft["unavailability_windows"], self.registry.cluster._started_at))
        out["view_updates"] = self.updates
        if self.control_plane is not None:
            out["control_plane"] = self.control_plane.summary()
        return out

    # ------------------------------------------------------------ faults from the scenario timeline
    def fault(self, f: dict, undo: bool) -> tuple[str, str] | None:
        """Apply (or, at ``until``, undo) a registry fault; returns (event, target) for the fault log."""
        cluster = self.registry.cluster
        name = f["server"]
        if name == "leader":
            name = f.setdefault("_resolved", cluster.leader()) if not undo else f.get("_resolved")
            if name is None:
                return ("no_leader", f["action"])
        action = f["action"]
        if action == "crash_server":
            (cluster.restart if undo else cluster.crash)(name)
            return ("restart_server" if undo else "crash_server", name)
        if action == "restart_server":
            cluster.restart(name)
            return ("restart_server", name)
        server = cluster.servers[name]
        if undo:
            server._disk = self._disk_before.pop(name)
            return ("disk_restored", name)
        if not hasattr(self, "_disk_before"):
            self._disk_before: dict[str, Any] = {}
        self._disk_before[name] = server._disk
        server._disk = f["latency"].stream(self.sim.streams.generator(f"registry/slow-disk/{name}/{f['at']}"))
        return ("slow_disk", name)

    # ------------------------------------------------------------ hooks used by Simulation.make_route
    def subscribe(self, caller: Any, service: Any, upstream: Any) -> None:
        """``upstream`` (a caller's view of ``service``) follows the registry from now on."""
        if caller.proxy is not None and self.control_plane is not None:
            self.control_plane.subscribe(caller.proxy, service.name, upstream)
            return
        mode = self.spec["read_mode"]
        if self.spec["discovery"] == "dns":
            resolver = self.resolvers.get(caller.host)
            if resolver is None:
                resolver = self.resolvers[caller.host] = self.registry.dns(
                    caller.host, self.spec["dns_ttl"], mode=mode)
            upstream.refresh = _DnsRefresh(self, resolver, service.name, upstream)
            return
        key = (caller.host, service.name)
        subs = self.upstreams.setdefault(f"{caller.host}/{service.name}", [])
        subs.append(upstream)
        if key not in self.watches:
            client = self.registry.client(caller.host)
            cb = lambda now, entries, index: self.apply(subs, service.name, entries)  # noqa: E731
            if self.spec["discovery"] == "streaming":
                self.watches[key] = client.stream(service.name, cb)
            else:
                self.watches[key] = client.watch(service.name, cb, mode=mode)

    @property
    def booted(self) -> bool:
        """Every instance is in the leader's catalog: the registry has what callers started with.

        Until then answers are partial (agents are still registering) and are not applied."""
        if not self._booted:
            lead = self.registry.leader()
            if lead is not None:
                cat = self.registry.catalog(lead)
                self._booted = all(cat.instance(i.name) is not None for i in self.sim.instances)
        return self._booted

    def apply(self, upstreams: list[Any], service: str, entries: tuple) -> None:
        """Point ``upstreams`` at the instances of ``entries`` (passing entries of ``service``)."""
        if not self.booted:
            return
        by_name = self.sim.instance_by_name
        view = [by_name[e.id] for e in entries if e.id in by_name]
        view.sort(key=lambda i: i.gid)
        starts = self.start_ms.setdefault(service, {})
        before = {i.name for i in self.views.get(service, ())}
        now = self.sim.kernel.now
        for inst in view:
            if inst.name not in before and before:
                starts[inst.name] = now
        self.views[service] = view
        for up in upstreams:
            self.updates += 1
            up.set_view(list(view), starts)


class _DnsRefresh:
    """Called by an Upstream before each call: start a lookup when the last answer is older than the TTL."""

    __slots__ = ("disc", "resolver", "service", "upstream", "due", "busy")

    def __init__(self, disc: RegistryDiscovery, resolver: Any, service: str, upstream: Any):
        self.disc, self.resolver, self.service, self.upstream = disc, resolver, service, upstream
        self.due = resolver.ttl_ms
        self.busy = False

    def __call__(self, now: float) -> None:
        if self.busy or now < self.due:
            return
        self.busy = True
        self.resolver.lookup(self.service, self._answer)

    def _answer(self, now: float, entries: tuple, cached: bool) -> None:
        self.busy = False
        self.due = now + self.resolver.ttl_ms
        if entries or not cached:
            self.disc.apply([self.upstream], self.service, entries)


class ControlPlane:
    """istiod's role: watch every service, debounce, push passing instances to each proxy (see module doc)."""

    def __init__(self, disc: RegistryDiscovery, spec: dict):
        self.disc = disc
        self.sim = disc.sim
        self.kernel = disc.sim.kernel
        self.debounce_after = spec["debounce_after"]
        self.debounce_max = spec["debounce_max"]
        self.mode = spec["read_mode"]
        dist = spec["push_latency"] if spec["push_latency"] is not None else Exponential(50.0)
        if isinstance(dist, dict):
            dist = from_spec(dist, "mesh.control_plane.push_latency")
        self.latency = dist.stream(self.sim.streams.generator("control-plane/push"))
        self.client = disc.registry.client("control-plane")
        #: proxy -> service -> upstreams behind that proxy
        self.proxies: dict[Any, dict[str, list[Any]]] = {}
        self.latest: dict[str, tuple] = {}
        self.dirty: set[str] = set()
        self.first_change: float | None = None
        self.last_change = 0.0
        self._timer = None
        self.pushes = 0
        self.proxy_updates = 0
        #: (time, services pushed, proxies) of each push
        self.log: list[tuple[float, tuple[str, ...], int]] = []

    def start(self) -> None:
        streaming = self.disc.spec["discovery"] == "streaming"
        for name in self.sim.services:
            if streaming:
                self.client.stream(name, self._changed_cb(name))
            else:
                self.client.watch(name, self._changed_cb(name), mode=self.mode)

    def subscribe(self, proxy: Any, service: str, upstream: Any) -> None:
        self.proxies.setdefault(proxy, {}).setdefault(service, []).append(upstream)

    def _changed_cb(self, service: str):
        def changed(now: float, entries: tuple, index: int) -> None:
            self.latest[service] = entries
            if not self.disc.booted:
                return  # agents are still registering: proxies keep the full view they started with
            self.dirty.add(service)
            if self.first_change is None:
                self.first_change = now
            self.last_change = now
            self._arm()
        return changed

    def _arm(self) -> None:
        due = min(self.last_change + self.debounce_after, self.first_change + self.debounce_max)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.kernel.call_at(due, self._push)

    def _push(self, _arg: Any = None) -> None:
        self._timer = None
        services = tuple(sorted(self.dirty))
        self.dirty.clear()
        self.first_change = None
        self.pushes += 1
        self.log.append((self.kernel.now, services, len(self.proxies)))
        for proxy, by_service in self.proxies.items():
            todo = [(s, by_service[s]) for s in services if s in by_service]
            if todo:
                self.kernel.call_later(next(self.latency), self._apply, todo)

    def _apply(self, todo: list) -> None:
        self.proxy_updates += 1
        for service, upstreams in todo:
            self.disc.apply(upstreams, service, self.latest[service])

    def summary(self) -> dict[str, Any]:
        return {"pushes": self.pushes, "proxy_updates": self.proxy_updates, "proxies": len(self.proxies),
                "debounce_after_ms": self.debounce_after, "debounce_max_ms": self.debounce_max}


__all__ = ["ControlPlane", "RegistryDiscovery", "attach_registry", "raft_config", "split_windows"]
