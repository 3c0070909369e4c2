"""Paired differences between the points of a sweep and a baseline point.

For every point other than the baseline and every metric, the difference
``x(point, r) - x(baseline, r)`` is taken per replication r, and its mean and
Student-t confidence interval are reported.  In a sweep with ``paired=True``
replication r of every point runs on the same seed (common random numbers),
so much of the noise cancels and the interval is narrower than the one from
independent runs; without pairing the differences are still valid, only wider.

>>> import meshsim
>>> base = {"run": {"requests": 300}, "network": {"enabled": False},
...         "services": {"s": {"workers": 2, "service_time": "5ms"}}, "workloads": {"w": {"rate": 100, "target": "s"}}}
>>> res = meshsim.sweep(base, {"services.s.workers": [1, 2]}, replications=3, paired=True,
...                     metrics=["latency_ms.mean"], backend="serial", progress=False)
>>> d = res.differences({"services.s.workers": 1})
>>> list(d.columns)
['services.s.workers', 'n', 'latency_ms.mean.diff', 'latency_ms.mean.diff_ci_low', 'latency_ms.mean.diff_ci_high']
>>> int(d["n"].iloc[0]), bool(d["latency_ms.mean.diff"].iloc[0] < 0)   # a second worker cuts the mean
(3, True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .labels import value_label


def _key(row, parameters: list[str]) -> tuple[str, ...]:
    return tuple(value_label(row[p].item() if hasattr(row[p], "item") else row[p]) for p in parameters)


def paired_differences(runs, parameters: list[str], baseline: dict[str, Any] | None = None,
                       metrics: list[str] | None = None, confidence: float = 0.95):
    """Mean paired difference to ``baseline`` (a point's values; default the first point) with its CI, per point."""
    import pandas as pd

    from ..stats import t_quantile
    from .labels import labelled

    if len(runs) == 0:
        return pd.DataFrame()
    ok = runs[runs["error"].isna()] if "error" in runs else runs
    skip = set(parameters) | {"replication", "seed", "error", "key", "meshsim_version"}
    cols = metrics or [c for c in ok.columns if c not in skip and pd.api.types.is_numeric_dtype(ok[c])]
    keys = [_key(row, parameters) for _, row in ok.iterrows()]
    if baseline is None:
        base_key = keys[0]
    else:
        unknown = [p for p in baseline if p not in parameters]
        if unknown or len(baseline) != len(parameters):
            raise ValueError(f"baseline must give a value for each of {parameters}, got {baseline!r}")
        base_key = tuple(value_label(baseline[p]) for p in parameters)
    if base_key not in keys:
        raise ValueError(f"baseline point {dict(zip(parameters, base_key))} has no successful runs in this sweep")
    shown = labelled(ok, parameters)
    base_rows = ok[[k == base_key for k in keys]].set_index("replication")
    rows = []
    order = list(dict.fromkeys(keys))
    for point in order:
        if point == base_key:
            continue
        mask = [k == point for k in keys]
        grp = ok[mask].set_index("replication")
        row = {p: shown[mask][p].iloc[0] for p in parameters}
        common = grp.index.intersection(base_rows.index)
        row["n"] = len(common)
        for c in cols:
            d = (grp.loc[common, c].to_numpy(dtype=float) - base_rows.loc[common, c].to_numpy(dtype=float))
            d = d[~np.isnan(d)]
            m = float(d.mean()) if d.size else math.nan
            half = (t_quantile(0.5 + confidence / 2, d.size - 1) * float(d.std(ddof=1)) / math.sqrt(d.size)
                    if d.size > 1 else math.nan)
            row[f"{c}.diff"] = m
            row[f"{c}.diff_ci_low"] = m - half
            row[f"{c}.diff_ci_high"] = m + half
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = ["paired_differences"]
