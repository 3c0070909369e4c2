"""The Consul Global Scale Benchmark's shape, simulated: after a deploy, how long until every sidecar knows?

HashiCorp's benchmark (2020, hashicorp/consul-global-scale-benchmark) ran 5
Consul servers over 3 availability zones, 10,000 client nodes and about
172,000 service instances in three tiers, every instance with an Envoy
sidecar fed by its node's agent, and reported that a change to an upstream
service reached all the sidecars watching it in under a second.  This module
builds that shape from a few numbers (:class:`ScaleShape`, file
``data/experiments/global_scale.yaml``), so 10k, 40k and 172k instances are
the same experiment with different values:

* 5 Raft servers (consul profile) on hosts spread over the zones;
* ``hosts`` client nodes spread over the zones, each with a Consul agent that
  registers its instances and probes each every ``check_interval_ms``;
* services in tiers (instances per service per tier); every service of a tier
  calls ``upstreams`` services of the next tier, so every instance's sidecar
  watches those;
* each node's agent keeps one subscription per upstream service that any of
  its sidecars needs (Consul's agent cache shares it), with streaming or with
  blocking queries (``discovery``; blocking queries in ``blocking_mode``,
  stale by default: Consul's agent cache always sets AllowStale, so any
  server answers, ``agent/cache-types/health_services.go``); a sidecar has
  the change once its agent has it and Consul's proxy-config coalescing
  (``coalesce_ms``, 200 ms) has passed;
* each server's processors (``server_cores``) encode what it sends, at an
  assumed cost per message and per instance (:mod:`meshsim.core.cpu`);
* after ``steady_ms`` of steady state, a deploy: ``deploy_instances``
  instances of one upstream service are deregistered and as many new ones
  registered on other nodes.

:func:`run` returns a :class:`ScaleResult`: per watching sidecar the time
from the deploy's last commit until its view holds the whole change
(p50/p99/max, time until all have it), the server load of each discovery
mode, kernel events and wall time.

>>> shape = ScaleShape.sized(instances=600, hosts=40, steady_ms=10_000.0)
>>> r = run(shape, seed=1)
>>> r.summary["sidecars_watching"] > 0, r.summary["all_have_it"]
(True, True)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .._gc import fewer_collections
from ..core.catalog import PASSING
from ..core.cpu import ServeCost
from ..core.health import ProbeCheck
from ..core.raft import RaftConfig
from ..errors import ScenarioError, ScenarioErrors
from ..registry.catalog import Registry
from ..rng import RandomStreams
from ..scenario.schema import Bool, Context, Dist, Duration, Enum, Field, Float, Int, ListOf, Str, Struct
from ..sim.kernel import Kernel
from ..sim.network import Network

__all__ = ["SHAPE_FILE", "ScaleResult", "ScaleShape", "Tier", "load_shape", "run"]


@dataclass(frozen=True)
class Tier:
    """``services`` services of ``instances`` instances each; service ``N`` of a tier calls service ``N`` of the
    next tier (as the benchmark's service-a-N calls service-b-N)."""

    name: str
    services: int
    instances: int


#: the benchmark's tiers at full size (hashicorp/consul-global-scale-benchmark, services/terraform.tfvars)
BENCHMARK_TIERS = (Tier("a", 1000, 10), Tier("b", 1000, 83), Tier("c", 1000, 85))
#: the benchmark's upstream of every sidecar: service-hey, one instance (services/nomad/service-hey.tf)
SHARED_SERVICE = "hey"
#: the benchmark's size: 178,000 instances of the tiers on 10,000 client nodes
BENCHMARK_INSTANCES, BENCHMARK_HOSTS = 178_000, 10_000
#: Consul's proxy-config coalescing: a sidecar's new config goes out this long after the first change
#: (hashicorp/consul agent/proxycfg/state.go, coalesceTimeout)
COALESCE_MS = 200.0
#: the benchmark's servers: c5d.9xlarge, 36 vCPUs (infrastructure/terraform.tfvars)
SERVER_CORES = 36
#: work to send one message and per instance in it: an assumption (not measured), see docs/registry.md
SERVE_COST = ServeCost(per_message_ms=0.05, per_instance_ms=0.01)
#: the experiment's parameter file (the benchmark at full size)
SHAPE_FILE = Path(__file__).resolve().parents[1] / "data" / "scale" / "global_scale.yaml"


@dataclass(frozen=True)
class ScaleShape:
    """The experiment's parameters (times in ms); see the module doc and :data:`SHAPE_SCHEMA`."""

    tiers: tuple[Tier, ...] = BENCHMARK_TIERS
    shared_instances: int = 1
    hosts: int = BENCHMARK_HOSTS
    servers: int = 5
    zones: int = 3
    discovery: str = "streaming"
    blocking_mode: str = "stale"
    check_interval_ms: float = 5_000.0
    check_timeout_ms: float = 2_000.0
    start_ms: float = 20_000.0
    steady_ms: float = 60_000.0
    settle_ms: float = 20_000.0
    target: str = SHARED_SERVICE
    deploy_instances: int = 1
    churn_per_s_per_1000: float = 0.0
    churn_down_ms: float = 20_000.0
    raft_multiplier: int = 5
    coalesce_ms: float = COALESCE_MS
    disk_delay: Any = field(default_factory=lambda: {"dist": "uniform", "low": 0.1, "high": 0.5})
    server_cores: int = SERVER_CORES
    per_message_ms: float = SERVE_COST.per_message_ms
    per_instance_ms: float = SERVE_COST.per_instance_ms
    lazy_probes: bool = True

    def __post_init__(self):
        if self.discovery not in ("streaming", "blocking"):
            raise ValueError(f"discovery must be 'streaming' or 'blocking', got {self.discovery!r}")
        if self.blocking_mode not in ("stale", "default", "consistent"):
            raise ValueError(f"blocking_mode must be stale, default or consistent, got {self.blocking_mode!r}")
        if min(self.hosts, self.servers, self.zones) < 1:
            raise ValueError("hosts, servers and zones must be at least 1")
        if not self.tiers:
            raise ValueError("at least one tier")
        names = [t.name for t in self.tiers] + [SHARED_SERVICE]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be distinct and not {SHARED_SERVICE!r}")
        services = {f"{t.name}-{i}" for t in self.tiers for i in range(t.services)} | {SHARED_SERVICE}
        if self.target not in services:
            raise ValueError(f"target {self.target!r} is not a service of the shape")
        n_target = self.shared_instances if self.target == SHARED_SERVICE else next(
            t.instances for t in self.tiers if self.target.startswith(t.name + "-"))
        if not 1 <= self.deploy_instances <= n_target:
            raise ValueError(f"deploy_instances must be 1..{n_target} (the target's instances)")

    @property
    def instances(self) -> int:
        return sum(t.services * t.instances for t in self.tiers) + self.shared_instances

    @classmethod
    def sized(cls, instances: int, hosts: int | None = None, **kw: Any) -> ScaleShape:
        """The benchmark's tiers with the services per tier scaled so that the total is about ``instances``,
        on hosts in the benchmark's proportion (178,000 instances on 10,000 nodes) unless ``hosts`` is given.

        >>> s = ScaleShape.sized(10_000); s.instances, s.hosts, [t.services for t in s.tiers]
        (9969, 562, [56, 56, 56])
        """
        f = instances / BENCHMARK_INSTANCES
        tiers = tuple(replace(t, services=max(1, round(t.services * f))) for t in kw.pop("tiers", BENCHMARK_TIERS))
        if hosts is None:
            hosts = max(1, round(instances * BENCHMARK_HOSTS / BENCHMARK_INSTANCES))
        return cls(tiers=tiers, hosts=hosts, **kw)


# ---------------------------------------------------------------- the parameter file
TIER = Struct("tier", {
    "name": Field(Str(), doc="the tier's name; its services are NAME-0, NAME-1, ..."),
    "services": Field(Int(min=1, max=1_000_000), doc="services in the tier (at the benchmark's full size)"),
    "instances": Field(Int(min=1, max=100_000), doc="instances of each service"),
}, doc="One tier of services; service N of a tier calls service N of the next tier.")

SHAPE_SCHEMA = Struct("global scale", {
    "instances": Field(Int(min=10, max=10_000_000), default=None,
                       doc="scale the tiers' services so the shape has about this many instances (hosts in "
                           "proportion unless set); null: the tiers as written"),
    "hosts": Field(Int(min=1, max=1_000_000), default=None,
                   doc="client nodes, each with an agent (default: the benchmark's 178,000 instances per 10,000)"),
    "tiers": Field(ListOf(TIER, min_items=1), default=None, doc="the tiers (default: the benchmark's three)"),
    "shared_instances": Field(Int(min=1), default=1, doc="instances of 'hey', the upstream of every sidecar"),
    "servers": Field(Int(min=1, max=15), default=5, doc="Consul servers (Raft voters)"),
    "zones": Field(Int(min=1, max=64), default=3, doc="zones the servers and nodes spread over, round robin"),
    "discovery": Field(Enum("streaming", "blocking"), default="streaming",
                       doc="how agents watch their sidecars' upstreams"),
    "blocking_mode": Field(Enum("stale", "default", "consistent"), default="stale",
                           doc="consistency mode of the agents' blocking queries (Consul's agent cache always "
                               "asks with stale: any server answers)"),
    "check_interval": Field(Duration(min_exclusive=0), default=5_000.0, doc="HTTP check interval (benchmark 5s)"),
    "check_timeout": Field(Duration(min_exclusive=0), default=2_000.0, doc="check timeout (benchmark 2s)"),
    "start": Field(Duration(), default=20_000.0, doc="from the first leader to the sidecars subscribing"),
    "steady": Field(Duration(), default=60_000.0, doc="steady state between the subscriptions and the deploy"),
    "settle": Field(Duration(min_exclusive=0), default=20_000.0, doc="run on after the deploy"),
    "target": Field(Str(), default=SHARED_SERVICE, doc="the deployed service (default: hey, which every "
                                                       "sidecar calls)"),
    "deploy": Field(Int(min=1), default=1, doc="instances of the target deregistered and as many registered"),
    "churn": Field(Float(min=0.0), default=0.0,
                   doc="background health flaps per second per 1,000 instances (0: none)"),
    "churn_down": Field(Duration(min_exclusive=0), default=20_000.0, doc="how long a flapping instance fails"),
    "raft_multiplier": Field(Int(min=1, max=10), default=5, doc="Consul's raft_multiplier (the benchmark kept "
                                                                "the default, 5)"),
    "coalesce": Field(Duration(), default=COALESCE_MS, doc="Consul's proxycfg coalesce timeout (200ms)"),
    "disk_delay": Field(Dist(), default=None, doc="a server's fsync (default uniform 0.1-0.5ms, NVMe)"),
    "server_cores": Field(Int(min=0, max=4096), default=SERVER_CORES,
                          doc="cores of each server that encode and send answers and stream messages (0: "
                              "sending is free)"),
    "per_message": Field(Duration(), default=SERVE_COST.per_message_ms,
                         doc="work to send one answer or stream message (assumed 50us)"),
    "per_instance": Field(Duration(), default=SERVE_COST.per_instance_ms,
                          doc="work per instance in it (assumed 10us)"),
    "lazy_probes": Field(Bool(), default=True,
                         doc="leave a passing check unprobed until its answer may change (the churn says "
                             "when); the same results as probing every interval, far fewer events"),
}, doc="The Consul Global Scale Benchmark's shape (meshsim.experiments.global_scale).")

_FIELD_MAP = {"check_interval": "check_interval_ms", "check_timeout": "check_timeout_ms", "start": "start_ms",
              "steady": "steady_ms", "settle": "settle_ms", "deploy": "deploy_instances",
              "churn": "churn_per_s_per_1000", "churn_down": "churn_down_ms", "coalesce": "coalesce_ms",
              "per_message": "per_message_ms", "per_instance": "per_instance_ms"}


def load_shape(source: str | Path | dict | None = None, overrides: dict[str, Any] | list[str] | None = None
               ) -> ScaleShape:
    """A :class:`ScaleShape` from a parameter file (default :data:`SHAPE_FILE`) or dict, with ``overrides``
    (``{"instances": 10_000}`` or ``["instances=10000"]``); errors name the key and the closest valid one.

    >>> load_shape(overrides={"instances": 40_000, "discovery": "blocking"}).hosts
    2247
    >>> try:
    ...     load_shape({"instance": 10})
    ... except Exception as e:
    ...     print(e)
    instance: unknown key; valid keys are instances, hosts, tiers, shared_instances, servers, zones, discovery, blocking_mode, check_interval, check_timeout, start, steady, settle, target, deploy, churn, churn_down, raft_multiplier, coalesce, disk_delay, server_cores, per_message, per_instance, lazy_probes (did you mean 'instances'?)
    """
    from ..scenario.load import parse_override, read_yaml, set_path

    raw = dict(source) if isinstance(source, dict) else read_yaml(SHAPE_FILE if source is None else source)
    if not isinstance(raw, dict):
        raise ScenarioErrors([ScenarioError("", "the shape file must be a mapping of keys")])
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides or [])
    for k, v in items:
        raw = set_path(raw, k, v)
    ctx = Context()
    spec = SHAPE_SCHEMA.check(raw, "", ctx)
    if ctx.errors:
        raise ScenarioErrors(ctx.errors)
    kw: dict[str, Any] = {}
    for key, value in spec.items():
        if key in ("instances", "tiers", "hosts") or value is None:
            continue
        kw[_FIELD_MAP.get(key, key)] = value
    tiers = tuple(Tier(t["name"], t["services"], t["instances"]) for t in spec["tiers"]) if spec["tiers"] else \
        BENCHMARK_TIERS
    try:
        if spec["instances"] is not None:
            return ScaleShape.sized(spec["instances"], hosts=spec["hosts"], tiers=tiers, **kw)
        return ScaleShape(tiers=tiers, hosts=spec["hosts"] or BENCHMARK_HOSTS, **kw)
    except ValueError as e:
        raise ScenarioErrors([ScenarioError("", str(e))]) from None


