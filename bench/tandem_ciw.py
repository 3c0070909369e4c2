"""Baseline (c): the reference workload in Ciw 3.x.

Three M/M/10 stations in tandem, lambda = 8/s, mu = 1/s per server, routing in
series (node 1 -> node 2 -> node 3 -> exit), infinite queues.  Ciw works in
whatever time unit the rates imply; here that is seconds, and the sojourn is
converted to milliseconds for the report.

The model is built with ``ciw.create_network`` and run with
``simulate_until_max_customers(N, method="Finish")``: the run stops when N
customers have reached the exit node, i.e. N requests have completed all three
stations (the arrival process keeps running meanwhile, as it does in Ciw).
Ciw keeps its usual per-customer data records; the mean sojourn is taken from
them (arrival at node 1 to exit from node 3).  Ciw draws from the standard
library ``random`` module and its own numpy Generator; ``ciw.seed`` seeds both.

Prints one JSON line on stdout::

    {"tool": "ciw", "requests": ..., "completed": ..., "mean_sojourn_ms": ..., ...}

Usage::

    python bench/tandem_ciw.py --requests 200000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import ciw

STATIONS = 3
WORKERS = 10
ARRIVAL_RATE_PER_S = 8.0
SERVICE_RATE_PER_S = 1.0


def build_network() -> ciw.Network:
    routers = [ciw.routing.Direct(to=n + 2) for n in range(STATIONS - 1)] + [ciw.routing.Leave()]
    return ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=ARRIVAL_RATE_PER_S)] + [None] * (STATIONS - 1),
        service_distributions=[ciw.dists.Exponential(rate=SERVICE_RATE_PER_S) for _ in range(STATIONS)],
        number_of_servers=[WORKERS] * STATIONS,
        routing=ciw.routing.NetworkRouting(routers=routers),
    )


def run(requests: int, seed: int) -> dict:
    ciw.seed(seed)
    sim = ciw.Simulation(build_network())
    t0 = time.perf_counter()
    sim.simulate_until_max_customers(requests, method="Finish")
    run_s = time.perf_counter() - t0

    exited = sim.nodes[-1].all_individuals
    total = 0.0
    for ind in exited:
        recs = ind.data_records
        total += recs[-1].exit_date - recs[0].arrival_date
    completed = len(exited)
    return {
        "tool": "ciw",
        "requests": requests,
        "completed": completed,
        "mean_sojourn_ms": 1000.0 * total / completed if completed else None,
        "sim_time_ms": 1000.0 * sim.current_time,
        "run_s": run_s,
        "seed": seed,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.requests <= 0:
        ap.error("--requests must be positive")
    print(json.dumps(run(args.requests, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
