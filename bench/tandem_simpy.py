"""Baseline (b): a hand-written, minimal SimPy model of the reference workload.

Three M/M/10 stations in tandem, lambda = 8/s, mean service 1000 ms per
worker, async semantics (a request joins the next station as soon as it
leaves the previous one), no network latency.  Time is in milliseconds, as in
meshsim.

It is written the way a competent SimPy user would write it: one process per
request, one ``simpy.Resource(capacity=10)`` per station, numpy Generators for
randomness (drawn in vectorised chunks, never the global ``random``), and only
a running sum of sojourn times is kept (no per-request records).  All
``--requests`` arrivals are generated and the model runs until every request
has left the third station.

Prints one JSON line on stdout::

    {"tool": "simpy", "requests": ..., "completed": ..., "mean_sojourn_ms": ..., ...}

Usage::

    python bench/tandem_simpy.py --requests 200000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import simpy

STATIONS = 3
WORKERS = 10
ARRIVAL_RATE_PER_S = 8.0
MEAN_SERVICE_MS = 1000.0
MEAN_INTERARRIVAL_MS = 1000.0 / ARRIVAL_RATE_PER_S
CHUNK = 8192


class ExpStream:
    """Exponential draws from one numpy Generator, produced in chunks."""

    __slots__ = ("_rng", "_mean", "_buf", "_i")

    def __init__(self, rng: np.random.Generator, mean: float):
        self._rng = rng
        self._mean = mean
        self._buf: list[float] = []
        self._i = 0

    def next(self) -> float:
        i = self._i
        if i == len(self._buf):
            self._buf = self._rng.exponential(self._mean, CHUNK).tolist()
            i = 0
        self._i = i + 1
        return self._buf[i]


def run(requests: int, seed: int) -> dict:
    root = np.random.SeedSequence(seed)
    arrival_ss, *service_ss = root.spawn(1 + STATIONS)
    interarrival = ExpStream(np.random.Generator(np.random.PCG64(arrival_ss)), MEAN_INTERARRIVAL_MS).next
    service = [ExpStream(np.random.Generator(np.random.PCG64(ss)), MEAN_SERVICE_MS).next for ss in service_ss]

    env = simpy.Environment()
    stations = [simpy.Resource(env, capacity=WORKERS) for _ in range(STATIONS)]
    pipeline = list(zip(stations, service))
    stats = {"completed": 0, "sojourn_sum": 0.0}

    def request(env: simpy.Environment):
        start = env.now
        for res, draw in pipeline:
            with res.request() as r:
                yield r
                yield env.timeout(draw())
        stats["completed"] += 1
        stats["sojourn_sum"] += env.now - start

    def source(env: simpy.Environment):
        for _ in range(requests):
            yield env.timeout(interarrival())
            env.process(request(env))

    env.process(source(env))
    t0 = time.perf_counter()
    env.run()
    run_s = time.perf_counter() - t0

    completed = stats["completed"]
    return {
        "tool": "simpy",
        "requests": requests,
        "completed": completed,
        "mean_sojourn_ms": stats["sojourn_sum"] / completed if completed else None,
        "sim_time_ms": env.now,
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
