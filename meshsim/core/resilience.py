"""Envoy's (and Istio's) request resilience as pure, deterministic cores.

A sidecar shell drives these objects (:class:`meshsim.sim.route.Route`, one per
caller and service); none of them owns a clock or a thread.
Times are milliseconds passed in as ``now_ms``; randomness comes only from a
numpy ``Generator`` passed in.  Every rule and default below was checked
against Envoy's source and docs (file names in the docstrings); where the docs
and the code disagree, the code is followed and the docstring says so.

==========================  ==================================================
:class:`RetryPolicy`        retry conditions, retry count, jittered backoff
:func:`backoff_interval_ms` Envoy's ``JitteredExponentialBackOffStrategy``
:class:`RetryBudget`        retries as a share of active requests
:class:`CircuitBreaker`     cluster thresholds of one priority (counters)
:class:`OutlierDetector`    consecutive errors, success rate, ejection times
:class:`HedgePolicy`        hedging on per-try timeout
:func:`response_action`     the router's choice on an attempt's response
:class:`Timeouts`           route (global) and per-try timeouts
:func:`profile`             the "envoy" and Istio defaults bundled
:func:`is_istio`            whether a profile name is an Istio one
==========================  ==================================================

Istio profiles carry their version (:data:`ISTIO_PROFILES`): ``"istio-1.20"``,
``"istio-1.24"``, and ``"istio"``, the current Istio (1.24 and later).  They
differ in one default: up to Istio 1.23 the default retry policy also retried
HTTP 503; from 1.24 on it does not (istio/istio#52111).

>>> import numpy as np
>>> old, new = profile("istio-1.20"), profile("istio")
>>> old.retry.num_retries, old.retry.should_retry(503, attempt=1), old.retry.should_retry(500, attempt=1)
(2, True, False)
>>> new.retry.should_retry(503, attempt=1), new.retry.should_retry("connect-failure", attempt=1)
(False, True)
>>> new.retry.backoff_ms(1, np.random.default_rng(0)) in range(25)
True
>>> cb = CircuitBreaker()                                # Envoy defaults 1024/1024/1024/3
>>> [cb.try_acquire("retries") for _ in range(4)]
[True, True, True, False]
>>> cb.overflows
{'upstream_rq_retry_overflow': 1}
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BREAKER_KINDS",
    "DEFAULT_IDLE_TIMEOUT_MS",
    "DEFAULT_ROUTE_TIMEOUT_MS",
    "GRPC_STATUS",
    "ISTIO_PROFILES",
    "OUTCOMES",
    "PROFILE_NAMES",
    "RETRY_ON",
    "UINT32_MAX",
    "BreakerLimits",
    "CircuitBreaker",
    "HedgePolicy",
    "OutlierConfig",
    "OutlierDetector",
    "OutlierEvent",
    "ResilienceProfile",
    "RetryBudget",
    "RetryPolicy",
    "Timeouts",
    "backoff_interval_ms",
    "is_istio",
    "istio_version",
    "outlier_status",
    "profile",
    "response_action",
]

#: Go's ``math.MaxUint32``: what Istio sets every circuit-breaker threshold to
UINT32_MAX = 2**32 - 1
#: Envoy ``RouteAction.timeout`` default (route_components.proto: "If not specified, the default is 15s")
DEFAULT_ROUTE_TIMEOUT_MS = 15_000.0
#: Envoy ``HttpProtocolOptions.idle_timeout`` default for upstream HTTP connections (protocol.proto: 1 hour)
DEFAULT_IDLE_TIMEOUT_MS = 3_600_000.0

#: gRPC status codes named by Envoy's ``x-envoy-retry-grpc-on`` conditions
GRPC_STATUS = {"cancelled": 1, "deadline-exceeded": 4, "resource-exhausted": 8, "internal": 13, "unavailable": 14}

#: Failure outcomes other than an HTTP status, as the shell reports them.
#:  ``connect-failure``  TCP/TLS connect failed or timed out (Envoy's Local/RemoteConnectionFailure, ConnectionTimeout)
#:  ``refused-stream``   the upstream reset the stream with REFUSED_STREAM (request safe to retry)
#:  ``reset``            any other reset/disconnect before response headers
#:  ``per-try-timeout``  the per-try timeout fired (not hedging): the router resets the attempt (a LocalReset)
#:  ``overflow``         a local circuit breaker refused the attempt (never retried, never charged to the host)
OUTCOMES = frozenset({"connect-failure", "refused-stream", "reset", "per-try-timeout", "overflow"})

_HTTP_RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
    }
)
#: Retry conditions understood here: Envoy's ``x-envoy-retry-on`` and ``x-envoy-retry-grpc-on`` values
#: (``envoy-ratelimited``, ``retriable-headers`` and ``http3-post-connect-failure`` are not modelled).
RETRY_ON = _HTTP_RETRY_ON | frozenset(GRPC_STATUS)


#: Istio profile name -> the Istio (major, minor) whose control-plane defaults it follows.  ``"istio"`` is the
#: current Istio: 1.24 and later (the last change of a default modelled here is 1.24's, see RetryPolicy.profile).
ISTIO_PROFILES: dict[str, tuple[int, int]] = {"istio": (1, 24), "istio-1.20": (1, 20), "istio-1.24": (1, 24)}
#: every resilience profile name :func:`profile` accepts
PROFILE_NAMES: tuple[str, ...] = ("envoy", *ISTIO_PROFILES)


def is_istio(name: str | None) -> bool:
    """Whether ``name`` is a mesh profile with Istio's control plane (``"istio"``, ``"istio-1.20"``, ...).

    >>> is_istio("istio-1.20"), is_istio("istio"), is_istio("envoy"), is_istio(None)
    (True, True, False, False)
    """
    return name in ISTIO_PROFILES


def istio_version(name: str) -> tuple[int, int]:
    """The Istio (major, minor) an Istio profile follows.

    >>> istio_version("istio"), istio_version("istio-1.20")
    ((1, 24), (1, 20))
    """
    if name not in ISTIO_PROFILES:
        raise ValueError(f"not an Istio profile: {name!r}; Istio profiles are {tuple(ISTIO_PROFILES)}")
    return ISTIO_PROFILES[name]


def _check_profile(name: str) -> str:
    if name not in PROFILE_NAMES:
        raise ValueError(f"name must be one of {PROFILE_NAMES}, got {name!r}")
    return name


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_count(name: str, value: object, minimum: int = 0) -> int:
    if not _is_int(value) or value < minimum:  # type: ignore[operator]
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def _check_percent(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 <= value <= 100:
        raise ValueError(f"{name} must be a percentage in [0, 100], got {value!r}")
    return float(value)


def _check_ms(name: str, value: object) -> float:
    """A duration that must be > 0 ms."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
        raise ValueError(f"{name} must be a duration > 0 ms, got {value!r}")
    return float(value)


