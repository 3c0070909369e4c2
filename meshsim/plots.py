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


def latency_figure(result: Any, title: str | None = None):
    """Two panels: latency histogram (log x) and latency CDF, with mean/p50/p99 marked."""
    import matplotlib.pyplot as plt

    lat = result.latencies()
    s = result.summary["latency_ms"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    if lat.size:
        lo = max(lat.min(), 1e-3)
        bins = np.logspace(np.log10(lo), np.log10(max(lat.max(), lo * 1.01)), 60)
        ax1.hist(lat, bins=bins, color="#4C72B0", alpha=0.85)
        ax1.set_xscale("log")
        xs = np.sort(lat)
        ax2.plot(xs, np.arange(1, xs.size + 1) / xs.size, color="#4C72B0")
        for key, style in (("mean", "-"), ("p50", "--"), ("p99", ":")):
            v = s[key]
            if v is not None:
                for ax in (ax1, ax2):
                    ax.axvline(v, color="k", linestyle=style, linewidth=1, label=f"{key} {v:.4g} ms")
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
    """Busy workers per service over time (mean over its instances), from the timeseries table."""
    import matplotlib.pyplot as plt

    ts = result.timeseries
    fig, ax = plt.subplots(figsize=(9, 4))
    for svc, grp in ts.groupby("service", observed=True):
        per_t = grp.groupby("time_ms")[["busy", "queue"]].sum()
        ax.plot(per_t.index / 1000.0, per_t["busy"], label=f"{svc} busy")
        ax.plot(per_t.index / 1000.0, per_t["queue"], linestyle="--", label=f"{svc} queued")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("requests")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
