"""Route (global) and per-try timeouts.

Mirrors Envoy's router timeouts (``source/common/router/router.cc``
``FilterUtility::finalTimeout``; defaults from ``config/route/v3/route_components.proto``
and ``config/core/v3/protocol.proto``).  Istio writes ``timeout: 0s`` (none).

>>> Timeouts().route_timeout_ms, Timeouts.profile("istio").route_timeout_ms
(15000.0, None)
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import _check_timeout
from .istio import _check_profile

__all__ = ["DEFAULT_IDLE_TIMEOUT_MS", "DEFAULT_ROUTE_TIMEOUT_MS", "Timeouts"]

#: Envoy ``RouteAction.timeout`` default (route_components.proto: "If not specified, the default is 15s")
DEFAULT_ROUTE_TIMEOUT_MS = 15_000.0
#: Envoy ``HttpProtocolOptions.idle_timeout`` default for upstream HTTP connections (protocol.proto: 1 hour)
DEFAULT_IDLE_TIMEOUT_MS = 3_600_000.0


@dataclass(frozen=True)
class Timeouts:
    """Route (global) and per-try timeouts, in ms; ``None`` (or 0, as in Envoy) disables one.

    The route timeout (Envoy default 15 s; Istio sets 0 = none) runs from the
    end of the downstream request to the end of the response and *includes*
    every retry and backoff; when it fires Envoy answers 504 and does not
    retry.  The per-try timeout bounds one attempt (from when it is sent
    upstream, until response headers) and is ignored when it is >= a non-zero
    route timeout (router.cc ``finalTimeout``).

    >>> t = Timeouts(1000, 300)
    >>> t.attempt_deadline_ms(request_start_ms=0, attempt_start_ms=800)
    1000.0
    >>> Timeouts(1000, 1000).effective_per_try_ms is None
    True
    """

    route_timeout_ms: float | None = DEFAULT_ROUTE_TIMEOUT_MS
    per_try_timeout_ms: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "route_timeout_ms", _check_timeout("route_timeout_ms", self.route_timeout_ms))
        object.__setattr__(self, "per_try_timeout_ms", _check_timeout("per_try_timeout_ms", self.per_try_timeout_ms))

    @classmethod
    def profile(cls, name: str) -> Timeouts:
        """``"envoy"``: 15 s route timeout; an Istio profile: none (Istio writes ``timeout: 0s``)."""
        if _check_profile(name) == "envoy":
            return cls()
        return cls(None, None)

    @property
    def effective_per_try_ms(self) -> float | None:
        p, r = self.per_try_timeout_ms, self.route_timeout_ms
        return None if p is None or (r is not None and p >= r) else p

    def request_deadline_ms(self, request_start_ms: float) -> float | None:
        return None if self.route_timeout_ms is None else request_start_ms + self.route_timeout_ms

    def attempt_deadline_ms(self, request_start_ms: float, attempt_start_ms: float) -> float | None:
        """When an attempt started at ``attempt_start_ms`` times out (``None``: never)."""
        ends = [d for d in (self.request_deadline_ms(request_start_ms),) if d is not None]
        p = self.effective_per_try_ms
        if p is not None:
            ends.append(attempt_start_ms + p)
        return float(min(ends)) if ends else None
