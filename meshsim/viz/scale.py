"""Pictures of the Consul Global Scale Benchmark's shape: propagation CDFs, server load against size, the knee.

They draw the tables of :mod:`meshsim.experiments.global_scale_lab`:

* :func:`propagation_cdf`: the share of sidecars that have a deploy against the
  time since its commit, one line per size and discovery mode (colour: size,
  solid streaming, dashed blocking), with HashiCorp's published "under one
  second" marked; the right panel zooms in on the data;
* :func:`server_load`: the busiest server's instances sent per second and all
  servers' answers or stream messages per second against the number of
  instances, log-log;
* :func:`churn_knee`: the busiest server's utilisation and the deploy's p99
  propagation against the churn rate, with the offered load's line and the
  knee where it reaches 1; blocking queries of several ``blocking_mode`` s
  (stale: any server answers; default: the leader) as separate lines.

>>> import matplotlib, pandas as pd
>>> matplotlib.use("Agg")
>>> t = pd.DataFrame({"instances": 600, "discovery": ["streaming", "blocking"] * 3,
...                   "propagation_ms": [201.0, 202.0, 203.0, 204.0, 205.0, 230.0]})
>>> fig = propagation_cdf(t)
>>> [ax.get_xlabel() for ax in fig.axes]
['time since the commit (ms)', 'time since the commit (ms)']
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .style import PALETTE, color_for, new_figure

__all__ = ["churn_knee", "propagation_cdf", "server_load"]

#: HashiCorp's published result: every watching sidecar had the change in under one second
PUBLISHED_MS = 1_000.0
#: line style per discovery mode
MODE_STYLE = {"streaming": "-", "blocking": "--"}
#: the knee's vertical line
KNEE_COLOR = "#888888"
_MARKERS = {"streaming": "o", "blocking": "s"}
#: line style of blocking queries per blocking_mode, when a sweep has that column
BLOCKING_MODE_STYLE = {"default": "--", "consistent": "--", "stale": "-."}


def _plain(axis: Any, minor: bool = True) -> None:
    """Plain numbers (1,000 not 10^3) on a log axis; minor ticks labelled too, or not at all."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fmt = FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1 else f"{v:g}")
    axis.set_major_formatter(fmt)
    axis.set_minor_formatter(fmt if minor else NullFormatter())


def _mode_color(mode: str) -> str:
    return color_for(4) if mode == "streaming" else color_for(5)


