"""Retry budgets against a retry storm: a sweep over the budget with replications and t-intervals.

The service is the one of :func:`~meshsim.experiments.failure_modes.retry_storm_scenario`:
4 single-worker instances with 4 queue places each (M/M/1/5), exponential
service of mean 4 ms (capacity 1000 requests/s), random balancing, one
caller with an Istio sidecar that retries a rejected attempt (503) up to
``attempts`` times.  ``load`` is the offered load before retries
(``load = 1.1``: 1100 requests/s).  An Envoy retry budget lets at most
``percent`` % of the caller's active requests be retries at a time (here
with ``min_concurrency`` 0 by default, so the percentage alone sets it).

Theory at both ends (:func:`~meshsim.experiments.failure_modes.storm_fixed_point`):
without retries (budget 0) one attempt per request and the M/M/1/5 blocking
probability fail; without a budget the M/M/1/K fixed point of the storm
(2.05 attempts per request at load 1.1).  Whatever the retries, at most
``1 / load`` of the requests can succeed: the failed fraction is at least
``1 - 1 / load``.

>>> t = budget_sweep([0.0, None], load=1.1, seeds=(1, 2), duration="4s", warmup="1s")
>>> t["budget_percent"].tolist(), t["attempts_per_request"].round(1).tolist()
([0.0, inf], [1.0, 2.0])
>>> round(float(t["theory_storm_attempts"].iloc[0]), 3), round(float(t["failed_floor"].iloc[0]), 4)
(2.055, 0.0909)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .failure_modes import retry_storm_scenario, storm_fixed_point

__all__ = ["SERVERS", "MEAN_MS", "PLACES", "budget_scenario", "budget_sweep"]

#: the storm scenario's instances, mean service time (ms) and places per instance (1 in service + 4 queued)
SERVERS, MEAN_MS, PLACES = 4, 4.0, 5


def budget_scenario(percent: float | None, load: float = 1.1, *, attempts: int = 3, min_concurrency: int = 0,
                    duration: str = "8s", warmup: str = "2s") -> dict[str, Any]:
    """The storm scenario at ``load`` with ``attempts`` retries on 5xx and a budget of ``percent`` %
    (``None`` or ``inf``: no budget, the storm).

    >>> budget_scenario(20, 1.1)["services"]["api"]["retries"]["budget"]
    {'percent': 20.0, 'min_concurrency': 0}
    >>> budget_scenario(None, 1.3)["workloads"]["w"]["rate"]
    1300.0
    """
    retries: dict[str, Any] = {"attempts": int(attempts), "retry_on": "5xx"}
    if percent is not None and not math.isinf(percent):
        retries["budget"] = {"percent": float(percent), "min_concurrency": int(min_concurrency)}
    rate = float(load) * SERVERS * 1000.0 / MEAN_MS
    sc = retry_storm_scenario(retries, rate=rate, duration=duration)
    sc["metrics"]["warmup"] = warmup
    return sc


def _mean_ci(x: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    from ..stats import t_quantile

    if x.size < 2:
        return float(x.mean()), math.nan
    return float(x.mean()), t_quantile(0.5 + confidence / 2, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)


def budget_sweep(budgets: Sequence[float | None], load: float = 1.1, *, seeds: Sequence[int] = (1, 2, 3),
                 attempts: int = 3, min_concurrency: int = 0, duration: str = "8s", warmup: str = "2s"):
    """One row per budget (``None`` becomes ``inf``: no budget), each over ``seeds`` (independent replications).

    Columns: ``load``, ``budget_percent``, ``runs``; ``attempts_per_request`` (attempts / requests at the
    service) with ``attempts_ci_low``/``attempts_ci_high`` (95% Student t over the runs);
    ``retries_per_request``; ``retry_overflow_per_request`` (retries the budget refused);
    ``failed_fraction`` with ``failed_ci_low``/``failed_ci_high``; theory columns (the same in each row)
    ``theory_storm_attempts``, ``theory_storm_failed`` (M/M/1/K fixed point with ``attempts`` retries),
    ``theory_no_retry_failed`` (M/M/1/5 blocking) and ``failed_floor`` (1 - 1/load, at least 0).
    """
    import pandas as pd

    from ..api import run

    storm_apr, storm_fail = storm_fixed_point(load * SERVERS / MEAN_MS, 1.0 / MEAN_MS, PLACES, SERVERS, attempts)
    _, base_fail = storm_fixed_point(load * SERVERS / MEAN_MS, 1.0 / MEAN_MS, PLACES, SERVERS, 0)
    rows = []
    for b in budgets:
        percent = math.inf if b is None else float(b)
        apr, rpr, ovr, fail = [], [], [], []
        for seed in seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # offered utilisation >= 1 is the point
                s = run(budget_scenario(percent, load, attempts=attempts, min_concurrency=min_concurrency,
                                        duration=duration, warmup=warmup), seed=seed).summary
            r = s["resilience"]["api"]
            apr.append(r["attempts"] / r["requests"])
            rpr.append(r["retries"] / r["requests"])
            ovr.append(r.get("retry_overflow", 0) / r["requests"])
            fail.append(s["failed"] / s["requests"])
        a_mean, a_half = _mean_ci(np.array(apr))
        f_mean, f_half = _mean_ci(np.array(fail))
        rows.append({"load": float(load), "budget_percent": percent, "runs": len(seeds),
                     "attempts_per_request": a_mean, "attempts_ci_low": a_mean - a_half,
                     "attempts_ci_high": a_mean + a_half, "retries_per_request": float(np.mean(rpr)),
                     "retry_overflow_per_request": float(np.mean(ovr)), "failed_fraction": f_mean,
                     "failed_ci_low": f_mean - f_half, "failed_ci_high": f_mean + f_half,
                     "theory_storm_attempts": storm_apr, "theory_storm_failed": storm_fail,
                     "theory_no_retry_failed": base_fail, "failed_floor": max(0.0, 1.0 - 1.0 / load)})
    return pd.DataFrame(rows)
