"""Mesh benchmark: the tandem reference workload with and without sidecars, in one go.

Three stations of 10 replicas x 1 worker each (the tandem's M/M/10 capacity
split over replicas) behind Envoy's least-request balancer; run once with no
mesh and once with a sidecar on every instance and on the client (every call
then makes four proxy passes).  Target (from the load-balancer and proxy
issue): the mesh run costs at most 2x the no-mesh run in wall time.

    python bench/mesh_bench.py [--requests N] [--append bench/results.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 2.0


def overrides(mesh: str, requests: int) -> list[str]:
    sets = [f"run.requests={requests}", f"mesh.mode={mesh}"]
    for s in ("s1", "s2", "s3"):
        sets += [f"services.{s}.replicas=10", f"services.{s}.workers=1", f"services.{s}.load_balancer.policy=least_request"]
    return sets


def timed(mesh: str, requests: int, out: Path) -> float:
    cmd = [sys.executable, "-m", "meshsim", "run", "data/scenarios/tandem.yaml", "--quiet", "--out", str(out), "--no-tables"]
    for s in overrides(mesh, requests):
        cmd += ["--set", s]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--append", metavar="PATH")
    args = ap.parse_args()
    out = ROOT / "bench" / "out" / "mesh"
    # interleaved (none, sidecar, none, ...) so drifting machine load falls on both runs alike
    runs: dict[str, list[float]] = {"none": [], "sidecar": []}
    for _ in range(args.repeat):
        for m in runs:
            runs[m].append(timed(m, args.requests, out / m))
    walls = {m: sorted(w)[args.repeat // 2] for m, w in runs.items()}
    spread = {m: f"{min(w):.2f}-{max(w):.2f}" for m, w in runs.items()}
    ratio = walls["sidecar"] / walls["none"]
    lines = [
        "",
        "## Mesh: tandem with a sidecar on every hop, 10 replicas per station behind least request",
        "",
        f"- Date (UTC): {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S}; {args.requests:,} requests; median of "
        f"{args.repeat} whole-process runs of each, interleaved; command: `python bench/mesh_bench.py`",
        "",
        "| run | wall s (median) | range of runs s | req / wall s |",
        "|---|---:|---:|---:|",
        f"| no mesh | {walls['none']:.2f} | {spread['none']} | {args.requests / walls['none']:,.0f} |",
        f"| sidecars (4 proxy passes per call) | {walls['sidecar']:.2f} | {spread['sidecar']} | "
        f"{args.requests / walls['sidecar']:,.0f} |",
        "",
        f"- **{'MET' if ratio <= TARGET else 'MISSED'}** — mesh run at most {TARGET:g}x the no-mesh run: {ratio:.2f}x",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
