"""Resilience profiles: the "envoy" defaults and what each Istio version's control plane writes, bundled.

Mirrors Envoy's proto defaults and Istio's ``pilot/pkg/networking/core``
(``route/retry/retry.go``, ``cluster_traffic_policy.go``); each core gives its
own defaults (``RetryPolicy.profile``, ``Timeouts.profile``,
``BreakerLimits.profile``, ``OutlierConfig.profile``) and :func:`profile`
bundles them.  The Istio versions (:data:`ISTIO_PROFILES`, :func:`is_istio`,
:func:`istio_version`) are defined in :mod:`meshsim.core.res.istio`, below
every core, and re-exported here.

>>> p = profile("istio-1.20")
>>> p.retry.num_retries, p.breaker.max_requests, is_istio(p.name), istio_version(p.name)
(2, 4294967295, True, (1, 20))
"""

from __future__ import annotations

from dataclasses import dataclass

from .breaker import BreakerLimits
from .hedging import HedgePolicy
from .istio import ISTIO_PROFILES, PROFILE_NAMES, _check_profile, is_istio, istio_version
from .outlier import OutlierConfig
from .retry import RetryPolicy
from .timeouts import DEFAULT_IDLE_TIMEOUT_MS, Timeouts

__all__ = ["ISTIO_PROFILES", "PROFILE_NAMES", "ResilienceProfile", "is_istio", "istio_version", "profile"]


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
