"""Compare variants of a scenario on common random numbers: paired differences with t intervals.

``compare(scenario, {label: overrides, ...}, replications=n)`` runs every
variant with the same ``n`` seeds and with ``run.common_random_numbers`` on,
so replication r of every variant sees the same arrivals and gives each
request the same service times, whichever instance serves it (see
:mod:`meshsim.sim.crn`).  For each metric it reports each variant's mean over
the replications with its Student-t interval, and the difference against the
first variant, paired by replication, with its paired-t interval; beside it,
for reference, the Welch interval the same difference would have if the runs
were not paired.  Paired differences vary much less than either variant, so
the paired interval is much narrower; for two identical variants every
difference, and its interval, is exactly 0.

>>> import meshsim
>>> base = {"run": {"requests": 2000}, "network": {"enabled": False},
...         "services": {"api": {"replicas": 3, "workers": 2, "calls": [{"service": "db"}],
...                              "service_time": {"dist": "exponential", "mean": "5ms"}},
...                      "db": {"replicas": 3, "workers": 2, "service_time": {"dist": "exponential", "mean": "5ms"}}},
...         "workloads": {"w": {"rate": 600, "target": "api"}}}
>>> cmp = meshsim.compare(base, {"no mesh": {}, "same": {}, "sidecars": {"mesh.mode": "sidecar"}},
...                       replications=4, seed=1, metrics=["mean_ms", "latency_ms.p90"])
>>> cmp.table.loc[("same", "mean_ms"), ["diff", "diff_ci_low", "diff_ci_high"]].tolist()
[0.0, 0.0, 0.0]
>>> row = cmp.table.loc[("sidecars", "mean_ms")]
>>> print(f"{row['diff']:.2f} ms [{row['diff_ci_low']:.2f}, {row['diff_ci_high']:.2f}] paired, "
...       f"[{row['unpaired_ci_low']:.2f}, {row['unpaired_ci_high']:.2f}] unpaired")
0.57 ms [0.47, 0.68] paired, [0.14, 1.01] unpaired
>>> cmp.runs.columns.tolist()
['variant', 'replication', 'seed', 'mean_ms', 'latency_ms.p90']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .stats import t_quantile

if TYPE_CHECKING:
    import pandas as pd

    from .result import Result

#: built-in per-run metrics: name -> what it is (any dotted path into ``Result.summary`` works too)
METRICS: dict[str, str] = {
    "mean_ms": "mean latency (ms)",
    "p50_ms": "median latency (ms)",
    "p99_ms": "99th percentile latency (ms)",
    "throughput_rps": "throughput (req/s)",
    "error_rate": "failed / requests",
}

#: a metric: a name of :data:`METRICS`, a dotted summary path (``"latency_ms.p90"``) or a function of a Result
Metric = str | Callable[["Result"], float]


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def run_metrics(result: Result) -> dict[str, float]:
    """The built-in :data:`METRICS` of one run, from its summary."""
    s = result.summary
    lat = s["latency_ms"]
    return {
        "mean_ms": _num(lat["mean"]),
        "p50_ms": _num(lat["p50"]),
        "p99_ms": _num(lat["p99"]),
        "throughput_rps": _num(s["throughput_rps"]),
        "error_rate": s["failed"] / s["requests"] if s["requests"] else math.nan,
    }


def metric_name(metric: Metric) -> str:
    """The column name of ``metric`` (a function's ``__name__``)."""
    return metric if isinstance(metric, str) else getattr(metric, "__name__", repr(metric))


def metric_value(result: Result, metric: Metric) -> float:
    """``metric`` of one run: a built-in name, a dotted path into the summary, or a function.

    >>> class R: summary = {"latency_ms": {"mean": 2.0, "p50": 1.0, "p99": 9.0}, "throughput_rps": 5.0,
    ...                     "failed": 1, "requests": 4}
    >>> metric_value(R(), "error_rate"), metric_value(R(), "latency_ms.p99"), metric_value(R(), lambda r: 7)
    (0.25, 9.0, 7.0)
    """
    if callable(metric):
        return _num(metric(result))
    if metric in METRICS:
        return run_metrics(result)[metric]
    node: Any = result.summary
    for part in metric.split("."):
        if not isinstance(node, Mapping) or part not in node:
            known = ", ".join(METRICS)
            raise KeyError(f"unknown metric {metric!r}: not one of {known} nor a path in the run's summary "
                           f"(e.g. 'latency_ms.p90')")
        node = node[part]
    if isinstance(node, Mapping) or isinstance(node, bool):
        raise KeyError(f"metric {metric!r} is not a number in the run's summary")
    return _num(node)


def t_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: Student-t interval of the mean of ``values`` (NaN bounds for fewer than 2).

    >>> t_ci([1.0, 1.0, 1.0])
    (1.0, 1.0, 1.0)
    >>> m, lo, hi = t_ci([1.0, 2.0, 3.0])
    >>> m, round(hi - m, 4)
    (2.0, 2.4841)
    """
    x = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if x.size < 2:
        return m, math.nan, math.nan
    sd = float(x.std(ddof=1))
    half = t_quantile(0.5 + confidence / 2, x.size - 1) * sd / math.sqrt(x.size) if sd > 0 else 0.0
    return m, m - half, m + half


def welch_ci(b: Iterable[float], a: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean(b) - mean(a), low, high)``: Welch's interval of a difference of means of independent samples.

    The interval a comparison would have without pairing; NaN bounds when
    either sample has fewer than 2 values.

    >>> d, lo, hi = welch_ci([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    >>> d, round(hi - d, 4)
    (1.0, 2.267)
    """
    x = np.asarray(list(b), dtype=float)
    y = np.asarray(list(a), dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size == 0 or y.size == 0:
        return math.nan, math.nan, math.nan
    d = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return d, math.nan, math.nan
    vx, vy = float(x.var(ddof=1)) / x.size, float(y.var(ddof=1)) / y.size
    if vx + vy == 0:
        return d, d, d
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))
    half = t_quantile(0.5 + confidence / 2, df) * math.sqrt(vx + vy)
    return d, d - half, d + half


