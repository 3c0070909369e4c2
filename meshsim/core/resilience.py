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

This module is a façade: the code lives in :mod:`meshsim.core.res`, one
module per concept as Envoy splits its sources (``istio``, ``timeouts``,
``retry``, ``hedging``, ``breaker``, ``outlier``, ``profiles``).

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

from .res.base import OUTCOMES
from .res.breaker import BREAKER_KINDS, UINT32_MAX, BreakerLimits, CircuitBreaker, RetryBudget
from .res.hedging import HedgePolicy
from .res.istio import ISTIO_PROFILES, PROFILE_NAMES, is_istio, istio_version
from .res.outlier import OutlierConfig, OutlierDetector, OutlierEvent, outlier_status
from .res.profiles import ResilienceProfile, profile
from .res.retry import GRPC_STATUS, RETRY_ON, RetryPolicy, backoff_interval_ms, response_action
from .res.timeouts import DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_ROUTE_TIMEOUT_MS, Timeouts

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