# ---------------------------------------------------------------- the run
@dataclass
class ScaleResult:
    """What :func:`run` returns: the summary, and per node that runs sidecars of the target's callers the
    time its sidecars' config held the whole deploy (``propagation``, one row per node with its sidecars)."""

    shape: ScaleShape
    summary: dict[str, Any]
    propagation: Any  #: DataFrame: host, zone, sidecars, have_ms (simulated time), propagation_ms
    registry: Registry
    subscriptions: list  #: the agents' streams (streaming) or watches (blocking), one per node and upstream

    def sidecar_propagation_ms(self) -> np.ndarray:
        """One value per watching sidecar (a node's value repeated for each of its sidecars), sorted."""
        p = self.propagation
        return np.sort(np.repeat(p["propagation_ms"].to_numpy(), p["sidecars"].to_numpy()))


def _placement(shape: ScaleShape):
    """(instance id, service, upstreams, host index) of every instance; a service's instances on consecutive
    hosts, round robin over all hosts."""
    out = []
    k = 0
    for ti, t in enumerate(shape.tiers):
        nxt = shape.tiers[ti + 1] if ti + 1 < len(shape.tiers) else None
        for s in range(t.services):
            svc = f"{t.name}-{s}"
            ups = ((f"{nxt.name}-{s % nxt.services}",) if nxt is not None else ()) + (SHARED_SERVICE,)
            for i in range(t.instances):
                out.append((f"{svc}/{i}", svc, ups, k % shape.hosts))
                k += 1
    for i in range(shape.shared_instances):
        out.append((f"{SHARED_SERVICE}/{i}", SHARED_SERVICE, (), k % shape.hosts))
        k += 1
    return out


