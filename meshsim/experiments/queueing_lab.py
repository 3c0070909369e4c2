"""Queueing theory beside a run: the measurements a queueing lab sets against M/M/1 and M/M/c.

Three readers of a :class:`~meshsim.result.Result`, for one service of a run
(by default its only or first service), each counting only what arrived
after ``metrics.warmup``:

- :func:`theory_table`: simulated P(wait), mean wait, mean sojourn, sojourn
  quantiles and mean lengths L, Lq beside the values of a
  :class:`~meshsim.analytic.QueueMetrics` (Erlang C for M/M/c).
- :func:`littles_law`: the time-average number in system L (from the
  instance areas, and from the sampled time series) against lambda x W.
- :func:`warmup_curve`: mean latency by arrival time, pooled over runs, to
  see how long an empty system takes to reach its steady state.

Times are in milliseconds, rates per millisecond (so lambda x W is a number
of requests).

>>> import meshsim
>>> from meshsim.analytic import mmc
>>> res = meshsim.run({"run": {"requests": 20000}, "network": {"enabled": False},
...                    "metrics": {"warmup": "5s"},
...                    "services": {"s": {"workers": 2, "service_time": {"dist": "exponential", "mean": "10ms"}}},
...                    "workloads": {"w": {"rate": "150/s", "target": "s"}}}, seed=1)
>>> table = theory_table(res, mmc(0.15, 0.1, 2))
>>> list(table.columns)
['simulated', 'theory', 'relative_error']
>>> bool(abs(table.loc["mean sojourn W (ms)", "relative_error"]) < 0.1)   # 133 s of simulated time
True
>>> law = littles_law(res)
>>> abs(law["L"] / law["lambda_W"] - 1) < 0.01
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from ..analytic import QueueMetrics
    from ..result import Result

__all__ = ["theory_table", "littles_law", "warmup_curve", "measured_calls"]


def service_name(result: Result, service: str | None) -> str:
    """``service`` checked against the run's services; None: the first one."""
    names = list(result.scenario.services)
    if service is None:
        return names[0]
    if service not in names:
        raise ValueError(f"no service {service!r} in scenario {result.scenario.name!r}; it has {', '.join(names)}")
    return service


def _window(result: Result) -> tuple[float, float]:
    """(start, end) of the measurement window in ms: from metrics.warmup to the end of arrivals."""
    start = float(result.summary["warmup_ms"])
    return start, start + float(result.summary["window_ms"])


def measured_calls(result: Result, service: str | None = None) -> pd.DataFrame:
    """The successful calls to ``service`` that arrived in the measurement window (rows of ``result.spans``).

    Adds a column ``sojourn_ms`` = ``queue_ms`` + ``service_ms`` (time at the
    instance, without the network or downstream calls).

    >>> import meshsim
    >>> res = meshsim.run({"run": {"requests": 300}, "network": {"enabled": False},
    ...                    "services": {"s": {"service_time": "1ms"}},
    ...                    "workloads": {"w": {"rate": 100, "target": "s"}}}, seed=1)
    >>> calls = measured_calls(res)
    >>> len(calls), float(calls["service_ms"].max())
    (300, 1.0)
    """
    name = service_name(result, service)
    start, end = _window(result)
    sp = result.spans
    sel = (sp["service"] == name) & (sp["status"] == "ok") & (sp["arrive_ms"] >= start) & (sp["arrive_ms"] <= end)
    calls = sp.loc[sel.to_numpy()].copy()
    calls["sojourn_ms"] = calls["queue_ms"] + calls["service_ms"]
    return calls


def _lengths(result: Result, name: str) -> tuple[float, float]:
    """Time-average (L, Lq) of a service, summed over its instances, from the instance areas."""
    inst = result.instances
    inst = inst[inst["service"] == name]
    lq = float(inst["mean_queue_length"].sum())
    return lq + float((inst["utilisation"] * inst["workers"]).sum()), lq


