"""Registry benchmark: a Raft-replicated catalog under steady write and read load.

5 servers; 50 agent hosts with 20 instances each (1000 instances of 10
services), every instance on a TTL check fed by polling its ``alive`` flag.
Write load: instances flap (go silent for a while, so their TTL expires and
they turn critical, then come back), about ``--flaps`` per second in total,
each flap costing two Raft writes.  Read load: every agent host watches two
services (default mode) and the hosts make ``--reads`` reads per second
(half stale, half default).  Runs ``--minutes`` simulated minutes (10 by
default) and prints the kernel events processed (SimPy ``env.step`` calls)
per wall second, with the registry's main metrics.

    python bench/registry_bench.py [--minutes 10] [--seed 1] [--flaps 5] [--reads 50]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meshsim.core.health import TTLCheck  # noqa: E402
from meshsim.core.raft import RaftConfig  # noqa: E402
from meshsim.registry.catalog import Registry  # noqa: E402

SERVERS, HOSTS, PER_HOST, SERVICES = 5, 50, 20, 10
#: the registry issue's target: a registry event costs at most about 3x a request-path event
TARGET_RATIO = 3.0


def build(seed: int, flaps_per_s: float, reads_per_s: float):
    servers = [f"consul-{i}" for i in range(SERVERS)]
    hosts = [f"node-{i:02d}" for i in range(HOSTS)]
    reg = Registry.standalone(servers=servers, clients=hosts, latency={"dist": "uniform", "low": 0.3, "high": 1.5},
                              seed=seed, config=RaftConfig.profile("consul", raft_multiplier=1),
                              disk_delay={"dist": "uniform", "low": 0.2, "high": 1.0})
    rng = reg.streams.generator("bench/load")
    up: dict[str, bool] = {}
    for h, host in enumerate(hosts):
        agent = reg.agent(host)
        for j in range(PER_HOST):
            iid = f"{host}/i{j}"
            up[iid] = True
            agent.add_instance(iid, f"svc-{(h * PER_HOST + j) % SERVICES}", check=TTLCheck(ttl_ms=15_000),
                               alive=lambda iid=iid: up[iid], heartbeat_ms=5_000)
    ids = sorted(up)
    k = reg.kernel

    def flap(_a=None):
        iid = ids[int(rng.integers(len(ids)))]
        if up[iid]:
            up[iid] = False
            k.call_later(float(rng.uniform(20_000, 40_000)), lambda _b, iid=iid: up.__setitem__(iid, True))
        k.call_later(float(rng.exponential(1_000 / flaps_per_s)), flap)

    # the read load's random draws come in batches, so the load generator costs little beside the registry
    def read_plan():
        while True:
            n = 4096
            for h, svc, stale, gap in zip(rng.integers(len(hosts), size=n).tolist(),
                                          rng.integers(SERVICES, size=n).tolist(), (rng.random(n) < 0.5).tolist(),
                                          rng.exponential(1_000 / reads_per_s, size=n).tolist()):
                yield hosts[h], f"svc-{svc}", "stale" if stale else "default", gap

    plan = read_plan()

    def read(_a=None):
        host, service, mode, gap = next(plan)
        reg.client(host).read(service, mode=mode)
        k.call_later(gap, read)

    def start_load(_a=None):
        for h, host in enumerate(hosts):
            for s in (h % SERVICES, (h + 3) % SERVICES):
                reg.client(host).watch(f"svc-{s}", lambda now, entries, index: None)
        flap()
        read()

    k.call_at(20_000.0, start_load)  # after the election and the initial registrations
    return reg


def request_path_rate(requests: int = 100_000, seed: int = 1) -> tuple[int, float]:
    """Kernel events and wall seconds of the foundation's tandem reference run (no mesh)."""
    from meshsim.scenario.load import load_scenario
    from meshsim.sim.simulation import Simulation

    root = Path(__file__).resolve().parents[1]
    sim = Simulation(load_scenario(root / "data" / "scenarios" / "tandem.yaml", {"run.requests": requests,
                                                                                  "metrics.spans": False}), seed)
    ev0 = sim.kernel.events_processed()
    t0 = time.perf_counter()
    sim.run()
    wall = time.perf_counter() - t0
    return sim.kernel.events_processed() - ev0, wall