def _check_timeout(name: str, value: object) -> float | None:
    """A timeout in ms; ``None`` or 0 disables it (Envoy: "a value of 0 will disable")."""
    if value is None or (not isinstance(value, bool) and isinstance(value, (int, float)) and value == 0):
        return None
    return _check_ms(name, value)


# --------------------------------------------------------------------------- backoff


def _check_backoff(base_interval_ms: object, max_interval_ms: object) -> tuple[int, int]:
    """Validated ``(base, cap)``; the cap defaults to 10 x base (retry_state_impl.cc)."""
    base = _check_count("base_interval_ms", base_interval_ms, 1)
    cap = 10 * base if max_interval_ms is None else _check_count("max_interval_ms", max_interval_ms, 1)
    if cap < base:
        raise ValueError(f"max_interval_ms must be >= base_interval_ms ({base}), got {cap}")
    return base, cap


def backoff_interval_ms(retry: int, base_interval_ms: int = 25, max_interval_ms: int | None = None) -> int:
    """The upper bound (exclusive) of the backoff before retry number ``retry`` (1, 2, ...).

    Envoy's ``JitteredExponentialBackOffStrategy`` (source/common/common/
    backoff_strategy.cc): the interval starts at the base and doubles while it
    is below ``max_interval // 2``; past that it is ``max_interval``.  So it is
    ``min(base * 2**(retry-1), max)`` except for an odd corner (``base`` just
    above ``max // 2`` jumps straight to ``max``).

    The router docs still describe the older ``JitteredBackOffStrategy``
    (``[0, (2**N - 1) * base)``: 0-24, 0-74, 0-174 ms); the current code gives
    0-24, 0-49, 0-99, 0-199, then 0-249 ms.  The code is followed here.

    >>> [backoff_interval_ms(k) for k in range(1, 7)]
    [25, 50, 100, 200, 250, 250]
    >>> backoff_interval_ms(2, 200, 250)
    250
    """
    retry = _check_count("retry", retry, 1)
    base, cap = _check_backoff(base_interval_ms, max_interval_ms)
    limit = cap // 2
    interval = base
    for _ in range(retry - 1):
        if interval == cap:
            break
        interval = interval * 2 if interval < limit else cap
    return interval


# --------------------------------------------------------------------------- retry policy


def _as_conditions(retry_on: str | Iterable[str]) -> frozenset[str]:
    items = retry_on.split(",") if isinstance(retry_on, str) else list(retry_on)
    conds = frozenset(c.strip() for c in items if c.strip())
    unknown = sorted(conds - RETRY_ON)
    if unknown:
        raise ValueError(f"retry_on has unknown condition(s) {unknown}; known: {sorted(RETRY_ON)}")
    return conds


