"""Consul-like client agents: one per host, owning that host's service instances and their checks.

An :class:`Agent` registers its instances through the host's
:class:`~meshsim.registry.client.RegistryClient` when it starts, runs each
instance's health check (:mod:`meshsim.core.health`) and writes every status
transition to the catalog through Raft.  Writes are serialized per instance
(one in flight; the newest wanted state is sent when it returns), so a retry
can never overwrite a newer status.  Like Consul's agent it treats its local
state as authoritative: anti-entropy reads the catalog every
``anti_entropy_ms`` (+ a random stagger), re-registers missing or different
entries and deregisters entries on its host that it does not know.

Consul sources: anti-entropy syncs every ``Interval + RandomStagger(scale *
Interval)`` with a 1 minute interval and ``scale = 1`` up to 128 nodes,
doubling with every doubling of the cluster beyond that (hashicorp/consul
``agent/ae/ae.go``: ``scaleFactor``, ``scaleThreshold = 128``); a failed
full sync is retried after ``retryFailIntv + RandomStagger(scale *
retryFailIntv)``, 15 s plus up to another 15 s (times the scale factor)
(``StateSyncer.retryFullSync`` with the cluster-size ``delayer.Jitter``):
:func:`ae_retry_delay_ms`; the critical-service reaper runs every 30 s (see
:mod:`meshsim.core.health`).

Checks: a :class:`~meshsim.core.health.TTLCheck` needs heartbeats, either
from :meth:`Agent.heartbeat` or by polling ``alive()`` every
``heartbeat_ms``; a :class:`~meshsim.core.health.ProbeCheck` calls
``probe()`` every interval (False = no answer: the probe fails when its
timeout expires).  An instance without a check is passing, as in Consul.

>>> from meshsim.core.health import TTLCheck
>>> from meshsim.registry.catalog import Registry
>>> from meshsim.core.raft import RaftConfig
>>> reg = Registry.standalone(servers=3, clients=["h1"], latency=1.0, seed=3,
...                           config=RaftConfig.profile("consul", raft_multiplier=1))
>>> up = {"web-1": True}
>>> agent = reg.agent("h1")
>>> agent.add_instance("web-1", "web", check=TTLCheck(ttl_ms=2_000), alive=lambda: up["web-1"])
>>> reg.start(); reg.run(5_000)
>>> [e.id for e in reg.catalog(reg.leader()).service_instances("web")]
['web-1']
>>> up["web-1"] = False; reg.run(3_000)
>>> reg.catalog(reg.leader()).service_instances("web"), agent.status("web-1")
((), 'critical')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..core.catalog import CRITICAL, PASSING, Deregister, Register, SetHealth, _check_status
from ..core.health import REAP_INTERVAL_MS, HealthCheck, ProbeCheck, TTLCheck
from .client import Call

__all__ = ["AE_INTERVAL_MS", "AE_RETRY_MS", "Agent", "ae_retry_delay_ms", "ae_scale_factor"]

#: Consul anti-entropy interval (1 minute) and retry interval after a failed full sync (15 s)
AE_INTERVAL_MS = 60_000.0
AE_RETRY_MS = 15_000.0


def ae_scale_factor(nodes: int) -> int:
    """Consul's anti-entropy scale factor: 1 up to 128 nodes, +1 per doubling beyond.

    >>> [ae_scale_factor(n) for n in (1, 128, 129, 256, 257, 8192)]
    [1, 1, 2, 2, 3, 7]
    """
    if nodes <= 128:
        return 1
    return int(math.ceil(math.log2(nodes) - math.log2(128)) + 1)


def ae_retry_delay_ms(retry_ms: float, scale: int, u: float) -> float:
    """The wait before a failed full sync is tried again, for a uniform draw ``u`` in [0, 1):
    ``retry_ms + u * scale * retry_ms`` (hashicorp/consul ``agent/ae/ae.go`` ``retryFullSync``:
    ``retryFailIntv + Delayer.Jitter(retryFailIntv)``, the jitter ``lib.RandomStagger(scaleFactor(n) *
    retryFailIntv)``, uniform on [0, scale * 15 s)).  ``u = 0`` gives the bare interval (no stagger).

    >>> ae_retry_delay_ms(15_000.0, 1, 0.0), ae_retry_delay_ms(15_000.0, 1, 0.5), ae_retry_delay_ms(15_000.0, 3, 0.5)
    (15000.0, 22500.0, 37500.0)
    """
    return retry_ms + u * scale * retry_ms


class _Instance:
    __slots__ = ("id", "service", "zone", "tags", "check", "alive", "probe", "heartbeat_ms", "probe_response_ms",
                 "acked", "inflight", "removed", "ttl_timer_at", "started", "writes", "asleep_next")

    def __init__(self, iid, service, zone, tags, check, alive, probe, heartbeat_ms, probe_response_ms):
        self.id, self.service, self.zone, self.tags = iid, service, zone, tuple(tags)
        self.check: HealthCheck | None = check
        self.alive, self.probe = alive, probe
        self.heartbeat_ms, self.probe_response_ms = heartbeat_ms, probe_response_ms
        self.acked: tuple | None = None  # (service, tags, status) the catalog is known to hold; None = absent
        self.inflight = False
        self.removed = False
        self.ttl_timer_at: float | None = None
        self.started = False
        self.writes = 0
        #: lazy probes: when the next probe would run, while none is scheduled (None: probing as usual)
        self.asleep_next: float | None = None

    @property
    def status(self) -> str:
        return self.check.status if self.check is not None else PASSING

    @property
    def output(self) -> str:
        return self.check.output if self.check is not None else ""

    def wanted(self) -> tuple | None:
        return None if self.removed else (self.service, self.tags, self.status)


class Agent:
    """The agent on ``host`` (see module doc).  Made by :meth:`Registry.agent
    <meshsim.registry.catalog.Registry.agent>`; instances added before the
    registry starts are registered when it starts, later ones at once.

    ``anti_entropy_ms`` None = Consul's 1 minute times :func:`ae_scale_factor`
    of ``cluster_size`` (default: the number of agents).  A failed full sync
    is tried again after :func:`ae_retry_delay_ms` (``retry_ms`` plus up to
    scale × ``retry_ms``).  ``stagger`` False removes the random stagger of
    anti-entropy, of its retries and of first probes (exact timings in tests).
    A failed write of one instance is retried after exactly ``retry_ms``.

    ``lazy_probes``: a passing probe check whose next success would change nothing
    (:attr:`ProbeCheck.quiet <meshsim.core.health.ProbeCheck.quiet>`) is not probed again until
    :meth:`wake` says its answer may have changed; then the probes it skipped are counted as successes
    and the next one runs exactly when it would have.  Same health, writes and timings as probing every
    interval, far fewer events, *provided* every change of a probe's answer is announced with
    :meth:`wake` (tests/test_global_scale.py compares both).  Off by default: a probe's answer may hang on
    anything (a crashed host, a fault) that does not call :meth:`wake`.
    """

    #: a probe answered with no delay is handled at once rather than as an event at the same instant (the
    #: fast path; tests/test_global_scale.py checks that both give the same tables)
    inline_outcomes = True

    def __init__(self, registry: Any, host: str, *, zone: str | None = None, anti_entropy_ms: float | None = None,
                 cluster_size: int | None = None, reap_interval_ms: float = REAP_INTERVAL_MS,
                 retry_ms: float = AE_RETRY_MS, stagger: bool = True, lazy_probes: bool = False):
        for v, what in ((anti_entropy_ms, "anti_entropy_ms"), (reap_interval_ms, "reap_interval_ms"),
                        (retry_ms, "retry_ms")):
            if v is not None and (not v > 0 or not math.isfinite(v)):
                raise ValueError(f"{what} must be a positive number of ms, got {v!r}")
        if cluster_size is not None and cluster_size < 1:
            raise ValueError("cluster_size must be at least 1")
        self.registry = registry
        self.host = host
        self.client = registry.client(host, zone)
        self.kernel = registry.kernel
        self.zone = self.client.network.host_zone[host]
        self.anti_entropy_ms = anti_entropy_ms
        self.cluster_size = cluster_size
        self.reap_interval_ms = float(reap_interval_ms)
        self.retry_ms = float(retry_ms)
        self.stagger = stagger
        self.lazy_probes = bool(lazy_probes)
        self.rng = registry.streams.generator(f"{registry.name}/agent/{host}")
        self.instances: dict[str, _Instance] = {}
        self.started = False
        self.full_syncs = 0
        self.repairs = 0  # entries anti-entropy found missing or different in the catalog
        self._seen_services: set[str] = set()
        self._reaper_on = False

    def __repr__(self) -> str:
        return f"Agent({self.host!r}, instances={len(self.instances)})"

    # ------------------------------------------------------------ API
    def add_instance(self, instance_id: str, service: str, *, zone: str | None = None, tags: tuple[str, ...] = (),
                     check: HealthCheck | None = None, alive: Callable[[], bool] | None = None,
                     probe: Callable[[], bool] | None = None, heartbeat_ms: float | None = None,
                     probe_response_ms: float = 0.0, registered: bool = False) -> None:
        """Own a service instance on this host; ``check`` is a TTLCheck, a ProbeCheck or None.

        ``registered``: the catalog holds the instance already, as the agent has it (its check's status now),
        so starting it writes nothing: for a registry loaded with :meth:`Registry.preload
        <meshsim.registry.catalog.Registry.preload>` before it starts."""
        if instance_id in self.instances:
            raise ValueError(f"instance {instance_id!r} is already on agent {self.host!r}")
        if isinstance(check, ProbeCheck) and probe is None:
            raise ValueError("a ProbeCheck needs probe=callable returning True when the instance answers")
        if probe is not None and not isinstance(check, ProbeCheck):
            raise ValueError("probe= needs check=ProbeCheck(...)")
        if alive is not None and not isinstance(check, TTLCheck):
            raise ValueError("alive= emulates the heartbeats of a TTL check: needs check=TTLCheck(...)")
        if check is not None and not isinstance(check, (TTLCheck, ProbeCheck)):
            raise ValueError(f"check must be a TTLCheck or ProbeCheck, got {type(check).__name__}")
        if isinstance(check, TTLCheck):
            heartbeat_ms = check.ttl_ms / 3 if heartbeat_ms is None else heartbeat_ms
            if not heartbeat_ms > 0:
                raise ValueError("heartbeat_ms must be positive")
        inst = _Instance(instance_id, service, zone or self.zone, tags, check, alive, probe, heartbeat_ms,
                         float(probe_response_ms))
        if registered:
            if self.started:
                raise ValueError("registered=True is for instances added before the registry starts")
            inst.acked = inst.wanted()
        self.instances[instance_id] = inst
        self._seen_services.add(service)
        if self.started:
            self._start_instance(inst)

    def heartbeat(self, instance_id: str, status: str = PASSING, output: str = "") -> None:
        """The instance reports to its TTL check (Consul's /v1/agent/check/pass|warn|fail)."""
        _check_status(status)
        inst = self.instances[instance_id]
        if not isinstance(inst.check, TTLCheck):
            raise ValueError(f"instance {instance_id!r} has no TTL check")
        if inst.removed:
            return
        old = inst.check.status
        self._transition(inst, old, inst.check.heartbeat(self.kernel.now, status, output))
        self._arm_ttl(inst)

    def wake(self, instance_id: str) -> None:
        """The instance's probe may answer differently from now on (``lazy_probes``): if it was left
        unprobed, count the probes it skipped (all successes) and schedule the next one when it is due."""
        inst = self.instances.get(instance_id)
        if inst is None or inst.asleep_next is None:
            return
        due_at, inst.asleep_next = inst.asleep_next, None
        if inst.removed:
            return
        c: ProbeCheck = inst.check
        now, due, response_ms = self.kernel.now, self.kernel.due, inst.probe_response_ms
        while due_at < now:  # a probe that started before now saw the old answer: a success
            decided = due(due_at, c.outcome_time(due_at, True, response_ms))
            c.result(True, decided)
            due_at = due(decided, c.next_probe)
        self.kernel.call_exactly_at(due_at, self._probe, inst)

    def remove_instance(self, instance_id: str) -> None:
        """Stop the instance's check and deregister it."""
        inst = self.instances[instance_id]
        inst.removed = True
        self._sync(inst)

    def status(self, instance_id: str) -> str:
        """The instance's local check status."""
        return self.instances[instance_id].status

    def in_sync(self) -> bool:
        """True when the catalog is known to hold exactly what this agent wants."""
        return all(i.acked == i.wanted() and not i.inflight for i in self.instances.values())

    # ------------------------------------------------------------ life cycle
    def start(self) -> None:
        if self.started:
            return
        self.started = True
        for inst in list(self.instances.values()):
            self._start_instance(inst)
        self._schedule_full_sync()

    def _start_instance(self, inst: _Instance) -> None:
        now = self.kernel.now
        inst.started = True
        c = inst.check
        if isinstance(c, TTLCheck):
            c.start(now)
            if inst.alive is not None:
                self._poll_alive(inst)  # first heartbeat now: registers as passing if alive
            self._arm_ttl(inst)
        elif isinstance(c, ProbeCheck):
            delay = float(self.rng.uniform(0.0, c.interval_ms)) if self.stagger else 0.0
            self.kernel.call_at(c.start(now, delay), self._probe, inst)
        if c is not None and c.deregister_critical_after_ms is not None and not self._reaper_on:
            self._reaper_on = True
            self.kernel.call_later(self.reap_interval_ms, self._reap)
        self._sync(inst)

    # ------------------------------------------------------------ checks
    def _transition(self, inst: _Instance, old: str, new: str | None) -> None:
        if new is None:
            return
        self.registry._record_health(self.host, inst.id, inst.service, old, new, inst.output)
        self._sync(inst)

    def _arm_ttl(self, inst: _Instance) -> None:
        d = inst.check.deadline
        if d is not None and inst.ttl_timer_at is None:
            inst.ttl_timer_at = d
            self.kernel.call_at(d, self._ttl_due, inst)

    def _ttl_due(self, inst: _Instance) -> None:
        inst.ttl_timer_at = None
        if inst.removed:
            return
        old = inst.check.status
        self._transition(inst, old, inst.check.expire(self.kernel.now))
        self._arm_ttl(inst)  # a heartbeat moved the deadline: wait for the new one

    def _poll_alive(self, inst: _Instance, first: bool = True) -> None:
        if inst.removed:
            return
        if inst.alive():
            old = inst.check.status
            self._transition(inst, old, inst.check.heartbeat(self.kernel.now))
            self._arm_ttl(inst)
        # instances do not heartbeat in lockstep: with stagger the second poll comes after U(0, heartbeat_ms)
        nxt = float(self.rng.uniform(0.0, inst.heartbeat_ms)) if (first and self.stagger) else inst.heartbeat_ms
        self.kernel.call_later(nxt, self._poll_alive_again, inst)

    def _poll_alive_again(self, inst: _Instance) -> None:
        self._poll_alive(inst, first=False)

    def _probe(self, inst: _Instance) -> None:
        if inst.removed:
            return
        c: ProbeCheck = inst.check
        ok = bool(inst.probe())
        now = self.kernel.now
        at = c.outcome_time(now, ok, inst.probe_response_ms)
        if at <= now and self.inline_outcomes:
            self._probe_done((inst, ok))  # an answer with no delay: the same as an event at this instant
            return
        self.kernel.call_at(at, self._probe_done, (inst, ok))

    def _probe_done(self, arg: tuple[_Instance, bool]) -> None:
        inst, ok = arg
        if inst.removed:
            return
        c: ProbeCheck = inst.check
        old = c.status
        now = self.kernel.now
        self._transition(inst, old, c.result(ok, now))
        if self.lazy_probes and ok and c.quiet and inst.probe_response_ms <= c.timeout_ms and not inst.removed:
            inst.asleep_next = self.kernel.due(now, c.next_probe)  # no probe until wake()
            return
        self.kernel.call_at(c.next_probe, self._probe, inst)

    def _reap(self, _arg: Any = None) -> None:
        now = self.kernel.now
        for inst in list(self.instances.values()):
            if not inst.removed and inst.check is not None and inst.check.reap_due(now):
                self.registry._record_health(self.host, inst.id, inst.service, CRITICAL, "deregistered",
                                             "deregister_critical_service_after")
                self.remove_instance(inst.id)
        self.kernel.call_later(self.reap_interval_ms, self._reap)

    # ------------------------------------------------------------ catalog sync
    def _sync(self, inst: _Instance) -> None:
        if inst.inflight or not inst.started:
            return
        want = inst.wanted()
        if want == inst.acked:
            if inst.removed and self.instances.get(inst.id) is inst:
                del self.instances[inst.id]
            return
        c = self.client
        if want is None:
            cmd = Deregister(inst.id)
        elif inst.acked is None or inst.acked[:2] != want[:2]:
            cmd = Register(inst.id, inst.service, self.host, inst.zone, inst.tags, inst.status, inst.output)
        else:
            cmd = SetHealth(inst.id, inst.status, inst.output)
        inst.inflight = True
        inst.writes += 1
        c.write(cmd, lambda call, inst=inst, want=want: self._written(inst, want, call))

    def _written(self, inst: _Instance, want: tuple | None, call: Call) -> None:
        inst.inflight = False
        if call.ok:
            inst.acked = want
            self._sync(inst)
        else:
            self.kernel.call_later(self.retry_ms, lambda _a, inst=inst: self._sync(inst))

    def _scale(self) -> int:
        size = self.cluster_size if self.cluster_size is not None else max(len(self.registry._agents), 1)
        return ae_scale_factor(size)

    def _interval(self) -> float:
        if self.anti_entropy_ms is not None:
            return self.anti_entropy_ms
        return AE_INTERVAL_MS * self._scale()

    def _retry_delay(self) -> float:
        """After a failed full sync (Consul's ``retryFullSync``): ``retry_ms`` + U(0, scale × ``retry_ms``)."""
        u = float(self.rng.uniform(0.0, 1.0)) if self.stagger else 0.0
        return ae_retry_delay_ms(self.retry_ms, self._scale(), u)

    def _schedule_full_sync(self, delay: float | None = None) -> None:
        if delay is None:
            base = AE_INTERVAL_MS if self.anti_entropy_ms is None else self.anti_entropy_ms
            delay = base + (float(self.rng.uniform(0.0, self._interval())) if self.stagger else 0.0)
        self.kernel.call_later(delay, self._full_sync)

    def _full_sync(self, _arg: Any = None) -> None:
        """Anti-entropy: compare the catalog's entries for this host with the local state and repair."""
        self.full_syncs += 1
        services = sorted(self._seen_services)
        answers: dict[str, Call] = {}
        failed = []

        def done(call: Call, service: str) -> None:
            answers[service] = call
            if not call.ok:
                failed.append(service)
            if len(answers) == len(services):
                self._reconcile(answers)
                self._schedule_full_sync(self._retry_delay() if failed else None)

        if not services:
            self._schedule_full_sync()
            return
        for s in services:
            self.client.read(s, mode="default", passing_only=False, callback=lambda call, s=s: done(call, s))

    def _reconcile(self, answers: dict[str, Call]) -> None:
        remote: dict[str, tuple] = {}
        for service, call in answers.items():
            if call.ok:
                for e in call.entries:
                    if e.host == self.host:
                        remote[e.id] = (e.service, e.tags, e.status)
        ok_services = {s for s, call in answers.items() if call.ok}
        for inst in list(self.instances.values()):
            if inst.inflight or inst.service not in ok_services:
                continue
            have = remote.get(inst.id)
            if have != inst.acked:
                self.repairs += 1
                inst.acked = have
            self._sync(inst)
        for iid, (service, _tags, _status) in remote.items():
            if iid not in self.instances and service in ok_services:
                self.repairs += 1
                self.client.deregister(iid)  # the agent is authoritative for its host
