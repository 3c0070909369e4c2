"""docs/results.md lists exactly the summary keys and table columns that runs produce.

Small versions of shipped examples (an M/M/c queue in full and streaming mode and
stopped by ``run.max_wall``, a tandem, a mesh with faults and outlier detection,
and the registry failover) are run once; every key of their summaries (nested
keys as dotted paths, list items as ``[]``) must match a documented key, where
``<name>`` in a documented key stands for any one path component, and every
documented key must be produced by some run.  The same holds, exactly, for the
columns of each documented table.  So the reference cannot drift from the code.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

import meshsim

DOC = Path(__file__).resolve().parents[1] / "docs" / "results.md"
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|([^|]+)\|(.+)\|\s*$")
TABLE_HEADING = re.compile(r"^#{3,4}\s+`([^`]+)`\s*$")


def parse_doc(text: str) -> tuple[dict[str, tuple[str, str]], dict[str, list[str]]]:
    """({summary key: (unit, meaning)}, {table name: [columns]}) of a results page.

    Rows are ``| `key` | unit | meaning |``: under ``## Summary`` they are summary
    keys; under a heading that is one code span (``### `requests```) they are
    that table's columns."""
    keys: dict[str, tuple[str, str]] = {}
    tables: dict[str, list[str]] = {}
    part, table = None, None
    for line in text.splitlines():
        if line.startswith("## "):
            part, table = line[3:].strip(), None
            continue
        m = TABLE_HEADING.match(line)
        if m and part == "Tables":
            table = m.group(1)
            tables[table] = []
            continue
        if line.startswith("#"):
            table = None
            continue
        row = ROW.match(line)
        if not row:
            continue
        name, unit, meaning = row.group(1), row.group(2).strip(), row.group(3).strip()
        if part == "Summary":
            assert name not in keys, f"summary key {name} documented twice"
            keys[name] = (unit, meaning)
        elif part == "Tables" and table is not None:
            tables[table].append(name)
    return keys, tables


def flatten(obj: object, prefix: str = "") -> set[str]:
    """Dotted paths of the leaves of a summary; items of a list of dicts as ``path[].key``.

    An empty dict or list is a leaf at its own path."""
    if isinstance(obj, dict) and obj:
        out: set[str] = set()
        for k, v in obj.items():
            out |= flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(obj, list) and obj and all(isinstance(v, dict) for v in obj):
        return set().union(*(flatten(v, f"{prefix}[]") for v in obj))
    return {prefix}


def pattern(key: str) -> re.Pattern:
    """A documented key as a regex: ``<name>`` matches one path component."""
    parts = re.split(r"(<[^>]+>)", key)
    return re.compile("".join(r"[^.\[\]]+" if p.startswith("<") else re.escape(p) for p in parts) + r"\Z")


def undocumented(produced: set[str], documented: dict) -> set[str]:
    """Produced keys that no documented key matches (an empty dict or list is covered by a key below it)."""
    pats = [pattern(k) for k in documented]
    missing = set()
    for key in produced:
        if any(p.match(key) for p in pats):
            continue
        if any(p.match(d) for d in documented for p in [re.compile(re.escape(key) + r"[.\[]")]):
            continue
        missing.add(key)
    return missing


# -- the runs ----------------------------------------------------------------------------
RUNS = {
    "mmc": ("mmc", {"run.requests": 5000}),
    "mmc streaming": ("mmc", {"run.requests": 5000, "metrics.mode": "streaming"}),
    "mmc stopped by max_wall": ("mmc", {"run.max_wall": "1ms"}),
    "tandem": ("tandem", {"run.requests": 3000}),
    "faults and outlier detection": ("fault_timeline", {"run.duration": "20s",
                                                        "services.api.outlier_detection": {"max_ejection_percent": 50}}),
    "registry": ("registry_failover", {"run.duration": "35s"}),
}


@pytest.fixture(scope="module")
def results() -> dict[str, meshsim.Result]:
    out = {}
    for label, (example, overrides) in RUNS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", meshsim.ScenarioWarning)  # max_wall warns that the run is partial
            out[label] = meshsim.run(meshsim.example(example), seed=1, overrides=overrides)
    return out


@pytest.fixture(scope="module")
def doc() -> tuple[dict, dict]:
    return parse_doc(DOC.read_text(encoding="utf-8"))


def frames(result: meshsim.Result) -> dict:
    """Every table of a run by its name in docs/results.md, with its index name as a column."""
    import pandas as pd

    getters = {"instances": lambda: result.instances, "timeseries": lambda: result.timeseries,
               "mesh_events": lambda: result.mesh_events}
    if not result.streaming:
        getters.update(requests=lambda: result.requests, spans=lambda: result.spans)
    if "registry" in result.summary:
        reg = result.component("registry").registry
        for name in ("writes", "reads", "watches", "health", "dns_lookups", "commit_times", "streams",
                     "leader_changes", "events", "terms", "commits", "proposals", "windows", "messages"):
            getters[f'reg.frame("{name}")'] = lambda name=name: reg.frame(name)
    out = {}
    for name, get in getters.items():
        df: pd.DataFrame = get()
        index = [n for n in df.index.names if n is not None]
        out[name] = index + list(df.columns)
    return out


# -- the parser and matcher can fail ------------------------------------------------------
def test_parser_and_matcher():
    text = ("## Summary\n| key | unit | meaning |\n|---|---|---|\n| `a` | ms | x |\n| `s.<service>.n` | count | y |\n"
            "## Tables\n### `t`\n| column | unit | meaning |\n| `c` | ms | z |\n")
    keys, tables = parse_doc(text)
    assert keys == {"a": ("ms", "x"), "s.<service>.n": ("count", "y")}
    assert tables == {"t": ["c"]}
    produced = flatten({"a": 1.0, "s": {"web": {"n": 2}, "db": {"n": 3, "extra": 4}}, "l": [{"x": 1}], "e": {}})
    assert produced == {"a", "s.web.n", "s.db.n", "s.db.extra", "l[].x", "e"}
    assert undocumented(produced, keys) == {"s.db.extra", "l[].x", "e"}
    assert undocumented({"s"}, keys) == set()  # an empty dict is covered by the keys below it


# -- the page against the runs -----------------------------------------------------------
def test_every_row_has_a_unit_and_a_meaning(doc):
    keys, tables = doc
    assert len(keys) > 100 and len(tables) >= 15
    for key, (unit, meaning) in keys.items():
        assert unit and meaning, key
    for name, cols in tables.items():
        assert cols and len(cols) == len(set(cols)), name


def test_every_summary_key_produced_is_documented(results, doc):
    keys, _ = doc
    for label, res in results.items():
        missing = undocumented(flatten(res.summary), keys)
        assert not missing, f"{label}: summary keys missing from docs/results.md: {sorted(missing)}"


def test_every_documented_summary_key_is_produced(results, doc):
    keys, _ = doc
    produced = set().union(*(flatten(r.summary) for r in results.values()))
    # a documented list or group (``faults``) is produced when its items are
    produced |= {re.split(r"\[\]", p)[0] for p in produced if "[]" in p}
    never = [k for k in keys if not any(pattern(k).match(p) for p in produced)]
    assert not never, f"documented in docs/results.md but produced by no run: {never}"


def test_the_runs_cover_what_the_page_describes(results):
    s = {label: r.summary for label, r in results.items()}
    assert s["mmc streaming"]["mode"] == "streaming" and s["mmc"]["mode"] == "full"
    assert s["mmc stopped by max_wall"]["partial"] and "partial_reason" in s["mmc stopped by max_wall"]
    assert s["faults and outlier detection"]["resilience"]["api"]["ejections"] > 0
    assert len(results["faults and outlier detection"].mesh_events) == len(
        s["faults and outlier detection"]["resilience"]["events"])
    assert s["registry"]["registry"]["raft"]["leader_changes"] >= 2  # the start-up election and a failover


def test_every_table_column_is_documented_and_produced(results, doc):
    _, tables = doc
    seen: dict[str, list[str]] = {}
    for label, res in results.items():
        for name, cols in frames(res).items():
            assert name in tables, f"{label}: table {name} is not in docs/results.md"
            assert cols == tables[name], f"{label}: {name} has columns {cols}, docs/results.md lists {tables[name]}"
            seen[name] = cols
    assert set(seen) == set(tables), f"documented tables no run produced: {set(tables) - set(seen)}"