@dataclass(frozen=True)
class RetryPolicy:
    """An Envoy route retry policy (``config.route.v3.RetryPolicy``).

    ``retry_on`` is a set of conditions (or Envoy's comma-separated string);
    ``num_retries`` defaults to 1, Envoy's default once a policy is present.
    An empty ``retry_on`` never retries: that is Envoy without a retry policy
    ("By default, Envoy will *not* perform retries", router filter docs).
    Backoff: base 25 ms (runtime ``upstream.base_retry_backoff_ms``), max
    10 x base (retry_state_impl.cc).  ``retry_previous_hosts`` and
    ``host_selection_max_attempts`` are for the shell's host choice (Istio
    sets the ``previous_hosts`` predicate with 5 attempts).

    Which outcomes each condition retries (retry_state_impl.cc,
    ``wouldRetryFromHeaders`` / ``wouldRetryFromReset``):

    ============================  ===============================================
    ``5xx``                       any 5xx, and every reset (connect failure,
                                  refused stream, reset, per-try timeout)
    ``gateway-error``             502/503/504, and every reset (as ``5xx``)
    ``reset``                     every reset, per-try timeout included
    ``reset-before-request``      resets before the request was sent: here
                                  ``connect-failure``
    ``connect-failure``           ``connect-failure`` only
    ``refused-stream``            ``refused-stream`` only
    ``retriable-4xx``             409 only
    ``retriable-status-codes``    statuses in ``retriable_status_codes``
    gRPC names (``unavailable``)  that ``grpc_status`` in the response headers
    ============================  ===============================================

    ``overflow`` (a local breaker refused the attempt) is never retried.

    >>> p = RetryPolicy(retry_on="5xx", num_retries=2)
    >>> [p.should_retry(503, a) for a in (1, 2, 3)]     # attempts made so far
    [True, True, False]
    >>> p.should_retry("connect-failure", 1), p.should_retry(404, 1)
    (True, False)
    >>> RetryPolicy(num_retries=-1)
    Traceback (most recent call last):
    ...
    ValueError: num_retries must be an integer >= 0, got -1
    """

    retry_on: frozenset[str] = frozenset()
    num_retries: int = 1
    per_try_timeout_ms: float | None = None
    base_interval_ms: int = 25
    max_interval_ms: int | None = None
    retriable_status_codes: frozenset[int] = frozenset()
    retry_previous_hosts: bool = False
    host_selection_max_attempts: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "retry_on", _as_conditions(self.retry_on))
        _check_count("num_retries", self.num_retries)
        object.__setattr__(self, "per_try_timeout_ms", _check_timeout("per_try_timeout_ms", self.per_try_timeout_ms))
        _, cap = _check_backoff(self.base_interval_ms, self.max_interval_ms)
        object.__setattr__(self, "max_interval_ms", cap)
        codes = frozenset(self.retriable_status_codes)
        for c in codes:
            if not _is_int(c) or not 100 <= c <= 599:
                raise ValueError(f"retriable_status_codes must be HTTP status codes, got {c!r}")
        object.__setattr__(self, "retriable_status_codes", codes)
        _check_count("host_selection_max_attempts", self.host_selection_max_attempts, 1)

    @classmethod
    def profile(cls, name: str) -> RetryPolicy:
        """``"envoy"``: no retry policy (never retries); an Istio profile: that Istio's default.

        Istio's default (pilot/pkg/networking/core/route/retry/retry.go
        ``DefaultPolicy``): 2 retries on
        ``connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes``,
        the ``previous_hosts`` predicate and 5 host selection attempts; no
        per-try timeout, Envoy's default backoff.  Up to Istio 1.23 it also
        sets retriable status 503; from 1.24 on it does not (istio/istio#52111:
        a 503 from the application may come after the request was processed,
        so retrying it is not safe; ``EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY``,
        default true, and false in compatibility profiles before 1.24).  The
        condition ``retriable-status-codes`` stays, with no codes: it matches
        nothing.

        >>> sorted(RetryPolicy.profile("istio").retry_on)
        ['cancelled', 'connect-failure', 'refused-stream', 'retriable-status-codes', 'unavailable']
        >>> RetryPolicy.profile("istio-1.20").retriable_status_codes, RetryPolicy.profile("istio").retriable_status_codes
        (frozenset({503}), frozenset())
        """
        if _check_profile(name) == "envoy":
            return cls()
        return cls(
            retry_on="connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
            num_retries=2,
            retriable_status_codes=frozenset({503}) if istio_version(name) < (1, 24) else frozenset(),
            retry_previous_hosts=True,
            host_selection_max_attempts=5,
        )

    def is_retriable(self, outcome: int | str, grpc_status: int | None = None) -> bool:
        """Whether the retry conditions match ``outcome`` (an HTTP status or one of :data:`OUTCOMES`).

        >>> RetryPolicy(retry_on="gateway-error").is_retriable(500)
        False
        >>> RetryPolicy(retry_on="unavailable").is_retriable(200, grpc_status=14)
        True
        """
        on = self.retry_on
        if isinstance(outcome, str):
            if outcome not in OUTCOMES:
                raise ValueError(f"outcome must be an HTTP status or one of {sorted(OUTCOMES)}, got {outcome!r}")
            if outcome == "overflow":
                return False
            if outcome == "connect-failure" and on & {"connect-failure", "reset-before-request"}:
                return True
            if on & {"reset", "5xx", "gateway-error"}:
                return True
            return outcome == "refused-stream" and "refused-stream" in on
        if not _is_int(outcome) or not 100 <= outcome <= 599:
            raise ValueError(f"outcome must be an HTTP status or one of {sorted(OUTCOMES)}, got {outcome!r}")
        if "5xx" in on and 500 <= outcome <= 599:
            return True
        if "gateway-error" in on and outcome in (502, 503, 504):
            return True
        if "retriable-4xx" in on and outcome == 409:
            return True
        if "retriable-status-codes" in on and outcome in self.retriable_status_codes:
            return True
        if grpc_status is not None:
            return any(GRPC_STATUS[c] == grpc_status for c in on if c in GRPC_STATUS)
        return False

    def should_retry(self, outcome: int | str, attempt: int, grpc_status: int | None = None) -> bool:
        """Retry after ``attempt`` attempts (1 = the original request) ended with ``outcome``?

        True when the conditions match and a retry is left
        (``attempt <= num_retries``).  The shell then also needs the retries
        circuit breaker (or budget): Envoy uses up the retry even when the
        breaker refuses it (``retries_remaining_--`` comes first).
        """
        attempt = _check_count("attempt", attempt, 1)
        return attempt <= self.num_retries and self.is_retriable(outcome, grpc_status)

    def can_hedge(self, attempt: int) -> bool:
        """A hedged retry on per-try timeout needs only a retry left (conditions are ignored).

        Envoy ``shouldHedgeRetryPerTryTimeout`` always retries if retries remain.
        """
        return _check_count("attempt", attempt, 1) <= self.num_retries

    def backoff_interval_ms(self, attempt: int) -> int:
        """Exclusive upper bound of :meth:`backoff_ms` for the retry after ``attempt`` attempts."""
        return backoff_interval_ms(attempt, self.base_interval_ms, self.max_interval_ms)

    def backoff_ms(self, attempt: int, rng: np.random.Generator) -> int:
        """Backoff before the retry that follows ``attempt`` attempts: an integer ms uniform in ``[0, interval)``.

        The interval is ``base`` for the first retry, then doubles up to the
        cap (:func:`backoff_interval_ms`), so the mean is ``(interval - 1) / 2``.
        """
        return int(rng.integers(0, self.backoff_interval_ms(attempt)))

    def timeouts(self, route_timeout_ms: float | None = DEFAULT_ROUTE_TIMEOUT_MS) -> Timeouts:
        """This policy's per-try timeout with a route timeout."""
        return Timeouts(route_timeout_ms, self.per_try_timeout_ms)


