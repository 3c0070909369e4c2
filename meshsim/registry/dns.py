"""DNS-style service lookup with a client-side TTL cache.

Consul's DNS interface answers with stale reads by default
(``dns_config.allow_stale`` is true since Consul 0.7 and ``max_stale``
defaults to 10 years since 0.7.1) and serves every record with TTL 0, i.e.
no caching, unless ``dns_config.service_ttl`` is set (Consul docs: "DNS
parameters for Consul agent configuration files" and the "DNS caching"
tutorial).  :class:`DnsResolver` models a resolver in front of that: an
answer younger than ``ttl_ms`` comes from its cache at once, otherwise it
does a read (``mode``, "stale" by default) through the client and caches the
answer.  Concurrent misses for one service share one read.

>>> from meshsim.registry.catalog import Registry
>>> reg = Registry.standalone(servers=1, clients=["app"], latency=1.0)
>>> reg.start(); reg.run_until(lambda: reg.leader() is not None, 20_000)
True
>>> dns = reg.dns("app", ttl_ms=5_000)
>>> _ = reg.client("app").register("web-1", "web"); reg.run(50)
>>> got = []
>>> dns.lookup("web", lambda now, entries, cached: got.append((cached, len(entries))))
>>> reg.run(10); dns.lookup("web", lambda now, entries, cached: got.append((cached, len(entries))))
>>> got
[(False, 1), (True, 1)]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..core.catalog import ServiceEntry
from .client import MODES, Call, RegistryClient

__all__ = ["DnsResolver"]

LookupCallback = Callable[[float, tuple[ServiceEntry, ...], bool], Any]


class DnsResolver:
    """Resolves service names to passing instances through ``client``, caching answers for ``ttl_ms``.

    ``callback(now_ms, entries, cached)``; a failed read answers from an expired cache entry if there
    is one (``serve_expired_on_error``), else with no entries.
    """

    def __init__(self, client: RegistryClient, ttl_ms: float = 0.0, mode: str = "stale",
                 serve_expired_on_error: bool = True):
        if not ttl_ms >= 0 or not math.isfinite(ttl_ms):
            raise ValueError(f"ttl_ms must be a finite number of ms >= 0, got {ttl_ms!r}")
        if mode not in MODES:
            raise ValueError(f"unknown read mode {mode!r}; valid: {', '.join(MODES)}")
        self.client = client
        self.ttl_ms = float(ttl_ms)
        self.mode = mode
        self.serve_expired_on_error = serve_expired_on_error
        self.kernel = client.kernel
        self.cache: dict[str, tuple[float, tuple[ServiceEntry, ...]]] = {}
        self._waiting: dict[str, list[tuple[float, LookupCallback]]] = {}
        self.hits = 0
        self.misses = 0

    def lookup(self, service: str, callback: LookupCallback) -> None:
        """Answer from the cache if fresh (synchronously), else after a read."""
        now = self.kernel.now
        hit = self.cache.get(service)
        if hit is not None and now - hit[0] < self.ttl_ms:
            self.hits += 1
            self.client.registry._record_dns(self.client.host, service, True, now - hit[0], 0.0)
            callback(now, hit[1], True)
            return
        self.misses += 1
        waiting = self._waiting.get(service)
        if waiting is not None:
            waiting.append((now, callback))
            return
        self._waiting[service] = [(now, callback)]
        self.client.read(service, mode=self.mode, callback=lambda call: self._answered(service, call))

    def _answered(self, service: str, call: Call) -> None:
        now = self.kernel.now
        if call.ok:
            self.cache[service] = (now, call.entries)
            entries = call.entries
        else:
            old = self.cache.get(service)
            entries = old[1] if (old is not None and self.serve_expired_on_error) else ()
        for t0, cb in self._waiting.pop(service, []):
            self.client.registry._record_dns(self.client.host, service, False, 0.0, now - t0)
            cb(now, entries, False)
