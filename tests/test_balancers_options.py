"""The balancers split by concept (meshsim.core.lb): the façade's names, one options object, no cycles.

The behaviour itself is pinned by test_balancers.py, test_bounded_load.py and the
others; these tests pin the shape of the split: ``meshsim.core.balancers`` exports
what it exported before, every policy takes an :class:`LbOptions` and builds the
same balancer from it as from keywords, keywords a policy does not read are still
refused, and each module of the package imports on its own.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest

import meshsim.core.balancers as facade
from meshsim.core.balancers import (
    Endpoint,
    LbOptions,
    LeastRequest,
    Maglev,
    MaglevBounded,
    RandomBalancer,
    RingHash,
    RingHashBounded,
    WeightedRoundRobin,
)
from meshsim.core.lb.base import EnvoyBalancer
from meshsim.core.selection import BALANCERS

#: ``__all__`` of ``git show HEAD:meshsim/core/balancers.py`` before the split (e866acc)
NAMES_BEFORE_SPLIT = [
    "DEFAULT_MAGLEV_TABLE_SIZE", "EdfScheduler", "Endpoint", "EnvoyBalancer", "LeastRequest", "Maglev",
    "MaglevBounded", "NoHealthyUpstream", "PriorityLoad", "RandomBalancer", "RingHash", "RingHashBounded",
    "WeightedRoundRobin", "ZoneRouting", "as_endpoints", "choose_priority", "hash_key", "is_prime",
    "priority_loads", "slow_start_factor", "zone_routing", "zone_split",
]

LB_MODULES = ["options", "priority", "base", "edf", "least_request", "hash_tables"]

POLICIES = {
    "weighted_round_robin": WeightedRoundRobin,
    "random": RandomBalancer,
    "least_request": LeastRequest,
    "ring_hash": RingHash,
    "maglev": Maglev,
    "ring_hash_bounded": RingHashBounded,
    "maglev_bounded": MaglevBounded,
}


def test_the_facade_exports_the_same_names_plus_the_options():
    assert sorted(set(facade.__all__)) == sorted(facade.__all__)  # no duplicates
    assert set(facade.__all__) == set(NAMES_BEFORE_SPLIT) | {"LbOptions"}
    for name in facade.__all__:
        assert getattr(facade, name) is not None


def test_the_facade_names_are_the_package_objects():
    from meshsim.core.lb import edf, hash_tables, least_request, options, priority

    assert facade.LeastRequest is least_request.LeastRequest
    assert facade.Maglev is hash_tables.Maglev and facade.EdfScheduler is edf.EdfScheduler
    assert facade.priority_loads is priority.priority_loads and facade.LbOptions is options.LbOptions
    assert facade.DEFAULT_MAGLEV_TABLE_SIZE == 65537


def test_every_policy_is_registered_under_its_name():
    for name, cls in POLICIES.items():
        assert BALANCERS[name] is cls and cls.name == name


@pytest.mark.parametrize("module", LB_MODULES)
def test_each_module_imports_alone_in_a_fresh_interpreter(module):
    # a cycle between the modules would fail here for the module imported first
    out = subprocess.run([sys.executable, "-c", f"import meshsim.core.lb.{module}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_the_lb_modules_import_only_the_core_numpy_and_the_standard_library():
    # meshsim's own __init__ loads everything, so check the import statements themselves: the low layer
    # (core/) knows nothing of sim/, scenario/, viz/ or SimPy
    import ast
    from pathlib import Path

    import meshsim.core.lb as pkg

    allowed_relative = {"selection", "hashing"} | {f"lb.{m}" for m in LB_MODULES}
    for path in [*Path(pkg.__file__).parent.glob("*.py"), Path(facade.__file__)]:
        in_lb = path.parent.name == "lb"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                target = ("lb." if in_lb and node.level == 1 else "") + (node.module or "")
                assert target in allowed_relative, f"{path.name}: from {'.' * node.level}{node.module}"
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                for name in names:
                    top = name.split(".")[0]
                    assert top in sys.stdlib_module_names or top == "numpy", f"{path.name}: import {name}"


def test_option_names_are_lbOptions_fields_and_grow_down_the_hierarchy():
    all_fields = {f.name for f in fields(LbOptions)}
    for cls in POLICIES.values():
        assert cls.option_names <= all_fields
        assert EnvoyBalancer.option_names <= cls.option_names
    assert {"choice_count", "slow_start_window_ms", "local_zone"} <= LeastRequest.option_names
    assert "table_size" in Maglev.option_names and "table_size" not in RingHash.option_names
    assert "slow_start_window_ms" not in RandomBalancer.option_names  # random has no EDF, so no slow start
    # every field is read by some policy
    assert set().union(*(c.option_names for c in POLICIES.values())) == all_fields


def _eps():
    return [Endpoint(f"h{i}", weight=1 + i % 3, zone="ab"[i % 2], priority=i // 6, healthy=i % 5 != 1,
                     start_ms=10.0 * i) for i in range(12)]


CASES = [
    (WeightedRoundRobin, dict(slow_start_window_ms=200.0, slow_start_aggression=2.0)),
    (RandomBalancer, dict(local_zone="a", local_zone_hosts={"a": 2, "b": 3}, min_cluster_size=0)),
    (LeastRequest, dict(choice_count=3, active_request_bias=0.5, healthy_panic_threshold=70.0)),
    (RingHash, dict(minimum_ring_size=64, hash_function="murmur_hash_2", hash_balance_factor=125)),
    (Maglev, dict(table_size=251, overprovisioning_factor=1.0)),
    (MaglevBounded, dict(table_size=101, bounded_probe="walk")),
]


@pytest.mark.parametrize("cls, kwargs", CASES, ids=[c.__name__ for c, _ in CASES])
def test_an_options_object_builds_the_same_balancer_as_keywords(cls, kwargs):
    by_kw = cls(_eps(), np.random.default_rng(4), **kwargs)
    by_obj = cls(_eps(), np.random.default_rng(4), LbOptions(**kwargs))
    by_mix = cls(_eps(), np.random.default_rng(4), LbOptions(healthy_panic_threshold=10.0), **kwargs)
    assert by_kw.options == by_obj.options
    for k, v in kwargs.items():
        assert getattr(by_obj, k) == v  # copied to the attribute the hot path reads
    picks = []
    for lb in (by_kw, by_obj):
        seq = []
        for t in range(300):
            i = lb.pick(float(t), key=(t * 0x9E3779B97F4A7C15) & (2**64 - 1) if t % 3 else None)
            seq.append(i)
            lb.on_start(i)
            if t % 2:
                lb.on_end(seq[t // 2])
        picks.append(seq)
    assert picks[0] == picks[1]
    # keywords override the object's fields; the object's other fields stay
    expected_threshold = kwargs.get("healthy_panic_threshold", 10.0)
    assert by_mix.healthy_panic_threshold == expected_threshold == by_mix.options.healthy_panic_threshold


def test_a_policy_ignores_options_it_does_not_read_but_refuses_such_keywords():
    shared = LbOptions(choice_count=3, table_size=251, healthy_panic_threshold=20.0)
    ring = RingHash(4, None, shared)  # one object can configure a comparison of several policies
    assert ring.healthy_panic_threshold == 20.0 and not hasattr(ring, "choice_count")
    assert Maglev(4, None, shared).table_size == 251 and LeastRequest(4, None, shared).choice_count == 3
    with pytest.raises(TypeError, match=r"^RingHash\(\) got an unexpected keyword argument 'choice_count'$"):
        RingHash(4, choice_count=3)
    with pytest.raises(TypeError, match=r"'frobnicate' \(not an LbOptions field\)"):
        LeastRequest(4, frobnicate=1)
    with pytest.raises(TypeError, match="options must be an LbOptions"):
        LeastRequest(4, None, {"choice_count": 3})


@pytest.mark.parametrize("bad, message", [
    (dict(healthy_panic_threshold=101), "healthy_panic_threshold must be a percentage in [0, 100], got 101"),
    (dict(overprovisioning_factor=0), "overprovisioning_factor must be > 0, got 0"),
    (dict(choice_count=1), "choice_count must be an integer >= 2, got 1"),
    (dict(choice_count=2.0), "choice_count must be an integer >= 2, got 2.0"),
    (dict(hash_balance_factor=99), "hash_balance_factor must be an integer >= 100 (or None), got 99"),
    (dict(table_size=65535), "table_size must be a prime number, got 65535"),
    (dict(table_size=5000077), "table_size must be <= 5000011, got 5000077"),
    (dict(maximum_ring_size=512), "minimum_ring_size (1024) > maximum_ring_size (512)"),
    (dict(selection_method="all"), "selection_method must be 'n_choices' or 'full_scan', got 'all'"),
    (dict(local_zone_hosts={"a": -1}), "local_zone_hosts counts must be >= 0"),
    (dict(slow_start_window_ms=-1), "slow_start_window_ms must be >= 0, got -1"),
])
def test_bad_options_fail_when_the_object_is_made_with_the_field_named_first(bad, message):
    with pytest.raises(ValueError) as err:
        LbOptions(**bad)
    assert str(err.value) == message
    with pytest.raises(ValueError):
        LbOptions().replace(**bad)  # replace checks again


def test_options_are_normalised_and_frozen():
    o = LbOptions(healthy_panic_threshold=np.int64(30), choice_count=np.int64(3), table_size=np.int64(251),
                  local_zone_hosts={"a": 1})
    assert type(o.healthy_panic_threshold) is float and type(o.choice_count) is int and type(o.table_size) is int
    assert o.changed() == {"healthy_panic_threshold": 30.0, "choice_count": 3, "table_size": 251,
                           "local_zone_hosts": {"a": 1}}
    with pytest.raises(AttributeError):
        o.choice_count = 4  # type: ignore[misc]
    assert LbOptions(local_zone_hosts={}).local_zone_hosts is None  # empty: zone routing off, as before


def test_bounded_shorthands_default_to_factor_150_however_built():
    assert RingHashBounded(4, None, LbOptions(minimum_ring_size=64)).hash_balance_factor == 150
    assert MaglevBounded(4, None, LbOptions(table_size=101)).hash_balance_factor == 150
    assert MaglevBounded(4, table_size=101).hash_balance_factor == 150
    assert MaglevBounded(4, None, LbOptions(table_size=101, hash_balance_factor=200)).hash_balance_factor == 200
    assert Maglev(4, table_size=101).hash_balance_factor is None and not Maglev(4, table_size=101).tracks_load


def _scenario(lb: dict) -> dict:
    return {
        "run": {"requests": 100},
        "network": {"enabled": False},
        "services": {"api": {"replicas": 4, "workers": 1, "service_time": {"dist": "exponential", "mean": "2ms"},
                             "load_balancer": lb}},
        "workloads": {"users": {"rate": 100, "target": "api", "clients": 2}},
    }


def test_the_scenario_checker_still_names_an_option_that_does_not_apply():
    import meshsim
    from meshsim.errors import ScenarioError

    with pytest.raises(ScenarioError, match=r"load_balancer\.choice_count: does not apply to policy ring_hash"):
        meshsim.load_scenario(_scenario({"policy": "ring_hash", "choice_count": 3}))


@pytest.mark.parametrize("lb, cls, options", [
    ({"policy": "least_request", "choice_count": 3, "slow_start_window": "2s"}, LeastRequest,
     LbOptions(choice_count=3, slow_start_window_ms=2000.0)),
    ({"policy": "maglev_bounded", "table_size": 251}, MaglevBounded, LbOptions(table_size=251, hash_balance_factor=150)),
    ({"policy": "round_robin", "healthy_panic_threshold": 30}, WeightedRoundRobin,
     LbOptions(healthy_panic_threshold=30.0)),
])
def test_the_simulation_builds_its_balancers_from_an_options_object(lb, cls, options):
    import meshsim
    from meshsim.sim.simulation import Simulation

    sim = Simulation(meshsim.load_scenario(_scenario(lb)), seed=1)
    balancer = sim.workloads[0].route(sim.services["api"]).balancer
    assert type(balancer) is cls
    assert balancer.options == options
