"""Topologies under a load sweep: the same services in series, in parallel, and as a social network.

Written for notebooks/06_topologies.ipynb.  Each topology is put on one
x-axis, the **offered utilisation of its busiest service** (from
:meth:`meshsim.Scenario.utilisation`, before any run), so their knees can be
compared: :func:`load_grid` turns utilisations into workload rates (all
workloads scaled together, a ``zip`` sweep), and :func:`sweep_topologies`
runs :func:`meshsim.sweep` once per topology and stacks the aggregates.

- ``chain``: svc0 -> svc1 -> ... -> svc4 (5 services in series);
- ``fanout``: svc0 calls svc1..svc4 in parallel and waits for all (the same 5 services);
- ``social_network``: the shipped DeathStarBench-like graph, with one worker
  per instance (so it can be loaded at a few thousand requests per second)
  and its bursty reader workload made Poisson at the same mean rate.

>>> sc = topology_scenarios()["fanout"]
>>> round(bottleneck_utilisation(sc), 3)       # 100 req/s x 2 ms over 2 instances
0.1
>>> load_grid(sc, [0.5, 0.8])
{'workloads.w.rate': [500.0, 800.0]}
"""

from __future__ import annotations

import copy
from typing import Any

#: service time of every generated service: constant, so the queues alone make the tail
GRAPH_SERVICE_TIME: dict[str, Any] = {"dist": "constant", "value": "2ms"}


def _graph(kind: str, duration: str, warmup: str) -> dict[str, Any]:
    graph: dict[str, Any] = {"kind": kind, "replicas": 2, "workers": 1, "service_time": dict(GRAPH_SERVICE_TIME)}
    graph.update({"n": 5} if kind == "chain" else {"width": 4, "depth": 1})
    return {"name": kind, "run": {"duration": duration}, "metrics": {"warmup": warmup, "spans": False},
            "graph": graph, "workloads": {"w": {"rate": 100, "target": "svc0"}}}


def social_scenario(duration: str = "8s", warmup: str = "1s") -> dict[str, Any]:
    """The shipped social network with one worker per instance and Poisson readers at their mean rate."""
    from ..scenario.load import read_yaml
    from ..examples import example

    raw = copy.deepcopy(read_yaml(example("social_network")))
    for svc in raw["services"].values():
        svc["workers"] = 1
    r = raw["workloads"]["readers"]
    mean = (float(str(r["rate"]).split("/")[0]) * 5 + float(str(r["off_rate"]).split("/")[0]) * 10) / 15
    raw["workloads"]["readers"] = {"type": "poisson", "rate": mean, "target": r["target"], "endpoint": r["endpoint"]}
    raw["run"] = {"duration": duration}
    raw["metrics"] = {"warmup": warmup, "spans": False}
    return raw


def topology_scenarios(duration: str = "8s", warmup: str = "1s") -> dict[str, dict[str, Any]]:
    """``{"chain": ..., "fanout": ..., "social_network": ...}`` as raw scenario mappings."""
    return {"chain": _graph("chain", duration, warmup), "fanout": _graph("fanout", duration, warmup),
            "social_network": social_scenario(duration, warmup)}


def bottleneck_utilisation(scenario: Any) -> float:
    """Offered utilisation of the busiest service (checked scenario or raw mapping)."""
    from ..scenario.load import load_scenario

    return max(load_scenario(scenario).utilisation().values())


def load_grid(scenario: Any, utilisations: list[float] | tuple[float, ...]) -> dict[str, list[float]]:
    """Sweep parameters (for ``mode="zip"``) that put the busiest service at each utilisation.

    Every workload's ``rate`` is scaled by the same factor, so the mix of
    requests stays as it is.
    """
    from ..scenario.load import load_scenario

    sc = load_scenario(scenario)
    base = max(sc.utilisation().values())
    grid: dict[str, list[float]] = {}
    for name in sc.workloads:
        for key in ("rate", "off_rate"):  # an MMPP's two rates scale together
            rate = sc.workloads[name].get(key)
            if isinstance(rate, (int, float)) and rate > 0:
                grid[f"workloads.{name}.{key}"] = [round(rate * u / base, 6) for u in utilisations]
    return grid


def sweep_topologies(scenarios: dict[str, Any], utilisations: list[float] | tuple[float, ...], *,
                     replications: int = 3, seed: int = 1, backend: str = "processes", workers: int | None = 2,
                     metrics: list[str] | None = None):
    """:func:`meshsim.sweep` per topology over :func:`load_grid`; one aggregate with ``topology`` and ``utilisation``.

    The aggregate has each metric's mean and ``_ci_low``/``_ci_high`` (95%,
    Student t over the replications); ``offered_rps`` is the total offered rate.

    >>> agg = sweep_topologies({"fanout": topology_scenarios("2s", "0.2s")["fanout"]}, [0.3, 0.6],
    ...                        replications=2, backend="serial")
    >>> agg[["topology", "utilisation", "offered_rps", "n"]].values.tolist()
    [['fanout', 0.3, 300.0, 2], ['fanout', 0.6, 600.0, 2]]
    """
    import pandas as pd

    from ..sweep import sweep
    from ..sweep.runner import DEFAULT_METRICS

    frames = []
    for name, sc in scenarios.items():
        grid = load_grid(sc, utilisations)
        res = sweep(sc, grid, mode="zip", replications=replications, seed=seed, backend=backend,
                    workers=workers if backend == "processes" else None, progress=False,
                    metrics=list(metrics or DEFAULT_METRICS))
        agg = res.aggregate.sort_values(next(iter(grid))).reset_index(drop=True)
        first = next(iter(grid))
        util_of = dict(zip(grid[first], utilisations))
        agg.insert(0, "utilisation", [util_of[v] for v in agg[first]])
        agg.insert(0, "topology", name)
        agg.insert(2, "offered_rps", agg[list(grid)].sum(axis=1))
        frames.append(agg.drop(columns=list(grid)))
    return pd.concat(frames, ignore_index=True)


def knees(agg, metric: str = "latency_ms.p99", k: float = 2.0):
    """Per topology: the utilisation where ``metric`` first exceeds ``k`` times its lowest-load value.

    Uses :func:`meshsim.plots.knee`; NaN when the sweep never gets there.
    """
    import pandas as pd

    from ..plots import knee

    return pd.Series({name: knee(g["utilisation"], g[metric], k) for name, g in agg.groupby("topology", sort=False)},
                     name=f"knee ({metric} > {k:g}x)")


__all__ = ["GRAPH_SERVICE_TIME", "bottleneck_utilisation", "knees", "load_grid", "social_scenario",
           "sweep_topologies", "topology_scenarios"]
