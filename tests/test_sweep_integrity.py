"""Sweep stores that refuse to mix definitions, grids of any value type, no orphan workers,
paired seeds, and the `meshsim sweep` table and plot (issue 12, part A)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import meshsim
from meshsim.cli import main
from meshsim.errors import ScenarioError
from meshsim.sweep import SweepMismatch, SweepWarning, load_results, load_sweep, make_sweep
from meshsim.sweep import report as report_mod
from meshsim.sweep import runner as runner_mod

ROOT = Path(__file__).resolve().parents[1]
BASE = {
    "run": {"requests": 300},
    "network": {"enabled": False},
    "services": {"s": {"workers": 2, "service_time": {"dist": "exponential", "mean": "8ms"}}},
    "workloads": {"w": {"rate": 100, "target": "s"}},
}
GRID = {"services.s.workers": [1, 2]}
METRICS = ["latency_ms.mean", "latency_ms.p50", "latency_ms.p99", "throughput_rps"]


def _sweep(out, base=BASE, grid=GRID, **kw):
    kw = {"replications": 2, "seed": 5, "metrics": METRICS, **kw}
    return meshsim.sweep(base, grid, out=out, backend="serial", progress=False, **kw)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _sweep_file(path: Path, **kw) -> Path:
    data = {"scenario": BASE, "parameters": GRID, "replications": 2, "seed": 5, "metrics": METRICS, **kw}
    path.write_text(yaml.safe_dump(data))
    return path


# -- (1) store integrity ------------------------------------------------------------------------

def test_cli_refuses_a_different_seed_and_leaves_the_store_as_it_was(tmp_path, capsys):
    """Issue 12: a rerun with another seed finished at once, returned the old runs and rewrote sweep.json."""
    out = tmp_path / "out"
    assert main(["sweep", str(_sweep_file(tmp_path / "a.yaml")), "--out", str(out), "--backend", "serial",
                 "--no-progress"]) == 0
    before = _files(out)
    capsys.readouterr()
    code = main(["sweep", str(_sweep_file(tmp_path / "b.yaml", seed=6)), "--out", str(out), "--backend", "serial",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "holds a different sweep: seed: stored 5, now 6" in err and "--new" in err
    assert _files(out) == before  # sweep.json not rewritten, no run added or changed
    assert json.loads((out / "sweep.json").read_text())["seed"] == 5


@pytest.mark.parametrize("change, message", [
    ({"base": dict(BASE, run={"requests": 301})}, "scenario content differs at run.requests 300 -> 301"),
    ({"metrics": ["latency_ms.mean"]}, "metrics: stored"),
    ({"paired": True}, "paired: stored false, now true"),
    ({"mode": "zip"}, "mode: stored \"product\", now \"zip\""),
    ({"replications": 1}, "replications: stored 2, now 1 (fewer)"),
    ({"grid": {"services.s.workers": [2]}}, "grid: 1 stored point(s) are not in this sweep"),
    ({"grid": {"workloads.w.rate": [100]}}, "parameter_names: stored [\"services.s.workers\"], now [\"workloads.w.rate\"]"),
])
def test_any_other_difference_is_refused_with_what_differs(tmp_path, change, message):
    _sweep(tmp_path)
    before = _files(tmp_path)
    with pytest.raises(SweepMismatch) as e:
        _sweep(tmp_path, **change)
    assert message in str(e.value)
    assert isinstance(e.value, ScenarioError)
    assert _files(tmp_path) == before


def test_same_content_from_another_source_resumes_and_a_larger_grid_extends(tmp_path, monkeypatch):
    first = _sweep(tmp_path)
    scenario_file = tmp_path.parent / f"{tmp_path.name}-scenario.yaml"
    scenario_file.write_text(yaml.safe_dump(BASE))  # same content, now from a file: the same sweep
    calls = []
    real = runner_mod.run_task
    monkeypatch.setattr(runner_mod, "run_task", lambda *a: calls.append(a[1]) or real(*a))
    again = _sweep(tmp_path, base=str(scenario_file))
    assert calls == [] and again.fingerprint == first.fingerprint
    assert again.runs[METRICS].equals(first.runs[METRICS])
    bigger = _sweep(tmp_path, grid={"services.s.workers": [1, 2, 3]}, replications=3)
    assert len(calls) == 9 - 4  # only the new point and the new replication ran
    assert len(bigger.runs) == 9
    stored = json.loads((tmp_path / "sweep.json").read_text())
    assert stored["replications"] == 3 and len(stored["points"]) == 3 and stored["fingerprint"] == bigger.fingerprint


def test_new_writes_to_a_fresh_folder_and_resumes_it(tmp_path):
    out = tmp_path / "store"
    _sweep(out)
    before = _files(out)
    other = _sweep(out, seed=9, new=True)
    assert Path(other.directory) == tmp_path / "store-2" and len(other.runs) == 4
    assert _files(out) == before
    assert json.loads((tmp_path / "store-2" / "sweep.json").read_text())["seed"] == 9
    again = _sweep(out, seed=9, new=True)  # the folder made last time holds this sweep: resumed, not a third one
    assert Path(again.directory) == tmp_path / "store-2" and not (tmp_path / "store-3").exists()


def test_runs_of_another_meshsim_version_are_refused_and_flagged(tmp_path):
    _sweep(tmp_path)
    meta = json.loads((tmp_path / "sweep.json").read_text())
    meta["meshsim_version"] = "0.0.1"
    (tmp_path / "sweep.json").write_text(json.dumps(meta))
    run_file = next((tmp_path / "runs").glob("*.json"))
    rec = json.loads(run_file.read_text())
    rec["meshsim_version"] = "0.0.1"
    run_file.write_text(json.dumps(rec))
    with pytest.raises(SweepMismatch, match=f"its runs were made by meshsim 0.0.1, this is {meshsim.__version__}"):
        _sweep(tmp_path)
    with pytest.warns(SweepWarning, match="1 runs were made by meshsim 0.0.1"):
        runs = load_results(tmp_path)
    assert sorted(runs["meshsim_version"].unique()) == ["0.0.1", meshsim.__version__]


def test_stores_without_a_fingerprint_are_refused(tmp_path):
    _sweep(tmp_path)
    meta = json.loads((tmp_path / "sweep.json").read_text())
    legacy = {k: meta[k] for k in ("parameters", "mode", "replications", "seed", "metrics", "meshsim_version")}
    (tmp_path / "sweep.json").write_text(json.dumps(legacy))
    with pytest.raises(SweepMismatch, match="no fingerprint"):
        _sweep(tmp_path)
    (tmp_path / "sweep.json").unlink()  # runs but no sweep.json at all
    with pytest.raises(SweepMismatch, match="no fingerprint"):
        _sweep(tmp_path)


# -- (2) grids of any value type ----------------------------------------------------------------

CRASH = [{"at": "1s", "action": "crash", "instance": "s-0"}]
ODD_GRID = {"faults": [[], CRASH], "services.s.queue": [None, 10]}


def test_lists_dicts_and_none_run_end_to_end_with_readable_labels(tmp_path):
    """Issue 12: a list-valued grid ran every run, then crashed sorting (unhashable list) and lost the aggregate."""
    res = _sweep(tmp_path, grid=ODD_GRID, replications=1)
    assert len(res.runs) == 4 and res.runs["error"].isna().all()
    assert [type(v) for v in res.runs["faults"]] == [list] * 4  # the runs keep the real values
    assert res.runs["services.s.queue"].tolist() == [None, 10, None, 10]
    agg = res.aggregate
    crash = "[{at: 1s, action: crash, instance: s-0}]"
    assert agg["faults"].tolist() == ["[]", "[]", crash, crash]
    assert agg["services.s.queue"].tolist() == ["null", "10", "null", "10"]
    assert (agg["n"] == 1).all()
    on_disk = (tmp_path / "aggregate.csv").read_text()
    assert "[{at: 1s, action: crash, instance: s-0}]" in on_disk and on_disk.count("\n") == 5
    # a rerun of one point from its row gives the same number
    row = res.runs.iloc[3]
    alone = meshsim.run(BASE, seed=int(row["seed"]), overrides={k: row[k] for k in ODD_GRID})
    assert alone.summary["latency_ms"]["mean"] == pytest.approx(row["latency_ms.mean"], rel=1e-12)


def test_a_dict_valued_parameter_is_labelled(tmp_path):
    grid = {"services.s.service_time": [{"dist": "exponential", "mean": "8ms"}, {"dist": "constant", "value": "8ms"}]}
    res = _sweep(None, grid=grid, replications=1)
    assert sorted(res.aggregate["services.s.service_time"]) == ["{dist: constant, value: 8ms}",
                                                                "{dist: exponential, mean: 8ms}"]
    const, expo = (res.aggregate.set_index("services.s.service_time")["latency_ms.mean"][k]
                   for k in ("{dist: constant, value: 8ms}", "{dist: exponential, mean: 8ms}"))
    assert const < expo  # less variable service, shorter waits


def test_every_point_is_checked_before_the_first_run(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_mod, "run_task", lambda *a: pytest.fail("a run started"))
    bad = {"faults": [[], [{"at": "1s", "action": "crash", "instance": "nope-0"}]]}
    with pytest.raises(ScenarioError, match=r"parameters \(faults=\[\{at: 1s, action: crash, instance: nope-0\}\]\)"):
        _sweep(tmp_path / "out", grid=bad)
    assert not (tmp_path / "out").exists()


def test_the_aggregate_is_written_even_if_a_later_step_fails(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("sorting broke")

    monkeypatch.setattr(runner_mod, "sort_rows", broken)
    res = _sweep(tmp_path / "a")
    assert len(res.aggregate) == 2 and (tmp_path / "a" / "aggregate.csv").exists()
    monkeypatch.undo()
    monkeypatch.setattr(report_mod, "write_plot", lambda *a: (_ for _ in ()).throw(RuntimeError("plot broke")))
    with pytest.raises(RuntimeError, match="plot broke"):
        main(["sweep", str(_sweep_file(tmp_path / "s.yaml")), "--out", str(tmp_path / "b"), "--backend", "serial",
              "--no-progress", "--plot"])
    agg = (tmp_path / "b" / "aggregate.csv").read_text().splitlines()
    assert len(agg) == 3 and agg[0].startswith("services.s.workers,n,latency_ms.mean")


# -- (3) no orphans -----------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "Ctrl-C"])
def test_killing_the_sweep_leaves_no_worker_behind(tmp_path, how):
    """Issue 12: after SIGKILL of `meshsim sweep`, its two pool workers were still running minutes later."""
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({
        "scenario": dict(BASE, run={"requests": 40000}), "parameters": {"workloads.w.rate": list(range(100, 130))},
        "seed": 1, "metrics": ["latency_ms.mean"],
    }))
    cmd = [sys.executable, "-m", "meshsim", "sweep", str(sweep_file), "--out", str(tmp_path / "out"),
           "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(workers) < 2:
            workers = _children(proc.pid)
            time.sleep(0.05)
        assert len(workers) == 2, f"expected two pool workers, found {workers}"
        time.sleep(0.3)  # let them start on a run
        assert proc.poll() is None, "the sweep ended before it could be killed"
        if how == "SIGKILL":
            proc.kill()
        elif how == "SIGTERM":
            proc.terminate()
        else:
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.05)
        left = [p for p in workers if _alive(p)]
        assert not left, f"worker processes {left} outlived the sweep ({how})"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


# -- (4) paired seeds ---------------------------------------------------------------------------

def test_paired_runs_every_point_of_a_replication_on_one_seed(tmp_path):
    sw = make_sweep(BASE, {"services.s.workers": [1, 2, 3]}, replications=3, seed=4, paired=True)
    seeds = {}
    for params, rep, seed, _ in sw.tasks():
        seeds.setdefault(rep, set()).add(seed)
    assert all(len(s) == 1 for s in seeds.values()) and len({next(iter(s)) for s in seeds.values()}) == 3
    unpaired = make_sweep(BASE, {"services.s.workers": [1, 2, 3]}, replications=3, seed=4)
    assert len({t[2] for t in unpaired.tasks()}) == 9
    loaded = load_sweep(_sweep_file(tmp_path / "p.yaml", paired=True))
    assert loaded.paired and loaded.tasks()[0][2] == loaded.tasks()[2][2]
    with pytest.raises(ScenarioError, match="paired: must be true or false"):
        load_sweep(_sweep_file(tmp_path / "q.yaml", paired="yes"))
    res = _sweep(tmp_path / "store", paired=True)
    assert json.loads((tmp_path / "store" / "sweep.json").read_text())["paired"] is True
    by_rep = res.runs.groupby("replication")["seed"].nunique()
    assert (by_rep == 1).all()


def test_paired_differences_are_narrower_than_unpaired_ones():
    """A small effect (service mean 8 vs 8.4 ms): common random numbers shrink the interval of the difference."""
    base = dict(BASE, run={"requests": 2000}, workloads={"w": {"rate": 150, "target": "s"}})
    grid = {"services.s.service_time.mean": ["8ms", "8.4ms"]}
    half = {}
    for paired in (True, False):
        res = meshsim.sweep(base, grid, replications=8, paired=paired, metrics=["latency_ms.mean"],
                            backend="serial", progress=False)
        d = res.differences({"services.s.service_time.mean": "8ms"}).iloc[0]
        assert d["n"] == 8 and d["services.s.service_time.mean"] == "8.4ms"
        assert d["latency_ms.mean.diff_ci_low"] <= d["latency_ms.mean.diff"] <= d["latency_ms.mean.diff_ci_high"]
        half[paired] = (d["latency_ms.mean.diff_ci_high"] - d["latency_ms.mean.diff_ci_low"]) / 2
        if paired:
            assert d["latency_ms.mean.diff_ci_low"] > 0  # slower service, longer latency: resolved with 8 pairs
    assert half[True] * 1.5 < half[False], half


# -- (5) CLI table and plot ---------------------------------------------------------------------

def test_cli_prints_a_compact_table_of_latency_with_intervals(tmp_path, capsys):
    """Issue 12: the aggregate was printed cut with `...`, hiding the latency columns."""
    wide = dict(BASE, services={"s": {"workers": 2, "service_time": "8ms"}})
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"scenario": wide, "parameters": {"workloads.w.rate": [50, 100],
                                                                  "services.s.workers": [1, 2]},
                                 "replications": 2, "seed": 1}, sort_keys=False))  # no metrics: all summary numbers
    assert main(["sweep", str(f), "--out", str(tmp_path / "out"), "--backend", "serial", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[1].split()
    assert header == ["workloads.w.rate", "services.s.workers", "n", "latency_ms.p50", "latency_ms.p99",
                      "latency_ms.mean"]
    rows = lines[2:6]
    assert len(rows) == 4 and all(r.count("±") == 3 for r in rows) and not any("..." in line for line in lines)
    assert rows[0].split()[:3] == ["50", "1", "2"]
    assert "aggregate.csv" in lines[-1]
    assert main(["sweep", str(f), "--out", str(tmp_path / "out"), "--backend", "serial", "--no-progress",
                 "--metric", "throughput_rps,latency_ms.p90"]) == 0
    header = capsys.readouterr().out.splitlines()[1].split()
    assert header[-2:] == ["throughput_rps", "latency_ms.p90"] and "latency_ms.p50" not in header
    assert main(["sweep", str(f), "--out", str(tmp_path / "out"), "--backend", "serial", "--no-progress",
                 "--metric", "latency_ms.p98"]) == 2
    assert "unknown metric 'latency_ms.p98'" in capsys.readouterr().err


def test_cli_plot_one_numeric_parameter_draws_latency_vs_load(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"scenario": BASE, "parameters": {"workloads.w.rate": [40, 80, 120]},
                                 "replications": 2, "seed": 1, "metrics": METRICS}))
    assert main(["sweep", str(f), "--out", str(tmp_path / "out"), "--backend", "serial", "--no-progress",
                 "--plot"]) == 0
    png = tmp_path / "out" / "latency_vs_load.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {png}" in capsys.readouterr().out
    agg = meshsim.sweep(BASE, {"workloads.w.rate": [40, 80, 120]}, replications=2, seed=1, metrics=METRICS,
                        out=tmp_path / "out", backend="serial", progress=False).aggregate
    fig, name = report_mod.sweep_figure(agg, ["workloads.w.rate"], "latency_ms.p99")
    line = fig.axes[0].lines[0]
    assert name == "latency_vs_load.png"
    assert list(line.get_xdata()) == [40, 80, 120]
    assert np.allclose(line.get_ydata(), agg.sort_values("workloads.w.rate")["latency_ms.p99"])


def test_cli_plot_two_parameters_draws_a_heat_map_and_refuses_three(tmp_path):
    agg = _sweep(None, grid={"services.s.workers": [1, 2], "faults": [[], CRASH]}, replications=1).aggregate
    fig, name = report_mod.sweep_figure(agg, ["services.s.workers", "faults"], "latency_ms.mean")
    cells = fig.axes[0].images[0].get_array()
    assert name == "heatmap.png" and cells.shape == (2, 2)
    assert np.isclose(np.sort(np.ravel(cells)), np.sort(agg["latency_ms.mean"].to_numpy())).all()
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"scenario": BASE, "parameters": {"services.s.workers": [1], "workloads.w.rate": [50],
                                                                  "run.requests": [100]}}))
    assert main(["sweep", str(f), "--out", str(tmp_path / "out"), "--no-progress", "--plot"]) == 2
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_paired_keys_draws_by_request_unless_the_scenario_decides():
    assert make_sweep(BASE, GRID, paired=True).base.spec["run"]["common_random_numbers"] is True
    assert make_sweep(BASE, GRID).base.spec["run"]["common_random_numbers"] is False
    explicit = dict(BASE, run={"requests": 300, "common_random_numbers": False})
    assert make_sweep(explicit, GRID, paired=True).base.spec["run"]["common_random_numbers"] is False