class _HostProxies:
    """The sidecars of one node fed by its agent: one view per upstream, coalesced as Consul's proxycfg does
    (the first change after a send arms a timer; when it fires, the sidecars get the views as they are then).
    Only the target's view is kept, as a set of instance ids."""

    __slots__ = ("kernel", "coalesce_ms", "pending", "sent", "current", "log", "target")

    def __init__(self, kernel: Kernel, coalesce_ms: float, target: str):
        self.kernel, self.coalesce_ms, self.target = kernel, coalesce_ms, target
        self.pending = False
        self.current: frozenset | None = None
        self.sent: frozenset | None = None
        self.log: list[tuple[float, frozenset]] = []  # (time, the target's instances) of every send that changed it

    def update(self, service: str, entries: tuple) -> None:
        if service == self.target:
            self.current = frozenset(e.id for e in entries)
        if not self.pending:
            self.pending = True
            self.kernel.call_later(self.coalesce_ms, self._send)

    def _send(self, _arg: Any = None) -> None:
        self.pending = False
        cur = self.current
        if cur is not None and cur != self.sent:
            self.sent = cur
            self.log.append((self.kernel.now, cur))


def _up(down: set, iid: str) -> bool:
    return iid not in down


def run(shape: ScaleShape | None = None, seed: int = 1) -> ScaleResult:
    """Run the experiment (see module doc); ``shape`` defaults to the benchmark at full size."""
    with fewer_collections():
        return _run(shape, seed)


