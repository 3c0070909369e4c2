"""Sweep definitions: a base scenario, parameters as dotted paths, replications.

A point is one combination of parameter values; each point runs
``replications`` times.  The seed of point p, replication r is derived from the
sweep seed and the point's parameter values (not its position in the grid),
so adding values to a grid never changes the seeds of existing points, and any
single point can be rerun alone::

    seed = point_seed(sweep_seed, params, r)
    meshsim.run(base, seed=seed, overrides=params)

With ``paired=True`` (``paired: true`` in a sweep file) every point of
replication r gets the same seed, ``replication_seed(sweep_seed, r)``, and the
base scenario gets ``run.common_random_numbers: true`` unless it sets that key
itself (service times keyed by request, see meshsim/sim/crn.py): common random
numbers, so differences between points are measured on the same draws and
their paired intervals are narrower.

Grid values may be of any type a scenario key takes (numbers, strings, None,
lists, dicts); every point is checked with ``load_scenario`` before anything runs.

>>> pts = expand({"services.api.replicas": [1, 2], "workloads.w.rate": [10, 20]}, "product")
>>> len(pts), pts[1]
(4, {'services.api.replicas': 1, 'workloads.w.rate': 20})
>>> point_seed(42, {"a": 1}, 0) == point_seed(42, {"a": 1}, 0)
True
>>> point_seed(42, {"a": 1}, 0, paired=True) == point_seed(42, {"a": 2}, 0, paired=True) == replication_seed(42, 0)
True
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ScenarioError, ScenarioErrors, closest
from ..scenario.load import load_scenario, read_yaml, set_path
from ..scenario.model import Scenario
from .labels import value_label


def _values(spec: Any, path: str) -> list:
    """A parameter's values: a list, or {range: [start, stop, step]}, {linspace: [a, b, n]}, {logspace: [a, b, n]}."""
    if isinstance(spec, list):
        values = list(spec)
    elif isinstance(spec, dict) and len(spec) == 1:
        (kind, args), = spec.items()
        if not isinstance(args, list) or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise ScenarioError(f"parameters.{path}.{kind}", f"must be a list of numbers, got {args!r}")
        if kind == "range":
            if not 1 <= len(args) <= 3 or (len(args) == 3 and args[2] == 0):
                raise ScenarioError(f"parameters.{path}.range", "must be [stop], [start, stop] or [start, stop, step] with step != 0")
            if all(isinstance(a, int) for a in args):
                values = list(range(*args))
            else:
                start, stop, step = (0, args[0], 1) if len(args) == 1 else (args[0], args[1], args[2] if len(args) == 3 else 1)
                n = max(0, math.ceil((stop - start) / step))
                values = [start + i * step for i in range(n)]
        elif kind in ("linspace", "logspace"):
            if len(args) != 3 or not isinstance(args[2], int) or args[2] < 1:
                raise ScenarioError(f"parameters.{path}.{kind}", "must be [start, stop, count] with an integer count >= 1")
            if kind == "logspace" and (args[0] <= 0 or args[1] <= 0):
                raise ScenarioError(f"parameters.{path}.logspace", "start and stop must be > 0")
            fn = np.linspace if kind == "linspace" else np.geomspace
            values = [float(v) for v in fn(args[0], args[1], args[2])]
        else:
            raise ScenarioError(f"parameters.{path}", f"unknown value generator {kind!r}; use a list, range, linspace or logspace",
                                closest(kind, ["range", "linspace", "logspace"]))
    else:
        raise ScenarioError(f"parameters.{path}", f"must be a list of values or {{range|linspace|logspace: [...]}}, got {spec!r}")
    if not values:
        raise ScenarioError(f"parameters.{path}", "has no values (an empty grid)")
    return values


def expand(parameters: dict[str, Any], mode: str = "product") -> list[dict[str, Any]]:
    """All points of a grid: the cartesian product of the values, or their zip."""
    if not parameters:
        raise ScenarioError("parameters", "must name at least one parameter (an empty grid has no points)")
    names = list(parameters)
    lists = [_values(parameters[n], n) for n in names]
    if mode == "product":
        combos = itertools.product(*lists)
    elif mode == "zip":
        lengths = {len(v) for v in lists}
        if len(lengths) != 1:
            raise ScenarioError("parameters", f"mode zip needs equally long value lists, got lengths {[len(v) for v in lists]}")
        combos = zip(*lists)
    else:
        raise ScenarioError("mode", f"must be product or zip, got {mode!r}", closest(str(mode), ["product", "zip"]))
    return [dict(zip(names, c)) for c in combos]