def theory_table(result: Result, theory: QueueMetrics, service: str | None = None,
                 quantiles: Sequence[float] = (0.5, 0.9, 0.99)) -> pd.DataFrame:
    """Simulated against theoretical metrics of one station, one row per metric.

    ``theory`` must be in milliseconds (rates per ms), e.g.
    ``analytic.mmc(lam=0.04, mu=0.01, c=5)``.  Rows: P(wait), mean wait Wq,
    mean sojourn W, the sojourn ``quantiles`` (M/M/c only), mean number in
    system L and in queue Lq; columns ``simulated``, ``theory`` and
    ``relative_error`` (simulated / theory - 1).  See the module example.
    """
    import pandas as pd

    name = service_name(result, service)
    calls = measured_calls(result, name)
    wait = calls["queue_ms"].to_numpy()
    soj = calls["sojourn_ms"].to_numpy()
    length, lq = _lengths(result, name)
    rows: list[tuple[str, float, float]] = [
        ("P(wait)", float((wait > 1e-9).mean()) if wait.size else math.nan, theory.p_wait),
        ("mean wait Wq (ms)", float(wait.mean()) if wait.size else math.nan, theory.mean_wait),
        ("mean sojourn W (ms)", float(soj.mean()) if soj.size else math.nan, theory.mean_sojourn),
    ]
    if theory.model == "M/M/c":
        for q in quantiles:
            sim = float(np.quantile(soj, q)) if soj.size else math.nan
            rows.append((f"p{100 * q:g} sojourn (ms)", sim, theory.sojourn_quantile(q)))
    rows += [("L (requests in system)", length, theory.mean_in_system),
             ("Lq (requests waiting)", lq, theory.mean_queue_length)]
    df = pd.DataFrame(rows, columns=["metric", "simulated", "theory"]).set_index("metric")
    df["relative_error"] = df["simulated"] / df["theory"] - 1.0
    return df


def littles_law(result: Result, service: str | None = None) -> dict[str, float]:
    """Little's law L = lambda W checked on one service of a run.

    ``lambda_per_ms``: calls arriving in the measurement window per ms;
    ``W_ms``: their mean sojourn at the instance; ``lambda_W``: the product;
    ``L``: time-average number in system from the instances table (exact
    areas); ``L_sampled``: the same from the time-series samples (queue +
    busy, averaged over the samples in the window); ``relative_error``:
    L / (lambda W) - 1.  See the module example.
    """
    name = service_name(result, service)
    start, end = _window(result)
    calls = measured_calls(result, name)
    lam = len(calls) / (end - start) if end > start else math.nan
    w = float(calls["sojourn_ms"].mean()) if len(calls) else math.nan
    length, _ = _lengths(result, name)
    ts = result.timeseries
    ts = ts[(ts["service"] == name) & (ts["time_ms"] >= start) & (ts["time_ms"] <= end)]
    per_time = (ts["queue"] + ts["busy"]).groupby(ts["time_ms"]).sum()
    return {
        "lambda_per_ms": lam,
        "W_ms": w,
        "lambda_W": lam * w,
        "L": length,
        "L_sampled": float(per_time.mean()) if len(per_time) else math.nan,
        "relative_error": length / (lam * w) - 1.0 if lam * w > 0 else math.nan,
    }


def warmup_curve(results: Result | Iterable[Result], bin_ms: float = 1000.0) -> pd.DataFrame:
    """Mean latency of successful requests by arrival time, pooled over ``results`` (e.g. one per seed).

    All requests count, warm-up included: that is what it is for.  Columns
    ``t_ms`` (start of the bin), ``mean_ms`` and ``n`` (requests in the bin).
    In the example the first arrival is at 10 ms, so the first bin holds 49.

    >>> import meshsim
    >>> res = meshsim.run({"run": {"duration": "2s"}, "network": {"enabled": False},
    ...                    "services": {"s": {"service_time": "1ms"}},
    ...                    "workloads": {"w": {"type": "deterministic", "rate": 100, "target": "s"}}}, seed=1)
    >>> warmup_curve(res, bin_ms=500).to_dict("list")
    {'t_ms': [0.0, 500.0, 1000.0, 1500.0], 'mean_ms': [1.0, 1.0, 1.0, 1.0], 'n': [49, 50, 50, 50]}
    """
    import pandas as pd

    from ..result import Result as _Result

    runs = [results] if isinstance(results, _Result) else list(results)
    frames = []
    for res in runs:
        req = res.requests
        ok = req[req["status"] == "ok"]
        frames.append(pd.DataFrame({"bin": np.floor(ok["arrival_ms"].to_numpy() / bin_ms),
                                    "latency_ms": ok["latency_ms"].to_numpy()}))
    pooled = pd.concat(frames, ignore_index=True)
    g = pooled.groupby("bin")["latency_ms"].agg(["mean", "size"]).sort_index()
    return pd.DataFrame({"t_ms": g.index.to_numpy() * bin_ms, "mean_ms": g["mean"].to_numpy(),
                         "n": g["size"].to_numpy()}).reset_index(drop=True)