def _run(shape: ScaleShape | None, seed: int) -> ScaleResult:
    import pandas as pd

    shape = shape if shape is not None else ScaleShape()
    t_wall = time.perf_counter()
    kernel, streams = Kernel(), RandomStreams(seed)
    zones = [f"zone-{z}" for z in range(shape.zones)]
    servers = {f"consul-{i}": f"consul-{i}" for i in range(shape.servers)}
    hosts = [f"node-{h:05d}" for h in range(shape.hosts)]
    host_zone = {h: zones[i % len(zones)] for i, h in enumerate(list(servers) + hosts)}
    spec = {"enabled": True, "latency": {}, "loss": 0.0, "links": []}
    net = Network(kernel, host_zone, {z: "region-0" for z in zones}, spec, streams)
    config = RaftConfig.profile("consul", raft_multiplier=shape.raft_multiplier)
    reg = Registry(kernel, net, servers, config, streams, disk_delay=shape.disk_delay,
                   server_cores=shape.server_cores or None,
                   serve_cost=ServeCost(shape.per_message_ms, shape.per_instance_ms))
    placement = _placement(shape)
    check = dict(interval_ms=shape.check_interval_ms, timeout_ms=shape.check_timeout_ms)
    down: set[str] = set()  # instances failing their checks now (background churn)
    sidecars: dict[int, int] = {}  # host index -> sidecars on it that call the target
    subs: dict[int, set[str]] = {}
    # the registry starts converged (every instance registered and passing, as a snapshot on every server:
    # the registration storm of 178,000 writes is not the question); the servers elect a leader, and the
    # sidecars subscribe ``start_ms`` after that
    agent_of: dict[str, Any] = {}  # instance -> its agent (the churn wakes its probe)
    agents: dict[int, Any] = {}

    def agent(h: int) -> Any:
        a = agents.get(h)
        if a is None:
            a = agents[h] = reg.agent(hosts[h], lazy_probes=shape.lazy_probes)
        return a

    for iid, svc, ups, h in placement:
        agent_of[iid] = a = agent(h)
        a.add_instance(iid, svc, check=ProbeCheck(status=PASSING, **check), probe=partial(_up, down, iid),
                       registered=True)
        if ups:
            subs.setdefault(h, set()).update(ups)
            if shape.target in ups:
                sidecars[h] = sidecars.get(h, 0) + 1
    proxies = {h: _HostProxies(kernel, shape.coalesce_ms, shape.target) for h in subs}
    subscriptions: list = []

    def subscribe(_a=None):
        for h in sorted(subs):
            client = reg.client(hosts[h])
            update = proxies[h].update
            for up in sorted(subs[h]):
                cb = partial(_deliver, update, up)
                if shape.discovery == "streaming":
                    subscriptions.append(client.stream(up, cb))
                else:
                    subscriptions.append(client.watch(up, cb, mode=shape.blocking_mode))

    reg.preload()
    reg.start()
    if not reg.run_until(lambda: reg.cluster.agreed_leader() is not None, 120_000.0):
        raise RuntimeError("no leader within 120 s of simulated time")
    start_at = kernel.now + shape.start_ms
    kernel.call_at(start_at, subscribe)
    deploy_at = start_at + shape.steady_ms
    rng = streams.generator("global_scale/churn")
    if shape.churn_per_s_per_1000 > 0:
        others = [r[0] for r in placement if r[1] != shape.target]
        mean_gap_ms = 1_000.0 / (shape.churn_per_s_per_1000 * len(placement) / 1_000.0)

        def recover(iid: str) -> None:
            down.discard(iid)
            agent_of[iid].wake(iid)

        def flap(_a=None):
            iid = others[int(rng.integers(len(others)))]
            if iid not in down:
                down.add(iid)
                agent_of[iid].wake(iid)  # its probe answers differently from now on
                kernel.call_later(shape.churn_down_ms, recover, iid)
            kernel.call_later(float(rng.exponential(mean_gap_ms)), flap)

        kernel.call_at(start_at, flap)
    t_build = time.perf_counter() - t_wall
    events0 = kernel.events_processed()
    reg.run(deploy_at - kernel.now)
    # the deploy: k instances of the target go, k new ones come up on other hosts (critical until their
    # first check passes, as Consul registers them)
    drng = streams.generator("global_scale/deploy")
    old = [r for r in placement if r[1] == shape.target][: shape.deploy_instances]
    new_ids = []
    for n, (iid, svc, _ups, h) in enumerate(old):
        reg.agent(hosts[h]).remove_instance(iid)
        nid = f"{svc}/new-{n}"
        new_ids.append(nid)
        agent_of[nid] = a = agent(int(drng.integers(shape.hosts)))
        a.add_instance(nid, svc, check=ProbeCheck(**check), probe=partial(_up, down, nid))
    reg.run(shape.settle_ms)
    gone, new = {r[0] for r in old}, set(new_ids)
    commits = [t for t, iid in _commit_log(reg) if iid in gone or iid in new]
    last_commit = max(commits) if commits else math.nan
    rows = []
    for h in sorted(sidecars):
        t_have = next((t for t, ids in proxies[h].log if t >= deploy_at and not (ids & gone) and new <= ids),
                      math.nan)
        rows.append((hosts[h], host_zone[hosts[h]], sidecars[h], t_have, t_have - last_commit))
    prop = pd.DataFrame(rows, columns=["host", "zone", "sidecars", "have_ms", "propagation_ms"])
    wall = time.perf_counter() - t_wall
    result = ScaleResult(shape, {}, prop, reg, subscriptions)
    per = result.sidecar_propagation_ms()
    have = per[~np.isnan(per)]
    q = (lambda p: float(np.percentile(have, p))) if have.size else (lambda p: math.nan)
    load = reg.load()
    span_s = load["duration_ms"] / 1_000.0
    totals = {"blocking_answers": 0, "read_answers": 0, "stream_messages": 0, "instances_sent": 0}
    for v in load["servers"].values():
        totals["blocking_answers"] += v["blocking"]["requests"]
        totals["read_answers"] += v["reads"]["requests"]
        totals["stream_messages"] += v["streaming"]["snapshots"] + v["streaming"]["events"]
        totals["instances_sent"] += (v["blocking"]["instances"] + v["reads"]["instances"]
                                     + v["streaming"]["instances"])
    busiest = max(load["servers"].values(), key=lambda v: v["blocking"]["instances"] + v["reads"]["instances"]
                  + v["streaming"]["instances"])
    result.summary = {
        "instances": shape.instances, "hosts": shape.hosts, "services": len({r[1] for r in placement}),
        "discovery": shape.discovery,
        "sidecars_watching": int(per.size), "all_have_it": bool(have.size == per.size and per.size > 0),
        "deploy_commit_ms": last_commit - deploy_at,
        "propagation_ms": {"p50": q(50), "p99": q(99), "max": float(have.max()) if have.size else math.nan},
        "writes": len(reg.writes), "server_load": totals,
        "busiest_server_instances_per_s": (busiest["blocking"]["instances"] + busiest["reads"]["instances"]
                                           + busiest["streaming"]["instances"]) / span_s,
        "server_cpu": _cpu_summary(load),
        "events": kernel.events_processed(), "events_run": kernel.events_processed() - events0,
        "simulated_ms": kernel.now, "wall_s": wall, "build_s": t_build,
    }
    return result


