"""The request path: instances (worker pool + queue) and calls through the call graph.

A :class:`Call` is one invocation of an endpoint on an instance (one span).
It is also the carrier scheduled on SimPy's heap for its own service
completion, so the hot path allocates one object per call and runs on
callbacks only.

Life of a call: the caller hands it to its route to the target service
(:class:`~meshsim.sim.route.Route`: pick an instance with the route's own
balancer, apply the policy), which sends the call over the network (through
the proxies, with a mesh); at the instance it is refused (instance down),
rejected (queue full), queued or started; after its service time the
endpoint's steps run one after another, each issuing one call or a parallel
group and waiting for all or the first k replies; then the call finishes and
its reply travels back to the caller.  With blocking semantics the worker is
held until the call finishes; with async semantics it is released when local
processing ends.  Any failure of a needed downstream call fails the call with
the same reason.
"""

from __future__ import annotations

from collections import deque
from heapq import heappush
from collections.abc import Iterator
from typing import Any

from ..core.selection import RoundRobin
from ..rng import uniform_stream
from . import router as _router
from .kernel import NORMAL, Carrier, Kernel
from .network import Network
from .proxy import REQUEST, RESPONSE
from .recorder import CRASHED, OK, QUEUE_FULL, REFUSED, SPAN_PACK, Recorder, status_code
from .route import Route

REJECTED = status_code("rejected")

NAN = float("nan")


def _scaled(stream: Iterator[float], factor: float) -> Iterator[float]:
    """The draws of ``stream``, each times ``factor`` (a slow instance's service times)."""
    for x in stream:
        yield factor * x


class EndpointRT:
    """Runtime form of an endpoint: steps of (targets, k) with targets (service, endpoint, p)."""

    __slots__ = ("service", "name", "gid", "steps", "dist", "has_prob", "hop0")

    def __init__(self, service: str, name: str, gid: int, dist: Any):
        self.service = service
        self.name = name
        self.gid = gid
        self.dist = dist
        self.steps: list[tuple[list[tuple[ServiceRT, EndpointRT, float]], int | None]] = []
        self.has_prob = False
        #: (service, endpoint) when the first step is one call that is always made, else None (see :meth:`seal`)
        self.hop0: tuple[ServiceRT, EndpointRT] | None = None

    def seal(self) -> None:
        """The steps are complete: note whether the first one is a single, certain call (the engine's short hop).

        >>> a, b = EndpointRT("a", "get", 0, None), EndpointRT("b", "get", 1, None)
        >>> a.steps.append(([("svc-b", b, 1.0)], None)); a.seal(); a.hop0[1].service
        'b'
        """
        first = self.steps[0][0] if self.steps else []
        self.hop0 = (first[0][0], first[0][1]) if len(first) == 1 and first[0][2] >= 1.0 else None


class ServiceRT:
    """Runtime form of a service: its endpoints and instances."""

    def __init__(self, name: str, spec: dict):
        self.name = name
        self.spec = spec
        self.endpoints: dict[str, EndpointRT] = {}
        self.instances: list[Instance] = []


class Call(Carrier):
    """One call of an endpoint on an instance; also its own completion event."""

    __slots__ = (
        "req", "span", "parent", "parent_span", "ep", "inst", "src_host",
        "t_send", "t_arrive", "t_start", "t_svc", "t_due", "step", "pending", "ok", "need",
        "gen", "status", "finished", "holding", "lb", "lb_idx", "key",
        "out_proxy",  # used only on the mesh path (see proxy.py)
        "rparent", "flight", "tries", "relayed", "lb_gen",  # used only by a route with a policy (see route.py)
        "visit",  # used only with run.common_random_numbers (see crn.py)
    )

    def __init__(self, req: int, span: int, parent: Any, parent_span: int, ep: EndpointRT, src_host: str, now: float,
                 gen: int = 0, key: int | None = None):
        self.req = req
        self.span = span
        self.parent = parent
        self.parent_span = parent_span
        self.ep = ep
        self.src_host = src_host
        self.t_send = now
        self.t_arrive = NAN
        self.t_start = NAN
        self.t_svc = NAN
        self.step = 0
        self.gen = gen
        self.status = OK
        self.finished = False
        self.holding = False
        self.lb = None  # the caller's balancer, when it tracks load (see Balancer.tracks_load)
        self.key = key  # the request's hash key (hash policies), inherited by every call of the request

    # The parent interface: every call and every workload has child_done(call).
    def child_done(self, child: Call) -> None:
        if child.lb is not None:
            child.lb.on_end(child.lb_idx)
        if self.finished or child.gen != self.step:
            return  # late reply: this step was already decided
        self.pending -= 1
        if child.status == OK:
            self.ok += 1
            if self.ok >= self.need:
                self.step += 1
                if self.step < len(self.ep.steps):
                    self.inst.advance(self)
                else:
                    self.inst.finish(self, OK)
        elif self.pending + self.ok < self.need:
            self.relayed = True  # this call fails because of a downstream call (see router.outcome)
            self.inst.finish(self, child.status)


