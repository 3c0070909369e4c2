"""What ``meshsim sweep`` shows: a compact table of chosen metrics with their intervals, and a plot.

The table has one row per point: the parameter values (labels for lists,
dicts and None), the number of successful replications ``n``, and per metric
``mean ±half-width`` of its 95% confidence interval over replications.  Only
the chosen columns are printed, so nothing is cut with ``...``.

>>> import pandas as pd
>>> agg = pd.DataFrame({"rate": [10, 20], "n": [3, 3], "latency_ms.p99": [12.0, 30.5],
...                     "latency_ms.p99_ci_low": [11.0, 28.5], "latency_ms.p99_ci_high": [13.0, 32.5]})
>>> print(format_table(agg, ["rate"], ["latency_ms.p99"]))
rate  n latency_ms.p99
  10  3          12 ±1
  20  3        30.5 ±2
>>> plot_problem({"rate": [10, 20]}), plot_problem({"a": [[1], [2]]})
(None, '--plot needs one numeric parameter (latency vs load) or two parameters (a heat map); a has values that are not numbers')
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import ScenarioError, closest
from .labels import labelled, value_label

#: The metrics shown when none are chosen (those the sweep has).
DEFAULT_METRICS = ("latency_ms.p50", "latency_ms.p99", "latency_ms.mean")


def metric_names(agg, parameters: list[str]) -> list[str]:
    """The metrics of an aggregate (its columns other than parameters, ``n`` and the CI bounds)."""
    skip = set(parameters) | {"n"}
    return [c for c in agg.columns if c not in skip and not c.endswith(("_ci_low", "_ci_high"))]


def choose_metrics(available: list[str], chosen: list[str] | None = None) -> list[str]:
    """``chosen`` checked against ``available``; by default the latency p50, p99 and mean the sweep has."""
    if chosen:
        for m in chosen:
            if m not in available:
                raise ScenarioError("--metric", f"unknown metric {m!r}; this sweep has {', '.join(available) or 'none'}",
                                    closest(m, available))
        return list(dict.fromkeys(chosen))
    return [m for m in DEFAULT_METRICS if m in available] or available[:3]


def _cell(mean: float, low: float, high: float) -> str:
    if not math.isfinite(mean):
        return "-"
    half = (high - low) / 2
    return f"{mean:.4g}" if not math.isfinite(half) else f"{mean:.4g} ±{half:.3g}" if half >= 1 else f"{mean:.4g} ±{half:.2g}"


def format_table(agg, parameters: list[str], metrics: list[str]) -> str:
    """The compact table (see the module doc)."""
    import pandas as pd

    if len(agg) == 0:
        return "(no successful runs)"
    shown = labelled(agg, parameters)
    table = pd.DataFrame({p: [value_label(v) for v in shown[p]] for p in parameters})
    table["n"] = list(agg["n"]) if "n" in agg else ""
    for m in metrics:
        lo, hi = agg.get(f"{m}_ci_low"), agg.get(f"{m}_ci_high")
        table[m] = [_cell(float(v), float(lo.iloc[i]) if lo is not None else math.nan,
                          float(hi.iloc[i]) if hi is not None else math.nan) for i, v in enumerate(agg[m])]
    return table.to_string(index=False)


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def plot_problem(grid: dict[str, list[Any]]) -> str | None:
    """Why ``--plot`` cannot draw this grid (parameter -> its values), or None if it can."""
    names = list(grid)
    if len(names) == 1 and _numeric(list(grid[names[0]])):
        return None
    if len(names) == 2:
        return None
    why = (f"{names[0]} has values that are not numbers" if len(names) == 1
           else f"this sweep has {len(names)} parameters")
    return f"--plot needs one numeric parameter (latency vs load) or two parameters (a heat map); {why}"


def sweep_figure(agg, parameters: list[str], metric: str):
    """``(figure, file name)``: :func:`meshsim.plots.latency_vs_load` for one parameter, a heat map for two."""
    from ..plots import heatmap, latency_vs_load

    shown = labelled(agg, parameters)
    if len(parameters) == 1:
        return latency_vs_load(shown, parameters[0], metric=metric), "latency_vs_load.png"
    if len(parameters) == 2:
        return heatmap(shown, parameters[0], parameters[1], metric), "heatmap.png"
    raise ValueError(plot_problem({p: [] for p in parameters}))


def write_plot(agg, parameters: list[str], metric: str, directory: str | Path) -> Path:
    """latency_vs_load.png (one parameter) or heatmap.png (two) of ``metric``, written in ``directory``."""
    import matplotlib.pyplot as plt

    fig, name = sweep_figure(agg, parameters, metric)
    path = Path(directory) / name
    try:
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path


__all__ = ["DEFAULT_METRICS", "choose_metrics", "format_table", "metric_names", "plot_problem", "sweep_figure",
           "write_plot"]
