"""A Result is made of a RunRecord (plain data) and summarise(record); it holds no Simulation.

The summaries and tables of a few shipped examples were pinned (tests/data/summary_before/, by its
capture.py) with the code from before the record existed, where Result read the live Simulation: the
record-based summary must equal them exactly (same arithmetic on the same arrays) and the tables must
hash the same.
"""

from __future__ import annotations

import gc
import json
import pickle
import sys
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import meshsim
from meshsim.result import Result
from meshsim.run_record import REGISTRY_TABLES, ComponentRecord, RunRecord
from meshsim.run_summary import summarise
from meshsim.sim.simulation import Simulation

HERE = Path(__file__).resolve().parent / "data" / "summary_before"
sys.path.insert(0, str(HERE))
import capture  # noqa: E402  (the fixtures' own runner and fingerprints)

CASES = sorted(capture.CASES)


def _contains(got, want) -> bool:
    """``want``'s keys are all in ``got`` with equal values (recursively in dicts)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _contains(got[k], v) for k, v in want.items())
    return got == want


@pytest.mark.parametrize("case", CASES)
def test_summary_and_tables_as_before(case):
    want = json.loads((HERE / f"{case}.json").read_text(encoding="utf-8"))
    example, seed, overrides = capture.CASES[case]
    assert (want["example"], want["seed"], want["overrides"]) == (example, seed, overrides)
    res = capture.run(case)
    assert "_sim" not in vars(res)
    got = json.loads(res.to_json())
    # a component's section is what its summary() says: others may add keys to it; pinned values stay
    for name in [c.name for c in res.record.components]:
        assert _contains(got.pop(name), want["summary"].pop(name)), name
    assert got == want["summary"]  # floats exactly equal
    assert list(got) == list(want["summary"])  # and in the same order
    assert summarise(res.record) == res.summary  # pure: the same again from the record
    tables = capture.tables(res)
    assert set(tables) == set(want["tables"])
    for name, fp in want["tables"].items():
        assert tables[name] == fp, name


def test_the_pins_cover_what_they_should():
    docs = {c: json.loads((HERE / f"{c}.json").read_text(encoding="utf-8")) for c in CASES}
    modes = {d["summary"]["mode"] for d in docs.values()}
    assert modes == {"full", "streaming"}
    assert any("resilience" in d["summary"] and "mesh" in d["summary"] for d in docs.values())
    assert any(d["summary"]["resilience"].get("events") for d in docs.values() if "resilience" in d["summary"])
    reg = docs["registry_messages"]["tables"]
    assert reg["raft_frames.messages"]["shape"][0] > 0 and reg["registry.health"]["shape"][0] > 0
    assert docs["registry_failover"]["summary"]["sim_time_ms"] >= 35_000


def _sim(example: str, seed: int, **overrides) -> Simulation:
    return Simulation(meshsim.load_scenario(meshsim.example(example), overrides or None), seed=seed)


def test_a_result_holds_no_simulation():
    sim = _sim("fault_timeline", 3)
    sim.run()
    alive = weakref.ref(sim)
    kernel = weakref.ref(sim.kernel)
    res = Result(sim)
    del sim
    gc.collect()
    assert alive() is None and kernel() is None
    assert res.summary["requests"] == 15901 and len(res.spans) > 0  # the tables are still there


def test_a_registry_result_holds_no_simulation_and_keeps_its_tables():
    sim = _sim("registry_failover", 1, **{"run.duration": "35s"})
    from meshsim.registry.discovery import attach_registry

    comp = attach_registry(sim)
    sim.run()
    alive = weakref.ref(sim)
    live = {name: comp.registry.frame(name) for name in REGISTRY_TABLES}
    live_health, live_leaders = live["health"], live["leader_changes"]
    res = Result(sim)
    del sim, comp
    gc.collect()
    assert alive() is None
    reg = res.component("registry").registry
    for name, df in live.items():  # every table as the live registry gives it
        pd.testing.assert_frame_equal(reg.frame(name), df, check_exact=True, obj=name)
    assert set(reg.tables) == set(REGISTRY_TABLES)
    assert reg.frame("health").equals(live_health) and len(live_health) > 0
    assert reg.cluster.frame("leader_changes").equals(live_leaders) and len(live_leaders) >= 2
    assert reg.frame("leader_changes").equals(live_leaders)  # the registry passes its cluster's tables on
    # a copy each time: the record stays as it was
    h = reg.frame("health")
    h.loc[:, "new"] = "x"
    assert reg.frame("health").equals(live_health)
    with pytest.raises(AttributeError, match="not the live object"):
        reg.catalog  # noqa: B018 - the live Registry's methods are not there
    with pytest.raises(KeyError, match="tables: writes"):
        reg.frame("nope")
    with pytest.raises(KeyError, match="components: registry"):
        res.component("nope")


def test_pickle_round_trip_is_about_the_size_of_the_columns():
    res = meshsim.run(meshsim.example("fault_timeline"), seed=3)
    res.spans, res.requests, res.timeseries  # noqa: B018 - built tables are not pickled
    cols = res.record.nbytes()
    assert cols > 1_000_000
    blob = pickle.dumps(res)
    assert cols < len(blob) < 1.05 * cols + 200_000
    back = pickle.loads(blob)
    assert back.summary == res.summary and back.record.end_ms == res.record.end_ms
    for name in ("requests", "spans", "timeseries", "instances", "mesh_events"):
        assert getattr(back, name).equals(getattr(res, name)), name


def test_registry_record_needs_no_pandas_until_a_table_is_asked_for():
    import subprocess

    code = ("import sys, meshsim; r = meshsim.run(meshsim.example('registry_failover'), seed=1, "
            "overrides={'run.duration': '8s'}); assert r.summary['registry']['writes']['count'] > 0; "
            "print('pandas' in sys.modules); r.component('registry').registry.frame('health'); "
            "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_registry_result_pickles_with_its_component_tables():
    res = meshsim.run(meshsim.example("registry_failover"), seed=2, overrides={
        "run.duration": "34s", "registry.record_messages": {"from": "30500ms", "until": "33s"}})
    back = pickle.loads(pickle.dumps(res))
    from meshsim.viz.raft import raft_frames

    a, b = raft_frames(res), raft_frames(back)
    assert len(a["messages"]) > 0 and len(a["roles"]) > 0
    for name in a:
        assert a[name].equals(b[name]), name
    assert back.component("registry").registry.cluster.kernel.now == res.summary["sim_time_ms"]


def test_record_is_data_built_once_and_only_after_the_run():
    sim = _sim("mmc", 1, **{"run.duration": "20s"})
    with pytest.raises(RuntimeError, match="run the simulation first"):
        sim.record()
    sim.run()
    rec = sim.record()
    assert sim.record() is rec and isinstance(rec, RunRecord)
    # the columns are the recorder's (views, no copies)
    assert np.shares_memory(rec.requests["arrival"], np.frombuffer(sim.recorder.r_arrival))
    assert rec.requests["arrival"].base.obj is sim.recorder.r_arrival
    n = len(sim.recorder.r_arrival)
    assert len(rec.requests["arrival"]) == n and rec.instances["name"] == ["server-0"]
    assert rec.end_ms == sim.end_time and rec.close_ms == sim.close_time == 20_000.0
    assert rec.instances["busy_area_close"][0] == sim.snapshots["close"][0][0]
    # two Results from one record agree; a Result of a record is one of the Simulation
    assert Result(rec).summary == Result(sim).summary


def test_components_without_tables_keep_their_summary():
    class Ticker:
        name = "ticker"

        def start(self, sim):
            self.sim = sim  # a component that holds on to the Simulation...

        def summary(self):
            return {"ticks": 3, "at": (1.0, float("nan"))}

    sim = _sim("mmc", 1, **{"run.duration": "5s"})
    sim.attach(Ticker())
    sim.run()
    alive = weakref.ref(sim)
    res = Result(sim)
    del sim
    gc.collect()
    assert alive() is None  # ... is not kept by the record
    assert res.summary["ticker"] == {"ticks": 3, "at": [1.0, None]}
    comp = res.component("ticker")
    assert isinstance(comp, ComponentRecord) and comp.tables == {}


def test_the_per_service_statistics_do_not_depend_on_the_chunk_size(monkeypatch):
    """Chunks only keep the span rows in cache: counts, quantiles and the float sums (taken per SUM_BLOCK rows)
    come out the same to the last bit, also when a block ends inside a chunk."""
    import meshsim.run_summary as rs

    res = meshsim.run(meshsim.example("tandem"), seed=2, overrides={"run.requests": 60_000})  # 180,000 spans
    monkeypatch.setattr(rs, "SUM_BLOCK", 1 << 15)
    whole = rs._span_stats_by_service(res.record, chunk=1 << 15)  # a chunk per block: one sum per block
    spans = res.spans
    after = spans[spans["send_ms"] >= res.record.warmup_ms].groupby("service", observed=True).size()
    assert [s["calls"] for s in whole] == [after[name] for name in res.record.services]  # the warm-up's are not
    for chunk in (777, 4096, 20_000):
        assert rs._span_stats_by_service(res.record, chunk=chunk) == whole
    monkeypatch.setattr(rs, "SUM_BLOCK", 1 << 14)  # other blocks, other float sums: the comparison can see that
    other = rs._span_stats_by_service(res.record, chunk=1 << 14)
    assert [s["calls"] for s in other] == [s["calls"] for s in whole]
    assert any(a["queue_ms_mean"] != b["queue_ms_mean"] or a["service_ms_mean"] != b["service_ms_mean"]
               for a, b in zip(other, whole))
