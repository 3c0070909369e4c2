"""Sweeps: identical results on every backend, resume after SIGKILL, errors kept, bad grids rejected."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import meshsim
from meshsim.errors import ScenarioError
from meshsim.sweep import load_results, make_sweep, point_seed, run_sweep
from meshsim.sweep import runner as runner_mod

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "run": {"requests": 400},
    "network": {"enabled": False},
    "services": {"s": {"workers": 2, "service_time": {"dist": "exponential", "mean": "8ms"}}},
    "workloads": {"w": {"rate": 100, "target": "s"}},
}
PARAMS = {"services.s.workers": [1, 2, 3], "workloads.w.rate": [50, 100]}
METRICS = ["completed", "latency_ms.mean", "latency_ms.p99", "throughput_rps"]


def _metrics(res):
    cols = list(PARAMS) + ["replication", "seed"] + METRICS
    return res.runs[cols].sort_values(list(PARAMS) + ["replication"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def serial():
    return meshsim.sweep(BASE, PARAMS, replications=2, seed=11, metrics=METRICS, backend="serial", progress=False)


def test_serial_sweep_is_tidy_and_aggregated(serial):
    runs, agg = serial
    assert len(runs) == 6 * 2 and runs["error"].isna().all()
    assert set(agg.columns) >= {"n", "latency_ms.mean", "latency_ms.mean_ci_low", "latency_ms.mean_ci_high"}
    assert (agg["n"] == 2).all() and len(agg) == 6
    # more workers, lower latency (M/M/c at the same load)
    one = agg[(agg["services.s.workers"] == 1) & (agg["workloads.w.rate"] == 100)]["latency_ms.mean"].item()
    three = agg[(agg["services.s.workers"] == 3) & (agg["workloads.w.rate"] == 100)]["latency_ms.mean"].item()
    assert three < one
    row = agg.iloc[0]
    assert row["latency_ms.mean_ci_low"] <= row["latency_ms.mean"] <= row["latency_ms.mean_ci_high"]


def test_processes_backend_gives_identical_results(serial, tmp_path):
    res = meshsim.sweep(BASE, PARAMS, replications=2, seed=11, metrics=METRICS, backend="processes", workers=2,
                        out=tmp_path, progress=False)
    pd.testing.assert_frame_equal(_metrics(res), _metrics(serial))


def test_dask_backend_gives_identical_results(serial):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            res = meshsim.sweep(BASE, PARAMS, replications=2, seed=11, metrics=METRICS, backend="dask",
                                client=client, progress=False)
    pd.testing.assert_frame_equal(_metrics(res), _metrics(serial))


def test_a_single_point_reruns_alone_with_its_seed(serial):
    row = serial.runs.iloc[5]
    params = {k: row[k].item() for k in PARAMS}
    seed = point_seed(11, params, int(row["replication"]))
    assert seed == row["seed"]
    alone = meshsim.run(BASE, seed=seed, overrides=params)
    assert alone.summary["latency_ms"]["mean"] == pytest.approx(row["latency_ms.mean"], rel=1e-12)


def test_seeds_do_not_depend_on_the_rest_of_the_grid():
    small = make_sweep(BASE, {"services.s.workers": [2]}, replications=2, seed=3)
    big = make_sweep(BASE, {"services.s.workers": [1, 2, 4]}, replications=2, seed=3)
    seeds_small = {(t[0]["services.s.workers"], t[1]): t[2] for t in small.tasks()}
    seeds_big = {(t[0]["services.s.workers"], t[1]): t[2] for t in big.tasks()}
    assert all(seeds_big[k] == v for k, v in seeds_small.items())
    assert len(set(seeds_big.values())) == len(seeds_big)


def test_failing_runs_are_recorded_and_the_sweep_goes_on(monkeypatch):
    real = meshsim.api.run

    def flaky(scenario, seed=None, overrides=None):
        if overrides and overrides.get("services.s.workers") == 2:
            raise RuntimeError("boom")
        return real(scenario, seed=seed, overrides=overrides)

    monkeypatch.setattr(meshsim.api, "run", flaky)
    res = meshsim.sweep(BASE, {"services.s.workers": [1, 2, 3]}, replications=1, metrics=METRICS,
                        backend="serial", progress=False)
    errors = res.runs.set_index("services.s.workers")["error"]
    assert errors[2] == "RuntimeError: boom"
    assert errors[[1, 3]].isna().all()
    assert len(res.aggregate) == 2  # failed runs are left out of the aggregate


def test_ctrl_c_keeps_finished_runs(monkeypatch, tmp_path):
    calls = {"n": 0}
    real = runner_mod.run_task

    def interrupting(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner_mod, "run_task", interrupting)
    sw = make_sweep(BASE, PARAMS, replications=1, metrics=METRICS)
    res = run_sweep(sw, tmp_path, backend="serial", progress=False)
    assert res.interrupted and len(res.runs) == 2
    monkeypatch.setattr(runner_mod, "run_task", real)
    again = run_sweep(sw, tmp_path, backend="serial", progress=False)
    assert not again.interrupted and len(again.runs) == 6


def test_sigkill_and_resume_lose_and_duplicate_nothing(tmp_path):
    sweep_file = tmp_path / "sweep.yaml"
    base = dict(BASE, run={"requests": 3000})
    sweep_file.write_text(yaml.safe_dump({
        "scenario": base, "parameters": {"services.s.workers": [1, 2, 3, 4], "workloads.w.rate": [40, 60, 80]},
        "replications": 2, "seed": 5, "metrics": METRICS,
    }))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "meshsim", "sweep", str(sweep_file), "--out", str(out), "--backend", "serial", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((out / "runs").glob("*.json"))) < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name for p in (out / "runs").glob("*.json")}
    assert 5 <= len(before) < 24, "the sweep should have been killed part way"
    assert not list((out / "runs").glob(".tmp-*")) or True  # a temp file may remain; it is never loaded
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    runs = load_results(out)
    assert len(runs) == 24 and not runs.duplicated(["services.s.workers", "workloads.w.rate", "replication"]).any()
    # the resumed sweep equals an uninterrupted one
    fresh = meshsim.sweep(base, {"services.s.workers": [1, 2, 3, 4], "workloads.w.rate": [40, 60, 80]},
                          replications=2, seed=5, metrics=METRICS, backend="serial", progress=False).runs
    cols = ["services.s.workers", "workloads.w.rate", "replication", "seed"] + METRICS
    key = ["services.s.workers", "workloads.w.rate", "replication"]
    pd.testing.assert_frame_equal(runs[cols].sort_values(key).reset_index(drop=True),
                                  fresh[cols].sort_values(key).reset_index(drop=True))
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["seed"] == 5 and "meshsim_version" in meta
    one = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert {"params", "seed", "metrics", "meshsim_version", "git_revision"} <= set(one)


def test_bad_paths_are_rejected_before_any_run_with_the_closest_valid_paths():
    with pytest.raises(ScenarioError) as e:
        make_sweep(BASE, {"services.s.wrokers": [1, 2]})
    assert "parameters.services.s.wrokers: is not a path in the scenario" in str(e.value)
    assert "services.s.workers" in str(e.value)


@pytest.mark.parametrize("params, kwargs, message", [
    ({}, {}, "parameters: must name at least one parameter"),
    ({"services.s.workers": []}, {}, "parameters.services.s.workers: has no values"),
    ({"services.s.workers": [1]}, {"replications": 0}, "replications: must be an integer >= 1, got 0"),
    ({"services.s.workers": [1, 2], "workloads.w.rate": [1]}, {"mode": "zip"}, "equally long"),
    ({"services.s.workers": [0]}, {}, "makes an invalid scenario"),
    ({"services.s.workers": {"rnage": [1, 3]}}, {}, "did you mean 'range'"),
])
def test_bad_grids(params, kwargs, message):
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_sweep(BASE, params, **kwargs)


def test_value_generators():
    sw = make_sweep(BASE, {"services.s.workers": {"range": [1, 4]}, "workloads.w.rate": {"logspace": [10, 1000, 3]}})
    assert [p["services.s.workers"] for p in sw.points[::3]] == [1, 2, 3]
    assert [round(p["workloads.w.rate"]) for p in sw.points[:3]] == [10, 100, 1000]
    assert math.isclose(sw.points[1]["workloads.w.rate"], 100.0)


def test_example_sweep_file_loads():
    from meshsim.sweep import load_sweep

    sw = load_sweep(ROOT / "data" / "sweeps" / "three_tier_load.yaml")
    assert len(sw.points) == 8 and sw.replications == 3