# --------------------------------------------------------------------------- timeouts


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


# --------------------------------------------------------------------------- hedging


@dataclass(frozen=True)
class HedgePolicy:
    """Envoy's route hedge policy (``config.route.v3.HedgePolicy``).

    Only ``hedge_on_per_try_timeout`` does anything in Envoy's router: when
    the per-try timeout fires the attempt is *not* reset; if a retry is left
    (:meth:`RetryPolicy.can_hedge`, conditions ignored) and the retries
    breaker allows, another attempt is sent after the usual backoff.  The
    timed-out attempt is charged to outlier detection as a timeout (504) and
    is never retried again.  The first acceptable response wins and the other
    attempts are reset (:func:`response_action`).  ``initial_requests``
    (default 1) and ``additional_request_chance`` (percent, default 0) exist
    in the API but the router ignores them; :meth:`initial_attempts` gives
    their intended meaning for experiments.

    >>> HedgePolicy().on_per_try_timeout(), HedgePolicy(True).on_per_try_timeout()
    ('reset', 'hedge')
    """

    hedge_on_per_try_timeout: bool = False
    initial_requests: int = 1
    additional_request_chance: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.hedge_on_per_try_timeout, bool):
            raise ValueError(f"hedge_on_per_try_timeout must be a bool, got {self.hedge_on_per_try_timeout!r}")
        _check_count("initial_requests", self.initial_requests, 1)
        _check_percent("additional_request_chance", self.additional_request_chance)

    def on_per_try_timeout(self) -> str:
        """``"hedge"`` (keep the attempt, maybe start another) or ``"reset"`` (cancel it; retried as a reset)."""
        return "hedge" if self.hedge_on_per_try_timeout else "reset"

    def initial_attempts(self, rng: np.random.Generator | None = None) -> int:
        """Attempts to start at once: ``initial_requests`` plus one with ``additional_request_chance`` %.

        Not implemented by Envoy's router (it always starts one); with the
        defaults this is 1 and draws nothing.
        """
        n = self.initial_requests
        if self.additional_request_chance <= 0:
            return n
        if self.additional_request_chance >= 100:
            return n + 1
        if rng is None:
            raise ValueError("rng is required when 0 < additional_request_chance < 100")
        return n + int(rng.random() * 100 < self.additional_request_chance)


