"""Matplotlib figures of results (imported only when plotting).

>>> import meshsim, matplotlib
>>> matplotlib.use("Agg")
>>> res = meshsim.run({"run": {"requests": 500}, "network": {"enabled": False},
...                    "services": {"web": {"service_time": "1ms"}},
...                    "workloads": {"u": {"rate": 100, "target": "web"}}})
>>> fig = latency_figure(res)
>>> len(fig.axes)
2
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .viz.style import CI_ALPHA, PALETTE, color_for, new_figure


def latency_figure(result: Any, title: str | None = None):
    """Two panels: latency histogram (log x) and latency CDF, with mean/p50/p99 marked."""
    lat = result.latencies()
    s = result.summary["latency_ms"]
    fig, (ax1, ax2) = new_figure(1, 2, figsize=(11, 4))
    if lat.size:
        lo = max(lat.min(), 1e-3)
        bins = np.logspace(np.log10(lo), np.log10(max(lat.max(), lo * 1.01)), 60)
        ax1.hist(lat, bins=bins, color=PALETTE[5], alpha=0.85)
        ax1.set_xscale("log")
        xs = np.sort(lat)
        ax2.plot(xs, np.arange(1, xs.size + 1) / xs.size, color=PALETTE[5])
        for key, style in (("mean", "-"), ("p50", "--"), ("p99", ":")):
            v = s[key]
            if v is not None:
                for ax in (ax1, ax2):
                    ax.axvline(v, color=PALETTE[0], linestyle=style, linewidth=1, label=f"{key} {v:.4g} ms")
    ax1.set_xlabel("latency (ms)")
    ax1.set_ylabel("requests")
    ax1.set_title("latency histogram")
    ax1.legend(fontsize=8)
    ax2.set_xlabel("latency (ms)")
    ax2.set_ylabel("fraction of requests")
    ax2.set_title("latency CDF")
    ax2.grid(alpha=0.3)
    fig.suptitle(title or f"{result.summary['scenario']} (seed {result.seed})")
    fig.tight_layout()
    return fig


def utilisation_figure(result: Any):
    """Busy workers and queued requests per service over time (summed over its instances), from the timeseries table."""
    ts = result.timeseries
    fig, ax = new_figure(figsize=(9, 4))
    for i, (svc, grp) in enumerate(ts.groupby("service", observed=True)):
        per_t = grp.groupby("time_ms")[["busy", "queue"]].sum()
        ax.plot(per_t.index / 1000.0, per_t["busy"], color=color_for(i), label=f"{svc} busy")
        ax.plot(per_t.index / 1000.0, per_t["queue"], color=color_for(i), linestyle="--", label=f"{svc} queued")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("busy workers, queued requests")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# -- comparison plots for sweeps ------------------------------------------------------------

_UNITS = {"_ms": "ms", "_rps": "req/s", "utilisation": "fraction busy"}


def _label(name: str) -> str:
    """Axis label with units: 'latency_ms.p99' -> 'latency p99 (ms)'."""
    for suffix, unit in _UNITS.items():
        if suffix in name:
            base = name.replace("_ms", "").replace("_rps", "").replace(".", " ")
            return f"{base} ({unit})"
    if name.endswith(".rate") or name.endswith("rate"):
        return f"{name} (req/s)"
    return name


def knee(x, y, k: float = 2.0) -> float:
    """The load where ``y`` first exceeds ``k`` times its value at the lowest load (linear interpolation).

    NaN when it never does.

    >>> knee([100, 200, 300, 400], [10, 12, 18, 40], k=2.0)
    309.09090909090907
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    threshold = k * ys[0]
    for i in range(1, len(xs)):
        if ys[i] > threshold:
            return float(xs[i - 1] + (threshold - ys[i - 1]) * (xs[i] - xs[i - 1]) / (ys[i] - ys[i - 1]))
    return float("nan")


def _groups(agg, by: str | None):
    if by is None:
        return [(None, agg)]
    return list(agg.groupby(by, sort=True))


