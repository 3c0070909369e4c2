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

from collections import deque
from collections.abc import Callable
from heapq import heappush
from typing import Any

from .kernel import NORMAL

REQUEST, RESPONSE = 0, 1


class Proxy:
    """One proxy: ``workers`` threads and a FIFO queue of passes."""

    def __init__(self, sim: Any, name: str, host: str, spec: dict, streams: Any):
        self.name = name
        self.host = host
        self.env = sim.kernel.env
        self._heap = self.env._queue
        self._eid = self.env._eid
        self.workers: int = spec["workers"]
        self.busy = 0
        self.queue: deque = deque()
        self.busy_area = 0.0
        self.passes = 0
        self.handshakes = 0
        rng = streams.generator(f"proxy/{name}")
        self.costs = (spec["request_processing"].stream(rng), spec["response_processing"].stream(rng))
        self.mtls: bool = spec["mtls"]
        self.handshake = spec["handshake"].stream(rng) if self.mtls else None
        self.idle_timeout: float = spec["idle_timeout"]
        self.connections: dict[str, float] = {}  # upstream host -> time the connection was last used
        self._done_cbs = [self._done]

    def process(self, call: Any, kind: int, cont: Callable[[Any], Any], upstream: str | None = None) -> None:
        """Run one pass of ``call`` through this proxy, then ``cont(call)``.

        ``upstream`` (outbound requests only) is the host the proxy connects to;
        a new or idled-out connection adds a handshake to the pass.
        """
        call.cont = cont
        if self.busy >= self.workers:
            self.queue.append((call, kind, upstream))
            return
        self.busy += 1
        now = self.env._now
        delay = next(self.costs[kind])
        if self.mtls and upstream is not None:
            last = self.connections.get(upstream)
            if last is None or now - last > self.idle_timeout:
                delay += next(self.handshake)
                self.handshakes += 1
            self.connections[upstream] = now
        call.t_proxy = now
        call.callbacks = self._done_cbs
        heappush(self._heap, (now + delay, NORMAL, next(self._eid), call))

    def _done(self, call: Any) -> None:
        self.passes += 1
        self.busy_area += self.env._now - call.t_proxy
        self.busy -= 1
        if self.queue:
            waiting, kind, upstream = self.queue.popleft()
            self.process(waiting, kind, waiting.cont, upstream)
        cont = call.cont
        call.cont = None
        cont(call)

    def summary(self, window: float) -> dict[str, float]:
        return {
            "utilisation": self.busy_area / (self.workers * window) if window > 0 else float("nan"),
            "passes": self.passes,
            "handshakes": self.handshakes,
        }