def response_action(
    retriable: bool, retry_allowed: bool, already_retried: bool = False, others_pending: int = 0
) -> str:
    """What Envoy's router does with an attempt's response headers (router.cc ``onUpstreamHeaders``).

    ``retriable``: the retry conditions match; ``retry_allowed``: a retry is
    left and the retries breaker allows it; ``already_retried``: this attempt
    already spawned a hedge on its per-try timeout; ``others_pending``:
    attempts still awaiting headers plus scheduled retries.

    * ``"retry"``: start another attempt (after backoff); drop this one.
    * ``"discard"``: a retriable response that cannot be retried while
      others are pending: drop it and wait for them.
    * ``"return"``: send it downstream and reset the other attempts.

    >>> response_action(True, True), response_action(True, False, others_pending=1), response_action(False, True)
    ('retry', 'discard', 'return')
    >>> response_action(True, True, already_retried=True, others_pending=1)
    'discard'
    """
    if not already_retried and retriable and retry_allowed:
        return "retry"
    if retriable and others_pending > 0:
        return "discard"
    return "return"


# --------------------------------------------------------------------------- retry budget


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


# --------------------------------------------------------------------------- outlier detection


@dataclass(frozen=True)
class OutlierConfig:
    """Envoy's ``config.cluster.v3.OutlierDetection`` (defaults from outlier_detection.proto).

    Times in ms.  ``max_ejection_time_ms=None`` means Envoy's default:
    ``max(300 s, base_ejection_time)``.  ``success_rate_stdev_factor`` is in
    thousandths (1900 = 1.9).  Enforcing values are percent chances.  Local-
    and external-origin errors are not split (Envoy's default
    ``split_external_local_origin_errors: false``).
    """

    consecutive_5xx: int = 5
    consecutive_gateway_failure: int = 5
    interval_ms: float = 10_000.0
    base_ejection_time_ms: float = 30_000.0
    max_ejection_time_ms: float | None = None
    max_ejection_time_jitter_ms: int = 0
    max_ejection_percent: float = 10.0
    always_eject_one_host: bool = False
    enforcing_consecutive_5xx: float = 100.0
    enforcing_consecutive_gateway_failure: float = 0.0
    enforcing_success_rate: float = 100.0
    success_rate_minimum_hosts: int = 5
    success_rate_request_volume: int = 100
    success_rate_stdev_factor: int = 1900
    failure_percentage_threshold: float = 85.0
    enforcing_failure_percentage: float = 0.0
    failure_percentage_minimum_hosts: int = 5
    failure_percentage_request_volume: int = 50

    def __post_init__(self) -> None:
        for name in (
            "consecutive_5xx",
            "consecutive_gateway_failure",
            "max_ejection_time_jitter_ms",
            "success_rate_minimum_hosts",
            "success_rate_request_volume",
            "success_rate_stdev_factor",
            "failure_percentage_minimum_hosts",
            "failure_percentage_request_volume",
        ):
            _check_count(name, getattr(self, name))
        for name in (
            "max_ejection_percent",
            "enforcing_consecutive_5xx",
            "enforcing_consecutive_gateway_failure",
            "enforcing_success_rate",
            "failure_percentage_threshold",
            "enforcing_failure_percentage",
        ):
            object.__setattr__(self, name, _check_percent(name, getattr(self, name)))
        object.__setattr__(self, "interval_ms", _check_ms("interval_ms", self.interval_ms))
        base = _check_ms("base_ejection_time_ms", self.base_ejection_time_ms)
        object.__setattr__(self, "base_ejection_time_ms", base)
        mx = self.max_ejection_time_ms
        mx = max(300_000.0, base) if mx is None else _check_ms("max_ejection_time_ms", mx)
        if mx < base:  # Envoy rejects the config (DetectorImpl::create)
            raise ValueError(f"max_ejection_time_ms must be >= base_ejection_time_ms ({base}), got {mx}")
        object.__setattr__(self, "max_ejection_time_ms", mx)
        if not isinstance(self.always_eject_one_host, bool):
            raise ValueError(f"always_eject_one_host must be a bool, got {self.always_eject_one_host!r}")

    @classmethod
    def profile(cls, name: str) -> OutlierConfig:
        """``"envoy"``: the proto defaults; an Istio profile: the same with success-rate ejection off.

        Istio (cluster_traffic_policy.go ``applyOutlierDetection``) always sets
        ``enforcing_success_rate: 0``; fields the DestinationRule leaves unset
        keep Envoy's defaults.  Either way detection runs only when configured.
        """
        if _check_profile(name) == "envoy":
            return cls()
        return cls(enforcing_success_rate=0.0)