def latency_vs_load(agg, load: str, metric: str = "latency_ms.p99", by: str | None = None, k: float = 2.0, ax=None):
    """Latency against offered load from a sweep aggregate, with 95% CI bands and the knee marked."""
    fig, ax = (ax.figure, ax) if ax is not None else new_figure(figsize=(7, 4.5))
    for value, grp in _groups(agg, by):
        grp = grp.sort_values(load)
        kx = knee(grp[load], grp[metric], k)
        label = (f"{by}={value}" if by else metric) + (f" (knee {kx:.4g})" if np.isfinite(kx) else "")
        line, = ax.plot(grp[load], grp[metric], marker="o", label=label)
        lo, hi = f"{metric}_ci_low", f"{metric}_ci_high"
        if lo in grp and hi in grp:
            ax.fill_between(grp[load], grp[lo], grp[hi], color=line.get_color(), alpha=CI_ALPHA)
        if np.isfinite(kx):
            ax.axvline(kx, color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xlabel(_label(load))
    ax.set_ylabel(_label(metric))
    ax.set_title(f"{metric} vs {load} (knee: {k:g}x the low-load value)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def throughput_vs_offered(agg, offered: str, metric: str = "throughput_rps", by: str | None = None, ax=None):
    """Measured throughput against offered load, with the y = x line of a system that keeps up."""
    fig, ax = (ax.figure, ax) if ax is not None else new_figure(figsize=(7, 4.5))
    for value, grp in _groups(agg, by):
        grp = grp.sort_values(offered)
        line, = ax.plot(grp[offered], grp[metric], marker="o", label=f"{by}={value}" if by else metric)
        lo, hi = f"{metric}_ci_low", f"{metric}_ci_high"
        if lo in grp and hi in grp:
            ax.fill_between(grp[offered], grp[lo], grp[hi], color=line.get_color(), alpha=CI_ALPHA)
    top = float(np.nanmax(agg[offered]))
    ax.plot([0, top], [0, top], color=PALETTE[0], linestyle="--", linewidth=1, label="offered = carried")
    ax.set_xlabel(_label(offered))
    ax.set_ylabel(_label(metric))
    ax.set_title("throughput vs offered load")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def cdf_overlay(results: dict, ax=None):
    """Latency CDFs of several results on one axis: ``{"label": Result, ...}``."""
    fig, ax = (ax.figure, ax) if ax is not None else new_figure(figsize=(7, 4.5))
    for label, res in results.items():
        lat = np.sort(res.latencies())
        if lat.size:
            ax.plot(lat, np.arange(1, lat.size + 1) / lat.size, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("latency CDF")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def heatmap(agg, x: str, y: str, metric: str, ax=None, fmt: str = "{:.3g}"):
    """A two-parameter sweep as a heat map of ``metric`` (cells annotated)."""
    table = agg.pivot_table(index=y, columns=x, values=metric, aggfunc="mean").sort_index(ascending=False)
    fig, ax = (ax.figure, ax) if ax is not None else new_figure(figsize=(1.2 * table.shape[1] + 3, 0.8 * table.shape[0] + 2))
    im = ax.imshow(table.to_numpy(dtype=float), aspect="auto", cmap="viridis")
    ax.grid(False)
    ax.set_xticks(range(table.shape[1]), [f"{v:g}" if isinstance(v, float) else str(v) for v in table.columns])
    ax.set_yticks(range(table.shape[0]), [f"{v:g}" if isinstance(v, float) else str(v) for v in table.index])
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            v = table.iat[i, j]
            if np.isfinite(v):
                ax.text(j, i, fmt.format(v), ha="center", va="center", color="white", fontsize=8)
    ax.set_xlabel(_label(x))
    ax.set_ylabel(_label(y))
    fig.colorbar(im, ax=ax, label=_label(metric))
    ax.set_title(metric)
    fig.tight_layout()
    return fig


def save(fig, stem) -> list:
    """Write ``stem.png`` and ``stem.svg``; returns both paths."""
    from pathlib import Path

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=120)
    fig.savefig(paths[1])
    return paths
