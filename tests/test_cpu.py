"""The FIFO multi-core queue of meshsim.core.cpu against Erlang C, and its use by the registry's servers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshsim.core.cpu import CpuQueue, ServeCost


def erlang_c_wait(lam: float, mu: float, c: int) -> float:
    """Mean wait in queue of M/M/c (Erlang C)."""
    a = lam / mu
    rho = a / c
    head = sum(a**k / math.factorial(k) for k in range(c))
    tail = a**c / math.factorial(c) / (1 - rho)
    p_wait = tail / (head + tail)
    return p_wait / (c * mu - lam)


@pytest.mark.parametrize("c, rho", [(1, 0.7), (4, 0.8), (36, 0.9)])
def test_mean_wait_is_erlang_c(c, rho):
    mu = 1.0  # per ms
    lam = rho * c * mu
    rng = np.random.default_rng(7)
    n = 400_000
    arrivals = np.cumsum(rng.exponential(1 / lam, n))
    work = rng.exponential(1 / mu, n)
    q = CpuQueue(c)
    waits = np.empty(n)
    for i in range(n):
        t = arrivals[i]
        waits[i] = q.admit(t, work[i]) - work[i] - t
    w = waits[n // 10:]  # without the warm-up
    batches = w[: len(w) // 20 * 20].reshape(20, -1).mean(axis=1)
    se = batches.std(ddof=1) / math.sqrt(len(batches))
    theory = erlang_c_wait(lam, mu, c)
    assert abs(w.mean() - theory) < 4 * se + 1e-9, (w.mean(), theory, se)
    assert q.jobs == n and q.busy_ms == pytest.approx(work.sum())
    assert q.max_wait_ms == pytest.approx(waits.max())


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.lists(st.tuples(st.floats(0, 10), st.floats(0, 5)), min_size=1, max_size=40))
def test_work_is_conserved_and_no_core_runs_two_jobs(cores, jobs):
    """Invariants: every job starts no earlier than it arrives, at most ``cores`` run at once, and a core is
    never idle while a job waits (work-conserving FIFO)."""
    q = CpuQueue(cores)
    t = 0.0
    spans = []
    for gap, work in jobs:
        t += gap
        fin = q.admit(t, work)
        start = fin - work
        assert start >= t - 1e-12
        spans.append((start, fin, t))
    for s, f, arr in spans:
        if f > s:
            # (start = finish - work carries rounding: compare with a tolerance)
            running = sum(1 for s2, f2, _ in spans if s2 - 1e-9 <= s < f2 - 1e-9 and f2 > s2)
            assert running <= cores
        if s > arr + 1e-9:  # it waited: all cores were busy just before it started
            busy = sum(1 for s2, f2, _ in spans if s2 < s <= f2 + 1e-12 and f2 > s2)
            assert busy >= cores


def test_bad_arguments():
    with pytest.raises(ValueError):
        CpuQueue(0)
    with pytest.raises(ValueError):
        CpuQueue(2).admit(0.0, -1.0)
    with pytest.raises(ValueError):
        ServeCost(per_instance_ms=math.nan)