@dataclass(frozen=True)
class OutlierEvent:
    """Something the detector did.

    ``action``: ``"eject"``, ``"uneject"``, ``"not_enforced"`` (detected but
    the enforcing chance said no) or ``"overflow"`` (detected but
    ``max_ejection_percent`` forbids it; Envoy's ``ejections_overflow``).
    ``reason``: ``consecutive_5xx``, ``consecutive_gateway_failure``,
    ``success_rate`` or ``failure_percentage`` (``None`` for unejections).
    ``ejection_ms``: for ejections, how long until the host is eligible to
    return (it returns at the first interval tick at or after that).
    """

    action: str
    host: Hashable
    time_ms: float
    reason: str | None = None
    ejection_ms: float | None = None


def outlier_status(result: bool | int | str) -> int | None:
    """The HTTP status outlier detection charges for an attempt's result (``None``: not charged).

    Without split local/external errors Envoy maps everything to a code
    (outlier_detection_impl.cc ``resultToHttpCode``; router.cc): a connect
    failure or any upstream reset is 503, a (per-try) timeout 504, and an
    overflow of a local breaker is not charged.  ``True``/``False`` are read
    as 200/500.

    >>> [outlier_status(r) for r in (True, False, 502, "connect-failure", "per-try-timeout", "overflow")]
    [200, 500, 502, 503, 504, None]
    """
    if isinstance(result, bool):
        return 200 if result else 500
    if _is_int(result):
        if not 100 <= result <= 599:  # type: ignore[operator]
            raise ValueError(f"result must be a bool, an HTTP status or one of {sorted(OUTCOMES)}, got {result!r}")
        return int(result)  # type: ignore[arg-type]
    if result == "overflow":
        return None
    if result == "per-try-timeout":
        return 504
    if result in OUTCOMES:
        return 503
    raise ValueError(f"result must be a bool, an HTTP status or one of {sorted(OUTCOMES)}, got {result!r}")


class _HostState:
    __slots__ = (
        "consecutive_5xx",
        "consecutive_gateway",
        "ejected",
        "num_ejections",
        "backoff",
        "jitter_ms",
        "last_ejection_ms",
        "last_unejection_ms",
        "bucket",
        "backup",
    )

    def __init__(self) -> None:
        self.consecutive_5xx = 0
        self.consecutive_gateway = 0
        self.ejected = False
        self.num_ejections = 0
        self.backoff = 0
        self.jitter_ms = 0
        self.last_ejection_ms: float | None = None
        self.last_unejection_ms: float | None = None
        self.bucket = [0, 0]  # [successes, total] this interval
        self.backup = [0, 0]  # the previous full interval