def _cpu_summary(load: dict) -> dict[str, float]:
    """The busiest server's processors: utilisation, mean and largest wait, and backlog at the end (ms)."""
    cpus = [v["cpu"] for v in load["servers"].values() if "cpu" in v]
    if not cpus:
        return {"utilisation": math.nan, "mean_wait_ms": math.nan, "max_wait_ms": math.nan, "backlog_ms": math.nan}
    c = max(cpus, key=lambda c: c["busy_ms"])
    return {k: c[k] for k in ("utilisation", "mean_wait_ms", "max_wait_ms", "backlog_ms")}


def _deliver(update, service: str, now: float, entries: tuple, index: int) -> None:
    update(service, entries)


def _commit_log(reg: Registry):
    """(commit time, instance id) of every committed write."""
    w = reg.writes
    out = []
    for ok, idx, iid in zip(w["ok"], w["raft_index"], w["instance"]):
        if ok and idx and 0 < idx <= len(reg.commit_times):
            out.append((reg.commit_times[idx - 1], iid))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m meshsim.experiments.global_scale [--file F] [--set KEY=VALUE ...] [--seed N] [--json]``:
    run the experiment and print its summary (exit 2 on a bad parameter)."""
    import argparse
    import json
    import resource
    import sys

    ap = argparse.ArgumentParser(prog="python -m meshsim.experiments.global_scale", description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=None, help=f"parameter file (default {SHAPE_FILE.name})")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a parameter, e.g. --set instances=10000 --set discovery=blocking")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    try:
        shape = load_shape(args.file, args.overrides)
    except ScenarioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    r = run(shape, seed=args.seed)
    s = dict(r.summary, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    if args.json:
        print(json.dumps(s, indent=1, default=float))
    else:
        p = s["propagation_ms"]
        print(f"{s['instances']:,} instances on {s['hosts']:,} nodes, {s['discovery']}: a deploy of "
              f"{shape.target!r} reached {s['sidecars_watching']:,} sidecars: p50 {p['p50']:.0f} ms, p99 "
              f"{p['p99']:.0f} ms, max {p['max']:.0f} ms after its commit (all: {s['all_have_it']})")
        print(f"{s['events']:,} events in {s['wall_s']:.1f} s wall, peak RSS {s['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