_new_call = Call.__new__


class Caller:
    """Anything that sends calls: it keeps its own view of each target service and its own balancer."""

    def __init__(self, sim: Any, host: str, name: str):
        self.sim = sim
        self.host = host
        self.name = name
        self.env = sim.kernel.env
        #: the simulated time now (ms), read through the kernel (the only module that touches SimPy)
        self._clock = sim.kernel.clock
        self.network: Network = sim.network
        self.net_enabled: bool = sim.network.enabled
        #: per target service: this caller's route to it (view, balancer, policy; see route.py)
        self.routes: dict[ServiceRT, Route] = {}
        self.mesh: bool = sim.mesh_on  # calls go through proxies (sim.proxy.Proxy)
        self.proxy: Any = None  # this caller's own proxy (sidecar or node proxy), if any
        self._outbound_cbs = [self._outbound_done]
        #: set by Instance._service_done around its last send: the send is the last thing its event does, so the
        #: request's first proxy pass may run on into the callee's (see transmit)
        self._tail = False

    def route(self, service: ServiceRT) -> Route:
        """This caller's route to ``service`` (made on first use by the simulation)."""
        route = self.routes.get(service)
        if route is None:
            route = self.routes[service] = self.sim.make_route(self, service)
        return route

    def pick(self, service: ServiceRT) -> Instance:
        """The instance of ``service`` this caller's balancer chooses now."""
        route = self.route(service)
        return route.view[route.balancer.pick(self._clock())]

    def send(self, call: Call, service: ServiceRT) -> None:
        """Send ``call`` to ``service`` through this caller's route (which picks the instance)."""
        (self.routes.get(service) or self.route(service)).send(call)

    def transmit(self, call: Call) -> None:
        """Send ``call`` to ``call.inst`` (chosen already): through the proxies, or over the network."""
        inst = call.inst
        if self.mesh:
            call.out_proxy = proxy = self.proxy
            if proxy is not None:
                if self._tail:  # the sending event's last act, without a network (Instance._service_done)
                    self._tail = False
                    end = proxy.pass_end(REQUEST, self._clock(), inst.host)
                    heap = self._heap  # only an Instance sets _tail: it has the kernel's carrier queue
                    if (not heap or heap[0][0] > end) and inst._direct_inbound and inst.proxy is not None:
                        # the pass's end is the next event: the callee's proxy takes the request now, at that time
                        inst._inbound_after_pass(call, end)
                    else:
                        call.callbacks = inst._inbound_cbs
                        heappush(heap, (end, NORMAL, next(self._eid), call))
                    return
                # without a network the callee's proxy takes the request straight after this pass
                proxy.process(call, REQUEST, self._outbound_cbs if self.net_enabled else inst._inbound_cbs, inst.host)
            else:
                self._outbound_done(call)
        elif self.net_enabled:
            self.network.send(self.host, inst.host, inst.arrive, call, self.sim.on_request_dropped)
        else:
            inst.arrive(call)

    def _outbound_done(self, call: Call) -> None:
        """Mesh path: the request left the caller's proxy; cross the network to the callee's proxy."""
        inst = call.inst
        if self.net_enabled:
            self.network.send(self.host, inst.host, inst.inbound, call, self.sim.on_request_dropped)
        else:
            inst.inbound(call)


