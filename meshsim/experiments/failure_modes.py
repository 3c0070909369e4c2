"""The mesh's failure modes as experiments: each returns a DataFrame with the theory beside the simulation.

==========================  ===================================================================
:func:`retry_storm`         retries multiply the load on an overloaded service; a budget caps it
                            (theory: the M/M/1/K fixed point, :func:`storm_fixed_point`)
:func:`fanout_tail`         tail latency grows with fan-out width; hedging cuts it
                            (theory: order statistics of independent calls)
:func:`outlier_ejection`    a slow instance is ejected and returns on Envoy's schedule
:func:`stale_endpoints`     calls go to a crashed instance until the registry's update lands
==========================  ===================================================================

Each function builds its scenario with a ``*_scenario`` function (to change
and run by hand) and runs it with :func:`meshsim.run`.  tests/test_router.py
and tests/test_discovery.py pin the numbers.

>>> t = fanout_tail(widths=[1, 4], requests=4_000)      # with and without hedging after 25 ms
>>> t[["width", "hedged"]].values.tolist()
[[1, False], [1, True], [4, False], [4, True]]
"""

from __future__ import annotations

import math
import warnings
from statistics import NormalDist
from typing import Any

import numpy as np

# ------------------------------------------------------------------ retry storm


def _mm1k_block(rho: float, k: int) -> float:
    """Blocking probability of an M/M/1/K queue (K places in all)."""
    if abs(rho - 1.0) < 1e-12:
        return 1.0 / (k + 1)
    return rho**k * (1 - rho) / (1 - rho ** (k + 1))


def storm_fixed_point(rate_per_ms: float, mu_per_ms: float, places: int, servers: int,
                      retries: int) -> tuple[float, float]:
    """Attempts per request and failed fraction when every attempt is blocked independently.

    Requests at ``rate_per_ms`` are spread at random over ``servers``
    M/M/1/``places`` queues; a blocked attempt is retried up to ``retries``
    times.  With p the blocking probability, attempts per request are
    1 + p + ... + p^retries and load each queue, which sets p: iterate.

    >>> apr, failed = storm_fixed_point(1.1, 0.25, 5, 4, 3)
    >>> round(apr, 2), round(failed, 3)
    (2.05, 0.1)
    """
    p = 0.5
    for _ in range(500):
        apr = sum(p**i for i in range(retries + 1))
        p = _mm1k_block(rate_per_ms * apr / servers / mu_per_ms, places)
    return sum(p**i for i in range(retries + 1)), p ** (retries + 1)


def retry_storm_scenario(retries: dict | None, rate: float = 1100.0, duration: str = "120s",
                         profile: str = "istio") -> dict[str, Any]:
    """4 single-worker instances with 4 queue places (M/M/1/5), mean service 4 ms, random balancing."""
    svc: dict[str, Any] = {"replicas": 4, "workers": 1, "queue": 4, "load_balancer": {"policy": "random"},
                           "service_time": {"dist": "exponential", "mean": "4ms"}}
    if retries is not None:
        svc["retries"] = retries
    return {
        "name": "retry-storm",
        "run": {"duration": duration},
        "network": {"enabled": False},
        "metrics": {"warmup": "5s", "spans": False},
        "mesh": {"mode": "sidecar", "profile": profile},
        "services": {"api": svc},
        "workloads": {"w": {"rate": rate, "target": "api"}},
    }


#: the policies :func:`retry_storm` compares by default
STORM_POLICIES: dict[str, tuple[dict | None, str]] = {
    "no retries": ({"attempts": 0}, "istio"),
    "3 retries": ({"attempts": 3, "retry_on": "5xx"}, "istio"),
    "3 retries, budget 20%": ({"attempts": 3, "retry_on": "5xx", "budget": {"percent": 20, "min_concurrency": 3}},
                              "istio"),
    "3 retries, Envoy breaker (3 at a time)": ({"attempts": 3, "retry_on": "5xx"}, "envoy"),
}


def retry_storm(rates: list[float] | tuple[float, ...] = (700.0, 900.0, 1100.0),
                policies: dict[str, tuple[dict | None, str]] | None = None, duration: str = "120s",
                seed: int = 2):
    """One row per (rate, policy): attempts per request, failed fraction, utilisation, and the fixed point."""
    import pandas as pd

    from ..api import run

    rows = []
    for rate in rates:
        for name, (retries, profile) in (policies or STORM_POLICIES).items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # offered utilisation >= 1 is the point
                s = run(retry_storm_scenario(retries, rate, duration, profile), seed=seed).summary
            r = s.get("resilience", {}).get("api", {})
            n = (retries or {}).get("attempts", 0)
            apr, fail = storm_fixed_point(rate / 1000.0, 0.25, 5, 4, n)
            rows.append({"rate_rps": rate, "policy": name, "offered_load": rate * 4.0 / 4000.0,
                         "attempts_per_request": r["attempts"] / r["requests"] if r.get("requests") else 1.0,
                         "retry_overflow": r.get("retry_overflow", 0),
                         "failed_fraction": s["failed"] / s["requests"],
                         "utilisation": s["services"]["api"]["utilisation"],
                         "theory_attempts_per_request": apr, "theory_failed_fraction": fail})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ fan-out tail and hedging

