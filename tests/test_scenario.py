"""Scenario loading: exact error messages, overrides, warnings, placement, offered load.

Every problem with a scenario is a ScenarioError whose text starts with the
dotted path of the offending key; unknown names come with the closest valid
one; the whole scenario is checked in one pass and all problems are reported.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshsim.examples import SCENARIOS  # the repository's data/ links to meshsim/data
from meshsim.distributions import DISTRIBUTION_KINDS
from meshsim.errors import ScenarioError, ScenarioErrors, ScenarioWarning
from meshsim.scenario.load import load_scenario, parse_override, set_path
from meshsim.scenario.model import Scenario
from meshsim.scenario.schema import walk
from meshsim.scenario.spec import SCENARIO

ROOT = Path(__file__).resolve().parents[1]
TOP_KEYS = set(SCENARIO.fields)


def base() -> dict:
    """A small valid scenario: web -> cart.get -> db (p=0.5); cart has two endpoints."""
    return {
        "run": {"requests": 100},
        "network": {"enabled": False},
        "services": {
            "web": {"workers": 4, "service_time": "1ms", "calls": ["cart.get"]},
            "cart": {
                "replicas": 2,
                "workers": 2,
                "endpoints": {
                    "get": {"service_time": "2ms", "calls": [{"service": "db", "probability": 0.5}]},
                    "put": {"service_time": "3ms", "calls": ["db"]},
                },
            },
            "db": {"workers": 4, "service_time": {"dist": "exponential", "mean": "4ms"}},
        },
        "workloads": {"users": {"rate": "100/s", "target": "web"}},
    }


def errors_of(data: Any, overrides: Any = None) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ScenarioWarning)
            load_scenario(data, overrides)
    e = info.value
    return [str(x) for x in e.errors] if isinstance(e, ScenarioErrors) else [str(e)]


def test_base_is_valid() -> None:
    sc = load_scenario(base())
    assert isinstance(sc, Scenario)
    assert sc.instances() == ["web-0", "cart-0", "cart-1", "db-0"]


# -- one bad thing at a time: the exact message --------------------------------


def _mut(fn: Callable[[dict], None]) -> Callable[[], dict]:
    def make() -> dict:
        d = base()
        fn(d)
        return d

    return make


def _rename(d: dict, path: list[str], new: str) -> None:
    node = d
    for k in path[:-1]:
        node = node[k]
    node[new] = node.pop(path[-1])


SVC_KEYS = ("replicas, workers, queue, semantics, placement, zones, service_time, calls, endpoints, load_balancer, "
            "timeout, retries, circuit_breaker, outlier_detection, hedge_on_per_try_timeout, max_concurrency")
TOP = "name, description, seed, run, metrics, topology, network, mesh, graph, services, workloads, registry, faults"
WL_KEYS = ("type, target, endpoint, source, rate, off_rate, on_time, off_time, steps, amplitude, period, phase, "
           "users, think_time, file, column, speedup, timeout, clients")
FAULT_KEYS = ("at, until, action, server, instance, host, factor, between, latency, extra_latency, loss, groups, "
              "oneway")
KINDS = "constant, exponential, uniform, normal, lognormal, pareto, empirical, mixture"

BAD: list[tuple[str, Callable[[], dict], list[str]]] = [
    (
        "replicas-0",
        _mut(lambda d: d["services"].update(cart=d["services"]["cart"] | {"replicas": 0})),
        ["services.cart.replicas: must be an integer >= 1, got 0"],
    ),
    (
        "replicas-float",
        _mut(lambda d: d["services"]["cart"].update(replicas=1.5)),
        ["services.cart.replicas: must be an integer >= 1, got 1.5"],
    ),
    (
        "replicas-string",
        _mut(lambda d: d["services"]["cart"].update(replicas="two")),
        ["services.cart.replicas: must be an integer >= 1, got 'two'"],
    ),
    (
        "replicas-bool",
        _mut(lambda d: d["services"]["cart"].update(replicas=True)),
        ["services.cart.replicas: must be an integer >= 1, got True"],
    ),
    (
        "top-level-servces",
        _mut(lambda d: _rename(d, ["services"], "servces")),
        [f"servces: unknown key; valid keys are {TOP} (did you mean 'services'?)", "services: is required"],
    ),
    (
        "service-key-replcas",
        _mut(lambda d: d["services"]["cart"].update(replcas=3)),
        [f"services.cart.replcas: unknown key; valid keys are {SVC_KEYS} (did you mean 'replicas'?)"],
    ),
    (
        "workload-key-rat",
        _mut(lambda d: _rename(d, ["workloads", "users", "rate"], "rat")),
        # (the type-specific check runs only once the keys themselves are fine)
        [f"workloads.users.rat: unknown key; valid keys are {WL_KEYS} (did you mean 'rate'?)"],
    ),
    (
        "endpoint-key-service_tme",
        _mut(lambda d: _rename(d, ["services", "cart", "endpoints", "put", "service_time"], "service_tme")),
        [
            "services.cart.endpoints.put.service_tme: unknown key; valid keys are service_time, calls "
            "(did you mean 'service_time'?)",
            "services.cart.endpoints.put.service_time: is required",
        ],
    ),
    (
        "call-key-probabilty",
        _mut(lambda d: d["services"]["cart"]["endpoints"]["get"]["calls"][0].update(probabilty=0.3)),
        ["services.cart.endpoints.get.calls[0].probabilty: unknown key; valid keys are service, endpoint, "
         "probability (did you mean 'probability'?)"],
    ),
    (
        "fault-key-instnce",
        _mut(lambda d: d.update(faults=[{"at": "1s", "action": "crash", "instnce": "cart-0"}])),
        [
            f"faults[0].instnce: unknown key; valid keys are {FAULT_KEYS} (did you mean 'instance'?)",
        ],
    ),
    (
        "run-key-reqests",
        _mut(lambda d: _rename(d, ["run", "requests"], "reqests")),
        ["run.reqests: unknown key; valid keys are duration, requests, drain, max_time, max_wall, "
         "common_random_numbers (did you mean 'requests'?)"],
    ),
    (
        "network-latency-key",
        _mut(lambda d: d["network"].update(latency={"same_zon": "1ms"})),
        ["network.latency.same_zon: unknown key; valid keys are same_host, same_zone, cross_zone, cross_region "
         "(did you mean 'same_zone'?)"],
    ),
    (
        "distribution-kind",
        _mut(lambda d: d["services"]["db"].update(service_time={"dist": "exponental", "mean": "4ms"})),
        [f"services.db.service_time.dist: unknown distribution 'exponental'; known kinds: {KINDS} "
         "(did you mean 'exponential'?)"],
    ),
    (
        "distribution-key",
        _mut(lambda d: d["services"]["db"].update(service_time={"dist": "exponential", "maen": "4ms"})),
        ["services.db.service_time.maen: unknown key 'maen' for a exponential distribution; valid keys: mean "
         "(did you mean 'mean'?)"],
    ),
    (
        "unknown-service",
        _mut(lambda d: d["services"]["cart"]["endpoints"]["get"]["calls"][0].update(service="dbb")),
        ["services.cart.endpoints.get.calls[0].service: unknown service 'dbb' (did you mean 'db'?)"],
    ),
    (
        "unknown-service-shorthand",
        _mut(lambda d: d["services"]["web"].update(calls=["crt.get"])),
        ["services.web.endpoints.default.calls[0].service: unknown service 'crt' (did you mean 'cart'?)"],
    ),
    (
        "unknown-endpoint",
        _mut(lambda d: d["services"]["web"].update(calls=["cart.gett"])),
        ["services.web.endpoints.default.calls[0].endpoint: cart has no endpoint 'gett'; it has get, put "
         "(did you mean 'get'?)"],
    ),
    (
        "endpoint-needed",
        _mut(lambda d: d["services"]["web"].update(calls=["cart"])),
        ["services.web.endpoints.default.calls[0].endpoint: is required: cart has endpoints get, put"],
    ),
    (
        "workload-unknown-target",
        _mut(lambda d: d["workloads"]["users"].update(target="wbe")),
        ["workloads.users.target: unknown service 'wbe' (did you mean 'web'?)"],
    ),
    (
        "cycle",
        _mut(lambda d: d["services"]["db"].update(calls=["web"])),
        ["services.db.endpoints.default.calls: call graph has a cycle: "
         "web.default -> cart.get -> db.default -> web.default"],
    ),
    (
        "self-call",
        _mut(lambda d: d["services"]["db"].update(calls=["db"])),
        ["services.db.endpoints.default.calls: call graph has a cycle: db.default -> db.default"],
    ),
    (
        "mmpp-missing-keys",
        _mut(lambda d: d["workloads"].update(users={"type": "mmpp", "target": "web", "rate": "10/s"})),
        [
            "workloads.users.off_rate: is required for type mmpp",
            "workloads.users.on_time: is required for type mmpp",
            "workloads.users.off_time: is required for type mmpp",
        ],
    ),
    (
        "closed-missing-keys",
        _mut(lambda d: d["workloads"].update(users={"type": "closed", "target": "web"})),
        ["workloads.users.users: is required for type closed", "workloads.users.think_time: is required for type closed"],
    ),
    (
        "diurnal-missing-keys",
        _mut(lambda d: d["workloads"]["users"].update(type="diurnal")),
        ["workloads.users.amplitude: is required for type diurnal", "workloads.users.period: is required for type diurnal"],
    ),
    (
        "steps-missing-steps",
        _mut(lambda d: d["workloads"].update(users={"type": "steps", "target": "web"})),
        ["workloads.users.steps: is required for type steps"],
    ),
    (
        "key-not-for-type",
        _mut(lambda d: d["workloads"]["users"].update(users=5)),
        ["workloads.users.users: does not apply to type poisson"],
    ),
    (
        "workload-type-misspelt",
        _mut(lambda d: d["workloads"]["users"].update(type="poison")),
        ["workloads.users.type: must be one of closed, deterministic, diurnal, mmpp, poisson, steps, trace, "
         "got 'poison' (did you mean 'poisson'?)"],
    ),
    (
        "poisson-rate-zero",
        _mut(lambda d: d["workloads"]["users"].update(rate=0)),
        ["workloads.users.rate: must be a rate > 0 for type poisson, got 0"],
    ),
    (
        "fault-unknown-instance",
        _mut(lambda d: d.update(faults=[{"at": "1s", "action": "crash", "instance": "cart-2"}])),
        ["faults[0].instance: unknown instance 'cart-2' (instances are named service-index) (did you mean 'cart-1'?)"],
    ),
    (
        "fault-unknown-host",
        _mut(lambda d: d.update(faults=[{"at": "1s", "action": "crash", "host": "h-crt-0"}])),
        ["faults[0].host: unknown host 'h-crt-0' (did you mean 'h-cart-0'?)"],
    ),
    (
        "fault-until-before-at",
        _mut(lambda d: d.update(faults=[{"at": "2s", "until": "1s", "action": "crash", "instance": "db-0"}])),
        ["faults[0].until: must be after at (2000.0ms), got 1000.0ms"],
    ),
    (
        "fault-two-targets",
        _mut(lambda d: d.update(faults=[{"at": "2s", "action": "crash", "instance": "db-0", "host": "h-db-0"}])),
        ["faults[0]: crash needs exactly one of instance or host"],
    ),
    (
        "fault-degrade-nothing",
        _mut(lambda d: d.update(faults=[{"at": "2s", "action": "degrade", "between": ["zone-a", "h-db-0"]}])),
        ["faults[0]: degrade needs latency, extra_latency or loss"],
    ),
    (
        "fault-partition-unknown-zone",
        _mut(lambda d: d.update(faults=[{"at": 0, "action": "partition", "groups": [["zone-a"], ["zone-b"]]}])),
        ["faults[0].groups: unknown host, zone or region 'zone-b' (did you mean 'zone-a'?)"],
    ),
    (
        "link-unknown-zone",
        _mut(lambda d: d.update(topology={"regions": {"eu": ["eu-a", "eu-b"]}},
                                network={"links": [{"between": ["eu-a", "eu-c"], "loss": 0.1}]})),
        ["network.links[0].between[1]: unknown host, zone or region 'eu-c' (did you mean 'eu-b'?)"],
    ),
    (
        "link-three-ends",
        _mut(lambda d: d["network"].update(links=[{"between": ["a", "b", "c"]}])),
        ["network.links[0].between: must have 2 item(s), got 3"],
    ),
    (
        "host-unknown-zone",
        _mut(lambda d: d.update(topology={"regions": {"eu": ["eu-a"]}, "hosts": {"h1": "eu-b"}})),
        ["topology.hosts.h1.zone: unknown zone 'eu-b' (did you mean 'eu-a'?)"],
    ),
    (
        "placement-unknown-host",
        _mut(lambda d: d.update(topology={"hosts": {"h1": "zone-a"}})
             or d["services"]["cart"].update(placement=["h1", "h2"])),
        ["services.cart.placement[1]: unknown host 'h2' (did you mean 'h1'?)"],
    ),
    (
        "service-zone-unknown",
        _mut(lambda d: d["services"]["cart"].update(zones=["zone-b"])),
        ["services.cart.zones[0]: unknown zone 'zone-b' (did you mean 'zone-a'?)"],
    ),
    (
        "parallel-wait-too-many",
        _mut(lambda d: d["services"]["web"].update(calls=[{"parallel": ["cart.get", "db"], "wait": 3}])),
        ["services.web.calls[0].wait: cannot wait for 3 replies of 2 parallel call(s)"],
    ),
    (
        "probability-above-one",
        _mut(lambda d: d["services"]["cart"]["endpoints"]["get"]["calls"][0].update(probability=1.5)),
        ["services.cart.endpoints.get.calls[0].probability: must be a number >= 0.0 and <= 1.0, got 1.5"],
    ),
    (
        "both-shorthand-and-endpoints",
        _mut(lambda d: d["services"]["cart"].update(service_time="1ms")),
        ["services.cart.service_time: give either service_time/calls (one endpoint) or endpoints, not both"],
    ),
    (
        "no-service-time",
        _mut(lambda d: d["services"]["db"].pop("service_time")),
        ["services.db.service_time: is required (or define endpoints)"],
    ),
    (
        "run-without-end",
        _mut(lambda d: d.update(run={})),
        ["run: needs duration or requests (or both) to know when arrivals stop"],
    ),
    (
        "services-empty",
        _mut(lambda d: d.update(services={})),
        ["services: must have at least 1 entry"],  # references are checked once the schema is satisfied
    ),
    (
        "service-name-with-dot",
        _mut(lambda d: d["services"].update({"a.b": {"service_time": 1}})),
        ["services.a.b: service name must be a non-empty string without spaces, dots, brackets or slashes"],
    ),
    (
        "services-a-list",
        _mut(lambda d: d.update(services=["web", "db"])),
        ["services: must be a mapping of service name to settings, got ['web', 'db']"],
    ),
    (
        "queue-negative",
        _mut(lambda d: d["services"]["db"].update(queue=-1)),
        ["services.db.queue: must be 'unbounded' or an integer >= 0 (waiting-room size), got -1"],
    ),
    (
        "semantics-misspelt",
        _mut(lambda d: d["services"]["db"].update(semantics="blockng")),
        ["services.db.semantics: must be one of async, blocking, got 'blockng' (did you mean 'blocking'?)"],
    ),
    (
        "no-zones-at-all",
        _mut(lambda d: d.update(topology={"regions": {}})),
        ["topology.regions: must define at least one region with at least one zone"],
    ),
    (
        "null-required",
        _mut(lambda d: d.update(run=None)),
        ["run: must be a mapping, got null"],
    ),
]


@pytest.mark.parametrize(("make", "expected"), [pytest.param(m, e, id=i) for i, m, e in BAD])
def test_bad_scenario_messages(make: Callable[[], dict], expected: list[str]) -> None:
    assert errors_of(make()) == expected


def test_issue_example_exact_text() -> None:
    d = base()
    d["services"]["cart"]["replicas"] = 0
    with pytest.raises(ScenarioError) as info:
        load_scenario(d)
    assert str(info.value) == "services.cart.replicas: must be an integer >= 1, got 0"
    assert info.value.path == "services.cart.replicas"
    assert info.value.message == "must be an integer >= 1, got 0"
    assert info.value.suggestion is None


def test_suggestion_is_an_attribute() -> None:
    d = base()
    d["services"]["cart"]["replcas"] = 3
    with pytest.raises(ScenarioError) as info:
        load_scenario(d)
    assert info.value.suggestion == "replicas"
    assert info.value.path == "services.cart.replcas"


def test_no_suggestion_when_nothing_is_close() -> None:
    d = base()
    d["services"]["cart"]["zzzzzzzz"] = 3
    (msg,) = errors_of(d)
    assert msg == f"services.cart.zzzzzzzz: unknown key; valid keys are {SVC_KEYS}"
    assert "did you mean" not in msg


def test_several_errors_reported_together() -> None:
    d = base()
    d["seed"] = -1
    d["services"]["cart"]["replicas"] = 0
    d["services"]["db"]["workrs"] = 2
    d["workloads"]["users"]["rate"] = "fast"
    d["run"]["duration"] = "soon"
    with pytest.raises(ScenarioErrors) as info:
        load_scenario(d)
    e = info.value
    assert [str(x) for x in e.errors] == [
        "seed: must be an integer >= 0, got -1",
        "run.duration: must be a duration such as '250ms', '2s' or '5m', got 'soon'",
        "services.cart.replicas: must be an integer >= 1, got 0",
        f"services.db.workrs: unknown key; valid keys are {SVC_KEYS} (did you mean 'workers'?)",
        "workloads.users.rate: must be a rate such as 8 (per second), '8/s' or '480/min', got 'fast'",
    ]
    assert str(e) == "\n".join(str(x) for x in e.errors)
    assert e.path == "seed"  # the first error's path
    assert all(isinstance(x, ScenarioError) for x in e.errors)


def test_cross_reference_errors_are_collected_together() -> None:
    d = base()
    d["services"]["web"]["calls"] = ["crt.get", "db.nope"]
    d["workloads"]["users"]["target"] = "wbe"
    assert errors_of(d) == [
        "services.web.endpoints.default.calls[0].service: unknown service 'crt' (did you mean 'cart'?)",
        "services.web.endpoints.default.calls[1].endpoint: db has no endpoint 'nope'; it has default",
        "workloads.users.target: unknown service 'wbe' (did you mean 'web'?)",
    ]


# -- sources that are not scenarios ---------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ([1, 2], "a scenario must be a file path or a mapping, got list"),
        (None, "a scenario must be a file path or a mapping, got NoneType"),
        (42, "a scenario must be a file path or a mapping, got int"),
        ({}, "run: is required\nservices: is required\nworkloads: is required"),
    ],
)
def test_non_scenarios(source: Any, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(source)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("# just a comment\n", "is empty"),
        ("- a\n- b\n", "a scenario must be a mapping of keys (run, services, workloads, ...), got list"),
        ("hello\n", "a scenario must be a mapping of keys (run, services, workloads, ...), got str"),
        ("services: [\n  a: : :\n", "is not valid YAML at line 2, column 6"),
        ("a: 1\n---\nb: 2\n", "is not valid YAML at line 2, column 1: but found another document"),
        ("!!python/object:os.system {}\n", "is not valid YAML at line 1, column 1: could not determine a constructor"),
    ],
)
def test_bad_files(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario(f)


def test_missing_file_directory_and_binary(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "nope.yaml")
    assert str(info.value) == (f"{tmp_path / 'nope.yaml'}: no such file (looked in {tmp_path}); meshsim.examples() "
                               "lists the shipped scenarios, meshsim.example(name) gives a path")
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, not a scenario file"
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(b"\xff\xfe\x00\x81garbage\x00\x00")
    with pytest.raises(ScenarioError) as info:
        load_scenario(junk)
    assert str(info.value).startswith(f"{junk}: cannot be read:")


def test_errors_from_a_file_name_the_key(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    d = base()
    d["services"]["cart"]["replicas"] = 0
    f.write_text(yaml.safe_dump(d), encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(f)
    assert str(info.value) == "services.cart.replicas: must be an integer >= 1, got 0"


# -- overrides ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("run.requests=1000", ("run.requests", 1000)),
        ("services.cart.replicas=3", ("services.cart.replicas", 3)),
        ("faults[0].at=5s", ("faults[0].at", "5s")),
        (" seed = 7 ", ("seed", 7)),
        ("metrics.spans=false", ("metrics.spans", False)),
        ("services.db.queue=unbounded", ("services.db.queue", "unbounded")),
        ("services.db.service_time={dist: exponential, mean: 2ms}",
         ("services.db.service_time", {"dist": "exponential", "mean": "2ms"})),
        ("services.web.calls=[db, cart.get]", ("services.web.calls", ["db", "cart.get"])),
        ("run.duration=", ("run.duration", None)),
        ("run.duration=null", ("run.duration", None)),
        ("name=a=b", ("name", "a=b")),
        ("name=[unclosed", ("name", "[unclosed")),  # not YAML: kept as text
    ],
)
def test_parse_override(text: str, expected: tuple[str, Any]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("run.requests", "run.requests: an override must look like PATH=VALUE, e.g. services.cart.replicas=3"),
        ("=5", "=5: an override needs a path before '='"),
        (5, "5: an override must be a string PATH=VALUE, e.g. services.cart.replicas=3"),
    ],
)
def test_parse_override_errors(text: Any, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_override(text)
    assert str(info.value) == message


def test_set_path_copies_and_creates_mappings() -> None:
    d = {"run": {"requests": 1}, "faults": [{"at": 1}, {"at": 2}]}
    out = set_path(d, "metrics.warmup", "5s")
    assert out["metrics"] == {"warmup": "5s"}
    assert "metrics" not in d  # the input is not modified
    assert set_path(d, "faults[1].at", 9)["faults"] == [{"at": 1}, {"at": 9}]
    assert set_path(d, "faults[-1].at", 9)["faults"] == [{"at": 1}, {"at": 9}]
    assert set_path(d, "faults[0]", None)["faults"] == [None, {"at": 2}]
    assert set_path({"a": {"b": [[0, 1]]}}, "a.b[0][1]", 5) == {"a": {"b": [[0, 5]]}}
    assert set_path({"a": None}, "a.b", 1) == {"a": {"b": 1}}
    assert d == {"run": {"requests": 1}, "faults": [{"at": 1}, {"at": 2}]}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("faults[2].at", "faults[2]: no such list item"),
        ("faults[-3]", "faults[-3]: no such list item"),
        ("run[0]", "run[0]: no such list item"),
        ("[0]", "[0]: no such list item"),
        ("run.requests.x", "run.requests.x: cannot set a key inside a value that is not a mapping"),
        ("faults.at", "faults.at: cannot set a key inside a value that is not a mapping"),
        ("faults[x].at", "faults[x].at: list index 'x' is not an integer"),
        ("faults[].at", "faults[].at: list index '' is not an integer"),
        ("run..requests", "run..requests: is not a valid path: write keys separated by dots and list items as [i], "
                          "e.g. faults[0].at"),
        ("run.", "run.: is not a valid path: write keys separated by dots and list items as [i], e.g. faults[0].at"),
        ("faults[0", "faults[0: is not a valid path: write keys separated by dots and list items as [i], "
                     "e.g. faults[0].at"),
        ("faults]0[", "faults]0[: is not a valid path: write keys separated by dots and list items as [i], "
                      "e.g. faults[0].at"),
    ],
)
def test_set_path_errors(path: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        set_path({"run": {"requests": 1}, "faults": [{"at": 1}, {"at": 2}]}, path, 1)
    assert str(info.value) == message


def test_overrides_apply_before_checking() -> None:
    d = base()
    d["faults"] = [{"at": "1s", "action": "crash", "instance": "cart-0"}]
    sc = load_scenario(d, ["services.cart.replicas=3", "faults[0].at=2s", "run.requests=7"])
    assert sc.services["cart"]["replicas"] == 3
    assert sc.spec["faults"][0]["at"] == 2000.0
    assert sc.spec["run"]["requests"] == 7
    assert sc.raw["services"]["cart"]["replicas"] == 3
    assert d["services"]["cart"]["replicas"] == 2  # the caller's dict is untouched
    sc2 = load_scenario(d, {"services.cart.replicas": 4, "faults[0].instance": "cart-3"})
    assert sc2.instances()[-5:] == ["cart-0", "cart-1", "cart-2", "cart-3", "db-0"]


def test_bad_overrides_name_the_path() -> None:
    d = base()
    assert errors_of(d, ["services.cart.replicas=0"]) == ["services.cart.replicas: must be an integer >= 1, got 0"]
    assert errors_of(d, ["services.cart.replcas=2"]) == [
        f"services.cart.replcas: unknown key; valid keys are {SVC_KEYS} (did you mean 'replicas'?)"]
    assert errors_of(d, ["faults[0].at=1s"]) == ["faults[0]: no such list item"]
    assert errors_of(d, ["run.requests.n=1"]) == [
        "run.requests.n: cannot set a key inside a value that is not a mapping"]
    assert errors_of(d, ["run.requests=[1"]) == ["run.requests: must be an integer >= 1, got '[1'"]
    assert errors_of(d, ["nonsense"]) == [
        "nonsense: an override must look like PATH=VALUE, e.g. services.cart.replicas=3"]
    assert errors_of(d, {7: 1}) == ["7: an override path must be a string such as 'services.cart.replicas'"]
    assert errors_of(d, [None]) == ["None: an override must be a string PATH=VALUE, e.g. services.cart.replicas=3"]


def test_with_overrides() -> None:
    sc = load_scenario(base())
    sc2 = sc.with_overrides({"services.db.workers": 8, "workloads.users.rate": "200/s"})
    assert sc2 is not sc
    assert sc2.services["db"]["workers"] == 8
    assert sc2.workload_rate("users") == 200.0
    assert sc.services["db"]["workers"] == 4  # the original is unchanged
    assert sc.workload_rate("users") == 100.0
    assert sc2.utilisation()["db"] == pytest.approx(sc.utilisation()["db"])  # double rate, double workers
    sc3 = sc.with_overrides(["services.cart.replicas=1"])
    assert sc3.instances() == ["web-0", "cart-0", "db-0"]
    with pytest.raises(ScenarioError, match=r"^services\.cart\.replicas: must be an integer >= 1, got 0$"):
        sc.with_overrides({"services.cart.replicas": 0})


def test_with_overrides_keeps_the_file_origin() -> None:
    sc = load_scenario(SCENARIOS / "mmc.yaml")
    sc2 = sc.with_overrides({"run.requests": 10})
    assert sc2.origin == sc.origin == str(SCENARIOS / "mmc.yaml")
    assert sc2.base_dir == sc.base_dir == SCENARIOS
    assert sc2.spec["run"]["requests"] == 10
    assert sc2.to_dict()["run"] == {"requests": 10}


# -- stability warning ---------------------------------------------------------------


def test_unstable_scenario_warns_naming_the_station() -> None:
    d = base()
    d["services"]["db"]["workers"] = 1
    d["workloads"]["users"]["rate"] = "500/s"  # db: 250/s x 4ms / 1 = 1.0
    with pytest.warns(ScenarioWarning) as rec:
        sc = load_scenario(d)
    msgs = [str(w.message) for w in rec]
    assert msgs == ["services.db: offered utilisation 1.00 >= 1; its queue will grow without bound"]
    assert sc.utilisation()["db"] == pytest.approx(1.0)


def test_every_unstable_station_is_named() -> None:
    d = base()
    d["workloads"]["users"]["rate"] = "3000/s"  # web 0.75, cart 1.5, db 1.5
    with pytest.warns(ScenarioWarning) as rec:
        load_scenario(d)
    assert [str(w.message) for w in rec] == [
        "services.cart: offered utilisation 1.50 >= 1; its queue will grow without bound",
        "services.db: offered utilisation 1.50 >= 1; its queue will grow without bound",
    ]


def test_unstable_warning_can_be_turned_off_and_stable_does_not_warn() -> None:
    d = base()
    d["workloads"]["users"]["rate"] = "3000/s"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_scenario(d, warn=False)
        load_scenario(base())  # utilisation well below 1: no warning at all


def test_unstable_example_scenario_via_override() -> None:
    with pytest.warns(ScenarioWarning, match=r"^services\.server: offered utilisation 1\.20 >= 1"):
        load_scenario(SCENARIOS / "mmc.yaml", ["workloads.arrivals.rate=60/s"])


# -- offered load ----------------------------------------------------------------------


def graph() -> dict:
    """front fans out to a and (p=0.5) b, waits for the first reply, then calls a with p=0.2;
    a calls c with p=0.5; b always calls c; a second workload feeds b directly."""
    return {
        "run": {"duration": "10s"},
        "network": {"enabled": False},
        "services": {
            "front": {
                "replicas": 2,
                "workers": 5,
                "service_time": "10ms",
                "calls": [
                    {"parallel": ["a", {"service": "b", "probability": 0.5}], "wait": 1},
                    {"service": "a", "probability": 0.2},
                ],
            },
            "a": {"workers": 2, "service_time": {"dist": "exponential", "mean": "4ms"},
                  "calls": [{"service": "c", "probability": 0.5}]},
            "b": {"replicas": 3, "service_time": {"dist": "uniform", "low": "1ms", "high": "3ms"}, "calls": ["c"]},
            "c": {"service_time": {"dist": "constant", "value": "1000us"}},
        },
        "workloads": {
            "users": {"rate": "200/s", "target": "front"},
            "batch": {"type": "deterministic", "rate": "60/min", "target": "b"},
        },
    }


def test_endpoint_rates_by_hand() -> None:
    sc = load_scenario(graph())
    # front 200; a = 200 (parallel) + 0.2 * 200 = 240; b = 0.5 * 200 + 1 = 101; c = 0.5 * 240 + 101 = 221
    rates = sc.endpoint_rates()
    assert rates == pytest.approx({("front", "default"): 200.0, ("a", "default"): 240.0,
                                   ("b", "default"): 101.0, ("c", "default"): 221.0})


def test_utilisation_by_hand() -> None:
    sc = load_scenario(graph())
    # rate x mean service time / (replicas x workers)
    assert sc.utilisation() == pytest.approx({
        "front": 200 * 0.010 / (2 * 5),  # 0.2
        "a": 240 * 0.004 / 2,  # 0.48
        "b": 101 * 0.002 / 3,  # 0.0673
        "c": 221 * 0.001 / 1,  # 0.221
    })


def test_utilisation_sums_endpoints_of_one_service() -> None:
    d = base()
    d["workloads"]["writers"] = {"rate": "50/s", "target": "cart", "endpoint": "put"}
    sc = load_scenario(d)
    # cart: get 100/s x 2ms + put 50/s x 3ms over 2 x 2 workers; db: 0.5 x 100 + 50 = 100/s x 4ms / 4
    assert sc.utilisation() == pytest.approx({"web": 0.025, "cart": (0.2 + 0.15) / 4, "db": 0.1})


def test_workload_rates_of_each_type(tmp_path: Path) -> None:
    d = base()
    d["run"] = {"duration": "100s"}
    trace = tmp_path / "arrivals.csv"
    trace.write_text("time_ms\n0\n100\n200\n300\n400\n", encoding="utf-8")
    d["workloads"] = {
        "p": {"rate": 10, "target": "web"},
        "m": {"type": "mmpp", "rate": "30/s", "off_rate": 0, "on_time": "1s", "off_time": "2s", "target": "web"},
        "s": {"type": "steps", "steps": [{"at": 0, "rate": 10}, {"at": "50s", "rate": 30}], "target": "web"},
        "d": {"type": "diurnal", "rate": 12, "amplitude": 0.5, "period": "1h", "target": "web"},
        "c": {"type": "closed", "users": 4, "think_time": "200ms", "target": "web"},
        "t": {"type": "trace", "file": str(trace), "speedup": 2, "target": "web"},
    }
    sc = load_scenario(d)
    assert sc.workload_rate("p") == 10.0
    assert sc.workload_rate("m") == pytest.approx(30 * 1 / 3)
    assert sc.workload_rate("s") == pytest.approx(20.0)  # half the time 10, half 30
    assert sc.workload_rate("d") == 12.0
    assert sc.workload_rate("c") == pytest.approx(4 * 1000 / 200)  # an upper bound
    assert sc.workload_rate("t") == pytest.approx(4 * 1000 / 200)  # 4 gaps over 400ms / speedup 2


# -- placement ------------------------------------------------------------------------------


def placed(topology: dict, **cart: Any) -> Scenario:
    d = base()
    d["topology"] = topology
    d["services"]["cart"].update(cart)
    return load_scenario(d)


def test_default_topology_one_host_per_instance() -> None:
    sc = load_scenario(base())
    assert sc.zones() == {"zone-a": "region-1"}
    assert sc.placement() == {"web-0": "h-web-0", "cart-0": "h-cart-0", "cart-1": "h-cart-1", "db-0": "h-db-0"}
    assert sc.hosts() == {"h-web-0": "zone-a", "h-cart-0": "zone-a", "h-cart-1": "zone-a", "h-db-0": "zone-a",
                          "client-users": "zone-a"}
    assert sc.client_host("users") == "client-users"


def test_spread_across_zones_auto_hosts() -> None:
    sc = placed({"regions": {"eu": ["z1", "z2", "z3"]}}, replicas=4)
    place, hosts = sc.placement(), sc.hosts()
    assert [hosts[place[f"cart-{i}"]] for i in range(4)] == ["z1", "z2", "z3", "z1"]
    assert [place[f"cart-{i}"] for i in range(4)] == ["h-cart-0", "h-cart-1", "h-cart-2", "h-cart-3"]
    assert hosts["client-users"] == "z1"  # clients sit in the first zone by default


def test_pack_auto_hosts_stay_in_first_allowed_zone() -> None:
    sc = placed({"regions": {"eu": ["z1", "z2", "z3"]}}, replicas=3, placement="pack", zones=["z2", "z3"])
    hosts, place = sc.hosts(), sc.placement()
    assert [hosts[place[f"cart-{i}"]] for i in range(3)] == ["z2", "z2", "z2"]


def test_zones_restrict_spread_auto_hosts() -> None:
    sc = placed({"regions": {"eu": ["z1", "z2", "z3"]}}, replicas=4, zones=["z3", "z1"])
    hosts, place = sc.hosts(), sc.placement()
    assert [hosts[place[f"cart-{i}"]] for i in range(4)] == ["z3", "z1", "z3", "z1"]


HOSTS = {"regions": {"eu": ["z1", "z2"]}, "hosts": {"a1": "z1", "a2": "z1", "b1": "z2"}}


def test_spread_over_declared_hosts() -> None:
    sc = placed(HOSTS, replicas=5)
    place = sc.placement()
    # round robin over zones, then over the (sorted) hosts within a zone
    assert [place[f"cart-{i}"] for i in range(5)] == ["a1", "b1", "a2", "b1", "a1"]
    assert sc.hosts() == {"a1": "z1", "a2": "z1", "b1": "z2", "client-users": "z1"}


def test_pack_onto_one_declared_host() -> None:
    sc = placed(HOSTS, replicas=3, placement="pack")
    assert [sc.placement()[f"cart-{i}"] for i in range(3)] == ["a1", "a1", "a1"]
    sc = placed(HOSTS, replicas=2, placement="pack", zones=["z2"])
    assert [sc.placement()[f"cart-{i}"] for i in range(2)] == ["b1", "b1"]


def test_explicit_host_list_is_cycled() -> None:
    sc = placed(HOSTS, replicas=3, placement=["b1", "a2"])
    assert [sc.placement()[f"cart-{i}"] for i in range(3)] == ["b1", "a2", "b1"]


def test_zone_without_hosts_is_an_error() -> None:
    d = base()
    d["topology"] = HOSTS | {"regions": {"eu": ["z1", "z2", "z3"]}}
    d["services"]["cart"]["zones"] = ["z3"]
    assert errors_of(d) == ["services.cart.zones[0]: zone 'z3' has no hosts"]


def test_workload_source_host_is_the_client() -> None:
    d = base()
    d["topology"] = HOSTS
    d["workloads"]["users"]["source"] = "b1"
    sc = load_scenario(d)
    assert sc.client_host("users") == "b1"
    assert "client-users" not in sc.hosts()
    d["workloads"]["users"]["source"] = "z2"
    sc = load_scenario(d)
    assert sc.client_host("users") == "client-users"
    assert sc.hosts()["client-users"] == "z2"
    d["workloads"]["users"]["source"] = "z9"
    assert errors_of(d) == ["workloads.users.source: unknown zone or host 'z9' (did you mean 'z2'?)"]


def test_rich_scenario_is_valid() -> None:
    sc = load_scenario(rich())
    assert sc.placement()["a-0"] == "a1" and sc.placement()["a-1"] == "b1"
    assert sc.placement()["b-0"] == sc.placement()["b-2"] == "b1"
    assert sc.client_host("think") == "c1"
    assert sc.zones() == {"z1": "eu", "z2": "eu", "u1": "us"}


def test_faults_may_name_generated_hosts_and_zones() -> None:
    d = base()
    d["faults"] = [
        {"at": "1s", "until": "2s", "action": "crash", "host": "h-cart-1"},
        {"at": "1s", "action": "restart", "instance": "db-0"},
        {"at": "1s", "action": "degrade", "between": ["h-web-0", "zone-a"], "extra_latency": "5ms"},
        {"at": "1s", "action": "partition", "groups": [["h-web-0"], ["h-db-0", "h-cart-0"]], "oneway": True},
    ]
    d["network"] = {"enabled": True}
    sc = load_scenario(d)
    assert [f["action"] for f in sc.spec["faults"]] == ["crash", "restart", "degrade", "partition"]


def test_network_faults_without_a_network_warn() -> None:
    d = base()
    d["network"] = {"enabled": False}
    d["faults"] = [{"at": "1s", "action": "partition", "groups": [["h-web-0"], ["h-db-0"]]}]
    with pytest.warns(ScenarioWarning, match=r"faults\[0\]: network.enabled is false, so this partition has no effect"):
        load_scenario(d)


def test_closed_workloads_do_not_trigger_the_overload_warning() -> None:
    d = base()
    d["workloads"] = {"users": {"type": "closed", "users": 500, "think_time": "1ms", "target": "web"}}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScenarioWarning)
        sc = load_scenario(d)
    assert sc.utilisation()["web"] > 1  # the upper bound is still reported


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_scenarios_load_and_are_stable(path: Path) -> None:
    sc = load_scenario(path)  # a ScenarioWarning would fail here (pytest config)
    assert all(0 < u < 1 for u in sc.utilisation().values())


# -- property tests ----------------------------------------------------------------------------

_SCHEMA_KEYS = sorted({p.rsplit(".", 1)[-1].replace("[]", "") for p, _, _ in walk(SCENARIO)} - {""})
_DIST_KEYS = sorted({"dist", *(k for spec in DISTRIBUTION_KINDS.values() for k in spec["keys"])})
_NAMES = ["web", "cart", "db", "default", "get", "zone-a", "h-web-0", "web-0", "all", "spread", "pack", "poisson",
          "closed", "crash", "degrade", "partition", "unbounded", *DISTRIBUTION_KINDS]

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=50),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(_NAMES + ["5ms", "2s", "10/s", "0", "-1ms", "1e400", ".5s"]),
)
_keys = st.one_of(st.sampled_from(_SCHEMA_KEYS + _DIST_KEYS + _NAMES), st.text(max_size=6))
junk = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_keys, children, max_size=5),
    ),
    max_leaves=25,
)

ALLOWED = (ScenarioError,)


def _load_quietly(data: Any) -> Scenario | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return load_scenario(data)
        except ALLOWED as e:
            _check_error(e)
            return None


def _check_error(e: ScenarioError) -> None:
    errs = e.errors if isinstance(e, ScenarioErrors) else [e]
    assert errs
    for x in errs:
        text = str(x)
        assert "Traceback" not in text
        if x.path:
            assert text.startswith(f"{x.path}: "), text
        assert x.message, text


def _huge_int(v: Any) -> bool:
    # replicas: 10**18 (or 1e18) is well-formed but would build 10**18 instance names
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 10_000


def _has_huge_int(v: Any) -> bool:
    if isinstance(v, dict):
        return any(_has_huge_int(x) for x in v.values())
    if isinstance(v, list):
        return any(_has_huge_int(x) for x in v)
    return _huge_int(v)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk)
def test_arbitrary_values_raise_only_scenario_errors(data: Any) -> None:
    if isinstance(data, dict) and _has_huge_int(data.get("services")):
        return
    _load_quietly(data)


_scenario_like = st.fixed_dictionaries(
    {},
    optional={
        "run": junk | st.just({"requests": 10}),
        "services": st.dictionaries(st.sampled_from(["web", "db", "cart"]), junk, max_size=3),
        "workloads": st.dictionaries(st.sampled_from(["users", "batch"]), junk, max_size=2),
        "topology": junk,
        "network": junk,
        "metrics": junk,
        "faults": st.lists(junk, max_size=2),
        "seed": junk,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_scenario_like)
def test_scenario_shaped_junk_raises_only_scenario_errors(data: dict) -> None:
    if _has_huge_int(data.get("services")):
        return  # replicas: 10**18 is valid but would allocate 10**18 instances
    _load_quietly(data)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append(prefix + (k,))
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append(prefix + (i,))
            out.extend(_paths(v, prefix + (i,)))
    return out


def rich() -> dict:
    """A valid scenario touching hosts, explicit placement, links, several workload types and faults."""
    d = graph()
    d["topology"] = {"regions": {"eu": ["z1", "z2"], "us": "u1"}, "hosts": {"a1": "z1", "a2": "z1", "b1": "z2", "c1": "u1"}}
    d["network"] = {"loss": 0.001, "latency": {"same_zone": "0.2ms"},
                    "links": [{"between": ["eu", "us"], "latency": {"dist": "normal", "mean": "40ms", "sd": "2ms"}}]}
    d["services"]["a"].update(placement=["a1", "b1"], replicas=2, queue=10, semantics="blocking")
    d["services"]["b"].update(placement="pack", zones=["z2"])
    d["workloads"]["think"] = {"type": "closed", "users": 3, "think_time": {"dist": "exponential", "mean": "1s"},
                               "target": "front", "source": "c1", "timeout": "2s"}
    d["workloads"]["ramp"] = {"type": "steps", "steps": [{"at": 0, "rate": 1}, {"at": "5s", "rate": "2/s"}],
                              "target": "c"}
    d["faults"] = [
        {"at": "1s", "until": "2s", "action": "crash", "instance": "a-1"},
        {"at": "2s", "action": "degrade", "between": ["z1", "z2"], "loss": 0.1},
        {"at": "3s", "until": "4s", "action": "partition", "groups": [["eu"], ["us"]]},
    ]
    return d


VALID = {name: yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text()) for name in ("three_tier", "social_network")}
VALID["base"] = base()
VALID["rich"] = rich()
VALID_PATHS = {name: _paths(d) for name, d in VALID.items()}


@st.composite
def mutated(draw: st.DrawFn) -> tuple[dict, tuple, str]:
    name = draw(st.sampled_from(sorted(VALID)))
    data = copy.deepcopy(VALID[name])
    n = draw(st.integers(min_value=1, max_value=3))
    first = None
    for _ in range(n):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        first = first or path
        parent = data
        for k in path[:-1]:
            parent = parent[k]
        action = draw(st.sampled_from(["replace", "replace", "delete"]))
        if action == "delete":
            del parent[path[-1]]
        else:
            value = draw(junk)
            if _has_huge_int(value):
                value = 1
            parent[path[-1]] = value
    return data, first, name


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_valid_scenarios_fail_cleanly(case: tuple[dict, tuple, str]) -> None:
    data, _, _ = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sc = load_scenario(data)
        except ScenarioError as e:
            _check_error(e)
            errs = e.errors if isinstance(e, ScenarioErrors) else [e]
            for x in errs:
                # a plausible path: into a known top-level key, or the scenario as a whole
                assert x.path == "" or re.split(r"[.\[]", x.path, maxsplit=1)[0] in TOP_KEYS, str(x)
        else:
            sc.utilisation()
            sc.placement()


SERVICE_KEY_PATHS = sorted((name, p) for name, paths in VALID_PATHS.items() for p in paths
                           if p[0] == "services" and len(p) == 3)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(SERVICE_KEY_PATHS))
def test_misspelt_service_keys_get_a_suggestion(case: tuple[str, tuple]) -> None:
    name, path = case
    data = copy.deepcopy(VALID[name])
    parent = data
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    wrong = key[:-1] + ("x" if key[-1] != "x" else "y")  # one letter off
    parent[wrong] = parent.pop(key)
    msgs = errors_of(data)
    dotted = ".".join(path[:-1])
    assert f"{dotted}.{wrong}: unknown key; valid keys are {SVC_KEYS} (did you mean '{key}'?)" in msgs
