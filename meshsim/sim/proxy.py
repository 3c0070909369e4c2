"""Sidecar and node proxies on the request path (the data plane of the mesh).

With ``mesh.mode: sidecar`` every instance (and, with ``client_sidecar``,
every workload's client) has its own proxy; with ``mesh.mode: node`` one
proxy per host serves every instance on it (ambient-like).  A call passes
four times through proxies: the caller's proxy (outbound request), the
callee's proxy (inbound request), the callee's proxy (response) and the
caller's proxy (response).  Each pass is a job on the proxy's own worker
pool (Envoy's ``--concurrency``), so proxy overhead grows with load.  The
first request from a proxy to an upstream host, or the first after the
connection idled out, pays an mTLS handshake on top of the outbound pass.

Span times: a span's ``network_ms`` (send -> arrive) includes the two
request-path proxy passes; the response passes fall in the caller's
``downstream_ms``.
"""

from __future__ import annotations

from heapq import heappush, heapreplace
from typing import Any

from .kernel import NORMAL

REQUEST, RESPONSE = 0, 1


class Proxy:
    """One proxy: ``workers`` threads serving passes first come, first served.

    A pass's start is known when it arrives (the Kiefer-Wolfowitz recursion for a
    FIFO multi-server queue: it starts when it arrives or when the earliest of
    the workers frees up, whichever is later), so a pass costs one heap entry,
    the one that continues the call when it ends; no event frees the worker.

    >>> from types import SimpleNamespace
    >>> from meshsim.distributions import Constant
    >>> from meshsim.sim.kernel import Kernel, Carrier
    >>> from meshsim.rng import RandomStreams
    >>> k = Kernel()
    >>> spec = {"workers": 1, "request_processing": Constant(2.0), "response_processing": Constant(1.0),
    ...         "mtls": False, "handshake": None, "idle_timeout": 0.0}
    >>> p = Proxy(SimpleNamespace(kernel=k), "p", "h", spec, RandomStreams(1))
    >>> class Job(Carrier):
    ...     __slots__ = ("name",)
    >>> seen = []
    >>> for name in ("a", "b"):
    ...     job = Job(); job.name = name
    ...     p.process(job, REQUEST, [lambda j: seen.append((j.name, k.now))])
    >>> k.env.run()
    >>> seen  # b waited for the one worker
    [('a', 2.0), ('b', 4.0)]
    """

    def __init__(self, sim: Any, name: str, host: str, spec: dict, streams: Any):
        self.name = name
        self.host = host
        self._clock = sim.kernel.clock  # the simulated time now (ms), read through the kernel
        #: the kernel's carrier queue: a pass's end is pushed onto it inline (Kernel.push_at's body, as the engine's
        #: service completions are; see Kernel.carrier_queue)
        self._heap, self._eid = sim.kernel.carrier_queue()
        self.workers: int = spec["workers"]
        #: the time each worker frees up (a heap when there are several)
        self.free_at: list[float] = [0.0] * self.workers
        self.single = self.workers == 1
        self.busy_area = 0.0
        self.passes = 0
        self.handshakes = 0
        rng = streams.generator(f"proxy/{name}")
        self.costs = (spec["request_processing"].stream(rng), spec["response_processing"].stream(rng))
        self.mtls: bool = spec["mtls"]
        self.handshake = spec["handshake"].stream(rng) if self.mtls else None
        self.idle_timeout: float = spec["idle_timeout"]
        self.connections: dict[str, float] = {}  # upstream host -> time the connection was last used

    def process(self, call: Any, kind: int, callbacks: list, upstream: str | None = None) -> None:
        """Run one pass of ``call`` through this proxy; when it ends, each of ``callbacks`` gets ``call``.

        ``upstream`` (outbound requests only) is the host the proxy connects to;
        a new or idled-out connection adds a handshake to the pass.
        """
        call.callbacks = callbacks
        heappush(self._heap, (self.pass_end(kind, self._clock(), upstream), NORMAL, next(self._eid), call))

    def pass_end(self, kind: int, now: float, upstream: str | None = None) -> float:
        """Take a pass of ``kind`` arriving at ``now`` (the time now): draw its cost, book a worker, return its end.

        :meth:`process` is this and the push of the call at the end; a caller that knows what the end brings
        (see ``Instance.inbound``) may act on it itself.
        """
        delay = next(self.costs[kind])
        if upstream is not None and self.mtls:
            conns = self.connections
            last = conns.get(upstream)
            if last is None or now - last > self.idle_timeout:
                delay += next(self.handshake)
                self.handshakes += 1
            conns[upstream] = now
        self.passes += 1
        self.busy_area += delay
        free_at = self.free_at
        start = free_at[0]  # the earliest free worker (heap top)
        end = (start if start > now else now) + delay
        if self.single:
            free_at[0] = end
        else:
            heapreplace(free_at, end)
        return end

    def summary(self, window: float) -> dict[str, float]:
        """Utilisation over ``window`` ms (the part of passes still running after it is left out)."""
        now = self._clock()
        busy = self.busy_area - sum(max(0.0, t - now) for t in self.free_at)
        return {
            "utilisation": busy / (self.workers * window) if window > 0 else float("nan"),
            "passes": self.passes,
            "handshakes": self.handshakes,
        }
