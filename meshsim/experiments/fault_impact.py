"""What each fault of a run did: errors and latency before, during and after its window.

A fault is a window of simulated time (from :func:`meshsim.viz.fault_windows`:
a crash until its restart, a partition until it heals, ...).  For each
window, :func:`fault_impact` compares three stretches of equal length: the
one just *before* it, the window itself (*during*) and the one that starts
``settle_ms`` after it heals (*after*).  Requests are assigned by arrival
time (requests still in flight when the run stops are not failures); latency
percentiles are over successful requests only (a refused call
fails in a millisecond and would make a broken service look fast).

>>> import meshsim
>>> sc = {"run": {"duration": "6s"}, "network": {"enabled": False},
...       "services": {"api": {"replicas": 2, "workers": 4, "service_time": "2ms",
...                            "load_balancer": {"policy": "round_robin"}}},
...       "workloads": {"w": {"rate": 200, "target": "api"}},
...       "faults": [{"at": "2s", "until": "4s", "action": "crash", "instance": "api-1"}]}
>>> res = meshsim.run(sc, seed=1)
>>> t = fault_impact(res, settle_ms=0)
>>> t[["kind", "target", "phase", "start_ms", "end_ms"]].values.tolist()
[['crash', 'api-1', 'before', 0.0, 2000.0], ['crash', 'api-1', 'during', 2000.0, 4000.0], ['crash', 'api-1', 'after', 4000.0, 6000.0]]
>>> [round(x, -1) for x in t["error_pct"]]     # round robin: every other call hits the crashed instance
[0.0, 50.0, 0.0]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _stats(req, lo: float, hi: float) -> dict[str, float]:
    arr = req["arrival_ms"].to_numpy()
    sel = (arr >= lo) & (arr < hi)
    status = req["status"].astype(str).to_numpy()[sel]
    n = int(sel.sum())
    ok = status == "ok"
    lat = req["latency_ms"].to_numpy()[sel][ok]
    failed = int((~ok & (status != "incomplete")).sum())  # still in flight at the end: not an error
    return {
        "requests": n,
        "failed": failed,
        "error_pct": 100.0 * failed / n if n else math.nan,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else math.nan,
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else math.nan,
    }


def fault_impact(result: Any, windows: Any = None, *, settle_ms: float = 1000.0, workload: str | None = None):
    """Per fault window and phase (before, during, after): requests, failed, error_pct, p50_ms, p99_ms of successes.

    ``windows``: a DataFrame with ``start_ms, end_ms, kind, target`` (default:
    the scenario's faults from :func:`meshsim.viz.fault_windows`, without the
    registry's ``no_leader`` windows; pass ``fault_windows(result)`` to keep
    them).  Each phase is as long as its window, clipped to the run;
    ``after`` starts ``settle_ms`` after the fault heals.  ``workload`` keeps
    only the requests of one workload.
    """
    import pandas as pd

    if windows is None:
        from ..viz.overtime import fault_windows

        windows = fault_windows(result)
        windows = windows[windows["kind"] != "no_leader"]
    req = result.requests
    if workload is not None:
        req = req[req["workload"] == workload]
    end_run = float(result.summary["sim_time_ms"])
    rows = []
    for i, f in enumerate(windows.itertuples(index=False)):
        length = f.end_ms - f.start_ms
        phases = (("before", max(0.0, f.start_ms - length), f.start_ms),
                  ("during", f.start_ms, f.end_ms),
                  ("after", f.end_ms + settle_ms, min(end_run, f.end_ms + settle_ms + length)))
        for phase, lo, hi in phases:
            rows.append({"fault": i, "kind": f.kind, "target": f.target, "phase": phase,
                         "start_ms": lo, "end_ms": max(lo, hi), **_stats(req, lo, hi)})
    return pd.DataFrame(rows, columns=["fault", "kind", "target", "phase", "start_ms", "end_ms", "requests",
                                       "failed", "error_pct", "p50_ms", "p99_ms"])


__all__ = ["fault_impact"]
