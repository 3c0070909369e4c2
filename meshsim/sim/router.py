"""The caller side of a call in a proxy: timeouts, retries, breakers, outlier detection, hedging.

An :class:`Upstream` is one caller's view of one upstream service, what an
Envoy proxy calls a cluster plus the route's policy: the instances it knows,
its own balancer, its own circuit-breaker counters and outlier detector.  The
decisions come from the pure cores in :mod:`meshsim.core.resilience`; this
module only keeps the counters, sets the timers and sends the attempts.

A call to the service is a *request*; each try is an *attempt*, recorded as
its own span (children of the caller's span).  The call object the caller
created is the first attempt and also the handle of the request: the caller
gets exactly that object back, once, in ``child_done``, with the request's
final status.  Later attempts are new :class:`~meshsim.sim.engine.Call`
objects.  Every attempt's reply comes back to the :class:`Upstream` (its
``parent``), which releases the attempt's resources and decides: deliver,
retry after backoff, wait for a hedged attempt, or give up.

The common case, a first attempt that succeeds with no timeout configured,
allocates nothing: per-request state (:class:`Flight`) is created only when
a timer must be set or a retry is needed.

How a failed attempt reads to the retry conditions (Envoy's terms):

=========================================  ===================================
attempt status                             outcome
=========================================  ===================================
``queue_full``, ``rejected``               HTTP 503 from the upstream
any status relayed from deeper calls       HTTP 503 (``timeout``: 504)
``connection_refused`` (instance down)     ``connect-failure``
request lost on the way in (``host_down``, ``connect-failure``
``partitioned``, ``network_loss``)
``instance_crashed``, reply lost           ``reset``
per-try timeout                            ``per-try-timeout``
=========================================  ===================================

Overflows of the caller's own breakers fail the request at once with status
``overflow`` (503 ``UO`` in Envoy) and are never retried.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..core.resilience import (
    UINT32_MAX,
    BreakerLimits,
    OutlierConfig,
    OutlierDetector,
    RetryBudget,
    RetryPolicy,
    Timeouts,
    is_istio,
    response_action,
)
from .recorder import OK, QUEUE_FULL, REFUSED, TIMEOUT, status_code

OVERFLOW = status_code("overflow")
REJECTED = status_code("rejected")
NO_HEALTHY = status_code("no_healthy_upstream")
_CONNECT_FAILURES = frozenset({REFUSED, status_code("host_down"), status_code("partitioned"), status_code("network_loss")})
_503 = frozenset({QUEUE_FULL, REJECTED, OVERFLOW, NO_HEALTHY})

#: Istio's retry conditions (every version): the default when a scenario sets retries without retry_on
ISTIO_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class RoutePolicy:
    """What a caller's proxy does with calls to one service (built once per service and caller kind).

    ``retry`` is None when nothing is ever retried; ``outlier`` None when
    detection is off.  ``simple`` means none of it can act, so the engine
    may skip the router altogether.
    """

    retry: RetryPolicy | None
    timeouts: Timeouts
    hedge: bool
    breaker: BreakerLimits
    outlier: OutlierConfig | None

    @property
    def simple(self) -> bool:
        b = self.breaker
        unlimited = (b.max_connections >= UINT32_MAX and b.max_requests >= UINT32_MAX)
        return (self.retry is None and self.timeouts.route_timeout_ms is None
                and self.timeouts.per_try_timeout_ms is None and unlimited and self.outlier is None)


_NONE = {"retry": None, "route_timeout": None, "breaker": BreakerLimits(UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX)}


def _profile_defaults(profile: str | None) -> dict[str, Any]:
    """Defaults of a caller: ``None`` (no proxy: no policy at all), ``"envoy"``, an Istio profile, ``"linkerd"``."""
    from ..core import resilience as r

    if profile == "envoy" or is_istio(profile):
        p = r.profile(profile)
        return {"retry": p.retry if p.retry.retry_on and p.retry.num_retries else None,
                "route_timeout": p.timeouts.route_timeout_ms, "breaker": p.breaker}
    # no proxy, or Linkerd: no retries, timeouts or circuit breakers unless configured
    return dict(_NONE)


def route_policy(service_spec: dict, profile: str | None) -> RoutePolicy:
    """The policy for calls to a service (``services.<name>``) from a caller with mesh ``profile``.

    ``retries`` set in the scenario start from the profile's Istio default, as
    Istio's ``ConvertPolicy`` starts from ``DefaultPolicy`` (Envoy and Linkerd
    callers, which have none, start from the current Istio's): keys left out
    keep it.  So ``retries: {attempts: 3}`` retries 503 under ``istio-1.20``
    and not under ``istio``.  Retried statuses: ``retriable_status_codes`` if
    given; else [503] if ``retry_on`` is given (meshsim's default for
    ``retriable-status-codes``); else the default's (503 before Istio 1.24,
    none after).

    >>> spec = {"timeout": None, "retries": None, "circuit_breaker": None,
    ...         "outlier_detection": None, "hedge_on_per_try_timeout": False}
    >>> p = route_policy(spec, "istio")
    >>> p.retry.num_retries, p.timeouts.route_timeout_ms, p.simple
    (2, None, False)
    >>> sorted(route_policy(spec, "istio-1.20").retry.retriable_status_codes), sorted(p.retry.retriable_status_codes)
    ([503], [])
    >>> sorted(route_policy({**spec, "retries": {"attempts": 3}}, "istio-1.20").retry.retriable_status_codes)
    [503]
    >>> sorted(route_policy({**spec, "retries": {"attempts": 3}}, "istio").retry.retriable_status_codes)
    []
    >>> route_policy(dict.fromkeys(("timeout", "retries", "circuit_breaker", "outlier_detection")), None).simple
    True
    """
    base = _profile_defaults(profile)
    retry = base["retry"]
    spec = service_spec.get("retries")
    if spec is not None:
        istio = RetryPolicy.profile(profile if is_istio(profile) else "istio")  # type: ignore[arg-type]
        cur = retry or istio
        budget = spec.get("budget")
        base_ms = spec.get("backoff")
        retry = RetryPolicy(
            retry_on=spec["retry_on"] if spec.get("retry_on") is not None else (cur.retry_on or istio.retry_on),
            num_retries=spec["attempts"] if spec.get("attempts") is not None else (retry.num_retries if retry else 2),
            per_try_timeout_ms=spec.get("per_try_timeout") or None,
            base_interval_ms=max(1, round(base_ms)) if base_ms is not None else cur.base_interval_ms,
            max_interval_ms=max(1, round(spec["max_backoff"])) if spec.get("max_backoff") is not None else None,
            retriable_status_codes=frozenset(spec["retriable_status_codes"]) if spec.get("retriable_status_codes")
            is not None else (frozenset({503}) if spec.get("retry_on") is not None else istio.retriable_status_codes),
            retry_previous_hosts=spec["previous_hosts"] if spec.get("previous_hosts") is not None
            else cur.retry_previous_hosts,
            host_selection_max_attempts=5 if (spec.get("previous_hosts") if spec.get("previous_hosts") is not None
                                              else cur.retry_previous_hosts) else 1,
        )
        if retry.num_retries == 0 and retry.per_try_timeout_ms is None:
            retry = None
        breaker_budget = RetryBudget(budget["percent"], budget["min_concurrency"]) if budget else None
    else:
        breaker_budget = None
    route_timeout = base["route_timeout"]
    if service_spec.get("timeout") is not None:
        route_timeout = service_spec["timeout"] or None
    breaker = base["breaker"]
    cb = service_spec.get("circuit_breaker")
    if cb is not None or breaker_budget is not None:
        envoy = BreakerLimits()
        cb = cb or {}

        def pick(key: str) -> int:
            if cb.get(key) is not None:
                return cb[key]
            return getattr(breaker, key) if profile is not None else getattr(envoy, key)

        breaker = BreakerLimits(pick("max_connections"), pick("max_pending_requests"), pick("max_requests"),
                                pick("max_retries"), breaker_budget)
    od = service_spec.get("outlier_detection")
    outlier = None
    if od is not None:
        sr = od.get("enforcing_success_rate")
        outlier = OutlierConfig(
            consecutive_5xx=od["consecutive_5xx"], consecutive_gateway_failure=od["consecutive_gateway_failure"],
            enforcing_consecutive_gateway_failure=od["enforcing_consecutive_gateway_failure"],
            interval_ms=od["interval"], base_ejection_time_ms=od["base_ejection_time"],
            max_ejection_time_ms=od.get("max_ejection_time"), max_ejection_percent=od["max_ejection_percent"],
            enforcing_success_rate=sr if sr is not None else (0.0 if is_istio(profile) else 100.0),
            success_rate_minimum_hosts=od["success_rate_minimum_hosts"],
            success_rate_request_volume=od["success_rate_request_volume"],
            failure_percentage_threshold=od["failure_percentage_threshold"],
            enforcing_failure_percentage=od["enforcing_failure_percentage"],
        )
    per_try = retry.per_try_timeout_ms if retry is not None else None
    return RoutePolicy(retry, Timeouts(route_timeout, per_try), bool(service_spec.get("hedge_on_per_try_timeout")),
                       breaker, outlier)


# --------------------------------------------------------------------------- per request


class Flight:
    """Per-request state, made only when needed (timers, retries, hedging)."""

    __slots__ = ("orig", "start", "attempts", "atts", "done", "retry_pending", "tried", "hedged")

    def __init__(self, orig: Any, now: float):
        self.orig = orig
        self.start = now
        self.attempts = 1
        #: attempts alive (started or pending): their replies still count
        self.atts: list = [orig]
        self.done = False
        self.retry_pending = False
        self.tried: set[int] = set()
        self.hedged: set[int] = set()


def outcome(att: Any) -> int | str:
    """The HTTP status or Envoy outcome of a finished attempt (see the module doc)."""
    st = att.status
    if st == OK:
        return 200
    if st in _503:
        return 503
    if getattr(att, "relayed", False):  # the upstream answered, with a failure from its own calls
        return 504 if st == TIMEOUT else 503
    if st == TIMEOUT:
        return 504
    if st == REFUSED or (st in _CONNECT_FAILURES and math.isnan(att.t_arrive)):
        return "connect-failure"
    return "reset"


class Upstream:
    """One caller's view of one service, with the route policy (see the module doc)."""

    def __init__(self, caller: Any, service: Any, view: list, balancer: Any, policy: RoutePolicy, sim: Any):
        from .engine import Call

        self._Call = Call
        self.caller = caller
        self.service = service
        self.view = view
        self.balancer = balancer
        self.policy = policy
        self.sim = sim
        self.env = sim.kernel.env
        self.kernel = sim.kernel
        self.retry = policy.retry
        self.per_try = policy.timeouts.effective_per_try_ms
        self.route_timeout = policy.timeouts.route_timeout_ms
        self.hedge = policy.hedge and self.per_try is not None
        b = policy.breaker
        self.max_requests = b.max_requests
        self.max_connections = b.max_connections
        self.max_pending = b.max_pending_requests
        self.max_retries = b.max_retries
        self.budget = b.retry_budget
        self.needs_flight = self.route_timeout is not None or self.per_try is not None
        #: discovery by DNS: called with the time before each request (see registry.discovery)
        self.refresh: Any = None
        self.tracks_load = balancer.tracks_load
        #: bumped by every view change: an attempt's balancer index is valid only in its own generation
        self.gen = 0
        self._pos: dict[str, int] = {}
        #: nothing but retries can act (Istio's defaults): send and successful replies take a short path;
        #: cleared when the view follows a registry (it may become empty)
        self.lean = (not self.needs_flight and policy.outlier is None and b.max_connections >= UINT32_MAX
                     and b.max_requests >= UINT32_MAX)
        self.rng = sim.streams.generator(f"retry/{caller.name}/{service.name}") if self.retry is not None else None
        # counters (Envoy's cluster gauges and stats, per caller)
        self.active = 0
        self.active_retries = 0
        self.pending: deque = deque()
        self.n_requests = 0  # hot counters as attributes; the rest in ``stats``
        self.n_lean = 0  # requests sent on the lean path (each also one attempt)
        self.n_attempts = 0
        self.stats = dict.fromkeys(("retries", "retry_overflow", "overflow", "pending_overflow",
                                    "timeouts", "per_try_timeouts", "hedges", "ejections", "no_healthy"), 0)
        self.outlier: OutlierDetector | None = None
        if policy.outlier is not None:
            self.outlier = OutlierDetector([i.name for i in view], policy.outlier,
                                           sim.streams.generator(f"outlier/{caller.name}/{service.name}"))
            self._ejected: set[str] = set()
            self.kernel.call_later(policy.outlier.interval_ms, self._outlier_tick)

    # ------------------------------------------------------------------ sending
    def send(self, call: Any) -> None:
        """Start the request ``call`` (its first attempt is ``call`` itself)."""
        if self.lean:  # no limits, timers or discovery: start the attempt right here
            call.rparent = call.parent
            call.parent = self
            call.flight = None
            call.tries = 1
            self.active += 1
            self.n_lean += 1
            bal = self.balancer
            idx = bal.pick(self.env._now, call.key)
            if self.tracks_load:
                bal.on_start(idx)
            call.lb_idx = idx
            call.lb_gen = self.gen
            call.inst = self.view[idx]
            self.caller.transmit(call)
            return
        self.n_requests += 1
        if self.refresh is not None:
            self.refresh(self.env._now)
        call.rparent = call.parent
        call.parent = self
        call.flight = None
        call.tries = 1
        if self.needs_flight:
            fl = call.flight = Flight(call, self.env._now)
            if self.route_timeout is not None:
                self.kernel.call_later(self.route_timeout, self._route_timeout, fl)
        self._admit(call)

    def _admit(self, att: Any) -> None:
        """Breakers: start the attempt, queue it as pending, or fail it with an overflow."""
        if self.active >= self.max_requests:
            self.stats["overflow"] += 1
            self._overflow(att)
        elif self.active >= self.max_connections:
            if len(self.pending) >= self.max_pending:
                self.stats["pending_overflow"] += 1
                self._overflow(att)
            else:
                self.pending.append(att)
        else:
            self._start(att)

    def _overflow(self, att: Any) -> None:
        self._fail_locally(att, OVERFLOW)

    def _fail_locally(self, att: Any, status: int) -> None:
        """The attempt never left: a breaker overflowed or no host could be chosen."""
        if att.tries > 1:
            self.active_retries -= 1
        att.tries = 0
        att.status = status
        att.finished = True
        fl = att.flight
        if fl is not None:
            fl.atts.remove(att)
        if att.rparent is None:  # a retry: the request ends unless other attempts are alive
            if not fl.done and not fl.atts and not fl.retry_pending:
                self._finish(fl, status)
        else:
            self._finish_request(att, status)

    def _start(self, att: Any) -> None:
        now = self.env._now
        self.active += 1
        self.n_attempts += 1
        bal = self.balancer
        fl = att.flight
        if not self.view:  # the registry lists no instance: Envoy's "no healthy upstream"
            self.active -= 1
            self.stats["no_healthy"] += 1
            self._fail_locally(att, NO_HEALTHY)
            return
        try:
            idx = bal.pick(now, att.key)
            if fl is not None and fl.tried and self.retry.retry_previous_hosts:
                for _ in range(self.retry.host_selection_max_attempts - 1):
                    if idx not in fl.tried:
                        break
                    idx = bal.pick(now, att.key)
        except Exception as e:  # NoHealthyUpstream (panic threshold 0, nothing healthy)
            if type(e).__name__ != "NoHealthyUpstream":
                raise
            self.active -= 1
            self.stats["no_healthy"] += 1
            self._fail_locally(att, NO_HEALTHY)
            return
        if fl is not None:
            fl.tried.add(idx)
            if self.per_try is not None:
                self.kernel.call_later(self.per_try, self._per_try_timeout, att)
        if bal.tracks_load:
            bal.on_start(idx)
        att.lb_idx = idx
        att.lb_gen = self.gen
        att.inst = self.view[idx]
        self.caller.transmit(att)

    def _lb_end(self, att: Any) -> None:
        """The balancer's active count of the attempt's instance goes down (found by name after a view change)."""
        if att.lb_gen == self.gen:
            self.balancer.on_end(att.lb_idx)
            return
        idx = self._pos.get(att.inst.name)
        if idx is not None:  # else the instance left the view, and its count with it
            self.balancer.on_end(idx)

    def _release(self, att: Any) -> None:
        """The attempt no longer holds a request slot (it ended or was abandoned)."""
        self.active -= 1
        if self.tracks_load:
            self._lb_end(att)
        if att.tries > 1:
            self.active_retries -= 1
        att.tries = 0
        fl = att.flight
        if fl is not None:
            fl.atts.remove(att)
        if self.pending and self.active < self.max_connections:
            self._start(self.pending.popleft())

    # ------------------------------------------------------------------ replies
    def child_done(self, att: Any) -> None:
        """An attempt ended (reply, failure or lost message)."""
        if att.tries == 0:
            return  # abandoned earlier: its resources were released then
        if self.lean and att.status == OK and att.flight is None:  # the common case: a first attempt succeeded
            att.tries = 0
            self.active -= 1
            if self.tracks_load:
                if att.lb_gen == self.gen:
                    self.balancer.on_end(att.lb_idx)
                else:
                    self._lb_end(att)
            parent = att.rparent
            att.rparent = None
            parent.child_done(att)
            return
        self._release(att)
        od = self.outlier
        st = att.status
        if od is not None:
            self._outlier_record(att.inst.name, outcome(att))
        fl = att.flight
        if fl is None:
            if st == OK or self.retry is None:
                self._deliver(att, st)
                return
            out = outcome(att)
            if not self.retry.should_retry(out, 1):
                self._deliver(att, st)
                return
            fl = att.flight = Flight(att, self.env._now)
            fl.tried.add(att.lb_idx)
            fl.atts.clear()
            if not self._schedule_retry(fl):
                self._finish(fl, st)
            return
        if fl.done:
            return
        if st == OK:
            self._finish(fl, OK)
            return
        self._failed(fl, att, outcome(att))

    def _failed(self, fl: Flight, att: Any, out: int | str) -> None:
        retry = self.retry
        retriable = retry is not None and retry.is_retriable(out)
        allowed = retriable and fl.attempts <= retry.num_retries
        if allowed and not self._retry_slot_free():
            self.stats["retry_overflow"] += 1  # Envoy: upstream_rq_retry_overflow; the response goes back
            allowed = False
        others = len(fl.atts) + fl.retry_pending
        action = response_action(retriable, allowed, att.span in fl.hedged, others)
        if action == "retry" and self._schedule_retry(fl):
            return
        if action == "discard" or (action == "retry" and others):
            return
        self._finish(fl, att.status if out != "per-try-timeout" else TIMEOUT)

    # ------------------------------------------------------------------ retries
    def _retry_slot_free(self) -> bool:
        if self.budget is not None:
            return self.active_retries < self.budget.max_retries(self.active + len(self.pending))
        return self.active_retries < self.max_retries

    def _schedule_retry(self, fl: Flight) -> bool:
        """Use up a retry and start it after the backoff; False if the retries breaker refuses."""
        if fl.attempts > self.retry.num_retries:
            return False
        if not self._retry_slot_free():
            self.stats["retry_overflow"] += 1
            return False
        self.active_retries += 1
        fl.retry_pending = True
        delay = self.retry.backoff_ms(fl.attempts, self.rng)
        fl.attempts += 1
        self.kernel.call_later(float(delay), self._retry, fl)
        return True

    def _retry(self, fl: Flight) -> None:
        fl.retry_pending = False
        if fl.done:
            self.active_retries -= 1
            return
        orig = fl.orig
        att = self._Call(orig.req, next(self.sim.span_ids), self, orig.parent_span, orig.ep, orig.src_host,
                         self.env._now)
        att.gen = orig.gen
        att.key = orig.key
        att.rparent = None
        att.flight = fl
        att.tries = fl.attempts  # > 1: holds a retry slot (taken when scheduled)
        fl.atts.append(att)
        self.stats["retries"] += 1
        self._admit(att)

    # ------------------------------------------------------------------ timeouts
    def _per_try_timeout(self, att: Any) -> None:
        fl = att.flight
        if att.tries == 0 or fl.done:
            return
        self.stats["per_try_timeouts"] += 1
        if self.outlier is not None:
            self._outlier_record(att.inst.name, 504)
        if self.hedge:
            if att.span in fl.hedged:
                return
            fl.hedged.add(att.span)
            if self.retry.can_hedge(fl.attempts) and self._schedule_retry(fl):
                self.stats["hedges"] += 1
            return
        self._release(att)  # reset the attempt; a late reply is ignored
        self._failed(fl, att, "per-try-timeout")

    def _route_timeout(self, fl: Flight) -> None:
        if fl.done:
            return
        self.stats["timeouts"] += 1
        self._finish(fl, TIMEOUT)

    # ------------------------------------------------------------------ the end
    def _finish(self, fl: Flight, status: int) -> None:
        fl.done = True
        self._finish_request(fl.orig, status)

    def _finish_request(self, orig: Any, status: int) -> None:
        fl = orig.flight
        if fl is not None:
            fl.done = True
            # abandon attempts still alive (Envoy resets them): free their slots now, queued ones first
            for att in [a for a in fl.atts if a in self.pending]:
                self.pending.remove(att)
                if att.tries > 1:
                    self.active_retries -= 1
                att.tries = 0
                fl.atts.remove(att)
            for att in list(fl.atts):
                self._release(att)
        self._deliver(orig, status)

    def _deliver(self, orig: Any, status: int) -> None:
        parent = orig.rparent
        if parent is None:
            return  # delivered already
        orig.status = status
        orig.rparent = None
        parent.child_done(orig)

    # ------------------------------------------------------------------ outlier detection
    def _outlier_record(self, host: str, result: int | str) -> None:
        if self.gen and host not in self._pos:
            return  # the instance left the view while the attempt was out: the detector forgot it
        events = self.outlier.record(host, result, self.env._now)
        if events:
            self._apply_outlier(events)

    def _outlier_tick(self, _arg: Any = None) -> None:
        events = self.outlier.on_interval(self.env._now)
        if events:
            self._apply_outlier(events)
        self.kernel.call_later(self.policy.outlier.interval_ms, self._outlier_tick)

    def _apply_outlier(self, events: list) -> None:
        changed = False
        for e in events:
            if e.action == "eject":
                self._ejected.add(e.host)
                self.stats["ejections"] += 1
                changed = True
                self.sim.mesh_events.append((e.time_ms, "eject", self.caller.name, e.host))
            elif e.action == "uneject":
                self._ejected.discard(e.host)
                changed = True
                self.sim.mesh_events.append((e.time_ms, "uneject", self.caller.name, e.host))
        if changed:
            self.set_view(self.view)

    # ------------------------------------------------------------------ the view
    def set_view(self, view: list, start_ms: dict[str, float] | None = None) -> None:
        """The instances this caller sees changed (control-plane push) or their health did (ejections)."""
        self.view = view
        self.gen += 1
        self._pos = {inst.name: i for i, inst in enumerate(view)}
        ejected = self._ejected if self.outlier is not None else ()
        if self.outlier is not None:
            self.outlier.set_hosts([i.name for i in view])
            self._ejected &= {i.name for i in view}
        if start_ms is not None:
            self._start_ms = start_ms
        if not view:
            return  # nothing to balance over: requests fail with no_healthy_upstream until instances return
        if hasattr(self.balancer, "endpoints"):
            self.balancer.update(self.sim.endpoints_for(self.caller, self.service, view, ejected,
                                                        getattr(self, "_start_ms", None)))
        else:
            self.balancer.update(len(view))

    def summary(self) -> dict[str, int]:
        return {"requests": self.n_requests + self.n_lean, "attempts": self.n_attempts + self.n_lean, **self.stats}


__all__ = ["NO_HEALTHY", "OVERFLOW", "REJECTED", "Flight", "RoutePolicy", "Upstream", "outcome", "route_policy"]
