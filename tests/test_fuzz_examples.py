"""Mutation fuzz of the shipped example scenarios: no hang, no traceback.

Every shipped example is mutated (keys deleted, values replaced by wrong types,
huge, NaN, infinite or negative numbers, random strings, new deep paths) with a
seeded RNG.  Each mutant is validated; the valid ones run briefly (few requests,
``run.max_wall``).  The only exceptions allowed are ScenarioError (and its
subclasses ScenarioErrors, the kernel's SimulationTimeError) and ScenarioWarning;
a per-mutant alarm turns a hang into a failure that names the mutant.
"""

from __future__ import annotations

import copy
import math
import random
import signal
import time
import warnings
from typing import Any

import pytest
import yaml

import meshsim
from meshsim.errors import ScenarioError, ScenarioWarning
from meshsim.scenario.load import load_scenario

MUTANTS = 1200
PER_MUTANT_S = 10.0  # a mutant taking longer than this is a hang
RUN_CAPS = {"run.requests": 60, "run.max_wall": "300ms", "metrics.sample_interval": "1s"}

WEIRD_VALUES: list[Any] = [
    None, True, False, 0, -1, -0.5, 1, 3, 2**63, 10**9, 1e308, -1e308, math.inf, -math.inf, math.nan,
    "", "x", "webb", "10", "10ms", "-5ms", "1e308ms", "nan", "inf", "2 seconds", "100 rps", "all", "unbounded",
    [], [1, 2], ["a"], {}, {"dist": "lognormal", "median": "5ms", "p99": 1.0e308},
    {"dist": "lognormal", "median": "5ms", "p99": 2.0**63}, {"dist": "pareto", "alpha": 0.5, "scale": "1ms"},
    {"dist": "pareto", "alpha": 1e-300, "scale": 1e300}, {"dist": "exponential", "mean": 1e300},
    {"dist": "normal", "mean": 1e300, "sd": 1e300}, {"dist": "uniform", "low": 0, "high": 1e300},
    {"dist": "mixture", "components": [{"weight": 1e308, "dist": "1ms"}, {"weight": 1e-308, "dist": 1e300}]},
]
NEW_KEYS = ["replicas", "workers", "rate", "timeout", "at", "until", "dist", "foo", "services", "run", "0"]


def _examples() -> dict[str, dict]:
    return {name: yaml.safe_load(meshsim.example(name).read_text()) for name in sorted(meshsim.examples())}


def _slots(node: Any, path: tuple = ()) -> list[tuple]:
    """Every (path) to a value inside ``node`` (mapping keys and list indices)."""
    out: list[tuple] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for k, v in items:
        out.append(path + (k,))
        out.extend(_slots(v, path + (k,)))
    return out


def _parent(doc: Any, path: tuple) -> Any:
    for k in path[:-1]:
        doc = doc[k]
    return doc


def _random_string(rng: random.Random) -> str:
    return "".join(rng.choice("abcxyz019._-/[] :") for _ in range(rng.randint(0, 12)))


def mutate(doc: dict, rng: random.Random) -> tuple[dict, list[str]]:
    """Apply one to three random mutations to a copy of ``doc``; return it and what was done."""
    doc = copy.deepcopy(doc)
    done: list[str] = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        slots = _slots(doc)
        if not slots:
            break
        path = rng.choice(slots)
        parent, key = _parent(doc, path), path[-1]
        op = rng.random()
        number = isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool)
        if number and op < 0.35:  # scale a number, mildly or to an extreme
            factor = rng.choice([-1, 0, 0.5, 2, 10, 1e-300, 1e6, 1e300])
            try:
                parent[key] = parent[key] * factor
            except OverflowError:
                parent[key] = math.inf
            done.append(f"{path} *= {factor}")
        elif op < 0.2:  # delete the key (or list item)
            del parent[key]
            done.append(f"del {path}")
        elif op < 0.55:  # a weird value
            value = copy.deepcopy(rng.choice(WEIRD_VALUES))
            parent[key] = value
            done.append(f"{path} = {value!r}")
        elif op < 0.7:  # a random string
            value = _random_string(rng)
            parent[key] = value
            done.append(f"{path} = {value!r}")
        elif op < 0.85 and isinstance(parent[key], str):  # a string with a unit changed or made extreme
            value = rng.choice(["1ms", "250us", "2 seconds", "1h", "1e12ms", "1e9h", "0ms", "8/s", "1e308/s"])
            parent[key] = value
            done.append(f"{path} = {value!r}")
        else:  # a new deep path
            node: Any = doc
            for k in path:
                if isinstance(node, dict) and k in node and isinstance(node[k], dict):
                    node = node[k]
            new = rng.choice(NEW_KEYS)
            node[new] = {rng.choice(NEW_KEYS): copy.deepcopy(rng.choice(WEIRD_VALUES))}
            done.append(f"add {new} under {path}")
    return doc, done


class _Hang(BaseException):
    pass


def _alarm(_signum: int, _frame: Any) -> None:
    raise _Hang()


def _check_mutant(doc: dict, what: str) -> str:
    """Validate ``doc`` and, if valid, run it briefly; return 'invalid', 'ran' or 'partial'."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScenarioWarning)
        try:
            sc = load_scenario(doc)
        except ScenarioError:
            return "invalid"
        try:
            sc = load_scenario(sc, RUN_CAPS)
        except ScenarioError:
            return "invalid"
        try:
            res = meshsim.run(sc)
        except ScenarioError:  # e.g. the kernel's SimulationTimeError
            return "invalid"
    assert isinstance(res.summary["requests"], int), what
    return "partial" if res.summary["partial"] else "ran"


def test_mutants_of_the_shipped_examples_never_hang_nor_crash() -> None:
    rng = random.Random(20240612)
    bases = _examples()
    names = sorted(bases)
    outcomes = {"invalid": 0, "ran": 0, "partial": 0}
    slowest = 0.0
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for i in range(MUTANTS):
            name = names[i % len(names)]
            doc, done = mutate(bases[name], rng)
            what = f"mutant {i} of {name}: {'; '.join(done)}"
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, PER_MUTANT_S)
            try:
                outcomes[_check_mutant(doc, what)] += 1
            except _Hang:
                pytest.fail(f"hang (> {PER_MUTANT_S}s): {what}")
            except Exception as e:  # anything but a ScenarioError is a crash
                raise AssertionError(f"{type(e).__name__}: {e}\n  in {what}") from e
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            slowest = max(slowest, time.perf_counter() - t0)
    finally:
        signal.signal(signal.SIGALRM, old)
    # the fuzz did reach both sides: some mutants rejected, some run
    assert outcomes["invalid"] >= MUTANTS // 10, outcomes
    assert outcomes["ran"] + outcomes["partial"] >= MUTANTS // 20, outcomes
    assert slowest < PER_MUTANT_S


@pytest.mark.parametrize("p99", [1.0e308, 2.0**63, 1e30])
def test_absurd_lognormal_from_the_issue_is_rejected_not_run(p99: float) -> None:
    doc = _examples()["fanout"]
    doc["services"]["shard0"]["service_time"] = {"dist": "lognormal", "median": "5ms", "p99": p99}
    with pytest.raises(ScenarioError) as info:
        load_scenario(doc)
    assert "services.shard0.service_time: has an absurd mean" in str(info.value)