def run_registry(args: argparse.Namespace) -> tuple:
    """Build and run the registry load; (registry, events processed, wall s, setup wall s)."""
    t0 = time.perf_counter()
    reg = build(args.seed, args.flaps, args.reads)
    reg.start()
    t_build = time.perf_counter() - t0
    env = reg.kernel.env
    end = args.minutes * 60_000.0
    steps = 0
    t1 = time.perf_counter()
    while env.peek() <= end:
        env.step()
        steps += 1
    return reg, steps, time.perf_counter() - t1, t_build


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flaps", type=float, default=5.0, help="instance flaps per second (2 writes each)")
    ap.add_argument("--reads", type=float, default=50.0, help="point reads per second")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the median wall time is reported")
    ap.add_argument("--append", metavar="PATH", help="append a markdown section with the comparison")
    args = ap.parse_args(argv)
    # interleaved repeats (request path, registry, request path, ...): drifting machine load falls on both
    req_walls, reg_walls = [], []
    for _ in range(args.repeat):
        req_events, w = request_path_rate()
        req_walls.append(w)
        reg, steps, w, t_build = run_registry(args)
        reg_walls.append(w)
    req_wall = sorted(req_walls)[args.repeat // 2]
    wall = sorted(reg_walls)[args.repeat // 2]
    s = reg.summary()
    r = s["reads"]
    print(f"simulated {args.minutes:g} min: {steps:,} kernel events in {wall:.2f} s wall "
          f"(+{t_build:.2f} s setup) = {steps / wall:,.0f} events/s (median of {args.repeat} runs)")
    print(f"instances registered: {sum(len(c) for c in list(reg.catalogs().values())[:1])}, "
          f"catalogs identical: {s['catalogs_identical']}, committed index: {s['committed_index']}, "
          f"leader changes: {s['raft']['leader_changes']}")
    w = s["writes"]
    wf = reg.frame("writes")
    steady = wf[(wf["invoked"] >= 20_000.0) & wf["ok"]]["latency_ms"]
    print(f"writes: {w['count']} ({w['errors']} errors); after start-up: {len(steady)}, latency p50 "
          f"{steady.quantile(0.5):.2f} p99 {steady.quantile(0.99):.2f} ms")
    for mode, v in r.items():
        print(f"reads {mode}: {v['count']} ({v['errors']} errors), latency p50 {v['latency_ms']['p50']:.2f} "
              f"p99 {v['latency_ms']['p99']:.2f} ms, stale answers {v['stale_answers']}, "
              f"lag p99 {v['lag_ms']['p99']:.2f} ms")
    print(f"watch deliveries: {s['watch']['deliveries']}, delay p50 {s['watch']['delay_ms']['p50']:.2f} "
          f"p99 {s['watch']['delay_ms']['p99']:.2f} ms; health transitions: {s['health_transitions']['to']}")
    reg_rate, req_rate = steps / wall, req_events / req_wall
    ratio = req_rate / reg_rate
    verdict = "MET" if ratio <= TARGET_RATIO else "MISSED"
    print(f"request path (tandem, 100,000 requests): {req_events:,} events in {req_wall:.2f} s = {req_rate:,.0f} "
          f"events/s; a registry event costs {ratio:.2f}x a request-path event (target <= {TARGET_RATIO:g}x): "
          f"{verdict}")
    if args.append:
        import datetime as dt
        import os
        import platform

        lines = [
            "", f"## Registry ({dt.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} CPUs, Python {platform.python_version()})", "",
            f"{SERVERS} Raft servers (consul profile, raft_multiplier 1, disk 0.2-1.0 ms), {HOSTS * PER_HOST} "
            f"instances on {HOSTS} agent hosts with TTL checks, {args.flaps:g} flaps/s (2 writes each), "
            f"{args.reads:g} point reads/s and {HOSTS * 2} watches, {args.minutes:g} simulated minutes; beside it "
            "the tandem reference run (100,000 requests, no mesh), in the same process. Events are SimPy "
            f"heap entries processed; wall times are medians of {args.repeat} interleaved runs of each.", "",
            "| run | events | wall s | events / wall s |", "|---|---:|---:|---:|",
            f"| registry | {steps:,} | {wall:.2f} | {reg_rate:,.0f} |",
            f"| request path (tandem) | {req_events:,} | {req_wall:.2f} | {req_rate:,.0f} |", "",
            f"- **{verdict}** — a registry event costs at most 3x a request-path event: {ratio:.2f}x",
            f"- steady-state write latency p50 {steady.quantile(0.5):.2f} ms, p99 {steady.quantile(0.99):.2f} ms; "
            f"watch delay p99 {s['watch']['delay_ms']['p99']:.2f} ms; catalogs identical: {s['catalogs_identical']}",
        ]
        with open(args.append, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
