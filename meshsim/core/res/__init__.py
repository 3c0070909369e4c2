"""Envoy's (and Istio's) request resilience as pure cores, one module per concept (as Envoy splits its sources).

==============================  =====================================================================
:mod:`.base`                    the attempt outcomes a shell reports (``OUTCOMES``), argument checks
:mod:`.istio`                   Istio versions: profile names, ``is_istio``, ``istio_version``
:mod:`.timeouts`                route and per-try timeouts (router.cc ``finalTimeout``)
:mod:`.retry`                   retry policy, jittered backoff, the router's choice on a response
:mod:`.hedging`                 hedging on per-try timeout
:mod:`.breaker`                 circuit breakers of one priority, the retry budget
:mod:`.outlier`                 outlier detection (consecutive errors, success rate, failure percentage)
:mod:`.profiles`                the "envoy" and Istio defaults bundled (``ResilienceProfile``, ``profile``)
==============================  =====================================================================

The name is short for *resilience*: :mod:`meshsim.core.resilience` is the
façade that re-exports the public names, and a package cannot share its name.
This package imports nothing on its own: ``import meshsim.core.res.breaker``
loads only what that module needs.

>>> from meshsim.core.res.breaker import CircuitBreaker
>>> from meshsim.core.res.retry import RetryPolicy
>>> CircuitBreaker().max_retries, RetryPolicy(retry_on="5xx").should_retry(503, attempt=1)
(3, True)
"""
