"""Small experiments on what a mesh's proxies add and do, each a DataFrame with theory beside simulation.

Written for notebooks/05_sidecar_proxies.ipynb; the scenarios are short so a
classroom notebook runs in seconds.

==============================  ===================================================================
:func:`overhead_table`          added latency of a mesh per (mode, profile), beside published figures
:func:`timeout_table`           a route timeout fails exactly the slow requests (theory: M/M/1 tail)
:func:`breaker_table`           ``max_requests`` turns a service into a loss system (theory: Erlang B)
:func:`outlier_table`           p99 with and without outlier detection when one instance is slow
:func:`retried_request`         the id of a request that needed more than one attempt
==============================  ===================================================================

>>> t = breaker_table(limits=[2, 4], duration="20s")
>>> t["max_requests"].tolist(), bool((abs(t["overflow_fraction"] - t["erlang_b"]) < 0.03).all())
([2, 4], True)
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from ..core.resilience import is_istio
from .failure_modes import outlier_scenario
from .mesh_overhead import (ISTIO_ADDED_P90_MS, ISTIO_ADDED_P99_MS, LINKERD_ADDED_P50_MS, LINKERD_ADDED_P90_MS,
                            LINKERD_ADDED_P99_MS, overhead)

#: published (istio) or derived (linkerd) added latency of one client + one server proxy at 1000 rps, in ms
REFERENCE_ADDED_MS: dict[str, dict[str, float]] = {
    "istio": {"p50": math.nan, "p90": ISTIO_ADDED_P90_MS, "p99": ISTIO_ADDED_P99_MS},
    "linkerd": {"p50": LINKERD_ADDED_P50_MS, "p90": LINKERD_ADDED_P90_MS, "p99": LINKERD_ADDED_P99_MS},
}

#: the (mode, profile) pairs :func:`overhead_table` compares by default
MESH_VARIANTS: tuple[tuple[str, str], ...] = (("sidecar", "istio"), ("sidecar", "linkerd"),
                                               ("node", "istio"), ("node", "linkerd"))


def overhead_table(variants: tuple[tuple[str, str], ...] | list[tuple[str, str]] = MESH_VARIANTS,
                   rps: float = 1000.0, requests: int = 20_000, seed: int = 1):
    """Added latency (mesh minus no mesh, same seed) of one call per (mode, profile), in ms.

    One call passes a client-side and a server-side proxy (two sidecars, or
    the two hosts' node proxies).  ``reference_*`` columns hold the published
    or derived figures of :mod:`meshsim.experiments.mesh_overhead`.

    >>> t = overhead_table([("sidecar", "linkerd")], requests=5_000)
    >>> list(t.columns[:3]), bool(t["added_p99_ms"].iloc[0] > 0)
    (['mode', 'profile', 'added_mean_ms'], True)
    """
    import pandas as pd

    rows = []
    for mode, profile in variants:
        row: dict[str, Any] = {"mode": mode, "profile": profile}
        row.update(overhead({"mode": mode, "profile": profile}, rps=rps, requests=requests, seed=seed))
        # every Istio profile (istio, istio-1.24, istio-1.20) shares Istio 1.20's measured costs and figure
        ref = REFERENCE_ADDED_MS.get("istio" if is_istio(profile) else profile, {})
        for q in ("p50", "p90", "p99"):
            row[f"reference_{q}_ms"] = ref.get(q, math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def _one_service(svc: dict[str, Any], rate: float, duration: str, warmup: str = "2s") -> dict[str, Any]:
    return {
        "run": {"duration": duration},
        "network": {"enabled": False},
        "metrics": {"warmup": warmup, "spans": False},
        "services": {"api": svc},
        "workloads": {"w": {"rate": rate, "target": "api"}},
    }


def timeout_table(timeouts_ms: tuple[float, ...] | list[float] = (25.0, 50.0, 100.0), rate: float = 60.0,
                  mean_ms: float = 10.0, duration: str = "300s", seed: int = 5):
    """Fraction of requests a route timeout fails, on an M/M/1 station, beside P(sojourn > timeout).

    No cancellation reaches the server, so the queue is the same with and
    without the timeout and the timed-out fraction is the M/M/1 sojourn tail
    exp(-(mu - lambda) t).

    >>> t = timeout_table([50.0], duration="20s")
    >>> round(float(t["theory_fraction"].iloc[0]), 4)
    0.1353
    """
    import pandas as pd

    from ..analytic import mm1
    from ..api import run

    theory = mm1(rate / 1000.0, 1.0 / mean_ms)
    rows = []
    for t_ms in timeouts_ms:
        svc = {"workers": 1, "service_time": {"dist": "exponential", "mean": f"{mean_ms}ms"}, "timeout": f"{t_ms}ms"}
        s = run(_one_service(svc, rate, duration), seed=seed).summary
        rows.append({"timeout_ms": t_ms, "timed_out_fraction": s["failed_by_reason"].get("timeout", 0) / s["requests"],
                     "theory_fraction": 1.0 - theory.sojourn_cdf(t_ms), "max_latency_ms": s["latency_ms"]["max"],
                     "requests": s["requests"]})
    return pd.DataFrame(rows)


def breaker_table(limits: tuple[int, ...] | list[int] = (2, 4, 6, 8), rate: float = 150.0, mean_ms: float = 20.0,
                  duration: str = "60s", seed: int = 6):
    """Overflow fraction of a caller's ``max_requests`` breaker beside Erlang B(limit, rate x mean).

    The service has far more workers than the limit, so nothing queues: the
    breaker alone is a loss system with ``limit`` servers.
    """
    import pandas as pd

    from ..analytic import erlang_b
    from ..api import run

    a = rate * mean_ms / 1000.0
    rows = []
    for k in limits:
        svc = {"workers": 64, "service_time": {"dist": "exponential", "mean": f"{mean_ms}ms"},
               "circuit_breaker": {"max_requests": k}}
        s = run(_one_service(svc, rate, duration), seed=seed).summary
        rows.append({"max_requests": k, "offered_erlangs": a,
                     "overflow_fraction": s["failed_by_reason"].get("overflow", 0) / s["requests"],
                     "erlang_b": erlang_b(k, a), "requests": s["requests"]})
    return pd.DataFrame(rows)


def outlier_runs(duration: str = "30s", seed: int = 10, **scenario: Any) -> dict[str, Any]:
    """The outlier scenario of :func:`~meshsim.experiments.failure_modes.outlier_scenario` run twice.

    ``{"with detection": Result, "without detection": Result}``; the same seed,
    so both see the same arrivals.  Spans are recorded (for waterfalls).
    """
    from ..api import run

    out = {}
    for label, on in (("with detection", True), ("without detection", False)):
        sc = outlier_scenario(duration=duration, **scenario)
        sc["metrics"]["spans"] = True
        if not on:
            del sc["services"]["api"]["outlier_detection"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[label] = run(sc, seed=seed)
    return out


def outlier_theory_p99_ms(instances: int = 10, per_try_ms: float = 100.0, backoff_ms: float = 25.0,
                          fast_ms: float = 1.2) -> float:
    """p99 without detection: 1/instances of requests first meet the slow one, time out and retry.

    Round robin sends every ``instances``-th request to the slow instance; it
    waits the per-try timeout, Envoy's first backoff (uniform on [0,
    ``backoff_ms``)) and a fast call.  p99 lies in that slow group at its
    quantile (0.99 - (1 - 1/n)) / (1/n).

    >>> round(outlier_theory_p99_ms(), 2)
    123.7
    """
    share = 1.0 / instances
    q = (0.99 - (1.0 - share)) / share
    if q <= 0:
        return fast_ms
    return per_try_ms + q * backoff_ms + fast_ms


def outlier_table(runs: dict[str, Any], fault_ms: float = 1000.0):
    """p50/p99 of requests that arrived after the fault, per run of :func:`outlier_runs`."""
    import pandas as pd

    rows = []
    for label, res in runs.items():
        req = res.requests
        lat = req.loc[req["arrival_ms"] >= fault_ms, "latency_ms"]
        rows.append({"run": label, "requests": int(lat.size), "p50_ms": float(lat.quantile(0.5)),
                     "p99_ms": float(lat.quantile(0.99)), "slow_share": float((lat > 50.0).mean()),
                     "ejections": int((res.mesh_events["event"] == "eject").sum()) if len(res.mesh_events) else 0})
    return pd.DataFrame(rows)


def retried_request(result: Any) -> int:
    """The id of the first request that had more than one attempt (span) at its entry service; -1 if none.

    >>> import meshsim
    >>> retried_request(meshsim.run({"run": {"requests": 50}, "network": {"enabled": False},
    ...     "services": {"s": {"service_time": "1ms"}}, "workloads": {"w": {"rate": 10, "target": "s"}}}))
    -1
    """
    sp = result.spans
    if len(sp) == 0:
        return -1
    top = sp[sp["parent"] == -1]
    counts = top.groupby("request").size()
    many = counts[counts > 1]
    return int(many.index[0]) if len(many) else -1


__all__ = ["MESH_VARIANTS", "REFERENCE_ADDED_MS", "breaker_table", "outlier_runs", "outlier_table",
           "outlier_theory_p99_ms", "overhead_table", "retried_request", "timeout_table"]
