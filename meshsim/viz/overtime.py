"""A run over time: latency percentiles, throughput and errors per window, with the faults shaded.

``windows_frame`` cuts simulated time into windows of ``window_ms``: each
request counts in the window of its *arrival* (``requests``, ``errors``,
``error_rate``, and the latency percentiles of its successful ones), while
``throughput_rps`` counts successful replies in the window they *end* in,
per second.  ``fault_windows`` lists when each fault of the scenario's
timeline was in force (crashes until their restart, degraded or partitioned
links until healed, registry servers down or slow), plus, with a registry,
the intervals its Raft cluster had no leader with a majority.

>>> import meshsim, matplotlib
>>> matplotlib.use("Agg")
>>> res = meshsim.run({"run": {"duration": "4s"}, "network": {"enabled": False},
...                    "services": {"web": {"replicas": 2, "service_time": "1ms"}},
...                    "workloads": {"u": {"type": "deterministic", "rate": 100, "target": "web"}},
...                    "faults": [{"at": "1s", "until": "2s", "action": "crash", "instance": "web-0"}]})
>>> w = windows_frame(res, window_ms=1000)
>>> print(w[["window_start_ms", "requests", "errors", "throughput_rps"]].to_string(index=False))
 window_start_ms  requests  errors  throughput_rps
             0.0        99       0            99.0
          1000.0       100      50            50.0
          2000.0       100       0           100.0
          3000.0       100       0           100.0
>>> fault_windows(res).to_dict("records")
[{'start_ms': 1000.0, 'end_ms': 2000.0, 'kind': 'crash', 'target': 'web-0'}]
>>> len(over_time(res).axes)
3
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .style import FAULT_ALPHA, FAULT_COLOR, PALETTE, new_figure

WINDOW_COLUMNS = ["window_start_ms", "requests", "completed", "throughput_rps", "p50_ms", "p90_ms", "p99_ms",
                  "errors", "error_rate"]
FAULT_COLUMNS = ["start_ms", "end_ms", "kind", "target"]


def windows_frame(result: Any, window_ms: float = 1000.0) -> Any:
    """Per window of simulated time: requests, throughput, latency percentiles and errors (see module doc).

    The windows cover the arrivals (the last one holds the last arrival);
    ``completed`` is the number of successful replies ending in the window,
    so ``throughput_rps == completed * 1000 / window_ms`` (replies of the
    drain after the last window are left out).  Requests still in flight
    when the run stopped count as requests but not as errors.
    """
    import pandas as pd

    if not window_ms > 0:
        raise ValueError(f"window_ms must be > 0, got {window_ms!r}")
    req = result.requests
    arrival = req["arrival_ms"].to_numpy()
    end = req["end_ms"].to_numpy()
    status = req["status"].astype(str).to_numpy()
    ok = status == "ok"
    err = ~ok & (status != "incomplete")
    lat = req["latency_ms"].to_numpy()
    horizon = float(np.nanmax(arrival)) if arrival.size else 0.0
    n = max(1, int(math.floor(horizon / window_ms)) + 1)
    a_bin = (arrival // window_ms).astype(np.int64)
    e_bin = (end[ok] // window_ms).astype(np.int64)
    requests = np.bincount(a_bin, minlength=n)
    completed = np.bincount(e_bin[e_bin < n], minlength=n)
    errors = np.bincount(a_bin[err], minlength=n)
    pcts = np.full((n, 3), np.nan)
    ok_bins = a_bin[ok]
    ok_lat = lat[ok]
    order = np.argsort(ok_bins, kind="stable")
    bounds = np.searchsorted(ok_bins[order], np.arange(n + 1))
    for i in range(n):
        x = ok_lat[order[bounds[i]:bounds[i + 1]]]
        if x.size:
            pcts[i] = np.percentile(x, [50, 90, 99])
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(requests > 0, errors / np.maximum(requests, 1), np.nan)
    return pd.DataFrame({
        "window_start_ms": np.arange(n) * float(window_ms),
        "requests": requests,
        "completed": completed,
        "throughput_rps": completed * 1000.0 / window_ms,
        "p50_ms": pcts[:, 0],
        "p90_ms": pcts[:, 1],
        "p99_ms": pcts[:, 2],
        "errors": errors,
        "error_rate": rate,
    }, columns=WINDOW_COLUMNS)


def _target(f: dict) -> str:
    for key in ("instance", "host", "server"):
        if f.get(key) is not None:
            return str(f[key])
    if f.get("between") is not None:
        return " <-> ".join(map(str, f["between"]))
    if f.get("groups") is not None:
        return " | ".join(",".join(map(str, g)) for g in f["groups"])
    return ""


def fault_windows(result: Any) -> Any:
    """When each fault was in force: ``start_ms, end_ms, kind, target``, sorted by start.

    From the scenario's fault timeline: a crash lasts until its ``until`` or
    the next restart of the same target (else the end of the run); degrade,
    partition, slow_disk and crash_server last until their ``until`` (a
    crashed server also until a later restart_server).  A fault at
    ``server: leader`` is named after the server it hit (from the run's
    fault log).  With a registry, its Raft cluster's leader-loss windows
    follow as kind ``no_leader`` (the first one is the initial election).
    """
    import pandas as pd

    end_of_run = float(result.summary["sim_time_ms"])
    faults = result.scenario.spec["faults"]
    log = list(result.summary.get("faults") or [])
    rows: list[dict] = []
    for i, f in enumerate(faults):
        action = f["action"]
        if action in ("restart", "restart_server"):
            continue  # they close windows opened by crashes
        start = float(f["at"])
        if start > end_of_run:
            continue
        target = _target(f)
        if target == "leader":  # resolved when it fired
            hit = [e for e in log if e["time_ms"] == start and e["event"] in ("crash_server", "slow_disk")]
            if hit:
                target = str(hit[0]["target"])
        end = f.get("until")
        if end is None and action in ("crash", "crash_server"):
            again = "restart" if action == "crash" else "restart_server"
            later = [float(g["at"]) for g in faults[i + 1:] if g["action"] == again and _target(g) == target
                     and g["at"] >= start]
            end = min(later) if later else None
        rows.append({"start_ms": start, "end_ms": min(float(end), end_of_run) if end is not None else end_of_run,
                     "kind": action, "target": target})
    for comp in getattr(getattr(result, "record", None), "components", []):
        cluster = getattr(getattr(comp, "registry", None), "cluster", None)
        if cluster is None:
            continue
        for a, b in cluster.windows:
            rows.append({"start_ms": float(a), "end_ms": float(b) if b is not None else end_of_run,
                         "kind": "no_leader", "target": comp.name})
    df = pd.DataFrame(rows, columns=FAULT_COLUMNS)
    return df.sort_values(["start_ms", "end_ms"], kind="stable").reset_index(drop=True)


def over_time(result: Any, window_ms: float = 1000.0, ax: Any = None):
    """Three panels sharing the x axis: latency percentiles, throughput, errors; faults shaded and labelled.

    ``ax``: optionally three axes to draw into (a sequence of three); by
    default a new figure.
    """
    w = windows_frame(result, window_ms)
    faults = fault_windows(result)
    if ax is None:
        fig, axes = new_figure(3, 1, figsize=(11, 7.5), sharex=True)
    else:
        axes = list(ax)
        if len(axes) != 3:
            raise ValueError("over_time draws three panels: pass three axes")
        fig = axes[0].figure
    x = (w["window_start_ms"].to_numpy() + window_ms / 2) / 1000.0
    lat_ax, thr_ax, err_ax = axes
    for col, color, style in (("p50_ms", PALETTE[5], "-"), ("p90_ms", PALETTE[1], "--"), ("p99_ms", PALETTE[6], ":")):
        lat_ax.plot(x, w[col], color=color, linestyle=style, marker=".", label=col.split("_")[0], gid=f"line:{col}")
    lat_ax.set_ylabel("latency (ms)")
    if np.nanmin(w[["p50_ms"]].to_numpy(), initial=np.inf) > 0 and np.isfinite(np.nanmax(w["p99_ms"], initial=np.nan)):
        lat_ax.set_yscale("log")
    outside = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}
    lat_ax.legend(**outside)
    thr_ax.plot(x, w["throughput_rps"], color=PALETTE[3], marker=".", label="successful replies", gid="line:throughput")
    thr_ax.set_ylabel("throughput (req/s)")
    thr_ax.set_ylim(bottom=0)
    thr_ax.legend(**outside)
    err_ax.bar(x, w["errors"], width=window_ms / 1000.0 * 0.9, color=PALETTE[6], label="failed requests",
               gid="bars:errors")
    err_ax.set_ylabel("errors (requests / window)")
    err_ax.set_xlabel("simulated time (s)")
    err_ax.set_ylim(0, max(1.0, float(w["errors"].max()) * 1.1))
    err_ax.legend(**outside)
    starts = faults["start_ms"].to_numpy() / 1000.0
    gap = 0.15 * max(float(x[-1] - x[0]), window_ms / 1000.0)
    level = 0
    for i, f in enumerate(faults.itertuples(index=False)):
        a, b = f.start_ms / 1000.0, f.end_ms / 1000.0
        for axis in axes:
            if b > a:
                axis.axvspan(a, b, color=FAULT_COLOR, alpha=FAULT_ALPHA, linewidth=0, gid=f"fault:{f.kind}:{f.target}")
            else:
                axis.axvline(a, color=FAULT_COLOR, linewidth=1, gid=f"fault:{f.kind}:{f.target}")
        # labels of faults that start close together are stacked, not overprinted
        lat_ax.annotate(f"{f.kind} {f.target}", xy=(a, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(2, -2 - 9 * (level % 4)), textcoords="offset points", va="top", fontsize=7,
                        color=FAULT_COLOR, gid=f"label:{f.kind}:{f.target}")
        level = level + 1 if i + 1 < len(starts) and starts[i + 1] - a < gap else 0
    lat_ax.set_title(f"{result.summary['scenario']} over time ({window_ms / 1000.0:g} s windows, seed {result.seed})")
    fig.tight_layout()
    return fig


__all__ = ["fault_windows", "over_time", "windows_frame"]
