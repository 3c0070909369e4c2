"""Route policies: what a caller's proxy does with calls to one service (timeouts, retries, breakers, ...).

:func:`route_policy` turns a scenario's ``services.<name>`` keys and the
mesh profile into a :class:`RoutePolicy` of core objects
(:mod:`meshsim.core.resilience`); a :class:`meshsim.sim.route.Route` carries
it out for one caller.  :func:`outcome` says how a finished attempt reads to
the retry conditions.

The common case, a first attempt that succeeds with no timeout configured,
allocates nothing: per-request state (:class:`meshsim.sim.route.Flight`) is
created only when a timer must be set or a retry is needed.

How a failed attempt reads to the retry conditions (Envoy's terms):

=========================================  ===================================
attempt status                             outcome
=========================================  ===================================
``queue_full``, ``rejected``               HTTP 503 from the upstream
any status relayed from deeper calls       HTTP 503 (``timeout``: 504)
``connection_refused`` (instance down)     ``connect-failure``
request lost on the way in (``host_down``, ``connect-failure``
``partitioned``, ``network_loss``)
``instance_crashed``, reply lost           ``reset``
per-try timeout                            ``per-try-timeout``
=========================================  ===================================

Overflows of the caller's own breakers fail the request at once with status
``overflow`` (503 ``UO`` in Envoy) and are never retried.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..core.resilience import (
    UINT32_MAX,
    BreakerLimits,
    HedgePolicy,
    OutlierConfig,
    RetryBudget,
    RetryPolicy,
    Timeouts,
    is_istio,
)
from .recorder import OK, QUEUE_FULL, REFUSED, TIMEOUT, status_code

OVERFLOW = status_code("overflow")
REJECTED = status_code("rejected")
NO_HEALTHY = status_code("no_healthy_upstream")
_CONNECT_FAILURES = frozenset({REFUSED, status_code("host_down"), status_code("partitioned"), status_code("network_loss")})
_503 = frozenset({QUEUE_FULL, REJECTED, OVERFLOW, NO_HEALTHY})

#: False forces every route (meshsim.sim.route.Route) onto its general path: set before a run to check that
#: the short paths (bare, lean) change no number (tests/test_route_equivalence.py)
LEAN = True

#: False forces the request path's direct hand-offs off where there is no mesh and no network (a bare route
#: calling the instance itself, the engine's fused call-and-reply steps, the open workload's inlined arrival)
#: and, with a mesh but no network, a proxy pass that ends before anything else is due running on into the next
#: pass or the arrival in the same kernel event (meshsim.sim.engine: Instance._inbound_after_pass,
#: Caller.transmit, Instance._respond): set before a run to check that they change no number
#: (tests/test_speed_paths.py)
DIRECT = True

#: Istio's retry conditions (every version): the default when a scenario sets retries without retry_on
ISTIO_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class RoutePolicy:
    """What a caller's proxy does with calls to one service (built once per service and caller kind).

    ``retry`` is None when nothing is ever retried; ``outlier`` None when
    detection is off.  ``simple`` means none of it can act, so a route
    with a static view is *bare* (:attr:`meshsim.sim.route.Route.bare`).
    """

    retry: RetryPolicy | None
    timeouts: Timeouts
    hedge: HedgePolicy
    breaker: BreakerLimits
    outlier: OutlierConfig | None

    @property
    def simple(self) -> bool:
        b = self.breaker
        unlimited = (b.max_connections >= UINT32_MAX and b.max_requests >= UINT32_MAX)
        return (self.retry is None and self.timeouts.route_timeout_ms is None
                and self.timeouts.per_try_timeout_ms is None and unlimited and self.outlier is None)


_NONE = {"retry": None, "route_timeout": None, "breaker": BreakerLimits(UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX)}


def _profile_defaults(profile: str | None) -> dict[str, Any]:
    """Defaults of a caller: ``None`` (no proxy: no policy at all), ``"envoy"``, an Istio profile, ``"linkerd"``."""
    from ..core import resilience as r

    if profile == "envoy" or is_istio(profile):
        p = r.profile(profile)
        return {"retry": p.retry if p.retry.retry_on and p.retry.num_retries else None,
                "route_timeout": p.timeouts.route_timeout_ms, "breaker": p.breaker}
    # no proxy, or Linkerd: no retries, timeouts or circuit breakers unless configured
    return dict(_NONE)


def route_policy(service_spec: dict, profile: str | None) -> RoutePolicy:
    """The policy for calls to a service (``services.<name>``) from a caller with mesh ``profile``.

    ``retries`` set in the scenario start from the profile's Istio default, as
    Istio's ``ConvertPolicy`` starts from ``DefaultPolicy`` (Envoy and Linkerd
    callers, which have none, start from the current Istio's): keys left out
    keep it.  So ``retries: {attempts: 3}`` retries 503 under ``istio-1.20``
    and not under ``istio``.  Retried statuses: ``retriable_status_codes`` if
    given; else [503] if ``retry_on`` is given (meshsim's default for
    ``retriable-status-codes``); else the default's (503 before Istio 1.24,
    none after).

    >>> spec = {"timeout": None, "retries": None, "circuit_breaker": None,
    ...         "outlier_detection": None, "hedge_on_per_try_timeout": False}
    >>> p = route_policy(spec, "istio")
    >>> p.retry.num_retries, p.timeouts.route_timeout_ms, p.simple
    (2, None, False)
    >>> sorted(route_policy(spec, "istio-1.20").retry.retriable_status_codes), sorted(p.retry.retriable_status_codes)
    ([503], [])
    >>> sorted(route_policy({**spec, "retries": {"attempts": 3}}, "istio-1.20").retry.retriable_status_codes)
    [503]
    >>> sorted(route_policy({**spec, "retries": {"attempts": 3}}, "istio").retry.retriable_status_codes)
    []
    >>> route_policy(dict.fromkeys(("timeout", "retries", "circuit_breaker", "outlier_detection")), None).simple
    True
    """
    base = _profile_defaults(profile)
    retry = base["retry"]
    spec = service_spec.get("retries")
    if spec is not None:
        istio = RetryPolicy.profile(profile if is_istio(profile) else "istio")  # type: ignore[arg-type]
        cur = retry or istio
        budget = spec.get("budget")
        base_ms = spec.get("backoff")
        retry = RetryPolicy(
            retry_on=spec["retry_on"] if spec.get("retry_on") is not None else (cur.retry_on or istio.retry_on),
            num_retries=spec["attempts"] if spec.get("attempts") is not None else (retry.num_retries if retry else 2),
            per_try_timeout_ms=spec.get("per_try_timeout") or None,
            base_interval_ms=max(1, round(base_ms)) if base_ms is not None else cur.base_interval_ms,
            max_interval_ms=max(1, round(spec["max_backoff"])) if spec.get("max_backoff") is not None else None,
            retriable_status_codes=frozenset(spec["retriable_status_codes"]) if spec.get("retriable_status_codes")
            is not None else (frozenset({503}) if spec.get("retry_on") is not None else istio.retriable_status_codes),
            retry_previous_hosts=spec["previous_hosts"] if spec.get("previous_hosts") is not None
            else cur.retry_previous_hosts,
            host_selection_max_attempts=5 if (spec.get("previous_hosts") if spec.get("previous_hosts") is not None
                                              else cur.retry_previous_hosts) else 1,
        )
        if retry.num_retries == 0 and retry.per_try_timeout_ms is None:
            retry = None
        breaker_budget = RetryBudget(budget["percent"], budget["min_concurrency"]) if budget else None
    else:
        breaker_budget = None
    route_timeout = base["route_timeout"]
    if service_spec.get("timeout") is not None:
        route_timeout = service_spec["timeout"] or None
    breaker = base["breaker"]
    cb = service_spec.get("circuit_breaker")
    if cb is not None or breaker_budget is not None:
        envoy = BreakerLimits()
        cb = cb or {}

        def pick(key: str) -> int:
            if cb.get(key) is not None:
                return cb[key]
            return getattr(breaker, key) if profile is not None else getattr(envoy, key)

        breaker = BreakerLimits(pick("max_connections"), pick("max_pending_requests"), pick("max_requests"),
                                pick("max_retries"), breaker_budget)
    od = service_spec.get("outlier_detection")
    outlier = None
    if od is not None:
        sr = od.get("enforcing_success_rate")
        outlier = OutlierConfig(
            consecutive_5xx=od["consecutive_5xx"], consecutive_gateway_failure=od["consecutive_gateway_failure"],
            enforcing_consecutive_gateway_failure=od["enforcing_consecutive_gateway_failure"],
            interval_ms=od["interval"], base_ejection_time_ms=od["base_ejection_time"],
            max_ejection_time_ms=od.get("max_ejection_time"), max_ejection_percent=od["max_ejection_percent"],
            enforcing_success_rate=sr if sr is not None else (0.0 if is_istio(profile) else 100.0),
            success_rate_minimum_hosts=od["success_rate_minimum_hosts"],
            success_rate_request_volume=od["success_rate_request_volume"],
            failure_percentage_threshold=od["failure_percentage_threshold"],
            enforcing_failure_percentage=od["enforcing_failure_percentage"],
        )
    per_try = retry.per_try_timeout_ms if retry is not None else None
    return RoutePolicy(retry, Timeouts(route_timeout, per_try), HedgePolicy(bool(service_spec.get("hedge_on_per_try_timeout"))),
                       breaker, outlier)


# --------------------------------------------------------------------------- attempts


def outcome(att: Any) -> int | str:
    """The HTTP status or Envoy outcome of a finished attempt (see the module doc)."""
    st = att.status
    if st == OK:
        return 200
    if st in _503:
        return 503
    if getattr(att, "relayed", False):  # the upstream answered, with a failure from its own calls
        return 504 if st == TIMEOUT else 503
    if st == TIMEOUT:
        return 504
    if st == REFUSED or (st in _CONNECT_FAILURES and math.isnan(att.t_arrive)):
        return "connect-failure"
    return "reset"


__all__ = ["LEAN", "NO_HEALTHY", "OVERFLOW", "REJECTED", "RoutePolicy", "outcome", "route_policy"]