#: leaf service time: lognormal with median 10 ms and sigma 0.8
LEAF_MEDIAN_MS, LEAF_SIGMA = 10.0, 0.8


def fanout_scenario(width: int, hedge_after_ms: float | None = None, requests: int = 40_000) -> dict[str, Any]:
    """A front end calling ``width`` leaves in parallel and waiting for all; no queueing, no network."""
    leaf: dict[str, Any] = {"workers": 1000, "service_time": {"dist": "lognormal",
                                                              "mean": LEAF_MEDIAN_MS * math.exp(LEAF_SIGMA**2 / 2),
                                                              "sigma": LEAF_SIGMA}}
    if hedge_after_ms is not None:
        leaf.update(retries={"attempts": 1, "per_try_timeout": f"{hedge_after_ms}ms"}, hedge_on_per_try_timeout=True)
    return {
        "name": f"fanout-{width}",
        "run": {"requests": requests},
        "network": {"enabled": False},
        "metrics": {"warmup": 0, "spans": False},
        "services": {
            "front": {"workers": 1000, "service_time": {"dist": "constant", "value": 0},
                      "calls": [{"parallel": [{"service": f"leaf{i}"} for i in range(width)]}]},
            **{f"leaf{i}": dict(leaf) for i in range(width)},
        },
        "workloads": {"w": {"rate": 200, "target": "front"}},
    }


def _leaf_cdf(t: np.ndarray) -> np.ndarray:
    from math import erf

    t = np.asarray(t, dtype=float)
    out = np.zeros_like(t)
    pos = t > 0
    z = (np.log(t[pos]) - math.log(LEAF_MEDIAN_MS)) / (LEAF_SIGMA * math.sqrt(2))
    out[pos] = 0.5 * (1 + np.vectorize(erf)(z))
    return out


def fanout_p99_theory(width: int, hedge_after_ms: float | None = None, backoff_ms: int = 25) -> float:
    """p99 of the slowest of ``width`` independent leaf calls.

    Without hedging P(max <= t) = F(t)^width.  With a hedge after t0 (Envoy
    waits its first backoff, uniform on {0, ..., 24} ms, before sending it)
    one call takes min(X1, t0 + B + X2).
    """
    if hedge_after_ms is None:
        q = 0.99 ** (1 / width)
        return LEAF_MEDIAN_MS * math.exp(LEAF_SIGMA * NormalDist().inv_cdf(q))
    t = np.linspace(0.0, 400.0, 40_001)
    surv1 = 1 - _leaf_cdf(t)
    surv2 = np.mean([1 - _leaf_cdf(t - hedge_after_ms - b) for b in range(backoff_ms)], axis=0)
    return float(np.interp(0.99, (1 - surv1 * surv2) ** width, t))