class Instance(Caller):
    """One instance of a service: ``workers`` servers and a FIFO queue."""

    def __init__(self, sim: Any, service: ServiceRT, index: int, gid: int, host: str, streams: Any):
        super().__init__(sim, host, f"{service.name}-{index}")
        spec = service.spec
        self.service = service
        self.index = index
        self.gid = gid
        self.workers: int = spec["workers"]
        self.queue_cap: int | None = spec["queue"]
        self.blocking: bool = spec["semantics"] == "blocking"
        #: inbound concurrency limit (services.<name>.max_concurrency); beyond it requests are rejected (503)
        self.max_active: int = spec.get("max_concurrency") or (1 << 62)
        self.busy = 0
        self.queue: deque[Call] = deque()
        self.up = True
        self.active: dict[int, Call] = {}
        self.kernel: Kernel = sim.kernel
        self.rec: Recorder = sim.recorder
        self.sim = sim
        # statistics (time integrals are in ms x workers / ms x requests)
        self.busy_area = 0.0
        self.queue_area = 0.0
        self.arrivals = 0
        self.completed = 0
        self.rejected = 0
        self.refused = 0
        self.crashes = 0
        self.up_since = 0.0
        self.up_time = 0.0
        # one service-time stream per endpoint, one uniform stream for call probabilities
        self.svc_streams = {}
        for ep in service.endpoints.values():
            rng = streams.generator(f"svc/{self.name}/{ep.name}")
            self.svc_streams[ep.gid] = ep.dist.stream(rng)
        self._drawn_streams = self.svc_streams  # as drawn; a slow fault swaps in scaled copies
        self.uniform = None
        if any(ep.has_prob for ep in service.endpoints.values()):
            rng = streams.generator(f"calls/{self.name}")
            self.uniform = uniform_stream(rng)
        self._svc_done_cbs = [self._service_done]
        self._arrive_cbs = [self.arrive]  # mesh path: after the inbound proxy pass
        self._inbound_cbs = [self._inbound_after_pass]  # mesh path without a network: after the caller's proxy pass
        # mesh path: after the response proxy pass (without a network the caller's proxy takes it at once)
        self._reply_cbs = [self._reply] if self.net_enabled else [_reply_arrived]
        self.span_ids = sim.span_ids
        # SimPy's heap and event-id counter: pushing onto them directly is what
        # Environment.schedule does, minus one Python call (see kernel.py)
        # a call is its own service-completion event: pushed onto the kernel's carrier queue here, inline
        # (Kernel.push_at's body: the hot path of every call; see Kernel.carrier_queue)
        self._heap, self._eid = self.kernel.carrier_queue()
        # full-mode span recording: one packed row appended to the recorder's bytearray
        self._span_rows = sim.recorder.s_rows if sim.recorder.spans_on else None
        #: short paths (router.DIRECT): without a mesh or a network, a call's reply is handed up the chain of
        #: parent calls in one loop (Call.child_done inlined in finish) and, where this class runs
        #: Instance.advance unchanged, a first step of one certain call is made in _service_done itself
        self._direct_reply: bool = _router.DIRECT and not self.mesh and not self.net_enabled
        self._direct_hop: bool = _router.DIRECT and type(self).advance is Instance.advance
        #: mesh path: an inbound pass whose end is the next event hands the call to arrive itself (see inbound)
        self._direct_inbound: bool = _router.DIRECT and type(self).arrive is Instance.arrive
        #: mesh path without a network: a pass ending before anything else is due runs on into the next one
        #: in the event that started it (see transmit, _respond)
        self._direct_mesh: bool = _router.DIRECT and self.mesh and not self.net_enabled

    # -- bookkeeping ---------------------------------------------------------
    # Time integrals are accumulated per call, not per state change: each call
    # adds its waiting time when it starts and its holding time when it
    # releases its worker.  areas(now) adds the part of calls still in progress.
    def areas(self, now: float) -> tuple[float, float]:
        """(busy worker-ms, queued request-ms) accumulated up to ``now``."""
        busy, queued = self.busy_area, self.queue_area
        for call in self.active.values():
            if call.holding:
                busy += now - call.t_start
        for call in self.queue:
            queued += now - call.t_arrive
        return busy, queued

    # -- arrival, service ------------------------------------------------------
    def arrive(self, call: Call, now: float | None = None) -> None:
        """``call`` reaches this instance (``now``: the time, when the sender knows it)."""
        if now is None:
            now = self._clock()
        call.t_arrive = now
        self.arrivals += 1
        if not self.up:
            self.refused += 1
            self.finish(call, REFUSED)
            return
        if len(self.active) >= self.max_active:
            self.rejected += 1
            self.finish(call, REJECTED)
            return
        self.active[call.span] = call
        if self.busy < self.workers:
            self.busy += 1
            call.holding = True
            call.t_start = now
            call.callbacks = self._svc_done_cbs
            # the completion is due at t_due: the very float on the heap, so _service_done knows the time
            due = call.t_due = now + next(self.svc_streams[call.ep.gid])
            heappush(self._heap, (due, NORMAL, next(self._eid), call))
        elif self.queue_cap is not None and len(self.queue) >= self.queue_cap:
            self.rejected += 1
            self.finish(call, QUEUE_FULL)
        else:
            self.queue.append(call)

    def _release(self, call: Call, now: float) -> None:
        call.holding = False
        self.busy_area += now - call.t_start
        if self.queue and self.up:
            nxt = self.queue.popleft()
            self.queue_area += now - nxt.t_arrive
            nxt.holding = True
            nxt.t_start = now
            due = nxt.t_due = now + next(self.svc_streams[nxt.ep.gid])
            self.kernel.push_at(nxt, due, self._svc_done_cbs)
        else:
            self.busy -= 1

    def _service_done(self, call: Call) -> None:
        if call.finished:
            return  # the instance crashed while serving it
        now = call.t_svc = call.t_due  # the time this completion was scheduled for: now
        if not self.blocking:  # release the worker (inlined _release: hot path)
            call.holding = False
            self.busy_area += now - call.t_start
            queue = self.queue
            if queue and self.up:
                nxt = queue.popleft()
                self.queue_area += now - nxt.t_arrive
                nxt.holding = True
                nxt.t_start = now
                nxt.callbacks = self._svc_done_cbs
                due = nxt.t_due = now + next(self.svc_streams[nxt.ep.gid])
                heappush(self._heap, (due, NORMAL, next(self._eid), nxt))
            else:
                self.busy -= 1
        ep = call.ep
        if not ep.steps:
            self.finish(call, OK, now, self._direct_mesh)
            return
        hop = ep.hop0
        if hop is not None and self._direct_hop:  # advance's one-call step, inlined (call.step is 0 here)
            call.pending = call.need = 1
            call.ok = 0
            # Call(call.req, next(span_ids), call, call.span, hop[1], self.host, now, 0, call.key) without the
            # __init__ frame (keep in step with Call.__init__; tests/test_speed_paths.py compares the tables)
            child = _new_call(Call)
            child.req = call.req
            child.span = next(self.span_ids)
            child.parent = call
            child.parent_span = call.span
            child.ep = hop[1]
            child.src_host = self.host
            child.t_send = now
            child.t_arrive = child.t_start = child.t_svc = NAN
            child.step = child.gen = 0
            child.status = OK
            child.finished = child.holding = False
            child.lb = None
            child.key = call.key
            service = hop[0]
            route = self.routes.get(service) or self.route(service)
            inst = route.only
            if inst is None:
                if self._direct_mesh:
                    self._tail = True  # this send is the event's last act (see transmit)
                    route.send(child)
                    self._tail = False
                else:
                    route.send(child)
            else:  # Route._send_one, inlined
                child.inst = inst
                inst.arrive(child, now)
        else:
            self.advance(call, now)

    # -- downstream calls --------------------------------------------------------
    def advance(self, call: Call, now: float | None = None) -> None:
        """Run the endpoint's steps from ``call.step`` until one must wait (``now``: the time, if known)."""
        ep = call.ep
        steps = ep.steps
        n = len(steps)
        step = call.step
        while step < n:
            targets, k = steps[step]
            if ep.has_prob:
                u = self.uniform
                chosen = [t for t in targets if t[2] >= 1.0 or next(u) < t[2]]
            else:
                chosen = targets
            m = len(chosen)
            if m == 1:  # the common case: one call, wait for it
                call.pending = call.need = 1
                call.ok = 0
                service, target_ep, _p = chosen[0]
                child = Call(call.req, next(self.span_ids), call, call.span, target_ep, self.host,
                             self._clock() if now is None else now, step, call.key)
                (self.routes.get(service) or self.route(service)).send(child)  # Caller.send, inlined
                return
            if m:
                call.pending = m
                call.ok = 0
                call.need = m if k is None or k > m else k
                if now is None:
                    now = self._clock()
                for service, target_ep, _p in chosen:
                    if call.finished or call.step != step:
                        break  # a synchronous failure already decided this step
                    child = Call(call.req, next(self.span_ids), call, call.span, target_ep, self.host, now, step,
                                 call.key)
                    (self.routes.get(service) or self.route(service)).send(child)
                return
            step = call.step = step + 1
        self.finish(call, OK)

    def finish(self, call: Call, status: int, now: float | None = None, tail: bool = False) -> None:
        """End ``call`` with ``status``, record its span and reply to its caller (``now``: the time, if known).

        With neither a mesh nor a network the reply reaches the caller at once; when the caller is a call
        that this reply ends too (its last step is done, or it fails), that call is finished here in turn,
        and so on up the chain (``Call.child_done`` inlined, one loop instead of a recursion).
        ``tail``: this is the last thing the running event does (mesh path without a network: see _respond).
        """
        if now is None:
            now = self._clock()
        inst = self
        rows = self._span_rows  # the recorder's, shared by every instance
        direct = self._direct_reply  # the same for every instance (no mesh, no network)
        while True:
            call.finished = True
            call.status = status
            if call.holding:
                inst._release(call, now)
            inst.active.pop(call.span, None)
            if status == OK:
                inst.completed += 1
            if rows is not None:
                t_send, t_arrive, t_start = call.t_send, call.t_arrive, call.t_start
                rows += SPAN_PACK(call.span, call.parent_span, call.req, inst.gid, call.ep.gid, status, t_send,
                                  now, t_arrive - t_send, t_start - t_arrive, call.t_svc - t_start)
            elif inst.rec.streaming:
                inst.rec.span(call, inst.gid, call.ep.gid, now)
            parent = call.parent
            if not direct or type(parent) is not Call:
                if inst.mesh:
                    # a crashed instance's proxy sends nothing back: the caller's proxy sees the connection reset
                    if inst.proxy is not None and status != CRASHED:
                        if (tail or call is _tail_call[0]) and inst._direct_mesh:
                            inst._respond(call, now)
                        else:
                            inst.proxy.process(call, RESPONSE, inst._reply_cbs)
                    else:
                        inst._reply(call)
                elif inst.net_enabled:
                    inst.network.send(inst.host, call.src_host, parent.child_done, call, inst.sim.on_reply_dropped)
                else:
                    parent.child_done(call)
                return
            # Call.child_done(call), inlined
            if call.lb is not None:
                call.lb.on_end(call.lb_idx)
            if parent.finished or call.gen != parent.step:
                return  # late reply: this step was already decided
            if status == OK:
                ok = parent.ok + 1
                if ok < parent.need:
                    parent.ok = ok
                    parent.pending -= 1
                    return
                # the step is decided: its counts (pending, ok) are read no more; the next step sets them anew
                step = parent.step = parent.step + 1
                if step < len(parent.ep.steps):
                    parent.inst.advance(parent)
                    return
            else:
                parent.pending -= 1
                if parent.pending + parent.ok >= parent.need:
                    return
                parent.relayed = True  # this call fails because of a downstream call (see router.outcome)
            call = parent  # it ends now, with this status: finish it on its own instance
            inst = parent.inst

    # -- the mesh path ------------------------------------------------------------
    def inbound(self, call: Call) -> None:
        """Mesh path: a request reached this instance's host; its proxy passes it in."""
        if self.proxy is not None:
            self.proxy.process(call, REQUEST, self._arrive_cbs)
        else:
            self.arrive(call)

    def _inbound_after_pass(self, call: Call, now: float | None = None) -> None:
        """Mesh path without a network: the caller's proxy pass ended (the kernel event's only callback).

        When this instance's inbound pass will end before anything else is due and the instance will take the
        call then (it is up, under its concurrency limit, with a free worker or room in its queue), the call
        arrives at that end right here: no event can run in between and nothing follows in this one, so the
        arrival is the same, one kernel event fewer (``router.DIRECT``; ``tests/test_speed_paths.py`` compares
        the tables).  Only as an event's callback (or in its stead, with ``now``: see transmit): called within
        other work, later work could come first.
        """
        proxy = self.proxy
        if proxy is None or not self._direct_inbound:
            self.inbound(call)
            return
        end = proxy.pass_end(REQUEST, self._clock() if now is None else now)
        heap = self._heap
        if ((not heap or heap[0][0] > end) and self.up and len(self.active) < self.max_active
                and (self.busy < self.workers or self.queue_cap is None or len(self.queue) < self.queue_cap)):
            self.arrive(call, end)
            return
        call.callbacks = self._arrive_cbs
        heappush(heap, (end, NORMAL, next(self._eid), call))

    def _respond(self, call: Call, now: float) -> None:
        """Mesh path without a network, the event's last act: the response's pass through this instance's proxy.

        When it ends before anything else is due, the caller's proxy takes the response then, right here
        (``_reply_arrived`` at the pass's end, one kernel event fewer; ``router.DIRECT``).
        """
        end = self.proxy.pass_end(RESPONSE, now)
        heap = self._heap
        proxy = call.out_proxy
        if ((not heap or heap[0][0] > end) and proxy is not None
                and (call.t_svc == call.t_svc or call.t_start != call.t_start)):
            call.callbacks = _TO_PARENT
            heappush(heap, (proxy.pass_end(RESPONSE, end), NORMAL, next(self._eid), call))
        else:
            call.callbacks = self._reply_cbs
            heappush(heap, (end, NORMAL, next(self._eid), call))

    def _reply(self, call: Call) -> None:
        if self.net_enabled:
            self.network.send(self.host, call.src_host, _reply_arrived, call, self.sim.on_reply_dropped)
        else:
            _reply_arrived(call)

    # -- faults ------------------------------------------------------------------
    def scale_service_times(self, factor: float) -> None:
        """From now on each service time is ``factor`` times its draw (1.0: as drawn); the draws are the same."""
        self.svc_streams = self._drawn_streams if factor == 1.0 else {
            gid: _scaled(stream, factor) for gid, stream in self._drawn_streams.items()}

    def crash(self) -> None:
        """Stop: every call queued, in service or waiting downstream fails.

        A call in service still has its completion on SimPy's heap (it is its
        own carrier), so until then it must not ride the heap again: its
        reset skips the proxy passes (the instance's proxy died with it).
        """
        if not self.up:
            return
        now = self._clock()
        self.busy_area, self.queue_area = self.areas(now)
        self.up = False
        self.crashes += 1
        self.up_time += now - self.up_since
        self.queue.clear()
        victims = list(self.active.values())
        for call in victims:
            call.holding = False
        self.busy = 0
        for call in victims:
            if not call.finished:
                self.finish(call, CRASHED)

    def restart(self) -> None:
        if self.up:
            return
        self.up = True
        self.up_since = self._clock()


def _reply_arrived(call: Call) -> None:
    """Mesh path: the response reached the caller's host; its proxy passes it back."""
    proxy = call.out_proxy
    # started but never served: a reset of a call whose service completion is still on the heap (see
    # Instance.crash).  Not told by its status, which a router may have changed since (a timeout).
    if proxy is not None and (call.t_svc == call.t_svc or call.t_start != call.t_start):
        proxy.process(call, RESPONSE, _TO_PARENT)
    else:
        call.parent.child_done(call)


#: the call whose end, if it comes, is the last act of the running event (the one the reply in _to_parent decides)
_tail_call: list = [None]


def _to_parent(call: Call) -> None:
    """Mesh path: the response left the caller's proxy (a kernel event's only callback).

    The reply decides at most its parent call's step: when that ends the call, nothing follows in this event
    (Route.child_done and Call.child_done end with it), so its response pass may run on (Instance._respond).
    """
    parent = call.parent
    _tail_call[0] = call.rparent if type(parent) is Route else parent
    parent.child_done(call)
    _tail_call[0] = None


_TO_PARENT = [_to_parent]


__all__ = ["Call", "Caller", "EndpointRT", "Instance", "ServiceRT", "RoundRobin", "status_code"]
