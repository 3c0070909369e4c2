"""meshsim.experiments.queueing_lab: theory beside a run, Little's law, the warm-up curve."""

from __future__ import annotations

import math

import pytest

import meshsim
from meshsim.analytic import mg1, mm1, mmc
from meshsim.experiments.queueing_lab import littles_law, measured_calls, theory_table, warmup_curve


def station(rate_per_s: float, workers: int = 1, mean_ms: float = 10.0, requests: int = 30_000,
            warmup: str = "5s", service_time=None) -> dict:
    return {
        "run": {"requests": requests},
        "network": {"enabled": False},
        "metrics": {"warmup": warmup},
        "services": {"s": {"workers": workers,
                           "service_time": service_time or {"dist": "exponential", "mean": f"{mean_ms}ms"}}},
        "workloads": {"w": {"rate": rate_per_s, "target": "s"}},
    }


@pytest.fixture(scope="module")
def mm1_run():
    return meshsim.run(station(70), seed=4)  # rho = 0.7


def test_theory_table_mm1_matches_within_tolerance(mm1_run):
    table = theory_table(mm1_run, mm1(0.07, 0.1))
    assert list(table.index) == ["P(wait)", "mean wait Wq (ms)", "mean sojourn W (ms)", "p50 sojourn (ms)",
                                 "p90 sojourn (ms)", "p99 sojourn (ms)", "L (requests in system)",
                                 "Lq (requests waiting)"]
    assert table.loc["P(wait)", "theory"] == pytest.approx(0.7)
    assert table.loc["mean sojourn W (ms)", "theory"] == pytest.approx(10 / 0.3)
    assert table.loc["P(wait)", "simulated"] == pytest.approx(0.7, abs=0.03)
    assert table.loc["mean sojourn W (ms)", "simulated"] == pytest.approx(10 / 0.3, rel=0.1)
    assert table.loc["p50 sojourn (ms)", "simulated"] == pytest.approx(math.log(2) * 10 / 0.3, rel=0.1)
    rel = table["simulated"] / table["theory"] - 1
    assert (rel - table["relative_error"]).abs().max() < 1e-12


def test_deterministic_station_has_no_wait_and_no_quantile_rows():
    # D/D/1: one arrival every 10 ms, 1 ms of work each: nobody waits, W = 1 ms, L = 0.1
    sc = station(100, service_time="1ms", requests=2000, warmup="1s")
    sc["workloads"]["w"]["type"] = "deterministic"
    res = meshsim.run(sc, seed=1)
    table = theory_table(res, mg1(0.1, 1.0, 1.0))
    assert "p99 sojourn (ms)" not in table.index  # no closed-form quantiles beyond M/M/c
    assert table.loc["P(wait)", "simulated"] == 0.0
    assert table.loc["mean wait Wq (ms)", "simulated"] == 0.0
    assert table.loc["mean sojourn W (ms)", "simulated"] == pytest.approx(1.0)
    assert table.loc["L (requests in system)", "simulated"] == pytest.approx(0.1, rel=1e-3)


def test_measured_calls_respect_the_warmup(mm1_run):
    calls = measured_calls(mm1_run)
    assert calls["arrive_ms"].min() >= 5000.0
    assert (calls["sojourn_ms"] - calls["queue_ms"] - calls["service_ms"]).abs().max() < 1e-9
    # every request after warm-up is one call here
    req = mm1_run.requests
    assert len(calls) == int((req["arrival_ms"] >= 5000.0).sum())


def test_littles_law_holds_on_the_areas_and_roughly_on_samples():
    res = meshsim.run(station(400, workers=5), seed=2)  # M/M/5 at rho = 0.8
    law = littles_law(res)
    assert law["lambda_W"] == pytest.approx(law["lambda_per_ms"] * law["W_ms"])
    assert abs(law["relative_error"]) < 2e-3
    assert law["L_sampled"] == pytest.approx(law["L"], rel=0.15)
    assert law["L"] == pytest.approx(mmc(0.4, 0.1, 5).mean_in_system, rel=0.15)


def test_warmup_curve_pools_runs_and_starts_low():
    sc = station(90, requests=20_000, warmup="0s")  # rho = 0.9 from empty: the first second is light
    runs = [meshsim.run(sc, seed=s) for s in (1, 2)]
    curve = warmup_curve(runs, bin_ms=1000)
    assert int(curve["n"].sum()) == sum(int((r.requests["status"] == "ok").sum()) for r in runs)
    assert list(curve["t_ms"][:3]) == [0.0, 1000.0, 2000.0]
    assert curve["mean_ms"].iloc[0] < 0.8 * mm1(0.09, 0.1).mean_sojourn
    assert curve["mean_ms"].iloc[0] < curve["mean_ms"].iloc[10:].mean()


def test_unknown_service_is_named(mm1_run):
    with pytest.raises(ValueError, match="no service 'db'"):
        littles_law(mm1_run, "db")
