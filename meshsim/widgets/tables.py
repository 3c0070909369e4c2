"""The numbers a dashboard shows, as DataFrames: summary with confidence intervals, per-service breakdown.

Quantile CIs use *sectioning*: the latencies (in arrival order, so
correlated) are cut into the scenario's ``metrics.batches`` contiguous
sections; the interval is centred on the quantile of all values, with half
width t(0.975, k-1) x sd(section quantiles) / sqrt(k).  Like batch means for
the mean, it accounts for the correlation between neighbouring requests that
an order-statistic (binomial) interval would ignore.

>>> import numpy as np
>>> est, lo, hi = quantile_ci(np.arange(1000.0), 0.5, batches=10)
>>> est, bool(lo < est < hi)
(499.5, True)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..stats import t_quantile

if TYPE_CHECKING:
    import pandas as pd

#: the parts of a call, in the order they are stacked (house style PART_COLORS has a colour for each)
PARTS = ("network", "queue", "service", "downstream")


def quantile_ci(values: np.ndarray, q: float, batches: int = 20, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(estimate, low, high)`` of the ``q`` quantile (0 < q < 1) by sectioning; NaN bounds when too few values.

    Each section must hold at least ``2 / (1 - q)`` values so that its own
    quantile is not just its maximum; with fewer values the bounds are NaN.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    est = float(np.quantile(x, q))
    size = x.size // batches
    if batches < 2 or size < max(2, math.ceil(2 / (1 - q))):
        return est, math.nan, math.nan
    sections = np.quantile(x[: size * batches].reshape(batches, size), q, axis=1)
    half = t_quantile(0.5 + confidence / 2, batches - 1) * float(sections.std(ddof=1)) / math.sqrt(batches)
    return est, est - half, est + half


def summary_frame(result: Any) -> pd.DataFrame:
    """One row per figure of merit: ``value, ci_low, ci_high, unit`` (requests, throughput, mean/p50/p99).

    The mean's interval is the run's batch-means CI; p50 and p99 are by sectioning.
    """
    import pandas as pd

    s = result.summary
    lat = s["latency_ms"]
    batches = result.scenario.spec["metrics"]["batches"]
    x = result.latencies()
    nan = math.nan
    rows = [
        ("requests", s["requests"], nan, nan, ""),
        ("failed", s["failed"], nan, nan, ""),
        ("throughput", s["throughput_rps"], nan, nan, "req/s"),
        ("mean", lat["mean"], *(nan if v is None else v for v in lat["ci95"]), "ms"),
    ]
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        rows.append((name, *quantile_ci(x, q, batches), "ms"))
    df = pd.DataFrame(rows, columns=["metric", "value", "ci_low", "ci_high", "unit"]).set_index("metric")
    df["value"] = df["value"].astype(float)
    return df


def summary_html(frame: pd.DataFrame) -> str:
    """A small HTML table of :func:`summary_frame`: value and [low, high]."""

    def fmt(v: float) -> str:
        if v is None or not math.isfinite(v):
            return ""
        return f"{v:,.0f}" if abs(v) >= 1000 or float(v).is_integer() else f"{v:.3g}" if abs(v) < 1 else f"{v:.1f}"

    rows = []
    for name, r in frame.iterrows():
        ci = f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}]" if math.isfinite(r.ci_low) else ""
        rows.append(f"<tr><td style='text-align:left'>{name}</td><td>{fmt(r.value)}</td><td>{r.unit}</td>"
                    f"<td style='color:#666'>{ci}</td></tr>")
    return ("<table class='meshsim-summary' style='font-size:90%;text-align:right'>"
            "<tr><th style='text-align:left'></th><th>value</th><th></th><th>95% CI</th></tr>"
            + "".join(rows) + "</table>")


def breakdown_frame(result: Any) -> pd.DataFrame:
    """Mean network, queue, service and downstream time (ms) of a successful call, per service.

    From ``result.spans`` (calls sent after warm-up, status ok), indexed by
    service in the scenario's order; ``total_ms`` is the mean call time
    ``end_ms - send_ms``, which the four parts add up to, and ``calls`` the count.
    """
    import pandas as pd

    sp = result.spans
    warm = result.summary["warmup_ms"] or 0.0
    ok = sp[(sp["status"] == "ok") & (sp["send_ms"] >= warm)]
    cols = [f"{p}_ms" for p in PARTS]
    g = ok.groupby("service", observed=False)
    df = g[cols].mean()
    df["total_ms"] = (ok["end_ms"] - ok["send_ms"]).groupby(ok["service"], observed=False).mean()
    df["calls"] = g.size()
    df = df.reindex([str(s) for s in result.scenario.services])
    df["calls"] = df["calls"].fillna(0).astype(int)
    df.index.name = "service"
    return pd.DataFrame(df)
