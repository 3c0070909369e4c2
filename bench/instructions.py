"""Instructions per event: the registry against the request path, counted rather than timed.

Wall times on a small shared VM drift by 10-15% between runs, more than most
single optimisations change them.  Instructions executed do not drift: this
runs the registry benchmark's load (``registry_bench.build``) and the tandem
request path (``registry_bench.request_path_rate``) under valgrind's
cachegrind, subtracts the same child with no work (imports and set-up), and
prints instructions per kernel event for both and their ratio (the
request path's baseline is a one-request run, so building the simulation is
left out too).  Slow (about
50x native; the defaults take about two minutes) and needs ``valgrind``
(Debian package ``valgrind``).  Instructions are not time: the registry's
larger working set costs it more time per instruction than the request path.

    python bench/instructions.py [--minutes 2] [--requests 50000]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def child(kind: str, amount: float) -> int:
    """Do the work (none when ``amount`` is 0) and print the kernel events processed."""
    import registry_bench as rb

    if kind == "tandem":
        print(rb.request_path_rate(int(amount))[0] if amount else 0)
        return 0
    reg = rb.build(1, 5.0, 50.0)
    reg.start()
    env, end, events = reg.kernel.env, amount * 60_000.0, 0
    while amount and env.peek() <= end:
        env.step()
        events += 1
    print(events)
    return 0


def counted(kind: str, amount: float) -> tuple[int, int]:
    """(instructions, events) of one child under cachegrind."""
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, __file__, "--child", kind, str(amount)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    refs = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if refs is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{out.stderr[-2000:]}")
    return int(refs.group(1).replace(",", "")), int(out.stdout.split()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=2.0, help="simulated minutes of the registry load")
    ap.add_argument("--requests", type=int, default=50_000, help="requests of the tandem run")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "AMOUNT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child[0], float(args.child[1]))
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind); nothing measured")
        return 0
    per_event = {}
    for kind, amount in (("registry", args.minutes), ("tandem", args.requests)):
        base, base_events = counted(kind, 1 if kind == "tandem" else 0)
        total, events = counted(kind, amount)
        per_event[kind] = (total - base) / (events - base_events)
        print(f"{kind:<9} {events - base_events:>9,} events  {total - base:>15,} instructions  "
              f"{per_event[kind]:>8,.0f} per event")
    print(f"a registry event executes {per_event['registry'] / per_event['tandem']:.2f}x the instructions "
          "of a request-path event")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
