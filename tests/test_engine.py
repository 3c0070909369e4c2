"""Engine-level behaviour: components attached to a simulation, span bookkeeping."""

from __future__ import annotations

import numpy as np

import meshsim
from meshsim.sim.simulation import Simulation
from meshsim.core.selection import Balancer, RoundRobin
from meshsim.result import Result

SCENARIO = {
    "run": {"requests": 3000},
    "network": {"enabled": False},
    "services": {
        "a": {"workers": 2, "service_time": {"dist": "exponential", "mean": "2ms"}, "calls": ["b"]},
        "b": {"workers": 2, "service_time": {"dist": "exponential", "mean": "2ms"}},
    },
    "workloads": {"w": {"rate": "200/s", "target": "a"}},
}


class Ticker:
    """A component that counts heartbeats on the shared clock, like a registry would."""

    name = "ticker"

    def __init__(self, every_ms: float):
        self.every = every_ms
        self.ticks = 0

    def start(self, sim):
        def beat():
            while True:
                yield sim.env.timeout(self.every)
                self.ticks += 1

        sim.env.process(beat())

    def summary(self):
        return {"ticks": self.ticks}


def test_attached_component_shares_the_clock_and_reports():
    sim = Simulation(meshsim.load_scenario(SCENARIO), seed=3)
    ticker = sim.attach(Ticker(100.0))
    sim.run()
    res = Result(sim)
    assert res.summary["ticker"]["ticks"] == int(sim.end_time // 100.0)
    assert res.summary["completed"] == 3000


def test_spans_form_trees_that_add_up():
    res = meshsim.run(SCENARIO, seed=5)
    spans = res.spans
    roots = spans[spans["parent"] == -1]
    children = spans[spans["parent"] != -1]
    assert len(roots) == len(children) == 3000
    merged = children.merge(roots, left_on="parent", right_on="span", suffixes=("", "_p"))
    # async: a child is sent when its parent's local work ends, and the parent ends when the reply arrives
    assert np.allclose(merged["send_ms"], merged["service_end_ms_p"])
    assert np.allclose(merged["end_ms"], merged["end_ms_p"])
    req = res.requests
    assert np.allclose(roots.sort_values("request")["end_ms"].to_numpy(), req["end_ms"].to_numpy())
    parts = spans[["network_ms", "queue_ms", "service_ms", "downstream_ms"]].sum(axis=1)
    assert np.allclose(parts, spans["end_ms"] - spans["send_ms"])


class CountingLeastActive(Balancer):
    """Least active requests, counting on_start/on_end calls (a load-tracking balancer)."""

    name = "counting"
    log: list = []

    def __init__(self, n, rng=None):
        super().__init__(n, rng)
        self.active = [0] * n
        self.starts = self.ends = 0
        CountingLeastActive.log.append(self)

    def pick(self, now_ms, key=None):
        return min(range(self.n), key=self.active.__getitem__)

    def on_start(self, index):
        self.active[index] += 1
        self.starts += 1

    def on_end(self, index):
        self.active[index] -= 1
        self.ends += 1


def test_load_tracking_balancers_see_every_start_and_end(monkeypatch):
    assert CountingLeastActive.tracks_load and not RoundRobin.tracks_load
    CountingLeastActive.log.clear()

    def make(self, caller, service, need_health=False):
        view = list(service.instances)
        return view, CountingLeastActive(len(view))

    monkeypatch.setattr(Simulation, "make_balancer", make)
    sc = dict(SCENARIO)
    sc["services"] = {**SCENARIO["services"], "b": {"replicas": 3, "workers": 1, "service_time": {"dist": "exponential", "mean": "4ms"}}}
    sc["faults"] = [{"at": "3s", "until": "5s", "action": "crash", "instance": "b-1"}]
    res = meshsim.run(sc, seed=2)
    assert res.summary["failed"] > 0  # crashed and refused calls end too
    total_calls = len(res.spans)
    starts = sum(b.starts for b in CountingLeastActive.log)
    ends = sum(b.ends for b in CountingLeastActive.log)
    assert starts == ends == total_calls
    assert all(a == 0 for b in CountingLeastActive.log for a in b.active)
    # ties go to the lowest index, so b-0 takes most calls, but load spills over to all three
    b_spans = res.spans[res.spans["service"] == "b"]
    per_instance = b_spans["instance"].astype(str).value_counts()
    assert set(per_instance.index) == {"b-0", "b-1", "b-2"}
    assert per_instance["b-0"] == per_instance.max()
