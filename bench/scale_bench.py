"""Registry at global scale: the Consul Global Scale Benchmark's shape at 10k, 40k and 178k instances.

Runs ``python -m meshsim.experiments.global_scale --set instances=N --json`` for each size in a child
process of its own, one after another (nothing else of meshsim at the same time), and records for each
the wall time of the whole process, kernel events, peak RSS (``ru_maxrss`` of the child) and the
deploy's propagation to every sidecar, then the cost per instance at each size against the smallest
(the issue's target: wall time and memory per instance at 178k within 1.5x of those at 10k; the full
shape in <= 10 minutes and <= 8 GB).

    python bench/scale_bench.py [--sizes 10000,40000,178000] [--discovery streaming] [--append PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the memory of a run with no instances to speak of: the interpreter, numpy, pandas and meshsim loaded
BASE_SIZE = 200


def run_size(n: int, discovery: str, seed: int) -> dict:
    cmd = [sys.executable, "-m", "meshsim.experiments.global_scale", "--set", f"instances={n}", "--set",
           f"discovery={discovery}", "--seed", str(seed), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"size {n} failed ({proc.returncode}):\n{err[-2000:]}")
    s = json.loads(out)
    s["process_wall_s"] = wall
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,40000,178000")
    ap.add_argument("--discovery", default="streaming", choices=("streaming", "blocking"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--append", metavar="PATH", help="append a markdown section with the table")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    load0 = os.getloadavg()[0]
    base = run_size(BASE_SIZE, args.discovery, args.seed)
    rows = []
    for n in sizes:
        s = run_size(n, args.discovery, args.seed)
        rows.append(s)
        p = s["propagation_ms"]
        print(f"{s['instances']:>8,} instances {s['hosts']:>6,} nodes: {s['events']:>11,} events, "
              f"{s['process_wall_s']:7.1f} s wall ({s['wall_s']:.1f} s in run), peak RSS {s['peak_rss_mb']:7.0f} MB; "
              f"propagation p50 {p['p50']:.0f} p99 {p['p99']:.0f} max {p['max']:.0f} ms", flush=True)
    load1 = os.getloadavg()[0]
    first = rows[0]
    mem0 = base["peak_rss_mb"]

    def per(s):  # run wall s and MB above the base, per 1000 instances
        return 1000 * s["wall_s"] / s["instances"], 1000 * (s["peak_rss_mb"] - mem0) / s["instances"]

    w0, m0 = per(first)
    last = rows[-1]
    wl, ml = per(last)
    t_ok = last["process_wall_s"] <= 600 and last["peak_rss_mb"] <= 8192
    verdicts = [
        f"- **{'MET' if t_ok else 'MISSED'}** — the full shape ({last['instances']:,} instances) in <= 10 minutes "
        f"and <= 8 GB: {last['process_wall_s']:.0f} s, {last['peak_rss_mb']:.0f} MB peak RSS",
        f"- **{'MET' if wl <= 1.5 * w0 else 'MISSED'}** — wall time per instance at {last['instances']:,} within "
        f"1.5x of {first['instances']:,}: {wl / w0:.2f}x",
        f"- **{'MET' if ml <= 1.5 * m0 else 'MISSED'}** — memory per instance (above the {mem0:.0f} MB of a "
        f"{base['instances']}-instance run) within 1.5x: {ml / m0:.2f}x",
    ]
    print("\n".join(verdicts))
    if args.append:
        lines = [
            "", f"## Registry at global scale ({dt.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} CPUs, Python {platform.python_version()}; load average {load0:.2f} -> {load1:.2f})",
            "",
            "The Consul Global Scale Benchmark's shape (`python -m meshsim.experiments.global_scale`, "
            "data/scale/global_scale.yaml): 5 servers over 3 zones, services in three tiers (10, 83 and 85 "
            "instances), every sidecar also on `hey`, checks every 5 s, "
            f"{args.discovery}; one simulated minute of steady state, then a deploy of `hey`. One child process "
            "per size, one after another; wall is the whole process, run is the simulation in it.",
            "",
            "| instances | nodes | events | wall s | run s | peak RSS MB | run s / 1k inst | MB / 1k inst | "
            "propagation p50 / p99 / max ms |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for s in rows:
            w, m = per(s)
            p = s["propagation_ms"]
            lines.append(f"| {s['instances']:,} | {s['hosts']:,} | {s['events']:,} | {s['process_wall_s']:.1f} | "
                         f"{s['wall_s']:.1f} | {s['peak_rss_mb']:.0f} | {w:.3f} | {m:.2f} | "
                         f"{p['p50']:.0f} / {p['p99']:.0f} / {p['max']:.0f} |")
        lines += [""] + verdicts
        with open(args.append, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 0  # a missed target is reported (MISSED), as the other benchmarks do


if __name__ == "__main__":
    raise SystemExit(main())
