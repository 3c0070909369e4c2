"""Build a runnable simulation from a checked Scenario, run it, hand back raw records.

One :class:`Simulation` is one run: one kernel, one RandomStreams root seed,
one recorder.  ``meshsim.run`` is the public way in; this class is for layers
(registry, proxies) that need to attach to a simulation before it runs.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any, Protocol

from ..core import balancers as _envoy_balancers  # noqa: F401 - registers Envoy's policies
from ..core.selection import BALANCERS, Balancer
from ..errors import ScenarioWarning
from ..rng import RandomStreams
from ..scenario.model import Scenario
from ..scenario.spec import balancer_options
from ..stats import FINE_BATCHES  # streaming: fine batch means, merged by auto_batch_means_ci
from .engine import Call, Caller, EndpointRT, Instance, ServiceRT
from .kernel import Kernel, run_until
from .network import Network
from .proxy import Proxy
from .recorder import Recorder, StreamingRecorder, status_code
from .workload import ClosedWorkload, OpenWorkload, Workload, arrival_times


class Component(Protocol):
    """Something that runs beside the request path in one simulation (see Simulation.attach)."""

    name: str

    def start(self, sim: Simulation) -> None: ...

    def summary(self) -> dict[str, Any]: ...


class Simulation:
    """A scenario instantiated on a kernel; call :meth:`run` once."""

    def __init__(self, scenario: Scenario, seed: int | None = None):
        self.scenario = scenario
        spec = scenario.spec
        self.seed = scenario.seed if seed is None else int(seed)
        self.streams = RandomStreams(self.seed)
        self.kernel = Kernel()
        self.env = self.kernel.env
        self._clock = self.kernel.clock  # the time on hot paths (one C call)
        m = spec["metrics"]
        self.warmup: float = m["warmup"]
        run = spec["run"]
        self.duration: float | None = run["duration"]
        self.max_requests: int | None = run["requests"]
        if m["mode"] == "streaming":
            expected = self.max_requests or sum(scenario.workload_rate(w) for w in scenario.workloads) * (self.duration or 0) / 1000
            if not math.isfinite(expected):  # closed users with zero think time: no useful estimate
                expected = 0
            self.recorder: Recorder = StreamingRecorder(self.warmup, m["histogram_error"], int(expected // (FINE_BATCHES * m["batches"])) or 1)
        else:
            self.recorder = Recorder(spans=m["spans"])
        self.hosts = scenario.hosts()
        self.network = Network(self.kernel, self.hosts, scenario.zones(), spec["network"], self.streams)
        #: span ids, 1, 2, ...: ``next(sim.span_ids)`` (a C-level counter on the hot path)
        self.span_ids = itertools.count(1)
        self.inflight = 0
        self.arrived = 0
        self.arrivals_open = False
        self.close_time = math.nan
        self.end_time = math.nan
        self.stop_event = self.env.event()
        self.partial_reason: str | None = None
        self._drain: bool = spec["run"]["drain"]
        self.fault_log: list[tuple[float, str, str]] = []
        self.components: list[Component] = []
        #: routers (timeouts, retries, breakers, outlier detection) made by callers, and what they did
        self.routers: list[Any] = []
        self._policies: dict[tuple, Any] = {}
        self._shared_routes: dict[tuple, tuple] = {}
        #: what keeps callers' views up to date (meshsim.registry.discovery), None: static views
        self.discovery: Any = None
        #: (time, event, caller, instance) of outlier ejections and returns
        self.mesh_events: list[tuple[float, str, str, str]] = []
        #: instance gid -> (busy_area, queue_area) at the end of warm-up and when arrivals stop
        self.snapshots: dict[str, dict[int, tuple[float, float]]] = {"warmup": {}, "close": {}}

        mesh = spec["mesh"]
        self.mesh_on: bool = mesh["mode"] != "none"
        self.proxies: list[Proxy] = []

        # services, endpoints, instances
        self.services: dict[str, ServiceRT] = {}
        self.endpoints: list[EndpointRT] = []
        for sname, sspec in spec["services"].items():
            svc = ServiceRT(sname, sspec)
            for ename, espec in sspec["endpoints"].items():
                ep = EndpointRT(sname, ename, len(self.endpoints), espec["service_time"])
                self.endpoints.append(ep)
                svc.endpoints[ename] = ep
            self.services[sname] = svc
        for sname, sspec in spec["services"].items():
            for ename, espec in sspec["endpoints"].items():
                ep = self.services[sname].endpoints[ename]
                for step in espec["calls"]:
                    calls = step["parallel"] if "parallel" in step else [step]
                    k = None if "parallel" not in step or step["wait"] == "all" else step["wait"]
                    targets = [(self.services[c["service"]], self.services[c["service"]].endpoints[c["endpoint"]],
                                c["probability"]) for c in calls]
                    ep.steps.append((targets, k))
                    ep.has_prob = ep.has_prob or any(p < 1.0 for _, _, p in targets)
                ep.seal()
        placement = scenario.placement()
        self.instances: list[Instance] = []
        self.instance_by_name: dict[str, Instance] = {}
        #: run.common_random_numbers: service times and call choices keyed by request (see crn.py)
        self.common_draws = None
        if run.get("common_random_numbers"):
            from .crn import CommonDraws, KeyedInstance

            self.common_draws = CommonDraws(self.streams)
        for svc in self.services.values():
            for i in range(svc.spec["replicas"]):
                name = f"{svc.name}-{i}"
                if self.common_draws is None:
                    inst = Instance(self, svc, i, len(self.instances), placement[name], self.streams)
                else:
                    inst = KeyedInstance(self, svc, i, len(self.instances), placement[name], self.streams,
                                         self.common_draws)
                svc.instances.append(inst)
                self.instances.append(inst)
                self.instance_by_name[name] = inst

        # workloads
        self.workloads: list[Workload] = []
        for i, (wname, wspec) in enumerate(spec["workloads"].items()):
            host = scenario.client_host(wname)
            target = self.services[wspec["target"]]
            ep = target.endpoints[wspec["endpoint"]]
            args = (self, i, wname, wspec, host, target, ep)
            if wspec["type"] == "closed":
                think = wspec["think_time"].stream(self.streams.generator(f"workload/{wname}/think"))
                w: Workload = ClosedWorkload(*args, think=think)
            else:
                times = arrival_times(wspec, self.streams.generator(f"workload/{wname}"), scenario.base_dir, f"workloads.{wname}")
                w = OpenWorkload(*args, times=times)
            self.workloads.append(w)
        self._exhausted = 0
        if self.mesh_on:
            self._build_proxies(mesh)
        self.sample_interval: float = m["sample_interval"] or self._default_sample_interval()

    def _build_proxies(self, mesh: dict) -> None:
        """Sidecars (one per instance and client) or node proxies (one per host)."""
        from ..distributions import from_spec
        from ..calibration import MESH_PROFILES

        cfg = dict(mesh)
        for key, default in MESH_PROFILES[mesh["profile"]].items():
            if cfg.get(key) is None:
                cfg[key] = default if key == "workers" else from_spec(default, f"mesh.{key}")
        callers: list[Caller] = [*self.instances, *(w for w in self.workloads if mesh["client_sidecar"])]
        if mesh["mode"] == "sidecar":
            for c in callers:
                c.proxy = Proxy(self, f"{c.name}-sidecar", c.host, cfg, self.streams)
                self.proxies.append(c.proxy)
        else:
            by_host: dict[str, Proxy] = {}
            for c in callers:
                if c.host not in by_host:
                    by_host[c.host] = Proxy(self, f"{c.host}-node-proxy", c.host, cfg, self.streams)
                    self.proxies.append(by_host[c.host])
                c.proxy = by_host[c.host]

    # -- ids and hooks used by the engine ------------------------------------
    def make_balancer(self, caller: Caller, service: ServiceRT,
                      need_health: bool = False) -> tuple[list[Instance], Balancer]:
        """The caller's own view of ``service`` and its own balancer (``services.<name>.load_balancer``).

        ``need_health``: the balancer must know endpoint health (outlier
        ejections); plain round robin is then Envoy's weighted round robin
        with equal weights, the same rotation.
        """
        view = list(service.instances)
        rng = self.streams.generator(f"lb/{caller.name}/{service.name}")
        lb = service.spec["load_balancer"]
        from ..core.resilience import is_istio

        istio = caller.proxy is not None and is_istio(self.scenario.spec["mesh"]["profile"])  # any Istio version
        cls = BALANCERS[lb["policy"] or ("least_request" if istio else "round_robin")]
        options = balancer_options(lb)
        if istio and service.spec["outlier_detection"] is not None and lb["healthy_panic_threshold"] is None:
            # Istio writes the DestinationRule's minHealthPercent (default 0: no panic) as the panic threshold
            options["healthy_panic_threshold"] = 0.0
        if cls is BALANCERS["round_robin"]:
            if not need_health and not options and not lb["zone_aware"] and not lb["locality_failover"]:
                return view, cls(len(view), rng)
            cls = BALANCERS["weighted_round_robin"]  # equal weights: the same rotation, with Envoy's options
        zone = self.hosts
        if lb["zone_aware"] and isinstance(caller, Instance):
            local: dict[str, int] = {}
            for inst in caller.service.instances:
                local[zone[inst.host]] = local.get(zone[inst.host], 0) + 1
            options.update(local_zone=zone[caller.host], local_zone_hosts=local)
        from ..core.lb.options import LbOptions

        # one options object (the scenario checker has already refused options the policy does not read)
        return view, cls(self.endpoints_for(caller, service, view), rng, LbOptions(**options))

    def endpoints_for(self, caller: Caller, service: ServiceRT, view: list[Instance],
                      unhealthy: Any = (), start_ms: dict[str, float] | None = None) -> list[Any]:
        """The balancer endpoints of ``view`` as ``caller`` sees them: zone, locality priority, health, start."""
        from ..core.balancers import Endpoint

        zone = self.hosts
        my_zone = zone.get(caller.host)
        if service.spec["load_balancer"]["locality_failover"]:
            region = self.scenario.zones()
            prio = [0 if zone[i.host] == my_zone else 1 if region.get(zone[i.host]) == region.get(my_zone) else 2
                    for i in view]
            low = min(prio, default=0)  # no instance in the caller's zone: the levels move up
            prio = [p - low for p in prio]
        else:
            prio = [0] * len(view)
        starts = start_ms or {}
        return [Endpoint(i.name, zone=zone[i.host], healthy=i.name not in unhealthy, priority=p,
                         start_ms=starts.get(i.name)) for i, p in zip(view, prio)]

    def make_route(self, caller: Caller, service: ServiceRT) -> Any:
        """The caller's route (meshsim.sim.route.Route: view, balancer, policy) for calls to ``service``."""
        from .router import route_policy

        profile = self.scenario.spec["mesh"]["profile"] if caller.proxy is not None else None
        key = (service.name, profile)
        policy = self._policies.get(key)
        if policy is None:
            policy = self._policies[key] = route_policy(service.spec, profile)
        discovery = self.discovery
        shared = None
        if caller.proxy is not None and self.scenario.spec["mesh"]["mode"] == "node":
            # one node proxy serves every caller on its host: one view, balancer and set of breakers for all
            shared = (caller.proxy, service.name)
            if shared in self._shared_routes:
                return self._shared_routes[shared]
        entry = self._new_route(caller, service, policy, discovery)
        if shared is not None:
            self._shared_routes[shared] = entry
        return entry

    def _new_route(self, caller: Caller, service: ServiceRT, policy: Any, discovery: Any) -> Any:
        from .route import Route

        view, balancer = self.make_balancer(caller, service, need_health=policy.outlier is not None)
        route = Route(caller, service, view, balancer, policy, self, follows_registry=discovery is not None)
        if not (policy.simple and discovery is None):
            self.routers.append(route)  # a policy can act: reported in summary["resilience"]
        if discovery is not None:  # the view follows the registry (meshsim.registry.discovery)
            discovery.subscribe(caller, service, route)
        return route

    def on_request_dropped(self, call: Call, reason: str) -> None:
        """A call's request message did not reach its instance: it fails at once."""
        call.finished = True
        call.status = status_code(reason)
        self.recorder.span(call, call.inst.gid, call.ep.gid, self._clock())
        call.parent.child_done(call)

    def on_reply_dropped(self, call: Call, reason: str) -> None:
        """A reply was lost on the way back: the caller sees the call fail."""
        call.status = status_code(reason)
        call.parent.child_done(call)

    def request_done(self, call: Call, status: int) -> None:
        self.recorder.request_end(call.req, self._clock(), status)
        self.inflight -= 1
        if self.inflight == 0 and not self.arrivals_open and self._drain:
            self._stop()

    def count_arrival(self) -> None:
        self.arrived += 1
        if self.max_requests is not None and self.arrived >= self.max_requests:
            self.close_arrivals()

    def workload_exhausted(self, w: Workload) -> None:
        self._exhausted += 1
        if self._exhausted == len(self.workloads):
            self.close_arrivals()

    # -- run control -------------------------------------------------------------
    def close_arrivals(self, _arg: Any = None) -> None:
        if not self.arrivals_open:
            return
        self.arrivals_open = False
        self.close_time = self.kernel.now
        self._snapshot("close")
        if isinstance(self.recorder, StreamingRecorder):
            self.recorder.close_time = self.close_time
        for w in self.workloads:
            w.stop()
        if not self._drain or self.inflight == 0:
            self._stop()

    def _snapshot(self, which: str) -> None:
        now = self.kernel.now
        for inst in self.instances:
            self.snapshots[which][inst.gid] = inst.areas(now)

    def _stop(self, _arg: Any = None) -> None:
        if not self.stop_event.triggered:
            self.stop_event.succeed()

    def _default_sample_interval(self) -> float:
        horizon = self.duration
        if horizon is None:
            rate = sum(self.scenario.workload_rate(w) for w in self.scenario.workloads)
            horizon = self.max_requests * 1000.0 / rate if rate > 0 and math.isfinite(rate) else 60_000.0
        return max(horizon / 200.0, 1e-3)

    def _sample(self, _arg: Any = None) -> None:
        now = self.kernel.now
        rec = self.recorder
        for inst in self.instances:
            rec.sample(now, inst.gid, len(inst.queue), inst.busy)
        self.kernel.call_later(self.sample_interval, self._sample)

    def _schedule_faults(self) -> None:
        for i, f in enumerate(self.scenario.spec["faults"]):
            action = f["action"]
            if action == "slow":
                targets = self._fault_instances(f)
                self.kernel.call_at(f["at"], self._slow, (f, targets, float(f["factor"])))
                if f["until"] is not None:
                    self.kernel.call_at(f["until"], self._slow, (f, targets, 1.0))
            elif action in ("crash", "restart"):
                targets = self._fault_instances(f)
                fn = self._crash if action == "crash" else self._restart
                self.kernel.call_at(f["at"], fn, (f, targets))
                if action == "crash" and f["until"] is not None:
                    self.kernel.call_at(f["until"], self._restart, (f, targets))
            elif action in ("crash_server", "restart_server", "slow_disk"):
                self.kernel.call_at(f["at"], self._registry_fault, (f, False))
                if f["until"] is not None:
                    self.kernel.call_at(f["until"], self._registry_fault, (f, True))
            else:
                self.kernel.call_at(f["at"], self._net_fault, (i, f))
                if f["until"] is not None:
                    self.kernel.call_at(f["until"], self._heal, (i, f))

    def _fault_instances(self, f: dict) -> list[Instance]:
        if f["instance"] is not None:
            return [self.instance_by_name[f["instance"]]]
        return [inst for inst in self.instances if inst.host == f["host"]]

    def _crash(self, arg: tuple) -> None:
        f, targets = arg
        if f["host"] is not None:
            self.network.set_host_up(f["host"], False)
        for inst in targets:
            inst.crash()
        self.fault_log.append((self.kernel.now, "crash", f["instance"] or f["host"]))

    def _restart(self, arg: tuple) -> None:
        f, targets = arg
        if f["host"] is not None:
            self.network.set_host_up(f["host"], True)
        for inst in targets:
            inst.restart()
        self.fault_log.append((self.kernel.now, "restart", f["instance"] or f["host"]))

    def _slow(self, arg: tuple) -> None:
        """Scale the service times of ``targets`` by ``factor`` (1.0 restores them); the draws are the same."""
        f, targets, factor = arg
        for inst in targets:
            inst.scale_service_times(factor)
        self.fault_log.append((self.kernel.now, "slow" if factor != 1.0 else "unslow", f["instance"] or f["host"]))

    def _registry_fault(self, arg: tuple) -> None:
        f, undo = arg
        what = self.discovery.fault(f, undo)
        if what is not None:
            self.fault_log.append((self.kernel.now, what[0], what[1]))

    def _net_fault(self, arg: tuple) -> None:
        i, f = arg
        if f["action"] == "degrade":
            self.network.degrade(i, f)
        else:
            self.network.partition(i, f)
        what = " <-> ".join(map(str, f["between"] or [g for g in f["groups"]]))
        self.fault_log.append((self.kernel.now, f["action"], what))

    def _heal(self, arg: tuple) -> None:
        i, f = arg
        self.network.heal(i)
        self.fault_log.append((self.kernel.now, "heal", f["action"]))

    def attach(self, component: Component) -> Component:
        """Add a component (registry, control plane, ...) that runs alongside the request path.

        Before the run its ``start(sim)`` is called (it may start SimPy
        processes on ``sim.env`` or timers on ``sim.kernel``); after the run
        its ``summary()`` dict is stored in the Result's summary under
        ``component.name``.
        """
        self.components.append(component)
        return component

    def run(self) -> Simulation:
        """Run to the end (arrivals stopped and, if draining, nothing in flight)."""
        run = self.scenario.spec["run"]
        self._drain = run["drain"]
        for c in self.components:
            c.start(self)
        self.arrivals_open = True
        for w in self.workloads:
            w.start()
        if self.duration is not None:
            self.kernel.call_at(self.duration, self.close_arrivals)
        if run["max_time"] is not None:
            self.kernel.call_at(run["max_time"], self._stop)
        self._schedule_faults()
        self.kernel.call_later(0.0, self._sample)
        if self.warmup > 0:
            self.kernel.call_at(self.warmup, self._snapshot, "warmup")
        max_wall = run.get("max_wall")
        #: why the run stopped before its end (None: it did not); the Result flags it partial
        self.partial_reason = run_until(self.env, self.stop_event, None if max_wall is None else max_wall / 1000.0)
        if self.partial_reason is not None:
            warnings.warn(f"run.max_wall: {self.partial_reason}; the result is partial", ScenarioWarning, stacklevel=3)
        self.end_time = self.env.now
        if math.isnan(self.close_time):
            self.close_time = self.end_time
            self._snapshot("close")
        for inst in self.instances:
            if inst.up:
                inst.up_time += self.end_time - inst.up_since
        return self

    def record(self) -> Any:
        """The finished run as plain data (a :class:`~meshsim.run_record.RunRecord`), built once: the
        recorder's columns, name tables, time marks, counters and each component's summary and tables.
        It refers to nothing live, so this Simulation can be collected once the record is taken."""
        rec = self.__dict__.get("_record")
        if rec is None:
            if math.isnan(self.end_time):
                raise RuntimeError("Simulation.record(): run the simulation first")
            from ..run_record import record_of

            rec = self._record = record_of(self)
        return rec
