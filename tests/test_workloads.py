"""Arrival processes: each workload type produces the arrivals its spec describes."""

from __future__ import annotations

import math

import numpy as np
import pytest

import meshsim

FAST = {"dist": "constant", "value": 0.1}  # a server that never gets in the way


def open_scenario(workload: dict, duration: str | None = None, requests: int | None = None, service=FAST) -> dict:
    run: dict = {}
    if duration is not None:
        run["duration"] = duration
    if requests is not None:
        run["requests"] = requests
    return {
        "run": run,
        "network": {"enabled": False},
        "metrics": {"spans": False},
        "services": {"s": {"workers": 50, "service_time": service}},
        "workloads": {"w": {"target": "s", **workload}},
    }


def arrivals(res: meshsim.Result) -> np.ndarray:
    return res.requests["arrival_ms"].to_numpy()


def within_sigmas(count: int, expected: float, k: float = 4.0) -> bool:
    """A Poisson count within k standard deviations of its mean."""
    return abs(count - expected) <= k * math.sqrt(expected)


# ----------------------------------------------------------------------------- poisson, deterministic


def test_poisson_rate_and_exponential_gaps():
    res = meshsim.run(open_scenario({"type": "poisson", "rate": "250/s"}, duration="80s"), seed=1)
    t = arrivals(res)
    assert within_sigmas(len(t), 250 * 80)
    assert len(t) == pytest.approx(20_000, rel=0.03)
    assert np.all(np.diff(t) >= 0) and t[-1] < 80_000
    gaps = np.diff(t)
    assert gaps.mean() == pytest.approx(4.0, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.03)  # exponential: cv 1
    assert res.summary["throughput_rps"] == pytest.approx(250, rel=0.03)


def test_deterministic_rate_exact_gaps():
    res = meshsim.run(open_scenario({"type": "deterministic", "rate": "40/s"}, duration="10s"), seed=1)
    t = arrivals(res)
    assert np.allclose(np.diff(t), 25.0)
    assert t[0] == pytest.approx(25.0)
    assert len(t) in (399, 400)  # arrivals at 25, 50, ..., <= 10 s
    assert res.summary["latency_ms"]["max"] == pytest.approx(0.1)


# ----------------------------------------------------------------------------- mmpp


