"""The Consul Global Scale Benchmark's shape over grids of sizes, discovery modes and churn, as tidy tables.

:mod:`meshsim.experiments.global_scale` runs the benchmark's shape once; this
module runs it over a grid and returns pandas DataFrames for the notebook
``08_experiments_at_scale`` and :mod:`meshsim.viz.scale`:

* :func:`propagation_table`: one row per watching sidecar, the time from the
  deploy's last commit until its config held the whole deploy, per size and
  discovery mode (for CDFs); :func:`propagation_summary` condenses it;
* :func:`load_vs_size`: the servers' steady-state load under background churn
  per size and mode;
* :func:`churn_sweep`: at one size, the busiest server's utilisation and the
  deploy's propagation per churn rate and mode, to find where blocking queries
  stop keeping up; :func:`knee` fits the churn where the offered utilisation
  reaches 1.

**Which server answers.**  Every function passes its extra keywords to
:meth:`ScaleShape.sized`, ``blocking_mode`` among them.  With the default,
``"stale"`` (as Consul's agent cache asks), an agent's blocking queries are
answered by the server its client talks to, so they spread over the servers
as the streams do and the busiest server sends about ``1 / servers`` of the
total (a little more: the agents pick their first server by a seeded
permutation, not in equal numbers).  With ``"default"`` or ``"consistent"``
(a client of the HTTP API without ``?stale``, consul-template's default) the
leader answers every one: the busiest server sends all of it, and its
processors meet their knee ``servers`` times sooner.

**Steady-state load.**  ``ScaleResult.registry.load()`` counts from the
servers' start, so it includes the burst of first answers (blocking) or
snapshots (streaming) when the agents subscribe.  The churn's own load is
measured as the difference between a run with churn and the same run (same
seed, same subscriptions on the same servers) without churn, per server,
divided by the time the churn's changes ran.  Churn starts with the
subscriptions and a flap becomes a change at the instance's next health probe
(uniform over one check interval), so the changes run for
``steady_ms + settle_ms - check_interval_ms / 2`` on average
(:func:`churn_window_ms`).  With the default ``churn_down_ms`` (20 s) and
windows shorter than it, a failed instance has not recovered yet: each flap
is one change in these runs, two (down and up) in longer ones.

>>> t = propagation_table(sizes=(600,), modes=("streaming",), hosts=40, steady_ms=5_000.0, settle_ms=8_000.0)
>>> s = propagation_summary(t)
>>> int(s.loc[0, "sidecars"]), bool(s.loc[0, "p99_ms"] < 1_000.0), float(s.loc[0, "share_under_1s"])
(534, True, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .global_scale import ScaleResult, ScaleShape, run

__all__ = ["HASHICORP_PUBLISHED_MS", "MODES", "churn_sweep", "churn_window_ms", "knee", "load_vs_size",
           "propagation_summary", "propagation_table", "steady_load"]

#: HashiCorp's published result of the benchmark: a change reached every watching sidecar in under one second
HASHICORP_PUBLISHED_MS = 1_000.0
#: the two ways agents watch their sidecars' upstreams
MODES = ("streaming", "blocking")

SWEEP_COLUMNS = ["instances", "discovery", "churn_per_s_per_1000", "server_cores", "busiest_server",
                 "utilisation", "instances_per_s", "messages_per_s", "run_utilisation", "mean_wait_ms",
                 "max_wait_ms", "backlog_ms", "p50_ms", "p99_ms", "max_ms", "all_have_it", "sidecars", "wall_s",
                 "blocking_mode"]
LOAD_COLUMNS = ["instances", "discovery", "churn_per_s_per_1000", "busiest_server", "instances_per_s",
                "messages_per_s", "total_instances_per_s", "total_messages_per_s", "utilisation", "wall_s"]


def _shape(instances: int, discovery: str, **kw: Any) -> ScaleShape:
    return ScaleShape.sized(instances, discovery=discovery, **kw)


def propagation_table(sizes: Iterable[int] = (2_000, 10_000), modes: Iterable[str] = MODES, seed: int = 1,
                      **shape_kw: Any) -> pd.DataFrame:
    """One row per watching sidecar and (size, mode): ``instances, discovery, propagation_ms`` (sorted within
    each group; NaN for a sidecar that never had the deploy).  ``shape_kw`` go to :meth:`ScaleShape.sized`
    (``steady_ms``, ``churn_per_s_per_1000``, ``server_cores``, ...).

    >>> t = propagation_table(sizes=(600,), modes=MODES, hosts=40, steady_ms=5_000.0, settle_ms=8_000.0)
    >>> t.groupby("discovery")["propagation_ms"].size().to_dict()
    {'blocking': 534, 'streaming': 534}
    """
    frames = []
    for n in sizes:
        for mode in modes:
            r = run(_shape(n, mode, **shape_kw), seed=seed)
            per = r.sidecar_propagation_ms()
            frames.append(pd.DataFrame({"instances": r.shape.instances, "discovery": mode, "propagation_ms": per}))
    return pd.concat(frames, ignore_index=True)


def propagation_summary(table: pd.DataFrame, limit_ms: float = HASHICORP_PUBLISHED_MS) -> pd.DataFrame:
    """Per (instances, discovery) of a :func:`propagation_table`: sidecars, p50/p99/max (ms) and the share of
    sidecars that had the deploy within ``limit_ms`` (HashiCorp's one second by default).

    >>> t = pd.DataFrame({"instances": 10, "discovery": "streaming", "propagation_ms": [200.0, 210.0, 1500.0, np.nan]})
    >>> propagation_summary(t).iloc[0][["sidecars", "max_ms", "share_under_1s"]].astype(float).tolist()
    [4.0, 1500.0, 0.5]
    """
    rows = []
    for (n, mode), g in table.groupby(["instances", "discovery"], sort=False):
        v = g["propagation_ms"].to_numpy()
        have = v[~np.isnan(v)]
        q = (lambda p: float(np.percentile(have, p))) if have.size else (lambda p: math.nan)
        rows.append({"instances": int(n), "discovery": mode, "sidecars": int(v.size), "p50_ms": q(50),
                     "p99_ms": q(99), "max_ms": float(have.max()) if have.size else math.nan,
                     "share_under_1s": float(np.sum(have < limit_ms) / v.size) if v.size else math.nan})
    return pd.DataFrame(rows)


def churn_window_ms(shape: ScaleShape) -> float:
    """How long the churn's changes run on average in a :func:`~meshsim.experiments.global_scale.run` (ms):
    from the subscriptions to the end, less half a check interval (a flap becomes a change at its
    instance's next probe).

    >>> churn_window_ms(ScaleShape.sized(1_000, steady_ms=12_000.0, settle_ms=5_000.0))
    14500.0
    """
    return shape.steady_ms + shape.settle_ms - shape.check_interval_ms / 2.0


def _server_counts(r: ScaleResult) -> dict[str, dict[str, float]]:
    out = {}
    for name, v in r.registry.load()["servers"].items():
        out[name] = {"instances": v["blocking"]["instances"] + v["reads"]["instances"] + v["streaming"]["instances"],
                     "messages": v["blocking"]["requests"] + v["reads"]["requests"] + v["streaming"]["snapshots"]
                     + v["streaming"]["events"],
                     "busy_ms": v["cpu"]["busy_ms"] if "cpu" in v else math.nan,
                     "cores": v["cpu"]["cores"] if "cpu" in v else 0}
    return out


def steady_load(with_churn: ScaleResult, baseline: ScaleResult) -> pd.DataFrame:
    """The churn's own load per server: the counts of ``with_churn`` less those of ``baseline`` (the same
    shape and seed without churn), per second of :func:`churn_window_ms`.  One row per server: ``server,
    instances_per_s, messages_per_s`` (answers or stream messages) and ``utilisation`` (busy time added by
    the churn over the window and the server's cores; NaN when sending is free), busiest first.

    >>> kw = dict(hosts=40, steady_ms=8_000.0, settle_ms=8_000.0)
    >>> base = run(ScaleShape.sized(600, **kw), seed=2)
    >>> churn = run(ScaleShape.sized(600, churn_per_s_per_1000=5.0, **kw), seed=2)
    >>> d = steady_load(churn, base)
    >>> bool((d["messages_per_s"] == d["instances_per_s"]).all())  # streaming: one instance per event
    True
    """
    if baseline.shape.churn_per_s_per_1000 != 0:
        raise ValueError("the baseline must be a run without churn")
    if _with_churn(with_churn.shape) != baseline.shape:
        raise ValueError("the baseline must be the same shape without churn")
    window_s = churn_window_ms(with_churn.shape) / 1_000.0
    a, b = _server_counts(with_churn), _server_counts(baseline)
    rows = []
    for name in a:
        cores = a[name]["cores"]
        rows.append({"server": name,
                     "instances_per_s": (a[name]["instances"] - b[name]["instances"]) / window_s,
                     "messages_per_s": (a[name]["messages"] - b[name]["messages"]) / window_s,
                     "utilisation": ((a[name]["busy_ms"] - b[name]["busy_ms"]) / (window_s * 1_000.0 * cores)
                                     if cores else math.nan)})
    return pd.DataFrame(rows).sort_values(["instances_per_s", "server"], ascending=[False, True],
                                          ignore_index=True)


def _with_churn(shape: ScaleShape, churn: float = 0.0) -> ScaleShape:
    """``shape`` with another churn rate."""
    return replace(shape, churn_per_s_per_1000=churn)


def load_vs_size(sizes: Iterable[int] = (2_000, 5_000, 10_000), modes: Iterable[str] = MODES,
                 churn_per_s_per_1000: float = 2.0, seed: int = 1, steady_ms: float = 12_000.0,
                 settle_ms: float = 5_000.0, **shape_kw: Any) -> pd.DataFrame:
    """The servers' steady-state load under background churn, per size and mode (see :func:`steady_load`):
    the busiest server's ``instances_per_s``, ``messages_per_s`` and ``utilisation``, and the totals over
    all servers.  Two runs per point (with and without churn).  ``shape_kw`` go to :meth:`ScaleShape.sized`;
    with ``blocking_mode="default"`` the busiest server (the leader) sends all of blocking's total, with the
    default ``"stale"`` about a fifth of it, as streaming's busiest server does (see the module doc).

    >>> d = load_vs_size(sizes=(600,), churn_per_s_per_1000=5.0, hosts=40, steady_ms=8_000.0, settle_ms=8_000.0)
    >>> s, b = d.set_index("discovery").loc["streaming"], d.set_index("discovery").loc["blocking"]
    >>> bool(b["total_instances_per_s"] > 20 * s["total_instances_per_s"])  # a whole service per answer
    True
    """
    rows = []
    for n in sizes:
        for mode in modes:
            shape = _shape(n, mode, churn_per_s_per_1000=churn_per_s_per_1000, steady_ms=steady_ms,
                           settle_ms=settle_ms, **shape_kw)
            r, r0 = run(shape, seed=seed), run(_with_churn(shape), seed=seed)
            d = steady_load(r, r0)
            top = d.iloc[0]
            rows.append({"instances": shape.instances, "discovery": mode,
                         "churn_per_s_per_1000": churn_per_s_per_1000, "busiest_server": top["server"],
                         "instances_per_s": float(top["instances_per_s"]),
                         "messages_per_s": float(top["messages_per_s"]),
                         "total_instances_per_s": float(d["instances_per_s"].sum()),
                         "total_messages_per_s": float(d["messages_per_s"].sum()),
                         "utilisation": float(top["utilisation"]),
                         "wall_s": r.summary["wall_s"] + r0.summary["wall_s"]})
    return pd.DataFrame(rows, columns=LOAD_COLUMNS)


def churn_sweep(instances: int = 5_000, churns: Iterable[float] = (0.0, 4.0, 8.0, 12.0, 16.0, 24.0),
                modes: Iterable[str] = MODES, server_cores: int = 2, seed: int = 1, steady_ms: float = 12_000.0,
                settle_ms: float = 5_000.0, **shape_kw: Any) -> pd.DataFrame:
    """At one size, per churn rate and mode: the busiest server's steady-state ``utilisation`` (see
    :func:`steady_load`; 0 at churn 0 by definition; which server is busiest depends on ``blocking_mode``, see
    the module doc), its ``instances_per_s`` and ``messages_per_s``, its
    processors' wait (``mean_wait_ms``, ``max_wait_ms`` over the whole run, first answers included, and
    ``backlog_ms`` at the end), the whole run's ``run_utilisation``, and the deploy's propagation to every
    sidecar (``p50_ms``, ``p99_ms``, ``max_ms``, ``all_have_it``).  The churn-0 run of each mode is the
    baseline of the others (run once even if 0 is not in ``churns``).  ``blocking_mode`` (a column too) is the
    shapes' (``"stale"`` unless ``shape_kw`` says otherwise; None in streaming's rows, which do not use it).

    >>> d = churn_sweep(instances=600, churns=(0.0, 5.0), modes=("blocking",), server_cores=1, hosts=40,
    ...                 steady_ms=8_000.0, settle_ms=8_000.0, blocking_mode="default")
    >>> d[["churn_per_s_per_1000", "all_have_it", "blocking_mode"]].values.tolist()
    [[0.0, True, 'default'], [5.0, True, 'default']]
    >>> bool(d["utilisation"].iloc[1] > 0.0 == d["utilisation"].iloc[0])
    True
    """
    churns = sorted(float(c) for c in churns)
    rows = []
    for mode in modes:
        base_shape = _shape(instances, mode, server_cores=server_cores, steady_ms=steady_ms, settle_ms=settle_ms,
                            **shape_kw)
        base = run(base_shape, seed=seed)
        for c in churns:
            r = base if c == 0 else run(_with_churn(base_shape, c), seed=seed)
            d = steady_load(r, base)
            top = d.iloc[0]
            s = r.summary
            cpu, p = s["server_cpu"], s["propagation_ms"]
            rows.append({"instances": base_shape.instances, "discovery": mode, "churn_per_s_per_1000": c,
                         "server_cores": server_cores, "busiest_server": top["server"],
                         "utilisation": float(top["utilisation"]), "instances_per_s": float(top["instances_per_s"]),
                         "messages_per_s": float(top["messages_per_s"]), "run_utilisation": cpu["utilisation"],
                         "mean_wait_ms": cpu["mean_wait_ms"], "max_wait_ms": cpu["max_wait_ms"],
                         "backlog_ms": cpu["backlog_ms"], "p50_ms": p["p50"], "p99_ms": p["p99"], "max_ms": p["max"],
                         "all_have_it": s["all_have_it"], "sidecars": s["sidecars_watching"], "wall_s": s["wall_s"],
                         "blocking_mode": base_shape.blocking_mode if mode == "blocking" else None})
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def knee(sweep: pd.DataFrame, discovery: str = "blocking", below: float = 0.7,
         blocking_mode: str | None = None) -> dict[str, float]:
    """The offered load of ``discovery`` in a :func:`churn_sweep`: the least-squares line through the origin of
    utilisation against churn, fitted on the points with utilisation under ``below`` (where the server keeps
    up and utilisation is proportional to churn), and the churn where it reaches 1 (``knee_churn``; inf if
    no point has churn).  ``slope`` is utilisation per unit of churn; ``points`` how many were fitted.
    ``blocking_mode`` keeps only the rows of that mode (for a sweep that concatenates several; needs the
    column).

    >>> d = pd.DataFrame({"discovery": "blocking", "churn_per_s_per_1000": [0, 2, 4, 8, 16],
    ...                   "utilisation": [0.0, 0.1, 0.2, 0.4, 0.9]})
    >>> knee(d)
    {'slope': 0.05, 'knee_churn': 20.0, 'points': 4}
    """
    keep = (sweep["discovery"] == discovery) & (sweep["utilisation"] < below)
    if blocking_mode is not None:
        keep &= sweep["blocking_mode"] == blocking_mode
    g = sweep[keep]
    x, y = g["churn_per_s_per_1000"].to_numpy(float), g["utilisation"].to_numpy(float)
    sxx = float(np.sum(x * x))
    slope = round(float(np.sum(x * y)) / sxx, 12) if sxx > 0 else math.nan
    return {"slope": slope, "knee_churn": 1.0 / slope if slope and slope > 0 else math.inf, "points": int(len(g))}
