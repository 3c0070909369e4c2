"""docs/scenarios.md is generated from the schema, and its examples load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import meshsim
from meshsim.scenario.docs import FULL_EXAMPLE, SECTION_EXAMPLES, render
from meshsim.scenario.schema import walk
from meshsim.scenario.spec import SCENARIO

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "scenarios.md"

BASE = {
    "run": {"requests": 50},
    "topology": {"regions": {"us": ["us-a", "us-b"], "eu": ["eu-a"]}, "hosts": {"h1": "us-a", "h2": "us-b", "h3": "eu-a"}},
    "services": {
        "api": {"endpoints": {"read": {"service_time": "1ms"}}},
        "cache": {"service_time": "1ms"},
        "db": {"endpoints": {"get": {"service_time": "1ms"}}},
        "search": {"service_time": "1ms"},
        "ads": {"service_time": "1ms"},
    },
    "workloads": {"w": {"rate": 10, "target": "api"}},
}


def test_reference_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == render(), "docs/scenarios.md is stale: run `make docs`"


def test_every_key_is_documented():
    text = DOC.read_text(encoding="utf-8")
    for path, _node, field in walk(SCENARIO):
        if field is not None:
            assert f"`{path}`" in text, path
    assert field is None or field.doc  # every field has a description
    for _path, _node, f in walk(SCENARIO):
        if f is not None:
            assert f.doc, _path


def test_full_example_runs():
    res = meshsim.run(yaml.safe_load(FULL_EXAMPLE), overrides={"run.duration": "5s", "metrics.warmup": "1s"})
    assert res.summary["requests"] > 500


@pytest.mark.parametrize("section", sorted(SECTION_EXAMPLES))
def test_section_example_loads(section):
    snippet = yaml.safe_load(SECTION_EXAMPLES[section])
    scenario = dict(BASE)
    if section == "workloads":
        scenario["workloads"] = snippet["workloads"]
        scenario["run"] = {"duration": "1m"}
    elif section == "services":
        scenario["services"] = {**BASE["services"], **snippet["services"]}
    elif section == "faults":
        scenario["services"] = {**BASE["services"], "api": {"replicas": 2, "placement": ["h1", "h2"],
                                                             "endpoints": {"read": {"service_time": "1ms"}}}}
        scenario.update(snippet)
    else:
        scenario.update(snippet)
    meshsim.load_scenario(scenario)


def test_example_scenarios_have_a_comment_saying_what_they_show():
    for f in sorted((ROOT / "data" / "scenarios").glob("*.yaml")):
        head = f.read_text(encoding="utf-8").splitlines()[0]
        assert re.match(r"#\s+\S", head), f"{f.name} should open with a comment saying what it shows"
        meshsim.load_scenario(f)
