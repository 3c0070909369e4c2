"""The dashboard's pictures, in the house style, drawn without pyplot.

Figures are plain ``matplotlib.figure.Figure`` objects (no pyplot): nothing
is registered with pyplot's figure manager, so re-drawing on every slider
move neither leaks figures nor makes the notebook's inline backend show
stray copies; :func:`png` renders one to PNG bytes for an ``ipywidgets.Image``.

>>> import meshsim
>>> res = meshsim.run({"run": {"requests": 400}, "network": {"enabled": False},
...                    "services": {"web": {"service_time": "1ms", "calls": ["db"]},
...                                 "db": {"service_time": "2ms"}},
...                    "workloads": {"u": {"rate": 100, "target": "web"}}}, seed=1)
>>> fig = dashboard_figure(res)
>>> [ax.get_title() for ax in fig.axes]
['latency CDF', 'mean time of a call, per service']
>>> png(fig)[:4] == b"\\x89PNG"
True
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ..viz.style import PALETTE, PART_COLORS, color_for, house_style
from .tables import PARTS, breakdown_frame

#: size and resolution of the dashboard picture (small enough to render in well under 0.3 s)
FIGSIZE = (10.0, 3.4)
DPI = 80


#: fixed margins instead of tight_layout, which costs a second full draw of every tick label
MARGINS = dict(left=0.065, right=0.985, bottom=0.16, top=0.9, wspace=0.3)


def _figure(ncols: int, figsize=FIGSIZE, dpi: int = DPI):
    from matplotlib.figure import Figure

    with house_style():
        fig = Figure(figsize=figsize, dpi=dpi)
        axes = fig.subplots(1, ncols, gridspec_kw=MARGINS)
    return fig, axes


def cdf_points(lat: np.ndarray, max_points: int = 800) -> tuple[np.ndarray, np.ndarray]:
    """``(x, F(x))`` of the empirical CDF, thinned to about ``max_points`` (every point of the top 1% kept).

    >>> x, f = cdf_points(np.arange(10.0, 0.0, -1.0))
    >>> x[:3].tolist(), float(f[-1])
    ([1.0, 2.0, 3.0], 1.0)
    """
    xs = np.sort(np.asarray(lat, dtype=float))
    n = xs.size
    fs = np.arange(1, n + 1) / n if n else np.empty(0)
    if n > max_points:
        tail = max(n - n // 100, 0)
        idx = np.unique(np.concatenate([np.linspace(0, tail, max_points).astype(int), np.arange(tail, n)]))
        xs, fs = xs[idx], fs[idx]
    return xs, fs


def _cdf(ax, lat: np.ndarray, **kw) -> None:
    xs, fs = cdf_points(lat)
    if xs.size:
        ax.plot(xs, fs, drawstyle="steps-post", **kw)


def dashboard_figure(result: Any, previous: Any = None, title: str | None = None):
    """Latency CDF (log x, p50 and p99 marked, the previous run dashed grey) and per-service stacked bars.

    The bars are :func:`~meshsim.widgets.tables.breakdown_frame`: mean network,
    queue, service and downstream time of one call to each service.
    """
    fig, (ax1, ax2) = _figure(2)
    with house_style():
        if previous is not None:
            _cdf(ax1, previous.latencies(), color="#999999", linestyle="--", linewidth=1, label="previous run")
        lat = result.latencies()
        _cdf(ax1, lat, color=color_for(4), linewidth=1.6, label="this run")
        for key, style in (("p50", "--"), ("p99", ":")):
            v = result.summary["latency_ms"][key]
            if v is not None:
                ax1.axvline(v, color=PALETTE[0], linestyle=style, linewidth=1, label=f"{key} {v:.3g} ms")
        if lat.size:
            from matplotlib.ticker import NullLocator

            ax1.set_xscale("log")
            ax1.xaxis.set_minor_locator(NullLocator())  # minor log ticks cost a third of the drawing time
        ax1.set_xlabel("latency (ms)")
        ax1.set_ylabel("fraction of requests")
        ax1.set_title("latency CDF")
        if ax1.get_legend_handles_labels()[0]:
            ax1.legend(loc="lower right")

        bd = breakdown_frame(result)
        names = list(bd.index)
        left = np.zeros(len(names))
        for part in PARTS:
            vals = bd[f"{part}_ms"].fillna(0.0).to_numpy()
            ax2.barh(names, vals, left=left, color=PART_COLORS[part], label=part, height=0.6)
            left += vals
        ax2.invert_yaxis()
        ax2.set_xlabel("mean time of a call (ms)")
        ax2.set_title("mean time of a call, per service")
        ax2.legend(loc="lower right")
        if title:
            fig.suptitle(title)
    return fig


def comparison_figure(results: dict[str, list], metric: str = "p99_ms", frame: Any = None):
    """Latency CDFs of each variant (all seeds pooled) and, when ``frame`` (the per-run values) is given,
    ``metric`` per seed with a line joining the same seed across variants (the pairing)."""
    fig, (ax1, ax2) = _figure(2, figsize=(10.0, 3.6), dpi=90)
    with house_style():
        for i, (label, runs) in enumerate(results.items()):
            lat = np.concatenate([r.latencies() for r in runs]) if runs else np.empty(0)
            _cdf(ax1, lat, color=color_for(i), linewidth=1.5, label=label)
        ax1.set_xscale("log")
        ax1.set_xlabel("latency (ms)")
        ax1.set_ylabel("fraction of requests")
        ax1.set_title("latency CDF (seeds pooled)")
        ax1.legend(loc="lower right")
        if frame is not None:
            labels = list(results)
            wide = frame.pivot(index="seed", columns="variant", values=metric)[labels]
            xs = np.arange(len(labels))
            for seed, row in wide.iterrows():
                ax2.plot(xs, row.to_numpy(dtype=float), color="#BBBBBB", linewidth=1, zorder=1)
            for i, label in enumerate(labels):
                ax2.scatter(np.full(len(wide), i), wide[label], color=color_for(i), zorder=2)
            ax2.set_xticks(xs, labels)
            unit = "ms" if metric.endswith("_ms") else "req/s" if metric.endswith("_rps") else "fraction"
            ax2.set_ylabel(f"{metric.removesuffix('_ms').removesuffix('_rps')} ({unit})")
            ax2.set_title(f"{metric} per seed (lines join a seed)")
        else:
            ax2.set_visible(False)
    return fig


def png(fig, dpi: int | None = None) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi)
    return buf.getvalue()
