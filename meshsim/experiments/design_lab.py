"""Helpers for designing simulation experiments: replications, windows of a run, paired differences.

Written for the exercises on circuit breakers / outlier detection and on
experiment design (notebooks/exercises/source/ex08_*, ex09_*), and usable in
any notebook that needs the same steps:

=================================  ===================================================================
:func:`slow_instance_scenario`     N instances behind Envoy sidecars, one of them slow from 1 s on;
                                   per-try timeout and outlier detection as arguments
:func:`quantile_after`             a latency quantile of the requests that arrived after a time
:func:`replicate`                  one number per seed: ``metric(run(scenario, seed))``
:func:`window_means`               per run, the mean latency of requests arriving in a time window
:func:`paired_differences`         per seed, metric(A) - metric(B) with common random numbers
=================================  ===================================================================

Times are in milliseconds.  Nothing here decides what is "enough"; the
exercises' test cells do that with Student-t intervals over the values these
functions return.

>>> sc = slow_instance_scenario(instances=4, per_try_timeout_ms=20.0, duration="3s")
>>> sc["services"]["api"]["replicas"], sc["services"]["api"]["retries"]["per_try_timeout"]
(4, '20.0ms')
>>> p99 = replicate(sc, seeds=[1, 2], metric=quantile_after)
>>> p99.shape, bool((p99 > 20).all())             # no outlier detection: every 4th call waits 20 ms + a backoff
((2,), True)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..result import Result

__all__ = ["FAULT_AT_MS", "slow_instance_scenario", "quantile_after", "replicate", "window_means",
           "paired_differences"]

#: when the slow instance of :func:`slow_instance_scenario` turns slow
FAULT_AT_MS = 1000.0


def slow_instance_scenario(instances: int = 8, slow_extra_ms: float = 500.0, per_try_timeout_ms: float | None = None,
                           outlier_detection: Mapping[str, Any] | None = None, *, attempts: int = 2,
                           service_mean_ms: float = 1.0, rate_rps: float = 100.0, duration: str = "15s",
                           slow_instance: int | None = None) -> dict[str, Any]:
    """``instances`` instances of ``api`` on their own hosts behind Envoy sidecars; one of them turns slow.

    Round robin, 8 workers each, exponential service of mean
    ``service_mean_ms`` (a healthy call takes about that plus 0.2 ms of
    network).  From :data:`FAULT_AT_MS` on, the link from the client to the
    host of ``api-<slow_instance>`` (default ``api-3``, or the last one if
    there are fewer) adds ``slow_extra_ms``.  The caller
    retries ``attempts`` times on 5xx and resets; with ``per_try_timeout_ms``
    a slow attempt becomes a 504 (and counts towards outlier detection),
    without it the caller just waits.  ``outlier_detection`` is the
    ``services.api.outlier_detection`` mapping (None: off).

    >>> sc = slow_instance_scenario(5, outlier_detection={"max_ejection_percent": 20})
    >>> sc["services"]["api"]["outlier_detection"], sc["faults"][0]["between"]
    ({'max_ejection_percent': 20}, ['client', 'h3'])
    """
    if not isinstance(instances, int) or instances < 2:
        raise ValueError(f"instances must be an integer >= 2, got {instances!r}")
    if slow_instance is None:
        slow_instance = min(3, instances - 1)
    if not 0 <= slow_instance < instances:
        raise ValueError(f"slow_instance must be in 0..{instances - 1}, got {slow_instance!r}")
    hosts = {f"h{i}": "z" for i in range(instances)}
    retries: dict[str, Any] = {"attempts": attempts, "retry_on": "5xx,reset"}
    if per_try_timeout_ms is not None:
        retries["per_try_timeout"] = f"{float(per_try_timeout_ms)}ms"
    api: dict[str, Any] = {"replicas": instances, "workers": 8, "placement": list(hosts),
                           "load_balancer": {"policy": "round_robin"},
                           "service_time": {"dist": "exponential", "mean": float(service_mean_ms)},
                           "retries": retries}
    if outlier_detection is not None:
        api["outlier_detection"] = dict(outlier_detection)
    return {
        "name": f"slow-instance-{instances}",
        "run": {"duration": duration}, "metrics": {"warmup": 0, "spans": False},
        "topology": {"regions": {"r": ["z"]}, "hosts": {**hosts, "client": "z"}},
        "network": {"latency": {"same_zone": {"dist": "constant", "value": 0.1}}},
        "mesh": {"mode": "sidecar", "profile": "envoy", "request_processing": {"dist": "constant", "value": 0},
                 "response_processing": {"dist": "constant", "value": 0}, "mtls": False},
        "services": {"api": api},
        "workloads": {"w": {"rate": rate_rps, "target": "api", "source": "client"}},
        "faults": [{"action": "degrade", "between": ["client", f"h{slow_instance}"], "at": f"{FAULT_AT_MS}ms",
                    "extra_latency": {"dist": "constant", "value": float(slow_extra_ms)}}],
    }


def quantile_after(result: Result, start_ms: float = FAULT_AT_MS, q: float = 0.99) -> float:
    """The ``q`` quantile of the latency of every request (failed ones too) that arrived at or after ``start_ms``.

    NaN when no request arrived then.

    >>> import meshsim
    >>> res = meshsim.run({"run": {"duration": "2s"}, "network": {"enabled": False},
    ...                    "services": {"s": {"service_time": "2ms"}},
    ...                    "workloads": {"w": {"type": "deterministic", "rate": 100, "target": "s"}}}, seed=1)
    >>> quantile_after(res, 1000.0, 0.5)
    2.0
    """
    req = result.requests
    lat = req.loc[req["arrival_ms"] >= start_ms, "latency_ms"]
    return float(lat.quantile(q)) if len(lat) else float("nan")


def replicate(scenario: Any, seeds: Iterable[int], metric: Callable[[Result], float],
              overrides: Mapping[str, Any] | None = None) -> np.ndarray:
    """``metric(meshsim.run(scenario, seed))`` for each seed, as an array (one independent replication each).

    Scenario warnings (e.g. an offered load near 1) are silenced: replications
    are often run at the edge on purpose.

    >>> sc = {"run": {"requests": 200}, "network": {"enabled": False},
    ...       "services": {"s": {"service_time": "1ms"}},
    ...       "workloads": {"w": {"type": "deterministic", "rate": 10, "target": "s"}}}
    >>> replicate(sc, [1, 2, 3], lambda r: r.summary["latency_ms"]["mean"]).tolist()
    [1.0, 1.0, 1.0]
    """
    from ..api import run
    from ..scenario.load import load_scenario

    base = load_scenario(scenario, dict(overrides) if overrides else None)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in seeds:
            out.append(float(metric(run(base, seed=seed))))
    return np.asarray(out, dtype=float)


def window_means(results: Iterable[Result], start_ms: float, length_ms: float) -> np.ndarray:
    """Per run, the mean latency of the successful requests that arrived in [start_ms, start_ms + length_ms).

    All requests count, warm-up included (the point is to look at the start of
    a run).  NaN for a run with no such request.

    >>> import meshsim
    >>> res = meshsim.run({"run": {"duration": "2s"}, "network": {"enabled": False},
    ...                    "services": {"s": {"service_time": "1ms"}},
    ...                    "workloads": {"w": {"type": "deterministic", "rate": 100, "target": "s"}}}, seed=1)
    >>> window_means([res, res], 500.0, 1000.0).tolist()
    [1.0, 1.0]
    """
    out = []
    for res in results:
        req = res.requests
        a = req["arrival_ms"].to_numpy()
        keep = (a >= start_ms) & (a < start_ms + length_ms) & (req["status"].to_numpy() == "ok")
        lat = req["latency_ms"].to_numpy()[keep]
        out.append(float(lat.mean()) if lat.size else float("nan"))
    return np.asarray(out, dtype=float)


def _mean_latency(result: Result) -> float:
    return float(result.summary["latency_ms"]["mean"])


def paired_differences(scenario: Any, a: Mapping[str, Any] | None, b: Mapping[str, Any] | None,
                       seeds: Iterable[int], metric: Callable[[Result], float] | None = None) -> np.ndarray:
    """Per seed, ``metric`` of variant ``a`` minus ``metric`` of variant ``b`` (both with that seed).

    ``a`` and ``b`` are override dicts on ``scenario``; the default metric is
    the run's mean latency (after its warm-up).  Common random numbers: the
    same seed gives both variants the same arrivals and service times wherever
    they agree, so the differences vary much less than either variant.

    >>> sc = {"run": {"requests": 2000}, "network": {"enabled": False},
    ...       "services": {"s": {"workers": 2, "service_time": {"dist": "exponential", "mean": "10ms"}}},
    ...       "workloads": {"w": {"rate": 150, "target": "s"}}}
    >>> d = paired_differences(sc, {}, {"services.s.workers": 3}, seeds=[1, 2, 3])
    >>> bool((d > 0).all())                          # a third worker helps with every seed
    True
    >>> paired_differences(sc, {}, {}, seeds=[1, 2]).tolist()
    [0.0, 0.0]
    """
    from ..scenario.load import load_scenario

    base = load_scenario(scenario)
    seeds = list(seeds)
    m = metric or _mean_latency
    va = replicate(load_scenario(base, dict(a or {})), seeds, m)
    vb = replicate(load_scenario(base, dict(b or {})), seeds, m)
    return va - vb
