"""Retries: conditions and count, jittered exponential backoff, and the router's choice on a response.

Mirrors Envoy's ``source/common/router/retry_state_impl.cc`` (:class:`RetryPolicy`:
``wouldRetryFromHeaders`` / ``wouldRetryFromReset``), ``source/common/common/backoff_strategy.cc``
(:func:`backoff_interval_ms`: ``JitteredExponentialBackOffStrategy``) and
``source/common/router/router.cc`` ``onUpstreamHeaders`` (:func:`response_action`);
Istio's default policy is ``pilot/pkg/networking/core/route/retry/retry.go``
(:meth:`RetryPolicy.profile`).  The retry budget is a circuit-breaker
threshold in Envoy: :mod:`meshsim.core.res.breaker`.

>>> p = RetryPolicy(retry_on="5xx", num_retries=2)
>>> p.should_retry(503, attempt=1), p.backoff_interval_ms(2), response_action(True, True)
(True, 50, 'retry')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .base import OUTCOMES, _check_count, _check_timeout, _is_int
from .istio import _check_profile, istio_version
from .timeouts import DEFAULT_ROUTE_TIMEOUT_MS, Timeouts

__all__ = ["GRPC_STATUS", "RETRY_ON", "RetryPolicy", "backoff_interval_ms", "response_action"]

#: gRPC status codes named by Envoy's ``x-envoy-retry-grpc-on`` conditions
GRPC_STATUS = {"cancelled": 1, "deadline-exceeded": 4, "resource-exhausted": 8, "internal": 13, "unavailable": 14}

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