def _ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted values and the share of all values (NaN ones included, never reached) at or below each."""
    v = np.sort(values[~np.isnan(values)])
    return v, np.arange(1, v.size + 1) / max(values.size, 1)


def propagation_cdf(table: Any, limit_ms: float = PUBLISHED_MS, title: str | None = None) -> Any:
    """The propagation CDF of a :func:`~meshsim.experiments.global_scale_lab.propagation_table`: left, from 0 to
    past ``limit_ms`` (marked); right, zoomed in on the data.  Returns the Figure."""
    fig, (full, zoom) = new_figure(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1, 1.2]})
    sizes = sorted(table["instances"].unique())
    lo, hi = math.inf, -math.inf
    for i, n in enumerate(sizes):
        for mode, g in table[table["instances"] == n].groupby("discovery", sort=False):
            x, y = _ecdf(g["propagation_ms"].to_numpy(float))
            if not x.size:
                continue
            lo, hi = min(lo, x[0]), max(hi, x[-1])
            label = f"{n:,} instances, {mode}"
            for ax in (full, zoom):
                ax.step(np.r_[0.0 if ax is full else x[0], x], np.r_[0.0, y], where="post", color=color_for(i),
                        linestyle=MODE_STYLE.get(mode, ":"), label=label)
    right = max(limit_ms * 1.15, hi * 1.05 if math.isfinite(hi) else 0.0)
    full.set_xlim(0, right)
    full.axvline(limit_ms, color=PALETTE[0], linewidth=1)
    full.text(limit_ms, 0.04, f" HashiCorp's published\n under {limit_ms / 1000:g} s", fontsize=8, ha="right"
              if right - limit_ms < 0.2 * right else "left", va="bottom")
    if math.isfinite(lo):
        pad = max(0.5, 0.05 * (hi - lo))
        zoom.set_xlim(lo - pad, hi + pad)
        if lo - pad <= limit_ms <= hi + pad:
            zoom.axvline(limit_ms, color=PALETTE[0], linewidth=1)
    for ax in (full, zoom):
        ax.set_xlabel("time since the commit (ms)")
        ax.set_ylim(0, 1.02)
    full.set_ylabel("share of sidecars with the deploy")
    zoom.set_title("zoomed in", fontsize=9)
    zoom.legend(loc="lower right")
    fig.suptitle(title or "After a deploy: when each sidecar's config holds it")
    fig.tight_layout()
    return fig


def server_load(load: Any, title: str | None = None) -> Any:
    """Server load against size from :func:`~meshsim.experiments.global_scale_lab.load_vs_size`: left, the
    busiest server's instances sent per second; right, answers (blocking) or stream messages (streaming) per
    second over all servers; log-log, one line per mode.  Returns the Figure.

    >>> import matplotlib, pandas as pd
    >>> matplotlib.use("Agg")
    >>> d = pd.DataFrame({"instances": [1000, 2000] * 2, "discovery": ["streaming"] * 2 + ["blocking"] * 2,
    ...                   "instances_per_s": [10.0, 20.0, 4000.0, 8000.0], "total_messages_per_s": [50.0, 100.0] * 2,
    ...                   "churn_per_s_per_1000": 2.0})
    >>> len(server_load(d).axes[0].lines)
    2
    """
    fig, (left, right) = new_figure(1, 2, figsize=(11, 3.8))
    for mode, g in load.groupby("discovery", sort=False):
        g = g.sort_values("instances")
        style = dict(color=_mode_color(mode), linestyle=MODE_STYLE.get(mode, ":"), marker=_MARKERS.get(mode, "^"),
                     label=mode)
        left.plot(g["instances"], g["instances_per_s"], **style)
        right.plot(g["instances"], g["total_messages_per_s"], **style)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("instances")
        ax.set_xticks(sorted(load["instances"].unique()))
        _plain(ax.xaxis, minor=False)
        lo, hi = ax.get_ylim()
        _plain(ax.yaxis, minor=lo > 0 and hi / lo < 10)  # less than a decade: label the minor ticks too
        ax.legend()
    left.set_ylabel("busiest server: instances sent per s")
    right.set_ylabel("all servers: answers or messages per s")
    churn = load["churn_per_s_per_1000"].iloc[0] if len(load) else math.nan
    fig.suptitle(title or f"Steady-state server load with {churn:g} health flaps per s per 1,000 instances")
    fig.tight_layout()
    return fig


def _sweep_lines(sweep: Any) -> list[tuple[str, str, Any]]:
    """(mode, label, rows) per line: one per discovery mode, blocking split by ``blocking_mode`` if the column
    is there (label ``blocking, stale``)."""
    out = []
    for mode, g in sweep.groupby("discovery", sort=False):
        if mode == "blocking" and "blocking_mode" in g:
            out += [(mode, f"blocking, {bm}", h) for bm, h in g.groupby("blocking_mode", sort=False)]
        else:
            out.append((mode, mode, g))
    return out


def churn_knee(sweep: Any, knee: dict[str, Any] | None = None, limit_ms: float = PUBLISHED_MS,
               title: str | None = None) -> Any:
    """A :func:`~meshsim.experiments.global_scale_lab.churn_sweep` against churn: left, the busiest server's
    utilisation (1 marked; ``knee``, from :func:`~meshsim.experiments.global_scale_lab.knee`, adds blocking's
    offered-load line and the churn where it reaches 1; a dict of such dicts by label, e.g. ``{"default": ...,
    "stale": ...}``, adds one line each); right, the deploy's p99 propagation (``limit_ms`` marked), log
    scale.  Blocking queries of different ``blocking_mode`` s (a column of the sweep) are separate lines.
    Returns the Figure.

    >>> import matplotlib, pandas as pd
    >>> matplotlib.use("Agg")
    >>> d = pd.DataFrame({"discovery": ["blocking"] * 3, "churn_per_s_per_1000": [0.0, 5.0, 20.0],
    ...                   "utilisation": [0.0, 0.4, 1.0], "p99_ms": [205.0, 230.0, 1500.0]})
    >>> fig = churn_knee(d, knee={"slope": 0.08, "knee_churn": 12.5, "points": 2})
    >>> fig.axes[0].get_ylabel()
    'busiest server: utilisation'
    >>> two = pd.concat([d.assign(blocking_mode="default"),
    ...                  d.assign(blocking_mode="stale", utilisation=d["utilisation"] / 5)])
    >>> knees = {"default": {"slope": 0.08, "knee_churn": 12.5}, "stale": {"slope": 0.016, "knee_churn": 62.5}}
    >>> fig = churn_knee(two, knee=knees)
    >>> [line.get_label() for line in fig.axes[0].get_lines()][:2]
    ['blocking, default', 'blocking, stale']
    """
    fig, (left, right) = new_figure(1, 2, figsize=(11, 3.8))
    for mode, label, g in _sweep_lines(sweep):
        g = g.sort_values("churn_per_s_per_1000")
        bm = label.partition(", ")[2]
        style = dict(color=color_for(6) if bm == "stale" else _mode_color(mode),
                     linestyle=BLOCKING_MODE_STYLE.get(bm, MODE_STYLE.get(mode, ":")),
                     marker=_MARKERS.get(mode, "^"), label=label)
        left.plot(g["churn_per_s_per_1000"], g["utilisation"], **style)
        right.plot(g["churn_per_s_per_1000"], g["p99_ms"], **style)
    top = float(sweep["churn_per_s_per_1000"].max()) if len(sweep) else 1.0
    left.axhline(1.0, color=PALETTE[0], linewidth=1)
    knees = {"": knee} if knee and "slope" in knee else dict(knee or {})
    for i, (name, kn) in enumerate(knees.items()):
        if not kn or not math.isfinite(kn.get("slope", math.nan)):
            continue
        xs = np.array([0.0, top])
        left.plot(xs, kn["slope"] * xs, color=PALETTE[0], linestyle=":" if i == 0 else (0, (1, 4)), linewidth=1,
                  label=f"blocking{', ' + name if name else ''}, offered (fit below the knee)")
        k = kn.get("knee_churn", math.inf)
        if math.isfinite(k) and k <= top:
            for ax in (left, right):
                ax.axvline(k, color=KNEE_COLOR, linewidth=1)
            left.text(k, 0.05 + 0.1 * i, f" knee{' (' + name + ')' if name else ''} ~{k:.1f}", color=KNEE_COLOR,
                      fontsize=8)
    right.axhline(limit_ms, color=PALETTE[0], linewidth=1)
    right.text(0, limit_ms, f"HashiCorp's published {limit_ms / 1000:g} s", fontsize=8, va="bottom")
    right.set_yscale("log")
    _plain(right.yaxis)
    left.set_ylabel("busiest server: utilisation")
    right.set_ylabel("deploy's p99 propagation (ms)")
    for ax in (left, right):
        ax.set_xlabel("churn (health flaps per s per 1,000 instances)")
        ax.legend(loc="upper left" if ax is left else "center right")
    fig.suptitle(title or "Where blocking queries stop keeping up")
    fig.tight_layout()
    return fig
