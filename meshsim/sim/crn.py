"""Common random numbers: service times and call choices keyed by request, not by instance.

By default each instance draws its service times from its own stream
(``svc/<instance>/<endpoint>``), in the order it starts calls.  Two variants
of a scenario that route differently (another balancer, another replica
count, a mesh on or off) then give the same request different service times,
and a paired comparison of the two pairs less than it could.

With ``run.common_random_numbers: true`` the service time of a request's call
at an endpoint is instead looked up by the request's id: the k-th call of
request ``r`` that starts service at endpoint ``e`` of service ``s`` gets
element ``r`` of the stream ``crn/svc/<s>/<e>/<k>``, whichever instance serves
it and whenever it starts.  Call probabilities (``probability < 1``) are
keyed the same way (``crn/calls/<s>/<e>/<k>``).  Arrival times are keyed per
workload already (``workload/<name>``), so with open-loop workloads request
``r`` is the same request in every variant.  What is not keyed per request:
network latencies (per link class and zone pair), proxy costs (per proxy),
closed-loop think times, retry jitter and the balancers' own draws.

>>> import numpy as np
>>> from meshsim.distributions import Exponential
>>> from meshsim.rng import RandomStreams
>>> d = KeyedDraws(lambda: Exponential(10.0).stream(RandomStreams(3).generator("x"), 8), chunk=8)
>>> late, early = d[20], d[2]                      # looked up in any order ...
>>> e = KeyedDraws(lambda: Exponential(10.0).stream(RandomStreams(3).generator("x"), 8), chunk=8)
>>> [e[2], e[20]] == [early, late]                 # ... element r is always the same number
True
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from ..rng import RandomStreams, uniform_stream
from .engine import Call, Instance, ServiceRT

#: visits of one request to one endpoint that get their own keyed stream; later ones share a sequential stream
MAX_KEYED_VISITS = 255


class KeyedDraws:
    """The numbers of an infinite stream, addressable by index: ``draws[r]`` (drawn ahead as needed)."""

    __slots__ = ("_make", "_it", "_buf", "_chunk")

    def __init__(self, make: Callable[[], Iterator[float]], chunk: int = 4096):
        self._make = make
        self._it: Iterator[float] | None = None
        self._buf = array("d")
        self._chunk = chunk

    def __getitem__(self, i: int) -> float:
        buf = self._buf
        if i >= len(buf):
            if self._it is None:
                self._it = self._make()
            while i >= len(buf):
                buf.extend(islice(self._it, max(self._chunk, i + 1 - len(buf))))
        return buf[i]


class EndpointDraws:
    """Service times and call-probability uniforms of one endpoint, keyed by (request, visit)."""

    def __init__(self, streams: RandomStreams, service: str, endpoint: str, dist: Any, n_uniforms: int):
        self._streams = streams
        self._name = f"{service}/{endpoint}"
        self._dist = dist
        self._svc: list[KeyedDraws] = []
        self._unif: list[KeyedDraws] = []
        self._overflow: Iterator[float] | None = None
        self._visits = bytearray()
        #: uniforms per visit (targets with probability < 1, over all steps)
        self.n_uniforms = n_uniforms

    def _level(self, levels: list[KeyedDraws], k: int, kind: str) -> KeyedDraws:
        while len(levels) <= k:
            name = f"crn/{kind}/{self._name}/{len(levels)}"
            if kind == "svc":
                levels.append(KeyedDraws(lambda n=name: self._dist.stream(self._streams.generator(n))))
            else:
                levels.append(KeyedDraws(lambda n=name: uniform_stream(self._streams.generator(n))))
        return levels[k]

    def service_time(self, call: Call) -> float:
        """The service time of ``call`` (counts it as a visit of its request to this endpoint)."""
        r = call.req
        visits = self._visits
        if r >= len(visits):
            visits.extend(bytes(max(4096, r + 1 - len(visits))))
        k = visits[r]
        call.visit = k
        if k >= MAX_KEYED_VISITS:  # pathological: hundreds of retries of one request at one endpoint
            if self._overflow is None:
                self._overflow = self._dist.stream(self._streams.generator(f"crn/svc/{self._name}/overflow"))
            return next(self._overflow)
        visits[r] = k + 1
        return self._level(self._svc, k, "svc")[r]

    def uniform(self, call: Call, position: int) -> float:
        """Uniform number ``position`` of ``call``'s visit (for its call probabilities)."""
        k = min(getattr(call, "visit", 0), MAX_KEYED_VISITS)
        return self._level(self._unif, k, "calls")[call.req * self.n_uniforms + position]


