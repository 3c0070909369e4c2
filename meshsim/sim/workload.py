"""Workloads: where requests come from.

Open-loop workloads are iterators of absolute arrival times (ms) driven by one
timer each; closed-loop workloads are users that send, wait for the reply,
think, and send again.  Every workload is a :class:`~meshsim.sim.engine.Caller`
with its own host and balancer, and the parent of its root calls.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from heapq import heappush
from typing import Any

import numpy as np

from ..core.hashing import hash_key
from ..tracefile import read_trace
from . import router as _router
from .engine import Call, Caller, EndpointRT, ServiceRT
from .kernel import NORMAL, Carrier
from .recorder import OK, TIMEOUT, Recorder

NAN = math.nan
_new_call = Call.__new__


def poisson_times(rng: np.random.Generator, rate_per_ms: float, batch: int = 4096) -> Iterator[float]:
    """Arrival times (ms) of a Poisson process: running sums of exponential gaps drawn ``batch`` at a time.

    ``next()`` is C code (chained lists); each batch is ``np.cumsum``, which adds in order, one gap after
    another, as ``t += gap`` would: the same floats.

    >>> list(itertools.islice(poisson_times(np.random.default_rng(1), 0.5, batch=2), 3)) == list(
    ...     itertools.accumulate(np.random.default_rng(1).exponential(2.0, 4).tolist()))[:3]
    True
    """
    return itertools.chain.from_iterable(_poisson_batches(rng, 1.0 / rate_per_ms, batch))


def _poisson_batches(rng: np.random.Generator, mean: float, batch: int) -> Iterator[list[float]]:
    sums = np.empty(batch + 1)  # [the last time so far, the batch's gaps...]
    sums[0] = 0.0
    while True:
        sums[1:] = rng.exponential(mean, batch)
        np.cumsum(sums, out=sums)
        yield sums[1:].tolist()
        sums[0] = sums[-1]


def deterministic_times(rate_per_ms: float) -> Iterator[float]:
    gap = 1.0 / rate_per_ms
    i = 1
    while True:
        yield i * gap
        i += 1


def piecewise_times(rng: np.random.Generator, rates: list[tuple[float, float]]) -> Iterator[float]:
    """Poisson arrivals whose rate (per ms) is ``rate`` from ``start`` on, for sorted (start, rate)."""
    t = 0.0
    for i, (start, rate) in enumerate(rates):
        end = rates[i + 1][0] if i + 1 < len(rates) else math.inf
        t = max(t, start)
        if rate <= 0:
            continue
        while True:  # memoryless: restarting the clock at a boundary is exact
            t += rng.exponential(1.0 / rate)
            if t >= end:
                t = end
                break
            yield t


def mmpp_times(rng: np.random.Generator, on_rate: float, off_rate: float, on_ms: float, off_ms: float) -> Iterator[float]:
    """On/off Markov-modulated Poisson arrivals (exponential period lengths), starting on."""
    t = 0.0
    on = True
    switch = rng.exponential(on_ms)
    while True:
        rate = on_rate if on else off_rate
        cand = t + rng.exponential(1.0 / rate) if rate > 0 else math.inf
        if cand >= switch:
            t = switch
            on = not on
            switch = t + rng.exponential(on_ms if on else off_ms)
            continue
        t = cand
        yield t


def diurnal_times(rng: np.random.Generator, mean_rate: float, amplitude: float, period: float, phase: float) -> Iterator[float]:
    """Poisson arrivals with rate mean*(1 + a*sin(2 pi t/period + phase)), by thinning."""
    peak = mean_rate * (1.0 + amplitude)
    t = 0.0
    while True:
        t += rng.exponential(1.0 / peak)
        rate = mean_rate * (1.0 + amplitude * math.sin(2 * math.pi * t / period + phase))
        if rng.random() * peak <= rate:
            yield t


def _uniform_ints(rng: np.random.Generator, n: int, batch: int = 4096) -> Iterator[int]:
    while True:
        yield from rng.integers(0, n, batch).tolist()


def arrival_times(spec: dict, rng: np.random.Generator, base_dir: Any, path: str) -> Iterator[float]:
    """The arrival-time iterator of an open-loop workload spec (rates per second)."""
    kind = spec["type"]
    per_ms = 1e-3
    if kind == "poisson":
        return poisson_times(rng, spec["rate"] * per_ms)
    if kind == "deterministic":
        return deterministic_times(spec["rate"] * per_ms)
    if kind == "mmpp":
        return mmpp_times(rng, spec["rate"] * per_ms, (spec["off_rate"] or 0.0) * per_ms, spec["on_time"], spec["off_time"])
    if kind == "steps":
        steps = sorted((s["at"], s["rate"] * per_ms) for s in spec["steps"])
        if steps[0][0] > 0:
            steps.insert(0, (0.0, 0.0))
        return piecewise_times(rng, steps)
    if kind == "diurnal":
        return diurnal_times(rng, spec["rate"] * per_ms, spec["amplitude"], spec["period"], spec["phase"])
    if kind == "trace":
        times = read_trace(spec["file"], spec["column"], base_dir, path + ".file") / spec["speedup"]
        return iter((times - times[0]).tolist())
    raise AssertionError(kind)


class Workload(Caller):
    """Base of workloads: creates root calls and records their outcome."""

    def __init__(self, sim: Any, index: int, name: str, spec: dict, host: str, target: ServiceRT, ep: EndpointRT):
        super().__init__(sim, host, name)
        self.index = index
        self.spec = spec
        self.target = target
        self.ep = ep
        self.timeout: float | None = spec["timeout"]
        self.sent = 0
        self._clock = sim.kernel.clock  # the kernel's time, one C call
        self.clients: int | None = spec.get("clients")
        if self.clients is not None:
            self._client_ids = _uniform_ints(sim.streams.generator(f"workload/{name}/clients"), self.clients)
            self._client_keys: dict[int, int] = {}
        #: full-mode recorder (exactly): a request's start and end are written into its columns here
        #: (Recorder.request_start / request_end and Simulation.request_done inlined; router.DIRECT)
        self._rec: Recorder | None = sim.recorder if _router.DIRECT and type(sim.recorder) is Recorder else None

    def send_root(self, now: float) -> Call:
        """Start a request at ``now`` (the current time, which the caller knows)."""
        sim = self.sim
        rid = sim.recorder.request_start(self.index, now)
        call = Call(rid, next(sim.span_ids), self, -1, self.ep, self.host, now)
        if self.clients is not None:
            call.key = self._client_key(next(self._client_ids))
        sim.inflight += 1
        self.sent += 1
        if self.timeout is not None:
            sim.kernel.call_later(self.timeout, self._timeout, call)
        self.send(call, self.target)
        return call

    def _client_key(self, client: int) -> int:
        key = self._client_keys.get(client)
        if key is None:
            key = self._client_keys[client] = hash_key(client_id=f"{self.name}/{client}")
        return key

    def _timeout(self, call: Call) -> None:
        if call.gen != -1:
            call.gen = -1  # reported: a late reply is ignored
            self.sim.request_done(call, TIMEOUT)

    def child_done(self, call: Call) -> None:
        if call.lb is not None:
            call.lb.on_end(call.lb_idx)
            call.lb = None
        if call.gen == -1:
            return
        call.gen = -1
        rec = self._rec
        if rec is None:
            self.sim.request_done(call, call.status)
            return
        # Simulation.request_done with Recorder.request_end, inlined
        sim = self.sim
        rec.r_end[call.req] = self._clock()
        rec.r_status[call.req] = call.status
        sim.inflight -= 1
        if sim.inflight == 0 and not sim.arrivals_open and sim._drain:
            sim._stop()

    def start(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class OpenWorkload(Workload, Carrier):
    """Open loop: arrivals at the times of an iterator, whatever the replies do."""

    def __init__(self, *args: Any, times: Iterator[float]):
        super().__init__(*args)
        self.times = times
        self.callbacks = None
        self._cbs = [self._fire]
        self._push_due = self.sim.kernel.push_due
        self._due = 0.0  # when the next arrival fires (the clock then reads exactly this)
        self.active = False
        # the kernel's carrier queue, for the next arrival pushed inline (Kernel.push_due's body)
        self._heap, self._eid = self.sim.kernel.carrier_queue()
        #: an arrival is started in _fire itself: full-mode recorder, no client keys, no request timeout
        self._direct = self._rec is not None and self.clients is None and self.timeout is None

    def start(self) -> None:
        self.active = True
        self._schedule_next()

    def stop(self) -> None:
        self.active = False

    def _schedule_next(self) -> None:
        try:
            t = next(self.times)
        except StopIteration:
            self.active = False
            self.sim.workload_exhausted(self)
            return
        self._due = self._push_due(self, t, self._cbs)

    def _fire(self, _self: Any) -> None:
        sim = self.sim
        if not self.active or not sim.arrivals_open:
            return
        now = self._due  # the clock reads exactly this (see Kernel.push_due)
        if self._direct:  # send_root with Recorder.request_start, inlined
            rec = self._rec
            rid = len(rec.r_arrival)
            rec.r_workload.append(self.index)
            rec.r_arrival.append(now)
            rec.r_end.append(NAN)
            rec.r_status.append(-1)
            # Call(rid, next(span_ids), self, -1, self.ep, self.host, now) without the __init__ frame
            call = _new_call(Call)
            call.req = rid
            call.span = next(sim.span_ids)
            call.parent = self
            call.parent_span = -1
            call.ep = self.ep
            call.src_host = self.host
            call.t_send = now
            call.t_arrive = call.t_start = call.t_svc = NAN
            call.step = call.gen = 0
            call.status = OK
            call.finished = call.holding = False
            call.lb = call.key = None
            sim.inflight += 1
            self.sent += 1
            target = self.target
            route = self.routes.get(target) or self.route(target)
            inst = route.only
            if inst is None:
                route.send(call)
            else:  # Route._send_one, inlined
                call.inst = inst
                inst.arrive(call, now)
        else:
            self.send_root(now)
        sim.arrived += 1  # Simulation.count_arrival, inlined: this runs once per request
        if sim.max_requests is not None and sim.arrived >= sim.max_requests:
            sim.close_arrivals()
        if self.active and sim.arrivals_open:
            if not self._direct:
                self._schedule_next()
                return
            try:  # _schedule_next with Kernel.push_due inlined; the clock still reads ``now``
                t = next(self.times)
            except StopIteration:
                self.active = False
                sim.workload_exhausted(self)
                return
            at = self._due = now + (t - now if t > now else 0.0)
            self.callbacks = self._cbs
            heappush(self._heap, (at, NORMAL, next(self._eid), self))


class ClosedWorkload(Workload):
    """Closed loop: ``users`` users, each thinking then sending one request at a time."""

    def __init__(self, *args: Any, think: Iterator[float]):
        super().__init__(*args)
        self.think = think
        self.users: int = self.spec["users"]
        self.active = False

    def start(self) -> None:
        self.active = True
        for _ in range(self.users):
            self.sim.kernel.call_later(next(self.think), self._send, None)

    def stop(self) -> None:
        self.active = False

    def _send(self, _arg: Any) -> None:
        if not self.active or not self.sim.arrivals_open:
            return
        self.send_root(self._clock())
        self.sim.count_arrival()

    def child_done(self, call: Call) -> None:
        if call.gen == -1:
            if call.lb is not None:
                call.lb.on_end(call.lb_idx)
                call.lb = None
            return
        super().child_done(call)
        if self.active and self.sim.arrivals_open:
            self.sim.kernel.call_later(next(self.think), self._send, None)

    def _timeout(self, call: Call) -> None:
        if call.gen != -1:
            super()._timeout(call)
            if self.active and self.sim.arrivals_open:
                self.sim.kernel.call_later(next(self.think), self._send, None)


__all__ = ["OK", "OpenWorkload", "ClosedWorkload", "arrival_times"]
