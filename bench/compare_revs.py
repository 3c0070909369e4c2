"""Before and after: the same benchmarks on two revisions of meshsim, interleaved in one run.

Checks out ``--base`` (default: the last commit before the redesign of issue 14) into a git worktree under
``bench/out/``, then runs every workload below once on the base tree and once on this tree, alternately,
``--repeat`` rounds, each in a child process of its own with that tree first on ``PYTHONPATH`` (so each
imports its own meshsim), and reports the median whole-process wall time of each side and the change.
A workload is **regressed** when this tree is more than 5 % slower than the base.

Workloads (all on the public CLI or the benchmark scripts both trees have):

- tandem: ``meshsim run data/scenarios/tandem.yaml`` with 200,000 requests, ``--out`` with the requests table
  (parquet) and ``--no-tables``;
- mesh: the same with a sidecar on every hop, 10 replicas per station behind least request (bench/mesh_bench.py's
  overrides);
- registry: ``bench/registry_bench.py --repeat 1 --minutes 5`` (the registry under load and a tandem run);
- dashboard: ``bench/dashboard_bench.py`` (ten re-runs of the default dashboard and their figures).

    python bench/compare_revs.py [--base REV] [--repeat 3] [--append PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the last commit before issue 14's redesign (calibration module, routes, kernel boundary, core splits)
BASE_REV = "0552566"
MESH_SETS = ["mesh.mode=sidecar"] + [f"services.{s}.{k}" for s in ("s1", "s2", "s3") for k in
                                     ("replicas=10", "workers=1", "load_balancer.policy=least_request")]


def workloads(out: Path) -> dict[str, list[str]]:
    run = [sys.executable, "-m", "meshsim", "run", "data/scenarios/tandem.yaml", "--seed", "1", "--quiet",
           "--set", "run.requests=200000"]
    mesh = run + [a for s in MESH_SETS for a in ("--set", s)]
    return {
        "tandem, --out with parquet": run + ["--out", str(out / "t1")],
        "tandem, --out --no-tables": run + ["--out", str(out / "t2"), "--no-tables"],
        "mesh (sidecars), --no-tables": mesh + ["--out", str(out / "m"), "--no-tables"],
        "registry bench (5 min)": [sys.executable, "bench/registry_bench.py", "--repeat", "1", "--minutes", "5"],
        "dashboard bench": [sys.executable, "bench/dashboard_bench.py"],
    }


def timed(cmd: list[str], tree: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree), MPLBACKEND="Agg")
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=tree, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=BASE_REV)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--append", metavar="PATH")
    args = ap.parse_args(argv)
    base_tree = ROOT / "bench" / "out" / "base-tree"
    if base_tree.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, check=False)
        shutil.rmtree(base_tree, ignore_errors=True)
    base_tree.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "worktree", "add", "--detach", str(base_tree), args.base], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    base_sha = subprocess.run(["git", "rev-parse", "--short", args.base], cwd=ROOT, check=True, text=True,
                              capture_output=True).stdout.strip()
    head_sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True, text=True,
                              capture_output=True).stdout.strip()
    load0 = os.getloadavg()[0]
    times: dict[str, dict[str, list[float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            jobs = workloads(out)
            for name, cmd in jobs.items():  # warm-up: caches, and a failure shows before the timing
                for tree in (base_tree, ROOT):
                    timed(cmd, tree)
            for r in range(args.repeat):
                for name, cmd in jobs.items():
                    for side, tree in (("base", base_tree), ("head", ROOT)) if r % 2 == 0 else (
                            ("head", ROOT), ("base", base_tree)):
                        times.setdefault(name, {}).setdefault(side, []).append(timed(cmd, tree))
                print(f"round {r + 1}/{args.repeat} done", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, check=False)
    load1 = os.getloadavg()[0]
    lines = ["| workload | base s (median) | head s (median) | change |", "|---|---:|---:|---:|"]
    regressed = []
    for name, t in times.items():
        b, h = statistics.median(t["base"]), statistics.median(t["head"])
        change = h / b - 1.0
        if change > 0.05:
            regressed.append(f"{name} ({change:+.1%})")
        lines.append(f"| {name} | {b:.2f} | {h:.2f} | {change:+.1%} |")
    verdict = (f"- **{'MISSED' if regressed else 'MET'}** — no workload more than 5% slower than before the redesign"
               + (f": {', '.join(regressed)}" if regressed else ""))
    text = "\n".join(lines + ["", verdict])
    print(text)
    if args.append:
        head = [
            "", f"## Before and after the redesign ({dt.date.today().isoformat()}, "
                f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average {load0:.2f} -> "
                f"{load1:.2f})", "",
            f"Base {base_sha} (before issue 14's redesign) against head {head_sha}, each workload's whole process, "
            f"{args.repeat} interleaved rounds (the order alternates), median; command: `python bench/compare_revs.py`.",
            "",
        ]
        with open(args.append, "a", encoding="utf-8") as f:
            f.write("\n".join(head) + text + "\n")
    return 1 if regressed else 0


if __name__ == "__main__":
    raise SystemExit(main())
