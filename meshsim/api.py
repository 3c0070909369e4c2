"""The one way in: scenario -> validate -> build -> run -> Result.

>>> import meshsim
>>> res = meshsim.run({"run": {"requests": 2000},
...                    "network": {"enabled": False},
...                    "services": {"web": {"workers": 2, "service_time": {"dist": "exponential", "mean": "10ms"}}},
...                    "workloads": {"users": {"rate": "100/s", "target": "web"}}}, seed=7)
>>> res.summary["completed"]
2000
>>> res.requests.shape[0]
2000
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .errors import ScenarioError
from .result import Result
from .scenario.load import load_scenario
from .scenario.model import Scenario
from .sim.simulation import Simulation


def run(
    scenario: Scenario | dict | str | os.PathLike,
    seed: int | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> Result:
    """Run a scenario once and return its :class:`~meshsim.result.Result`.

    ``scenario`` may be a checked Scenario, a dict or a YAML path; ``seed``
    overrides the scenario's seed (same seed, same results, byte for byte);
    ``overrides`` are ``PATH=VALUE`` strings or a ``{path: value}`` dict.
    A ``seed`` that is not an integer >= 0 is a ScenarioError (path ``seed``),
    as on the command line.  ``run.max_wall`` bounds the wall-clock time: a
    run that uses it up ends early with ``summary["partial"]`` true.
    """
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ScenarioError("seed", f"must be an integer >= 0, got {seed!r}")
    if not isinstance(scenario, Scenario) or overrides:
        scenario = load_scenario(scenario, overrides)
    sim = Simulation(scenario, seed=seed)
    if scenario.spec.get("registry") is not None:
        from .registry.discovery import attach_registry

        attach_registry(sim)
    sim.run()
    return Result(sim)
