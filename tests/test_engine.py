"""Engine-level behaviour: components attached to a simulation, span bookkeeping."""

from __future__ import annotations

import numpy as np

import meshsim
from meshsim.sim.simulation import Simulation
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