def replication_seeds(seed: int, replications: int) -> list[int]:
    """The run seeds of a comparison: ``seed, seed + 1, ...`` (each seed is a whole independent run).

    >>> replication_seeds(10, 3)
    [10, 11, 12]
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if isinstance(replications, bool) or not isinstance(replications, (int, np.integer)) or replications < 1:
        raise ValueError(f"replications must be an integer >= 1, got {replications!r}")
    return [int(seed) + r for r in range(int(replications))]


def run_variants(
    scenario: Any,
    variants: Mapping[str, Mapping[str, Any] | Sequence[str] | None],
    *,
    seeds: Iterable[int] = (1, 2, 3),
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    metrics: Sequence[Metric] | None = None,
    common_random_numbers: bool | None = True,
    keep_results: bool = True,
) -> tuple[dict[str, list[Result]] | None, pd.DataFrame]:
    """Run every variant with every seed: ``({label: [Result per seed]} or None, per-run frame)``.

    ``overrides`` apply to every variant, below each variant's own.
    ``common_random_numbers`` sets ``run.common_random_numbers`` in every
    variant (None: leave the scenario's setting).  The frame has one row per
    (variant, seed): ``variant, replication, seed`` and one column per metric
    (default: the built-in :data:`METRICS`).
    """
    import pandas as pd

    from .api import run
    from .scenario.load import load_scenario

    if not variants:
        raise ValueError("compare needs at least one variant, e.g. {'baseline': {}}")
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and not empty, got {seeds!r}")
    chosen: list[Metric] = list(metrics) if metrics is not None else list(METRICS)
    names = [metric_name(m) for m in chosen]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"metrics must be distinct and not empty, got {names!r}")
    base = load_scenario(scenario, overrides)
    if common_random_numbers is not None:
        base = load_scenario(base, {"run.common_random_numbers": bool(common_random_numbers)})
    results: dict[str, list[Result]] = {}
    rows = []
    for label, ov in variants.items():
        sc = load_scenario(base, ov or {})
        results[label] = []
        for r, seed in enumerate(seeds):
            res = run(sc, seed=seed)
            if keep_results:
                results[label].append(res)
            rows.append({"variant": label, "replication": r, "seed": seed,
                         **{n: metric_value(res, m) for n, m in zip(names, chosen)}})
    return (results if keep_results else None), pd.DataFrame(rows)


def summarise(runs: pd.DataFrame, labels: Sequence[str] | None = None, confidence: float = 0.95,
              metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Per (variant, metric): the mean over seeds with its t interval; against the first variant the paired
    difference with its paired-t interval and, for reference, Welch's unpaired interval.

    Columns ``mean, ci_low, ci_high, diff, diff_ci_low, diff_ci_high,
    unpaired_ci_low, unpaired_ci_high, seeds``; the ``diff`` and
    ``unpaired`` columns are NaN on the first variant's own rows.  Runs are
    paired by seed; a seed missing from the first variant leaves its
    difference out.
    """
    import pandas as pd

    labels = list(labels) if labels is not None else list(dict.fromkeys(runs["variant"]))
    skip = {"variant", "replication", "seed"}
    metrics = list(metrics) if metrics is not None else [c for c in runs.columns if c not in skip]
    first = labels[0]
    ref = runs[runs["variant"] == first].set_index("seed")
    rows = []
    nan3 = (math.nan, math.nan, math.nan)
    for label in labels:
        mine = runs[runs["variant"] == label].set_index("seed")
        for metric in metrics:
            m, lo, hi = t_ci(mine[metric].to_numpy(), confidence)
            if label == first:
                d, u = nan3, nan3
            else:
                d = t_ci((mine[metric] - ref[metric].reindex(mine.index)).to_numpy(), confidence)
                u = welch_ci(mine[metric].to_numpy(), ref[metric].to_numpy(), confidence)
            rows.append({"variant": label, "metric": metric, "mean": m, "ci_low": lo, "ci_high": hi,
                         "diff": d[0], "diff_ci_low": d[1], "diff_ci_high": d[2],
                         "unpaired_ci_low": u[1], "unpaired_ci_high": u[2], "seeds": len(mine)})
    return pd.DataFrame(rows).set_index(["variant", "metric"])


@dataclass
class Comparison:
    """What :func:`compare` returns: ``table`` (per variant and metric), ``runs`` (per variant and seed),
    the ``seeds`` used and, with ``keep_results=True``, every run's Result in ``results``."""

    table: pd.DataFrame
    runs: pd.DataFrame
    seeds: list[int]
    results: dict[str, list[Result]] | None = field(default=None, repr=False)

    @property
    def variants(self) -> list[str]:
        """The variant labels, the reference first."""
        return list(dict.fromkeys(self.table.index.get_level_values(0)))

    def __repr__(self) -> str:
        cols = ["mean", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high"]
        return (f"Comparison of {', '.join(self.variants)} over {len(self.seeds)} paired replications\n"
                f"{self.table[cols].round(4).to_string()}")


def compare(
    scenario: Any,
    variants: Mapping[str, Mapping[str, Any] | Sequence[str] | None],
    *,
    replications: int = 5,
    seed: int = 1,
    metrics: Sequence[Metric] | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    common_random_numbers: bool = True,
    confidence: float = 0.95,
    seeds: Iterable[int] | None = None,
    keep_results: bool = False,
) -> Comparison:
    """Run ``scenario`` under each variant's overrides on the same ``replications`` seeds and compare them.

    ``variants`` maps a label to overrides (``{"services.api.replicas": 6}``,
    ``{}`` for the scenario as is); the first is the reference every other
    is compared with.  Replication r runs with seed ``seed + r`` in every
    variant (or ``seeds``, given explicitly), with ``run.common_random_numbers``
    on unless ``common_random_numbers=False`` (then only the seeds are common,
    and the service times of a request depend on the instance that serves it).
    ``metrics``: names of :data:`METRICS`, dotted summary paths or functions
    of a Result (default: the built-in ones).  Returns a :class:`Comparison`.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    seeds = list(seeds) if seeds is not None else replication_seeds(seed, replications)
    results, runs = run_variants(scenario, variants, seeds=seeds, overrides=overrides, metrics=metrics,
                                 common_random_numbers=common_random_numbers, keep_results=keep_results)
    table = summarise(runs, list(variants), confidence)
    return Comparison(table=table, runs=runs, seeds=seeds, results=results)


__all__ = ["METRICS", "Comparison", "compare", "metric_value", "replication_seeds", "run_metrics", "run_variants",
           "summarise", "t_ci", "welch_ci"]