def point_key(params: dict[str, Any]) -> str:
    """A stable short name for a point, from its parameter values."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def replication_seed(sweep_seed: int, replication: int) -> int:
    """The run seed of replication ``replication`` of every point of a paired sweep."""
    ss = np.random.SeedSequence(sweep_seed, spawn_key=(0x9A12ED, replication))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def point_seed(sweep_seed: int, params: dict[str, Any], replication: int, paired: bool = False) -> int:
    """The run seed of one replication of one point (see the module doc)."""
    if paired:
        return replication_seed(sweep_seed, replication)
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).digest()
    words = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))
    ss = np.random.SeedSequence(sweep_seed, spawn_key=words + (replication,))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _leaf_paths(data: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            p = f"{prefix}.{k}" if prefix else str(k)
            out.append(p)
            out.extend(_leaf_paths(v, p))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            p = f"{prefix}[{i}]"
            out.append(p)
            out.extend(_leaf_paths(v, p))
    return out


@dataclass
class Sweep:
    """A checked sweep: base scenario, points, replications and seed."""

    base: Scenario
    parameters: dict[str, Any]
    mode: str = "product"
    replications: int = 1
    seed: int = 0
    metrics: list[str] | None = None
    points: list[dict[str, Any]] = field(default_factory=list)
    paired: bool = False

    def tasks(self) -> list[tuple[dict[str, Any], int, int, str]]:
        """(params, replication, seed, key) for every run of the sweep, in order."""
        out = []
        for params in self.points:
            key = point_key(params)
            for r in range(self.replications):
                out.append((params, r, point_seed(self.seed, params, r, self.paired), f"{key}-r{r}"))
        return out


SWEEP_KEYS = ("scenario", "parameters", "mode", "replications", "seed", "metrics", "paired")


def make_sweep(
    scenario: str | os.PathLike | dict | Scenario,
    parameters: dict[str, Any],
    *,
    mode: str = "product",
    replications: int = 1,
    seed: int = 0,
    metrics: list[str] | None = None,
    paired: bool = False,
) -> Sweep:
    """Check a sweep before anything runs: every path exists, every point is a valid scenario."""
    base = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    if isinstance(replications, bool) or not isinstance(replications, int) or replications < 1:
        raise ScenarioError("replications", f"must be an integer >= 1, got {replications!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ScenarioError("seed", f"must be an integer >= 0, got {seed!r}")
    if not isinstance(paired, bool):
        raise ScenarioError("paired", f"must be true or false, got {paired!r}")
    run_raw = base.raw.get("run") if isinstance(base.raw.get("run"), dict) else {}
    if paired and run_raw.get("common_random_numbers") is None:
        # draws keyed by request, so points that route differently still see the same service times
        base = load_scenario(base, {"run.common_random_numbers": True}, warn=False)
    if metrics is not None and (not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics)):
        raise ScenarioError("metrics", f"must be a list of metric names such as latency_ms.p99, got {metrics!r}")
    if not isinstance(parameters, dict):
        raise ScenarioError("parameters", f"must be a mapping of dotted paths to values, got {parameters!r}")
    points = expand(parameters, mode)
    valid = _leaf_paths(base.raw)
    errors: list[ScenarioError] = []
    for path in parameters:
        try:
            load_scenario(base, {path: points[0][path]}, warn=False)
        except ScenarioError as e:
            if isinstance(e, ScenarioErrors) and any("unknown key" in x.message for x in e.errors) or "cannot set" in e.message:
                near = _nearest_paths(path, valid)
                errors.append(ScenarioError(f"parameters.{path}", "is not a path in the scenario"
                                            + (f"; closest valid paths: {', '.join(near)}" if near else "")))
            # other problems are reported per point below
    if errors:
        raise ScenarioErrors(errors)
    for params in points:
        try:
            load_scenario(base, params, warn=False)
        except ScenarioError as e:
            raise ScenarioError(f"parameters ({', '.join(f'{k}={value_label(v)}' for k, v in params.items())})",
                                f"makes an invalid scenario: {e}") from None
    return Sweep(base=base, parameters=parameters, mode=mode, replications=replications, seed=seed,
                 metrics=metrics, points=points, paired=paired)


def _nearest_paths(path: str, valid: list[str], n: int = 3) -> list[str]:
    import difflib

    return difflib.get_close_matches(path, valid, n=n, cutoff=0.4)


def load_sweep(source: str | os.PathLike | dict) -> Sweep:
    """A sweep from a YAML file or mapping with keys scenario, parameters, mode, replications, seed, metrics, paired."""
    base_dir = None
    if isinstance(source, (str, os.PathLike)):
        data = read_yaml(source)
        base_dir = Path(source).resolve().parent
    else:
        data = source
    if not isinstance(data, dict):
        raise ScenarioError("", f"a sweep must be a mapping with keys {', '.join(SWEEP_KEYS)}")
    for k in data:
        if k not in SWEEP_KEYS:
            raise ScenarioError(str(k), f"unknown key; valid keys are {', '.join(SWEEP_KEYS)}", closest(str(k), SWEEP_KEYS))
    if "scenario" not in data:
        raise ScenarioError("scenario", "is required: a scenario file path or mapping")
    scenario = data["scenario"]
    if isinstance(scenario, str) and base_dir is not None and not Path(scenario).is_absolute():
        cand = base_dir / scenario
        scenario = cand if cand.exists() else Path(scenario)
    return make_sweep(
        scenario,
        data.get("parameters"),
        mode=data.get("mode", "product"),
        replications=data.get("replications", 1),
        seed=data.get("seed", 0),
        metrics=data.get("metrics"),
        paired=data.get("paired", False),
    )


__all__ = ["Sweep", "expand", "load_sweep", "make_sweep", "point_key", "point_seed", "replication_seed", "set_path"]
