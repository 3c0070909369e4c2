"""meshsim.core.resilience is a façade over meshsim.core.res (one module per concept, issue 14).

The façade exports exactly the names it exported before the split, each the very object defined in its new
module; every module of the package imports alone (in a fresh interpreter, without the rest of meshsim) and
loads only the modules it needs; each module names the Envoy/Istio source it mirrors; and no name is defined
twice.  The behaviour itself is tested by test_resilience.py, test_istio_versions.py and the doctests.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import meshsim.core.resilience as facade

RES = Path(facade.__file__).resolve().parent / "res"

#: ``__all__`` of meshsim/core/resilience.py before the split (git show HEAD:meshsim/core/resilience.py, 12a0249)
OLD_ALL = [
    "BREAKER_KINDS",
    "DEFAULT_IDLE_TIMEOUT_MS",
    "DEFAULT_ROUTE_TIMEOUT_MS",
    "GRPC_STATUS",
    "ISTIO_PROFILES",
    "OUTCOMES",
    "PROFILE_NAMES",
    "RETRY_ON",
    "UINT32_MAX",
    "BreakerLimits",
    "CircuitBreaker",
    "HedgePolicy",
    "OutlierConfig",
    "OutlierDetector",
    "OutlierEvent",
    "ResilienceProfile",
    "RetryBudget",
    "RetryPolicy",
    "Timeouts",
    "backoff_interval_ms",
    "is_istio",
    "istio_version",
    "outlier_status",
    "profile",
    "response_action",
]

#: module of meshsim.core.res -> where each public name of the façade now lives
HOME = {
    "base": ["OUTCOMES"],
    "istio": ["ISTIO_PROFILES", "PROFILE_NAMES", "is_istio", "istio_version"],
    "timeouts": ["DEFAULT_IDLE_TIMEOUT_MS", "DEFAULT_ROUTE_TIMEOUT_MS", "Timeouts"],
    "retry": ["GRPC_STATUS", "RETRY_ON", "RetryPolicy", "backoff_interval_ms", "response_action"],
    "hedging": ["HedgePolicy"],
    "breaker": ["BREAKER_KINDS", "UINT32_MAX", "BreakerLimits", "CircuitBreaker", "RetryBudget"],
    "outlier": ["OutlierConfig", "OutlierDetector", "OutlierEvent", "outlier_status"],
    "profiles": ["ResilienceProfile", "profile"],
}

#: module -> the modules of the package it loads (itself included): the dependency order of the concepts
LOADS = {
    "base": {"base"},
    "istio": {"istio"},
    "timeouts": {"base", "istio", "timeouts"},
    "retry": {"base", "istio", "timeouts", "retry"},
    "hedging": {"base", "hedging"},
    "breaker": {"base", "istio", "breaker"},
    "outlier": {"base", "istio", "outlier"},
    "profiles": set(HOME),
}


def test_facade_exports_exactly_the_old_names():
    assert facade.__all__ == OLD_ALL
    public = {n for n in vars(facade) if not n.startswith("_") and n != "annotations"}
    assert public == set(OLD_ALL)


def test_every_name_has_one_home_and_the_facade_gives_that_object():
    assert sorted(n for names in HOME.values() for n in names) == sorted(OLD_ALL)
    assert set(HOME) == {p.stem for p in RES.glob("*.py")} - {"__init__"}
    for mod, names in HOME.items():
        module = importlib.import_module(f"meshsim.core.res.{mod}")
        for name in names:
            assert getattr(facade, name) is getattr(module, name), (mod, name)
            assert name in module.__all__, (mod, name)
            obj = getattr(module, name)
            if hasattr(obj, "__module__") and callable(obj):
                assert obj.__module__ == f"meshsim.core.res.{mod}", (name, obj.__module__)


def test_profiles_reexports_the_istio_versions():
    from meshsim.core.res import istio, profiles

    for name in ("ISTIO_PROFILES", "PROFILE_NAMES", "is_istio", "istio_version"):
        assert getattr(profiles, name) is getattr(istio, name)
    assert profiles.profile("istio-1.20").retry.retriable_status_codes == frozenset({503})
    assert profiles.profile("istio").retry.retriable_status_codes == frozenset()


def _top_level_definitions(path: Path) -> list[str]:
    names = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name) and t.id != "__all__"]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return names


def test_no_name_is_defined_twice_and_the_facade_defines_nothing():
    defined = [n for p in sorted(RES.glob("*.py")) for n in _top_level_definitions(p)]
    assert len(defined) == len(set(defined)), sorted(n for n in set(defined) if defined.count(n) > 1)
    assert set(OLD_ALL) <= set(defined)
    assert _top_level_definitions(Path(facade.__file__)) == []


def test_the_package_imports_only_itself_numpy_and_the_standard_library():
    for path in RES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                ok = node.level == 1 or node.module in ("__future__", "dataclasses", "collections.abc")
                assert ok, f"{path.name}: from {'.' * node.level}{node.module} import ..."
            elif isinstance(node, ast.Import):
                assert [a.name for a in node.names] == ["numpy"], f"{path.name}: import {node.names[0].name}"


@pytest.mark.parametrize("mod", sorted(HOME))
def test_module_docstring_names_the_envoy_or_istio_source(mod):
    doc = importlib.import_module(f"meshsim.core.res.{mod}").__doc__
    assert re.search(r"[\w/]+\.(cc|h|proto|go|yaml)\b", doc), mod


# A fresh interpreter with a bare ``meshsim`` package (its __init__ imports the whole simulator): importing
# one module of the package must work alone and load only the package modules it needs.
_ALONE = """
import importlib, json, sys, types
pkg = types.ModuleType("meshsim")
pkg.__path__ = [{root!r}]
sys.modules["meshsim"] = pkg
module = importlib.import_module("meshsim.core.res." + {mod!r})
names = [n for n in module.__all__ if not hasattr(module, n)]
loaded = sorted(m for m in sys.modules if m.startswith("meshsim."))
print(json.dumps({{"missing": names, "loaded": loaded}}))
"""


def test_each_module_imports_alone_and_loads_only_what_it_needs():
    root = str(RES.parent.parent)
    results = {}
    for mod in sorted(HOME):
        proc = subprocess.run(
            [sys.executable, "-c", _ALONE.format(root=root, mod=mod)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, (mod, proc.stderr)
        results[mod] = json.loads(proc.stdout)
    for mod, got in results.items():
        assert got["missing"] == [], (mod, got["missing"])
        expected = {"meshsim.core", "meshsim.core.res"} | {f"meshsim.core.res.{m}" for m in LOADS[mod]}
        assert set(got["loaded"]) == expected, (mod, sorted(set(got["loaded"]) ^ expected))