class OutlierDetector:
    """Envoy's outlier detector for one cluster (outlier_detection_impl.cc).

    * Consecutive errors: each 5xx bumps ``consecutive_5xx``; each 502/503/504
      also bumps the gateway count (another 5xx resets only that one); any
      other status resets both.  Reaching the threshold exactly triggers an
      ejection attempt and resets that counter (unless the host is already
      ejected, then nothing happens).
    * An ejection attempt is refused (``overflow``) when it would put more
      than ``max_ejection_percent`` of all hosts out: Envoy (since
      envoyproxy/envoy#27909, 2023) checks ``100 * (ejected + 1) / hosts <=
      max_ejection_percent``, so with the default 10 % fewer than 10 hosts
      eject nothing.  The older "will eject at least one host regardless" (the
      proto comment until #34796) is now ``always_eject_one_host`` (Envoy
      1.31, default off).  Then the enforcing
      chance decides (``not_enforced``); gateway failures are enforced 0 % by
      default: detected, never ejected.
    * Ejection time: ``min(base * k, max) + jitter`` where ``k`` counts up on
      each ejection and down by one at each interval tick the host spends
      healthy a full interval after returning (so the docs' "base times the
      number of ejections" holds for back-to-back ejections).
    * Hosts return only on :meth:`on_interval` ticks (Envoy's interval timer),
      at the first tick at or after their ejection time.  The tick also runs
      success-rate and failure-percentage ejection on the previous interval's
      counts.

    ``record`` and ``on_interval`` return the :class:`OutlierEvent` list.

    >>> od = OutlierDetector(range(20))
    >>> [e.action for e in od.record(3, 500, 0.0)]
    []
    >>> events = [e for _ in range(4) for e in od.record(3, 500, 1.0)]
    >>> [(e.action, e.reason, e.ejection_ms) for e in events]
    [('eject', 'consecutive_5xx', 30000.0)]
    >>> od.is_ejected(3), [e.action for e in od.on_interval(30_000.0)]
    (True, [])
    >>> [e.action for e in od.on_interval(40_000.0)], od.ejected_hosts()
    (['uneject'], [])
    """

    def __init__(
        self,
        hosts: Iterable[Hashable],
        config: OutlierConfig | None = None,
        rng: np.random.Generator | None = None,
    ):
        if config is not None and not isinstance(config, OutlierConfig):
            raise ValueError(f"config must be an OutlierConfig or None, got {config!r}")
        self.config = config if config is not None else OutlierConfig()
        self.rng = rng
        c = self.config
        needs_rng = c.max_ejection_time_jitter_ms > 0 or any(
            0 < p < 100
            for p in (
                c.enforcing_consecutive_5xx,
                c.enforcing_consecutive_gateway_failure,
                c.enforcing_success_rate,
                c.enforcing_failure_percentage,
            )
        )
        if needs_rng and rng is None:
            raise ValueError("rng is required with ejection jitter or an enforcing chance strictly between 0 and 100")
        self._hosts: dict[Hashable, _HostState] = {}
        self.active_ejections = 0
        self.stats: dict[str, int] = {}
        self.set_hosts(hosts)

    # -- membership
    def set_hosts(self, hosts: Iterable[Hashable]) -> None:
        """The cluster's hosts are now ``hosts``: new ones start clean, removed ones are forgotten."""
        new = list(dict.fromkeys(hosts))
        keep = set(new)
        for h in [h for h in self._hosts if h not in keep]:
            if self._hosts[h].ejected:
                self.active_ejections -= 1
            del self._hosts[h]
        for h in new:
            if h not in self._hosts:
                self._hosts[h] = _HostState()

    @property
    def hosts(self) -> list[Hashable]:
        return list(self._hosts)

    def _state(self, host: Hashable) -> _HostState:
        try:
            return self._hosts[host]
        except KeyError:
            raise ValueError(f"unknown host {host!r}") from None

    def _bump(self, stat: str) -> None:
        self.stats[stat] = self.stats.get(stat, 0) + 1

    # -- queries
    def is_ejected(self, host: Hashable, now_ms: float | None = None) -> bool:
        """Whether ``host`` is ejected.  ``now_ms`` is accepted for symmetry only: the
        state changes in :meth:`record` and :meth:`on_interval`, as in Envoy."""
        return self._state(host).ejected

    def ejected_hosts(self) -> list[Hashable]:
        return [h for h, s in self._hosts.items() if s.ejected]

    def num_ejections(self, host: Hashable) -> int:
        return self._state(host).num_ejections

    def ejection_time_ms(self, host: Hashable) -> float:
        """The ejection time the host's current backoff gives (without jitter)."""
        return self._ejection_ms(self._state(host))

    def _ejection_ms(self, s: _HostState) -> float:
        c = self.config
        return min(c.base_ejection_time_ms * s.backoff, c.max_ejection_time_ms)  # type: ignore[type-var]

    # -- inputs
    def record(self, host: Hashable, result: bool | int | str, now_ms: float) -> list[OutlierEvent]:
        """Charge one attempt's result to ``host`` (see :func:`outlier_status`)."""
        s = self._state(host)
        code = outlier_status(result)
        if code is None:
            return []
        s.bucket[1] += 1
        c = self.config
        triggered = []
        if 500 <= code <= 599:
            if code in (502, 503, 504):
                s.consecutive_gateway += 1
                if s.consecutive_gateway == c.consecutive_gateway_failure:
                    triggered.append("consecutive_gateway_failure")
            else:
                s.consecutive_gateway = 0
            s.consecutive_5xx += 1
            if s.consecutive_5xx == c.consecutive_5xx:
                triggered.append("consecutive_5xx")
        else:
            s.bucket[0] += 1
            s.consecutive_5xx = 0
            s.consecutive_gateway = 0
        events: list[OutlierEvent] = []
        for reason in triggered:
            if s.ejected:  # onConsecutiveErrorWorker returns early, counters untouched
                continue
            self._bump("ejections_detected_" + reason)
            events.append(self._eject(host, s, reason, now_ms))
            if reason == "consecutive_5xx":
                s.consecutive_5xx = 0
            else:
                s.consecutive_gateway = 0
        return events

    def on_interval(self, now_ms: float) -> list[OutlierEvent]:
        """The interval timer fired (every ``interval_ms``): unejections, then statistical ejections."""
        c = self.config
        events: list[OutlierEvent] = []
        for host, s in self._hosts.items():
            if s.ejected and s.last_ejection_ms is not None:
                if self._ejection_ms(s) + s.jitter_ms <= now_ms - s.last_ejection_ms:
                    s.ejected = False
                    self.active_ejections -= 1
                    s.consecutive_5xx = s.consecutive_gateway = 0
                    s.last_unejection_ms = now_ms
                    events.append(OutlierEvent("uneject", host, now_ms))
            s.backup, s.bucket = s.bucket, [0, 0]
        events.extend(self._statistical(now_ms))
        for s in self._hosts.values():
            if not s.ejected and s.last_unejection_ms is not None and now_ms - s.last_unejection_ms >= c.interval_ms:
                if s.backoff:
                    s.backoff -= 1
        return events

    # -- internals
    def _enforced(self, percent: float) -> bool:
        if percent >= 100:
            return True
        if percent <= 0:
            return False
        return int(self.rng.integers(0, 100)) < percent  # type: ignore[union-attr]

    def _eject(self, host: Hashable, s: _HostState, reason: str, now_ms: float) -> OutlierEvent:
        c = self.config
        n = len(self._hosts)
        allowed = 100.0 * (self.active_ejections + 1) / n <= c.max_ejection_percent
        if c.always_eject_one_host:
            allowed = allowed or self.active_ejections == 0
        if not allowed:
            self._bump("ejections_overflow")
            return OutlierEvent("overflow", host, now_ms, reason)
        if not self._enforced(getattr(c, "enforcing_" + reason)):
            return OutlierEvent("not_enforced", host, now_ms, reason)
        self.active_ejections += 1
        self._bump("ejections_enforced_" + reason)
        self._bump("ejections_enforced_total")
        s.ejected = True
        s.num_ejections += 1
        s.last_ejection_ms = now_ms
        jitter = c.max_ejection_time_jitter_ms
        s.jitter_ms = int(self.rng.integers(0, jitter + 1)) if jitter else 0  # type: ignore[union-attr]
        base, mx = c.base_ejection_time_ms, c.max_ejection_time_ms
        if s.backoff * base < mx + base:  # type: ignore[operator]
            s.backoff += 1
        return OutlierEvent("eject", host, now_ms, reason, self._ejection_ms(s) + s.jitter_ms)

    def _statistical(self, now_ms: float) -> list[OutlierEvent]:
        c = self.config
        n = len(self._hosts)
        if n < c.success_rate_minimum_hosts and n < c.failure_percentage_minimum_hosts:
            return []
        sr_hosts, fp_hosts = [], []
        for host, s in self._hosts.items():
            if s.ejected or s.backup[1] == 0:
                continue
            rate = s.backup[0] * 100.0 / s.backup[1]
            if s.backup[1] >= c.success_rate_request_volume:
                sr_hosts.append((host, rate))
            if s.backup[1] >= c.failure_percentage_request_volume:
                fp_hosts.append((host, rate))
        events = []
        if sr_hosts and len(sr_hosts) >= c.success_rate_minimum_hosts:
            rates = np.array([r for _, r in sr_hosts])
            mean = float(rates.mean())
            threshold = mean - c.success_rate_stdev_factor / 1000.0 * float(np.sqrt(((rates - mean) ** 2).mean()))
            for host, rate in sr_hosts:
                if rate < threshold and not self._hosts[host].ejected:
                    self._bump("ejections_detected_success_rate")
                    events.append(self._eject(host, self._hosts[host], "success_rate", now_ms))
        if fp_hosts and len(fp_hosts) >= c.failure_percentage_minimum_hosts:
            for host, rate in fp_hosts:
                if 100.0 - rate >= c.failure_percentage_threshold and not self._hosts[host].ejected:
                    self._bump("ejections_detected_failure_percentage")
                    events.append(self._eject(host, self._hosts[host], "failure_percentage", now_ms))
        return events


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class ResilienceProfile:
    """The resilience defaults of a mesh, bundled for a shell."""

    name: str
    retry: RetryPolicy
    timeouts: Timeouts
    hedge: HedgePolicy
    breaker: BreakerLimits
    outlier: OutlierConfig
    idle_timeout_ms: float | None = DEFAULT_IDLE_TIMEOUT_MS


