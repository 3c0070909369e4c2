"""retry_budget: a budget sweep between the two ends the M/M/1/K fixed point predicts."""

from __future__ import annotations

import math

import pytest

from meshsim.experiments.failure_modes import storm_fixed_point
from meshsim.experiments.retry_budget import budget_scenario, budget_sweep


@pytest.fixture(scope="module")
def sweep():
    return budget_sweep([0, 30, 60, None], load=1.1, seeds=(1, 2, 3), duration="8s")


def test_no_budget_is_the_storm_fixed_point(sweep):
    storm = sweep.iloc[-1]
    apr, fail = storm_fixed_point(1.1, 0.25, 5, 4, 3)
    assert storm["budget_percent"] == math.inf and storm["theory_storm_attempts"] == pytest.approx(apr)
    half = storm["attempts_ci_high"] - storm["attempts_per_request"]
    assert abs(storm["attempts_per_request"] - apr) <= half + 0.04 * apr
    assert storm["failed_fraction"] == pytest.approx(fail, abs=0.03)
    assert storm["failed_fraction"] >= storm["failed_floor"] == pytest.approx(1 - 1 / 1.1)


def test_zero_budget_is_no_retries_and_mm1k_blocking(sweep):
    zero = sweep.iloc[0]
    assert zero["attempts_per_request"] == 1.0 and zero["retries_per_request"] == 0.0
    assert zero["retry_overflow_per_request"] > 0.15  # every rejected attempt wanted a retry
    # random split of Poisson arrivals: each instance is M/M/1/5 at load 1.1
    rho = 1.1
    block = rho**5 * (1 - rho) / (1 - rho**6)
    assert zero["theory_no_retry_failed"] == pytest.approx(block)
    assert zero["failed_ci_low"] - 0.01 <= block <= zero["failed_ci_high"] + 0.01


def test_attempts_grow_with_the_budget_and_stay_below_the_storm(sweep):
    apr = sweep["attempts_per_request"].tolist()
    assert apr == sorted(apr) and apr[1] > 1.05 and apr[2] < 1.3
    assert (sweep["attempts_ci_low"] <= sweep["attempts_per_request"]).all()
    # retries recover failures: the failed fraction falls as the budget grows
    assert sweep["failed_fraction"].iloc[2] < sweep["failed_fraction"].iloc[0] - 0.03


def test_scenario_keys():
    sc = budget_scenario(math.inf, 1.2, attempts=2)
    assert "budget" not in sc["services"]["api"]["retries"] and sc["services"]["api"]["retries"]["attempts"] == 2
    assert sc["workloads"]["w"]["rate"] == pytest.approx(1200.0)
