"""One route per caller and service: pick, dispatch, retries, hedges, breakers and release, in one class.

A :class:`Route` is one caller's view of one upstream service, what an
Envoy proxy calls a cluster plus the route's policy
(:class:`~meshsim.sim.router.RoutePolicy`): the instances it knows, its own
balancer, its own circuit breakers (:class:`~meshsim.core.resilience.CircuitBreaker`)
and outlier detector (:class:`~meshsim.core.resilience.OutlierDetector`).  Every
call on the request path goes through one: the engine (:meth:`Caller.send
<meshsim.sim.engine.Caller.send>`), sidecars and node proxies alike.  The
decisions come from the pure cores in :mod:`meshsim.core.resilience`; this
module only sets the timers and sends the attempts.

How much of the machinery a route runs is a property of the route
(:attr:`Route.lean`, :attr:`Route.bare`), not a second copy of the code:

* **bare**: no policy can act (no proxy, or a policy with nothing in it) and
  the view is static: pick, count the balancer's load, transmit; the reply
  goes straight back to the caller (the attempt is the request).  Without
  proxies or a network the instance takes the call at once, and with one
  instance behind plain round robin there is nothing to pick: the sender
  hands the call to :attr:`Route.only` itself (``router.DIRECT = False``
  forces this off; ``tests/test_speed_paths.py`` checks it changes nothing).
* **lean**: nothing but retries can act (Istio's defaults): a first attempt
  allocates nothing and a successful reply takes a short path; a failure
  falls through to the general path.
* **full**: timeouts, breakers, outlier detection, discovery.

Setting :data:`meshsim.sim.router.LEAN` to False before a run forces every
route onto the full path (``tests/test_route_equivalence.py`` checks that it
changes no number).

A call to the service is a *request*; each try is an *attempt*, recorded as
its own span (children of the caller's span).  The call object the caller
created is the first attempt and also the handle of the request: the caller
gets exactly that object back, once, in ``child_done``, with the request's
final status.  Later attempts are new :class:`~meshsim.sim.engine.Call`
objects.  Every attempt's reply comes back to the route (its ``parent``),
which releases the attempt's resources and decides: deliver, retry after
backoff, wait for a hedged attempt, or give up.  How a failed attempt reads
to the retry conditions is :func:`outcome` (see :mod:`meshsim.sim.router`).

>>> import meshsim
>>> from meshsim.sim.simulation import Simulation
>>> sim = Simulation(meshsim.load_scenario(meshsim.example("mmc"), {"run.duration": "1s"}), seed=1)
>>> _ = sim.run()
>>> route = sim.workloads[0].routes[sim.services["server"]]
>>> type(route).__name__, route.bare, route.lean
('Route', True, False)
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ..core.resilience import CircuitBreaker, OutlierDetector, response_action
from ..core.selection import RoundRobin
from . import router as _router
from .recorder import OK, TIMEOUT
from .router import NO_HEALTHY, OVERFLOW, RoutePolicy, outcome

_START, _PENDING, _OVERFLOW = CircuitBreaker.START, CircuitBreaker.PENDING, CircuitBreaker.OVERFLOW


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


class Route:
    """One caller's route to one service: view, balancer, breakers, retries and hedges (see the module doc).

    ``follows_registry``: the view changes under the route (discovery), so
    neither short path applies.
    """

    def __init__(self, caller: Any, service: Any, view: list, balancer: Any, policy: RoutePolicy, sim: Any,
                 follows_registry: bool = False):
        from .engine import Call

        self._Call = Call
        self.caller = caller
        self.service = service
        self.view = view
        self.balancer = balancer
        self.policy = policy
        self.sim = sim
        #: the simulated time now (ms): Kernel.clock reads SimPy's clock, so no SimPy attribute is read here
        self._clock = sim.kernel.clock
        self.kernel = sim.kernel
        self.retry = policy.retry
        self.per_try = policy.timeouts.effective_per_try_ms
        self.route_timeout = policy.timeouts.route_timeout_ms
        self.hedge = policy.hedge.on_per_try_timeout() == "hedge" and self.per_try is not None
        #: Envoy's circuit breakers for this caller and service (connections, pending, requests, retries)
        self.breaker = CircuitBreaker(policy.breaker)
        self.needs_flight = self.route_timeout is not None or self.per_try is not None
        #: discovery by DNS: called with the time before each request (see registry.discovery)
        self.refresh: Any = None
        self.tracks_load = balancer.tracks_load
        #: bumped by every view change: an attempt's balancer index is valid only in its own generation
        self.gen = 0
        self._pos: dict[str, int] = {}
        self.follows_registry = follows_registry
        self.network = sim.network
        #: the engine's plain path: no proxies, a network: bare routes send over it themselves
        self._plain = caller.net_enabled and not caller.mesh
        #: no proxies and no network: a bare route hands the call to the instance itself
        self._local = not caller.net_enabled and not caller.mesh
        self._lean = self._bare = False
        self.bare = _router.LEAN and not follows_registry and policy.simple
        self.lean = _router.LEAN and not follows_registry and not self._bare and (
            not self.needs_flight and policy.outlier is None and self.breaker.unlimited)
        self.rng = sim.streams.generator(f"retry/{caller.name}/{service.name}") if self.retry is not None else None
        # counters (Envoy's cluster gauges and stats, per caller; the breaker holds the gauges)
        #: attempts waiting for a connection (the breaker counts them as pending requests)
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

    # ------------------------------------------------------------------ the short paths
    @property
    def lean(self) -> bool:
        """Nothing but retries can act (Istio's defaults): sends and successful replies take a short path."""
        return self._lean

    @lean.setter
    def lean(self, value: bool) -> None:
        self._lean = bool(value)
        self._bind()

    @property
    def bare(self) -> bool:
        """No policy can act and the view is static: the attempt is the request, replies skip the route."""
        return self._bare

    @bare.setter
    def bare(self, value: bool) -> None:
        self._bare = bool(value)
        self._bind()

    def _bind(self) -> None:
        # ``send`` is an instance attribute bound to the path this route takes: one lookup per call
        #: the instance every call of this route goes to, handed the call by the sender itself
        #: (``call.inst = inst; inst.arrive(call)`` is :meth:`send` then), or None
        self.only = None
        if self._bare:
            self.send = self._send_bare
            if self._local and _router.DIRECT:
                # no proxies, no network: the call arrives at once; one instance behind plain round robin
                # (whose pick is always 0 and draws nothing) needs no pick either
                one = len(self.view) == 1 and type(self.balancer) is RoundRobin
                self.send = self._send_one if one else self._send_local
                from .engine import Instance

                # ``only`` is handed the call with the time, which Instance.arrive takes (a subclass's may not)
                if one and type(self.view[0]).arrive is Instance.arrive:
                    self.only = self.view[0]
        else:
            self.send = self._send_lean if self._lean else self._send

    @property
    def active(self) -> int:
        """Attempts holding a request slot (Envoy's ``upstream_rq_active`` for this caller)."""
        return self.breaker.requests

    @property
    def active_retries(self) -> int:
        """Retries scheduled or running (Envoy's ``upstream_rq_retry`` gauge: the retries breaker's count)."""
        return self.breaker.retries

    # ------------------------------------------------------------------ sending
    def send(self, call: Any) -> None:  # replaced per route by _bind (the class attribute documents it)
        """Start the request ``call`` (its first attempt is ``call`` itself)."""
        self._bind()
        self.send(call)

    def _send_bare(self, call: Any) -> None:
        """Pick, count the balancer's load and transmit; the reply goes to the caller's call directly."""
        bal = self.balancer
        idx = bal.pick(self._clock(), call.key)
        inst = call.inst = self.view[idx]
        if self.tracks_load:
            bal.on_start(idx)
            call.lb = bal  # the parent call ends the load (Call.child_done)
            call.lb_idx = idx
        if self._plain:  # no proxies: straight onto the network
            self.network.send(self.caller.host, inst.host, inst.arrive, call, self.sim.on_request_dropped)
        else:
            self.caller.transmit(call)

    def _send_local(self, call: Any) -> None:
        """:meth:`_send_bare` without proxies or a network: the chosen instance takes the call now."""
        bal = self.balancer
        idx = bal.pick(self._clock(), call.key)
        inst = call.inst = self.view[idx]
        if self.tracks_load:
            bal.on_start(idx)
            call.lb = bal
            call.lb_idx = idx
        inst.arrive(call)

    def _send_one(self, call: Any) -> None:
        """:meth:`_send_local` to the only instance, behind plain round robin: no pick, no load to count."""
        inst = call.inst = self.view[0]
        inst.arrive(call)

    def _send_lean(self, call: Any) -> None:
        """No limits, timers or discovery: start the attempt right here."""
        call.rparent = call.parent
        call.parent = self
        call.flight = None
        call.tries = 1
        self.breaker.requests += 1  # CircuitBreaker.admit with no limits: always START
        self.n_lean += 1
        bal = self.balancer
        idx = bal.pick(self._clock(), call.key)
        if self.tracks_load:
            bal.on_start(idx)
        call.lb_idx = idx
        call.lb_gen = self.gen
        call.inst = self.view[idx]
        self.caller.transmit(call)

    def _send(self, call: Any) -> None:
        self.n_requests += 1
        if self.refresh is not None:
            self.refresh(self._clock())
        call.rparent = call.parent
        call.parent = self
        call.flight = None
        call.tries = 1
        if self.needs_flight:
            fl = call.flight = Flight(call, self._clock())
            if self.route_timeout is not None:
                self.kernel.call_later(self.route_timeout, self._route_timeout, fl)
        self._admit(call)

    def _admit(self, att: Any) -> None:
        """Breakers: start the attempt, queue it as pending, or fail it with an overflow."""
        verdict = self.breaker.admit()
        if verdict == _START:
            self._start(att)
        elif verdict == _PENDING:
            self.pending.append(att)
        else:
            self.stats["overflow" if verdict == _OVERFLOW else "pending_overflow"] += 1
            self._overflow(att)

    def _overflow(self, att: Any) -> None:
        self._fail_locally(att, OVERFLOW)

    def _fail_locally(self, att: Any, status: int) -> None:
        """The attempt never left: a breaker overflowed or no host could be chosen."""
        if att.tries > 1:
            self.breaker.release_retry()
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
        """Pick a host and send the attempt (its request slot is taken already)."""
        now = self._clock()
        self.n_attempts += 1
        bal = self.balancer
        fl = att.flight
        if not self.view:  # the registry lists no instance: Envoy's "no healthy upstream"
            self.breaker.release_request()
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
            self.breaker.release_request()
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
        br = self.breaker
        br.release_request()
        if self.tracks_load:
            self._lb_end(att)
        if att.tries > 1:
            br.release_retry()
        att.tries = 0
        fl = att.flight
        if fl is not None:
            fl.atts.remove(att)
        if br.start_pending():  # a connection came free: the oldest pending attempt starts
            self._start(self.pending.popleft())

    # ------------------------------------------------------------------ replies
    def child_done(self, att: Any) -> None:
        """An attempt ended (reply, failure or lost message)."""
        if att.tries == 0:
            return  # abandoned earlier: its resources were released then
        if self._lean and att.status == OK and att.flight is None:  # the common case: a first attempt succeeded
            att.tries = 0
            self.breaker.requests -= 1  # CircuitBreaker.release_request, inlined (nothing can be pending)
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
            fl = att.flight = Flight(att, self._clock())
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
        if allowed and not self.breaker.retry_allowed():
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
    def _schedule_retry(self, fl: Flight) -> bool:
        """Use up a retry and start it after the backoff; False if the retries breaker refuses."""
        if fl.attempts > self.retry.num_retries:
            return False
        if not self.breaker.retry_allowed():
            self.stats["retry_overflow"] += 1
            return False
        self.breaker.acquire_retry()
        fl.retry_pending = True
        delay = self.retry.backoff_ms(fl.attempts, self.rng)
        fl.attempts += 1
        self.kernel.call_later(float(delay), self._retry, fl)
        return True

    def _retry(self, fl: Flight) -> None:
        fl.retry_pending = False
        if fl.done:
            self.breaker.release_retry()
            return
        orig = fl.orig
        att = self._Call(orig.req, next(self.sim.span_ids), self, orig.parent_span, orig.ep, orig.src_host,
                         self._clock())
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
                self.breaker.drop_pending()
                if att.tries > 1:
                    self.breaker.release_retry()
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
        events = self.outlier.record(host, result, self._clock())
        if events:
            self._apply_outlier(events)

    def _outlier_tick(self, _arg: Any = None) -> None:
        events = self.outlier.on_interval(self._clock())
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
        self._bind()  # a short path may depend on the view (one instance)
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



__all__ = ["Flight", "Route", "outcome"]