def profile(name: str) -> ResilienceProfile:
    """``"envoy"`` (plain Envoy defaults) or an Istio profile (what that Istio's control plane writes).

    The Istio profiles (:data:`ISTIO_PROFILES`) differ only in the retried
    statuses: ``"istio-1.20"`` also retries 503, ``"istio-1.24"`` and
    ``"istio"`` (current Istio) do not.

    =====================  ===========================  ====================================
    setting                envoy                        istio (all versions)
    =====================  ===========================  ====================================
    retries                none (no retry policy)       2 on connect-failure, refused-stream,
                                                        unavailable, cancelled; and 503
                                                        before Istio 1.24
    backoff                25 ms base, 250 ms cap       same (Istio does not set it)
    route timeout          15 s                         none
    per-try timeout        none                         none
    circuit breakers       1024/1024/1024/3             2**32 - 1 each
    outlier detection      proto defaults (if set)      same, success-rate ejection off
    upstream idle timeout  1 h                          1 h
    =====================  ===========================  ====================================

    >>> profile("envoy").timeouts.route_timeout_ms, profile("istio").timeouts.route_timeout_ms
    (15000.0, None)
    >>> profile("istio-1.19")
    Traceback (most recent call last):
    ...
    ValueError: name must be one of ('envoy', 'istio', 'istio-1.20', 'istio-1.24'), got 'istio-1.19'
    """
    _check_profile(name)
    return ResilienceProfile(
        name=name,
        retry=RetryPolicy.profile(name),
        timeouts=Timeouts.profile(name),
        hedge=HedgePolicy(),
        breaker=BreakerLimits.profile(name),
        outlier=OutlierConfig.profile(name),
    )