def fanout_tail(widths: list[int] | tuple[int, ...] = (1, 2, 5, 10, 20), hedge_after_ms: float | None = 25.0,
                requests: int = 40_000, seed: int = 9):
    """p99 latency by fan-out width, without and (if ``hedge_after_ms``) with hedging, beside the theory."""
    import pandas as pd

    from ..api import run

    rows = []
    for width in widths:
        for hedge in (None, hedge_after_ms) if hedge_after_ms is not None else (None,):
            s = run(fanout_scenario(width, hedge, requests), seed=seed).summary
            rows.append({"width": width, "hedged": hedge is not None, "p50_ms": s["latency_ms"]["p50"],
                         "p99_ms": s["latency_ms"]["p99"], "theory_p99_ms": fanout_p99_theory(width, hedge)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ outlier detection


def outlier_scenario(slow_extra_ms: float = 500.0, per_try_ms: float = 100.0, duration: str = "120s") -> dict[str, Any]:
    """10 instances on 10 hosts behind Envoy sidecars; from 1 s on, the link to api-3's host adds latency."""
    hosts = {f"h{i}": "z" for i in range(10)}
    return {
        "name": "outlier-ejection",
        "run": {"duration": duration}, "metrics": {"warmup": 0, "spans": False},
        "topology": {"regions": {"r": ["z"]}, "hosts": {**hosts, "client": "z"}},
        "network": {"latency": {"same_zone": {"dist": "constant", "value": 0.1}}},
        "mesh": {"mode": "sidecar", "profile": "envoy", "request_processing": {"dist": "constant", "value": 0},
                 "response_processing": {"dist": "constant", "value": 0}, "mtls": False},
        "services": {"api": {"replicas": 10, "workers": 8, "placement": list(hosts),
                             "load_balancer": {"policy": "round_robin"},
                             "service_time": {"dist": "constant", "value": 1},
                             "retries": {"attempts": 2, "per_try_timeout": f"{per_try_ms}ms", "retry_on": "5xx,reset"},
                             "outlier_detection": {}}},
        "workloads": {"w": {"rate": 100, "target": "api", "source": "client"}},
        "faults": [{"action": "degrade", "between": ["client", "h3"], "at": "1s",
                    "extra_latency": {"dist": "constant", "value": slow_extra_ms}}],
    }


def outlier_ejection(seed: int = 10, **scenario: Any):
    """Ejections and returns of each instance (time_ms, event, caller, instance), and the run's summary."""
    from ..api import run

    res = run(outlier_scenario(**scenario), seed=seed)
    return res.mesh_events, res.summary


# ------------------------------------------------------------------ stale endpoints


def stale_endpoints_scenario(discovery: str = "watch", profile: str = "envoy", crash_ms: float = 20_000.0,
                             dns_ttl: str = "5s", duration: str = "30s") -> dict[str, Any]:
    """Three api instances found through a registry; api-1 crashes at ``crash_ms``.

    ``discovery``: ``watch`` or ``dns`` (no mesh), or ``sidecar`` (the control plane pushes).
    """
    mesh = "sidecar" if discovery == "sidecar" else "none"
    return {
        "name": f"stale-endpoints-{discovery}",
        "run": {"duration": duration}, "metrics": {"warmup": 0},
        "mesh": {"mode": mesh, "profile": profile,
                 "control_plane": {"push_latency": {"dist": "constant", "value": 30}}},
        "registry": {"servers": 3, "raft_multiplier": 1, "discovery": "dns" if discovery == "dns" else "watch",
                     "dns_ttl": dns_ttl, "health_check": {"type": "probe", "interval": "2s", "timeout": "1s"}},
        "services": {"api": {"replicas": 3, "workers": 4, "load_balancer": {"policy": "round_robin"},
                             "service_time": {"dist": "exponential", "mean": "5ms"}}},
        "workloads": {"w": {"rate": 300, "target": "api"}},
        "faults": [{"action": "crash", "instance": "api-1", "at": f"{crash_ms}ms"}],
    }


def run_stale_endpoints(sc: dict[str, Any], seed: int = 3) -> dict[str, Any]:
    """Run a stale-endpoints scenario; the refused calls, when api-1 turned critical, the result."""
    from ..result import Result
    from ..scenario.load import load_scenario
    from ..sim.simulation import Simulation
    from ..registry.discovery import attach_registry

    sim = Simulation(load_scenario(sc), seed=seed)
    comp = attach_registry(sim)
    sim.run()
    res = Result(sim)
    req = res.requests
    refused = req[req["status"] == "connection_refused"]["arrival_ms"]
    health = comp.registry.frame("health")
    crit = health[(health["instance"] == "api-1") & (health["new"] == "critical")]["time"]
    return {"result": res, "component": comp, "refused_ms": refused,
            "critical_ms": float(crit.iloc[0]) if len(crit) else math.nan}


def stale_endpoints(modes: tuple[str, ...] = ("watch", "sidecar", "dns"), seed: int = 3, **scenario: Any):
    """Per discovery mode: calls refused by the crashed instance and how long after the crash they stopped."""
    import pandas as pd

    rows = []
    for mode in modes:
        sc = stale_endpoints_scenario(mode, **scenario)
        out = run_stale_endpoints(sc, seed)
        crash = sc["faults"][0]["at"]
        crash_ms = float(crash[:-2]) if isinstance(crash, str) else float(crash)
        refused = out["refused_ms"]
        rows.append({"discovery": mode, "refused": len(refused),
                     "critical_after_ms": out["critical_ms"] - crash_ms,
                     "last_refused_after_ms": float(refused.max()) - crash_ms if len(refused) else math.nan})
    return pd.DataFrame(rows)


__all__ = ["STORM_POLICIES", "fanout_p99_theory", "fanout_scenario", "fanout_tail", "outlier_ejection",
           "outlier_scenario", "retry_storm", "retry_storm_scenario", "run_stale_endpoints", "stale_endpoints",
           "stale_endpoints_scenario", "storm_fixed_point"]
