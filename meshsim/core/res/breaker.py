"""Circuit breakers: the thresholds of one priority, their counters, and the retry budget.

Mirrors Envoy's ``source/common/upstream/resource_manager_impl.h``
(``ResourceManagerImpl``, ``ManagedResourceImpl::canCreate``, ``RetryBudgetImpl``)
with the thresholds of ``config/cluster/v3/circuit_breaker.proto``, and Istio's
``getDefaultCircuitBreakerThresholds`` (``pilot/pkg/networking/core/cluster_traffic_policy.go``).
:class:`CircuitBreaker` has the cheap request-path methods
:class:`meshsim.sim.route.Route` calls.

>>> cb = CircuitBreaker(BreakerLimits(max_retries=1, retry_budget=RetryBudget(min_retry_concurrency=2)))
>>> [cb.try_acquire("retries") for _ in range(3)], cb.overflows
([True, True, False], {'upstream_rq_retry_overflow': 1})
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import _check_count, _check_percent
from .istio import _check_profile

__all__ = ["BREAKER_KINDS", "UINT32_MAX", "BreakerLimits", "CircuitBreaker", "RetryBudget"]

#: Go's ``math.MaxUint32``: what Istio sets every circuit-breaker threshold to
UINT32_MAX = 2**32 - 1


@dataclass(frozen=True)
class RetryBudget:
    """Envoy's retry budget (``CircuitBreakers.Thresholds.RetryBudget``).

    Active retries may be at most ``budget_percent`` % (default 20) of the
    active requests (active + pending), but never fewer than
    ``min_retry_concurrency`` (default 3): resource_manager_impl.h
    ``RetryBudgetImpl::max`` = ``max(uint64(percent / 100 * active), min)``.
    When a budget is configured it replaces ``max_retries``.

    >>> b = RetryBudget()
    >>> b.max_retries(10), b.max_retries(100), b.allows(10, 2), b.allows(10, 3)
    (3, 20, True, False)
    """

    budget_percent: float = 20.0
    min_retry_concurrency: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget_percent", _check_percent("budget_percent", self.budget_percent))
        _check_count("min_retry_concurrency", self.min_retry_concurrency)

    def max_retries(self, active_requests: int) -> int:
        active = _check_count("active_requests", active_requests)
        return max(int(self.budget_percent / 100.0 * active), self.min_retry_concurrency)

    def allows(self, active_requests: int, active_retries: int) -> bool:
        """May one more retry start with ``active_retries`` already running?"""
        return _check_count("active_retries", active_retries) < self.max_retries(active_requests)


# --------------------------------------------------------------------------- circuit breaker

#: Resources a :class:`CircuitBreaker` counts, with the cluster stat Envoy bumps on overflow.
#: (An overflow of ``max_requests`` also counts as ``upstream_rq_pending_overflow`` in Envoy:
#: conn_pool_base.cc ``attachStreamToClient``; the circuit-breaking docs say the same.)
BREAKER_KINDS = {
    "connections": "upstream_cx_overflow",
    "pending_requests": "upstream_rq_pending_overflow",
    "requests": "upstream_rq_pending_overflow",
    "retries": "upstream_rq_retry_overflow",
}


@dataclass(frozen=True)
class BreakerLimits:
    """Envoy's ``CircuitBreakers.Thresholds`` for one priority.

    Defaults 1024/1024/1024/3 (circuit_breaker.proto); Istio sets all four to
    2**32 - 1 (``getDefaultCircuitBreakerThresholds``).  A ``retry_budget``
    replaces ``max_retries``.
    """

    max_connections: int = 1024
    max_pending_requests: int = 1024
    max_requests: int = 1024
    max_retries: int = 3
    retry_budget: RetryBudget | None = None

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
            _check_count(name, getattr(self, name))
        if self.retry_budget is not None and not isinstance(self.retry_budget, RetryBudget):
            raise ValueError(f"retry_budget must be a RetryBudget or None, got {self.retry_budget!r}")

    @classmethod
    def profile(cls, name: str) -> BreakerLimits:
        """``"envoy"``: 1024/1024/1024/3; an Istio profile: every limit 2**32 - 1 ("unlimited")."""
        if _check_profile(name) == "envoy":
            return cls()
        return cls(UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX)


class CircuitBreaker:
    """One cluster's circuit breakers at one priority: counters against :class:`BreakerLimits`.

    Envoy keeps one set per cluster and priority (``default``, ``high``);
    the shell keeps one object per pair (a route, :class:`meshsim.sim.route.Route`).
    :meth:`try_acquire` admits when the count is below the limit
    (``ManagedResourceImpl::canCreate``: count < max) and counts the overflow
    stat otherwise; the request then fails with 503 and response flag ``UO``
    (``x-envoy-overloaded``).  A retry holds ``"retries"`` from when it is
    scheduled until that attempt ends.

    The counts are plain attributes (``connections``, ``pending_requests``,
    ``requests``, ``retries``) and the request path uses the cheap methods
    :meth:`admit`, :meth:`release_request`, :meth:`start_pending`,
    :meth:`drop_pending`, :meth:`retry_allowed`, :meth:`acquire_retry` and
    :meth:`release_retry`, which check nothing but the limits.  With HTTP/1.1
    (one request per connection) an active request holds a connection, so
    :meth:`admit` compares the active requests with both limits.

    >>> cb = CircuitBreaker(BreakerLimits(max_pending_requests=1))
    >>> cb.try_acquire("pending_requests"), cb.try_acquire("pending_requests"), cb.overflow_reason("pending_requests")
    (True, False, 'upstream_rq_pending_overflow')
    >>> cb.release("pending_requests"); cb.count("pending_requests")
    0
    >>> cb = CircuitBreaker(BreakerLimits(max_connections=1, max_pending_requests=1, max_requests=5))
    >>> [cb.admit() for _ in range(3)] == [CircuitBreaker.START, CircuitBreaker.PENDING, CircuitBreaker.PENDING_OVERFLOW]
    True
    >>> cb.release_request(); cb.start_pending(), cb.requests, cb.pending_requests
    (True, 1, 0)
    """

    #: response flag and status Envoy gives a request refused by a breaker
    RESPONSE_FLAG = "UO"
    RESPONSE_STATUS = 503
    #: what :meth:`admit` decided: start now (a request slot is taken), wait as pending (a pending slot is
    #: taken), or fail with an overflow of ``max_requests`` or of ``max_pending_requests``
    START, PENDING, OVERFLOW, PENDING_OVERFLOW = 0, 1, 2, 3

    __slots__ = ("limits", "priority", "connections", "pending_requests", "requests", "retries", "overflows",
                 "max_connections", "max_pending_requests", "max_requests", "max_retries", "retry_budget")

    def __init__(self, limits: BreakerLimits | None = None, priority: str = "default"):
        if limits is not None and not isinstance(limits, BreakerLimits):
            raise ValueError(f"limits must be a BreakerLimits or None, got {limits!r}")
        if priority not in ("default", "high"):
            raise ValueError(f"priority must be 'default' or 'high', got {priority!r}")
        self.limits = limits = limits if limits is not None else BreakerLimits()
        self.priority = priority
        self.connections = self.pending_requests = self.requests = self.retries = 0
        self.overflows: dict[str, int] = {}
        # the limits as attributes: read on every attempt
        self.max_connections = limits.max_connections
        self.max_pending_requests = limits.max_pending_requests
        self.max_requests = limits.max_requests
        self.max_retries = limits.max_retries
        self.retry_budget = limits.retry_budget

    @property
    def unlimited(self) -> bool:
        """No connections or requests limit can act (Istio's defaults): nothing to check on the request path."""
        return self.max_connections >= UINT32_MAX and self.max_requests >= UINT32_MAX

    @staticmethod
    def _kind(kind: str) -> str:
        if kind not in BREAKER_KINDS:
            raise ValueError(f"kind must be one of {sorted(BREAKER_KINDS)}, got {kind!r}")
        return kind

    def limit(self, kind: str) -> int:
        """Current limit; for retries under a budget it depends on active + pending requests."""
        kind = self._kind(kind)
        if kind == "retries" and self.retry_budget is not None:
            return self.retry_budget.max_retries(self.requests + self.pending_requests)
        return getattr(self.limits, "max_" + kind)

    def count(self, kind: str) -> int:
        return getattr(self, self._kind(kind))

    def remaining(self, kind: str) -> int:
        return max(0, self.limit(kind) - self.count(kind))

    def is_open(self, kind: str) -> bool:
        """Envoy's ``*_open`` gauge: the breaker would refuse the next one."""
        return self.count(kind) >= self.limit(kind)

    def can_acquire(self, kind: str) -> bool:
        return not self.is_open(kind)

    def _overflow(self, kind: str) -> None:
        stat = BREAKER_KINDS[kind]
        self.overflows[stat] = self.overflows.get(stat, 0) + 1

    def try_acquire(self, kind: str) -> bool:
        """Take one ``kind`` if below its limit; otherwise count the overflow and return False."""
        if self.can_acquire(kind):
            setattr(self, kind, getattr(self, kind) + 1)
            return True
        self._overflow(kind)
        return False

    def release(self, kind: str, n: int = 1) -> None:
        n = _check_count("n", n, 1)
        held = self.count(kind)
        if n > held:
            raise ValueError(f"release of {n} {kind} but only {held} held")
        setattr(self, kind, held - n)

    @staticmethod
    def overflow_reason(kind: str) -> str:
        """The Envoy cluster stat an overflow of ``kind`` increments."""
        return BREAKER_KINDS[CircuitBreaker._kind(kind)]

    # -- the request path: no validation, only the limits ------------------------------------------
    def admit(self) -> int:
        """A new attempt: :data:`START` (takes a request), :data:`PENDING` (takes a pending slot) or an overflow.

        Envoy's order: ``max_requests`` first, then a free connection, else
        a pending slot if ``max_pending_requests`` allows.
        """
        r = self.requests
        if r >= self.max_requests:
            self._overflow("requests")
            return self.OVERFLOW
        if r >= self.max_connections:
            if self.pending_requests >= self.max_pending_requests:
                self._overflow("pending_requests")
                return self.PENDING_OVERFLOW
            self.pending_requests += 1
            return self.PENDING
        self.requests += 1
        return self.START

    def release_request(self) -> None:
        """An attempt no longer holds its request (and connection) slot."""
        self.requests -= 1

    def start_pending(self) -> bool:
        """If a pending attempt may start now (a connection is free), move it to the active requests."""
        if self.pending_requests and self.requests < self.max_connections:
            self.pending_requests -= 1
            self.requests += 1
            return True
        return False

    def drop_pending(self) -> None:
        """A pending attempt was abandoned before it started."""
        self.pending_requests -= 1

    def retry_allowed(self) -> bool:
        """Would the retries breaker (or the retry budget, over active + pending requests) admit one more?"""
        if self.retry_budget is not None:
            return self.retries < self.retry_budget.max_retries(self.requests + self.pending_requests)
        return self.retries < self.max_retries

    def acquire_retry(self) -> None:
        """A retry was scheduled (check :meth:`retry_allowed` first): it holds a retries slot until it ends."""
        self.retries += 1

    def release_retry(self) -> None:
        self.retries -= 1
