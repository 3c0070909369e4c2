"""Sweep benchmark: a 32-point x 3-replication sweep of a 3-tier chain on three backends.

Serial, a local process pool (2 workers on this machine) and a Dask
LocalCluster (2 worker processes, 1 thread each) run the same sweep in one go;
the results must be identical.  Targets (from the sweep issue): process pool
>= 1.8x serial on 2 cores; Dask within 15% of the process pool.

    python bench/sweep_bench.py [--append bench/results.md] [--requests N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

import meshsim  # noqa: E402

TARGET_PROCESSES = 1.8
TARGET_DASK = 0.15


def base(requests: int) -> dict:
    return {
        "name": "chain3",
        "run": {"requests": requests},
        "network": {"enabled": False},
        "metrics": {"warmup": "2s"},
        "graph": {"kind": "chain", "n": 3, "workers": 4, "service_time": {"dist": "exponential", "mean": "10ms"}},
        "workloads": {"w": {"rate": 100, "target": "svc0"}},
    }


PARAMS = {"workloads.w.rate": [50, 100, 150, 200, 250, 300, 325, 350], "graph.workers": [4, 5, 6, 8]}
METRICS = ["throughput_rps", "latency_ms.mean", "latency_ms.p99"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=100_000, help="requests per run (default 100,000)")
    ap.add_argument("--append", metavar="PATH", help="append the Markdown section to this file")
    args = ap.parse_args()
    from dask.distributed import Client

    from meshsim.sweep import local_cluster

    sc = base(args.requests)
    timings: dict[str, float] = {}
    frames: dict[str, pd.DataFrame] = {}
    common = dict(replications=3, seed=7, metrics=METRICS, progress=False)
    for name in ("serial", "processes", "dask"):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            if name == "dask":
                with local_cluster(n_workers=2) as cl, Client(cl) as client:
                    client.wait_for_workers(2)
                    timings["dask start-up"] = time.perf_counter() - t0
                    t1 = time.perf_counter()
                    res = meshsim.sweep(sc, PARAMS, backend="dask", client=client, out=out, **common)
                    timings["dask sweep only"] = time.perf_counter() - t1
            else:
                res = meshsim.sweep(sc, PARAMS, backend=name, workers=2, out=out, **common)
            timings[name] = time.perf_counter() - t0
        cols = list(PARAMS) + ["replication", "seed"] + METRICS
        frames[name] = res.runs[cols].sort_values(list(PARAMS) + ["replication"]).reset_index(drop=True)
        print(f"{name:<10} {timings[name]:7.2f} s  ({len(res.runs)} runs)", flush=True)
    identical = all(frames[n].equals(frames["serial"]) for n in frames)
    speedup = timings["serial"] / timings["processes"]
    dask_gap = timings["dask"] / timings["processes"] - 1.0
    dask_sweep_gap = timings["dask sweep only"] / timings["processes"] - 1.0
    lines = [
        "",
        "## Sweeps: 32 points x 3 replications of a 3-tier chain",
        "",
        f"- Date (UTC): {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S}; cores: {os.cpu_count()}; "
        f"{args.requests:,} requests per run; command: `python bench/sweep_bench.py`",
        "- Grid: workloads.w.rate in 50..350 req/s (8 values) x graph.workers in 4, 5, 6, 8; 3 replications; "
        "chain of 3 services, exponential 10 ms service.",
        "",
        "| backend | wall s | runs / s | speed-up vs serial |",
        "|---|---:|---:|---:|",
    ]
    for name in ("serial", "processes", "dask", "dask sweep only"):
        label = {"dask": "dask (incl. cluster start-up)", "dask sweep only": "dask (cluster already running)"}.get(name, name)
        lines.append(f"| {label} | {timings[name]:.2f} | {96 / timings[name]:.2f} | {timings['serial'] / timings[name]:.2f}x |")
    lines += [
        "",
        f"- Results identical on all three backends: {'yes' if identical else '**NO**'}",
        f"- **{'MET' if speedup >= TARGET_PROCESSES else 'MISSED'}** — process pool >= {TARGET_PROCESSES}x serial: {speedup:.2f}x",
        f"- **{'MET' if dask_gap <= TARGET_DASK else 'MISSED'}** — Dask LocalCluster within {TARGET_DASK:.0%} of the process pool, "
        f"cluster start-up ({timings['dask start-up']:.1f} s) included: {dask_gap:+.1%}; with the cluster already running: "
        f"{dask_sweep_gap:+.1%}",
        "- Wall times on this 2-core VM vary by up to 20% between runs even when idle; compare within one run.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as fh:
            fh.write(text)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