class CommonDraws:
    """One :class:`EndpointDraws` per (service, endpoint) of a simulation, shared by its instances."""

    def __init__(self, streams: RandomStreams):
        self.streams = streams
        self._by_gid: dict[int, EndpointDraws] = {}

    def for_service(self, service: ServiceRT) -> dict[int, EndpointDraws]:
        out = {}
        for ep in service.endpoints.values():
            d = self._by_gid.get(ep.gid)
            if d is None:
                n = sum(1 for targets, _k in ep.steps for t in targets if t[2] < 1.0)
                d = self._by_gid[ep.gid] = EndpointDraws(self.streams, service.name, ep.name, ep.dist, n)
            out[ep.gid] = d
        return out


class _ServiceTimes:
    """Iterator of one instance's service times at one endpoint: the keyed draw of the call it is starting."""

    __slots__ = ("inst", "draws")

    def __init__(self, inst: KeyedInstance, draws: EndpointDraws):
        self.inst = inst
        self.draws = draws

    def __iter__(self) -> _ServiceTimes:
        return self

    def __next__(self) -> float:
        return self.draws.service_time(self.inst._starting)


class _Uniforms:
    """Iterator of the uniforms ``Instance.advance`` uses to choose calls, keyed by the call it advances."""

    __slots__ = ("inst", "step", "pos")

    def __init__(self, inst: KeyedInstance):
        self.inst = inst
        self.step = -1
        self.pos = 0

    def __iter__(self) -> _Uniforms:
        return self

    def __next__(self) -> float:
        call = self.inst._advancing
        ep_draws = self.inst._draws[call.ep.gid]
        if call.step != self.step:  # a new step: its targets' uniforms start at the step's offset
            self.step = call.step
            self.pos = self.inst._offsets[call.ep.gid][call.step]
        pos = self.pos
        self.pos = pos + 1
        return ep_draws.uniform(call, pos)


class KeyedInstance(Instance):
    """An :class:`Instance` whose service times and call choices are keyed by request (see the module doc).

    The request path is :class:`Instance`'s, unchanged: each method that may
    start a call notes which call it is about to start (the one arriving, or
    the head of the queue), and the per-endpoint iterators the instance draws
    from look that call's draw up.
    """

    def __init__(self, sim: Any, service: ServiceRT, index: int, gid: int, host: str, streams: Any,
                 common: CommonDraws):
        super().__init__(sim, service, index, gid, host, streams)
        self._starting: Call | None = None
        self._advancing: Call | None = None
        self._draws = common.for_service(service)
        self.svc_streams = {gid: _ServiceTimes(self, d) for gid, d in self._draws.items()}
        self._drawn_streams = self.svc_streams
        # per endpoint and step: the position of the step's first probabilistic target among the visit's uniforms
        self._offsets: dict[int, list[int]] = {}
        for ep in service.endpoints.values():
            offs, n = [], 0
            for targets, _k in ep.steps:
                offs.append(n)
                n += sum(1 for t in targets if t[2] < 1.0)
            self._offsets[ep.gid] = offs
        self._keyed_uniforms = _Uniforms(self)
        if self.uniform is not None:
            self.uniform = self._keyed_uniforms

    def arrive(self, call: Call) -> None:
        self._starting = call
        Instance.arrive(self, call)

    def _release(self, call: Call, now: float) -> None:
        q = self.queue
        self._starting = q[0] if q else None
        Instance._release(self, call, now)

    def _service_done(self, call: Call) -> None:
        q = self.queue
        self._starting = q[0] if q else None
        Instance._service_done(self, call)

    def advance(self, call: Call, now: float | None = None) -> None:
        self._advancing = call
        self._keyed_uniforms.step = -1
        Instance.advance(self, call, now)


__all__ = ["CommonDraws", "EndpointDraws", "KeyedDraws", "KeyedInstance", "MAX_KEYED_VISITS"]