def test_mmpp_long_run_rate_and_burstiness():
    on, off, on_rate, off_rate = 0.1, 0.2, 400.0, 40.0  # seconds, per second
    wl = {"type": "mmpp", "rate": f"{on_rate}/s", "off_rate": f"{off_rate}/s", "on_time": f"{on}s", "off_time": f"{off}s"}
    horizon = 1200.0
    res = meshsim.run(open_scenario(wl, duration=f"{horizon}s"), seed=3)
    t = arrivals(res) / 1000.0
    mean_rate = (on_rate * on + off_rate * off) / (on + off)  # 160/s
    assert res.scenario.workload_rate("w") == pytest.approx(mean_rate)
    assert len(t) / horizon == pytest.approx(mean_rate, rel=0.05)
    # burstiness: index of dispersion of counts in windows of w seconds.  For an
    # on/off MMPP with switching rates a = 1/on, b = 1/off and p = P(on):
    # IDC(w) = 1 + 2 (r1 - r0)^2 p (1 - p) / (m (a + b)) * (1 - (1 - exp(-(a + b) w)) / ((a + b) w))
    a, b = 1 / on, 1 / off
    p = b / (a + b)
    for w in (0.1, 1.0):
        counts = np.bincount((t // w).astype(int), minlength=int(horizon / w))[: int(horizon / w)]
        s = (a + b) * w
        idc = 1 + 2 * (on_rate - off_rate) ** 2 * p * (1 - p) / (mean_rate * (a + b)) * (1 - (1 - math.exp(-s)) / s)
        assert counts.var() / counts.mean() == pytest.approx(idc, rel=0.12), w
    assert idc > 20  # far from Poisson (1)


# ----------------------------------------------------------------------------- steps


def test_steps_counts_per_interval():
    wl = {"type": "steps", "steps": [{"at": "2s", "rate": "100/s"}, {"at": "12s", "rate": "400/s"},
                                     {"at": "17s", "rate": "0/s"}, {"at": "20s", "rate": "50/s"}]}
    res = meshsim.run(open_scenario(wl, duration="40s"), seed=2)
    t = arrivals(res)
    assert t.min() >= 2000  # rate is 0 before the first step
    edges = [0, 2000, 12_000, 17_000, 20_000, 40_000]
    counts, _ = np.histogram(t, bins=edges)
    expected = [0, 100 * 10, 400 * 5, 0, 50 * 20]
    assert counts[0] == 0 and counts[3] == 0
    for n, e in zip(counts, expected):
        if e:
            assert within_sigmas(int(n), e), (counts, expected)
    # time-averaged rate over the run
    assert res.scenario.workload_rate("w") == pytest.approx(sum(expected) / 40)


# ----------------------------------------------------------------------------- diurnal


def test_diurnal_high_and_low_half_cycles():
    rate, a, period, cycles = 200.0, 0.6, 10.0, 12
    wl = {"type": "diurnal", "rate": f"{rate}/s", "amplitude": a, "period": f"{period}s"}
    res = meshsim.run(open_scenario(wl, duration=f"{cycles * period}s"), seed=4)
    t = arrivals(res) / 1000.0
    phase = (t % period) / period
    high = int((phase < 0.5).sum())  # sin > 0
    low = int((phase >= 0.5).sum())
    # integral of rate over a half cycle: rate * (period/2 +- a * period / pi)
    e_high = cycles * rate * (period / 2 + a * period / math.pi)
    e_low = cycles * rate * (period / 2 - a * period / math.pi)
    assert within_sigmas(high, e_high) and within_sigmas(low, e_low)
    assert high / low == pytest.approx((1 + 2 * a / math.pi) / (1 - 2 * a / math.pi), rel=0.05)
    # the peak quarter (around pi/2) against the trough quarter (around 3 pi/2)
    peak = ((phase >= 0.125) & (phase < 0.375)).sum()
    trough = ((phase >= 0.625) & (phase < 0.875)).sum()
    q = a * 2 * math.sqrt(2) / math.pi  # mean of sin over a quarter centred on its peak
    assert peak / trough == pytest.approx((1 + q) / (1 - q), rel=0.06)
    assert len(t) == pytest.approx(rate * cycles * period, rel=0.03)


def test_diurnal_phase_shifts_the_cycle():
    wl = {"type": "diurnal", "rate": "200/s", "amplitude": 0.6, "period": "10s", "phase": math.pi}
    res = meshsim.run(open_scenario(wl, duration="60s"), seed=4)
    phase = (arrivals(res) / 1000.0 % 10.0) / 10.0
    # phase pi swaps the high and low halves
    assert (phase >= 0.5).sum() > 1.3 * (phase < 0.5).sum()


# ----------------------------------------------------------------------------- closed loop


def test_closed_loop_interactive_response_time_law():
    users, think = 25, 200.0
    sc = {
        "run": {"duration": "300s"},
        "network": {"enabled": False},
        "metrics": {"warmup": "20s"},
        "services": {"s": {"workers": 2, "service_time": {"dist": "exponential", "mean": 15}}},
        "workloads": {"w": {"type": "closed", "users": users,
                            "think_time": {"dist": "exponential", "mean": think}, "target": "s"}},
    }
    res = meshsim.run(sc, seed=6)
    s = res.summary
    x = s["throughput_rps"] / 1000.0  # per ms
    r = s["latency_ms"]["mean"]
    assert r > 15 * 1.1  # there is real queueing
    assert x == pytest.approx(users / (think + r), rel=0.02)
    # utilisation law: U = X S / c
    assert s["services"]["s"]["utilisation"] == pytest.approx(x * 15 / 2, rel=0.03)
    # never more than `users` requests outstanding
    req = res.requests
    ev = np.concatenate([np.stack([req["arrival_ms"], np.ones(len(req))], 1),
                         np.stack([req["end_ms"], -np.ones(len(req))], 1)])
    ev = ev[np.lexsort((ev[:, 1], ev[:, 0]))]  # at equal times, ends before starts
    assert np.cumsum(ev[:, 1]).max() <= users


# ----------------------------------------------------------------------------- trace replay


def test_trace_replay_exact_and_speedup(tmp_path):
    times = [0.0, 3.5, 10.0, 10.0, 27.25, 100.0, 64.0]  # unsorted rows, a tie
    f = tmp_path / "trace.csv"
    f.write_text("id,at\n" + "".join(f"{i},{x}\n" for i, x in enumerate(times)))
    wl = {"type": "trace", "file": str(f), "column": "at"}
    res = meshsim.run(open_scenario(wl, duration="1h"), seed=1)
    assert arrivals(res).tolist() == sorted(times)
    assert res.summary["completed"] == len(times)
    assert res.summary["sim_time_ms"] == pytest.approx(100.1)  # stops after the trace, last reply at 100.1
    fast = meshsim.run(open_scenario({**wl, "speedup": 2}, duration="1h"), seed=1)
    assert arrivals(fast).tolist() == [x / 2 for x in sorted(times)]


def test_trace_replay_stops_at_run_requests(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("time_ms\n" + "\n".join(str(10 * i) for i in range(100)) + "\n")
    res = meshsim.run(open_scenario({"type": "trace", "file": str(f)}, requests=30), seed=1)
    assert arrivals(res).tolist() == [10.0 * i for i in range(30)]


# ----------------------------------------------------------------------------- client timeout


def test_client_timeout_marks_slow_requests():
    wl = {"type": "poisson", "rate": "100/s", "timeout": "60ms"}
    service = {"dist": "uniform", "low": "0ms", "high": "100ms"}
    res = meshsim.run(open_scenario(wl, requests=8000, service=service), seed=7)
    req = res.requests
    to = req["status"] == "timeout"
    ok = req["status"] == "ok"
    assert (to | ok).all()
    # P(S > 60 ms) = 0.4 for S ~ U(0, 100) and no queueing (50 workers)
    assert to.mean() == pytest.approx(0.4, abs=0.025)
    assert np.allclose(req.loc[to, "latency_ms"], 60.0)
    assert (req.loc[ok, "latency_ms"] <= 60.0).all()
    s = res.summary
    assert s["failed_by_reason"] == {"timeout": int(to.sum())}
    assert s["latency_ms"]["max"] <= 60.0
    # the server still finished every call: a timeout is the client's view only
    assert (res.spans["status"] == "ok").all()
