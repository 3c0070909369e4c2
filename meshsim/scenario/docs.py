"""Render docs/scenarios.md — the reference of every scenario key — from the schema.

``python -m meshsim.scenario.docs --write docs/scenarios.md`` (or ``make docs``)
rewrites it; tests/test_docs.py fails when the file and the schema disagree,
and checks that every example in it loads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..distributions import DISTRIBUTION_KINDS
from .schema import AnyOf, Field, ListOf, MapOf, Node, Struct
from .spec import SCENARIO

INTRO = """\
# Scenario reference

A scenario is a YAML file (or the same structure as a Python dict, or built
with `meshsim.scenario.builder.ScenarioBuilder`).  It is checked on load: every
problem is reported with its path, e.g.
`services.cart.replicas: must be an integer >= 1, got 0`, and unknown keys
come with the closest valid name.  A service whose offered utilisation is
>= 1 draws a warning naming it before the run.

**Units.** Simulated time is in **milliseconds**.  Durations may be numbers
(ms) or strings with a unit: `250us`, `250ms`, `2s`, `5m`, `1h` (spelled out
too: `2 seconds`, `3 sec`, `5 minutes`).  Rates are per **second** when plain
numbers, or strings: `8/s`, `480/min`, `100 rps`, `100 req/s`.

**Bare numbers where a duration is expected** (`duration: 10`, `at: 500`,
`mean: 10` in a distribution) are taken as milliseconds.  In a YAML file or a
`--set PATH=VALUE` override this draws one `ScenarioWarning` listing every
such key, since `duration: 10` meaning 10 ms (not 10 s) is a classic mistake;
write the unit (`10ms`, `10s`) to make it explicit.  `0` needs no unit and never
warns.  From Python (a dict scenario, or `overrides={path: value}`) numbers are
milliseconds without a warning, as everywhere in meshsim's API.  Rates, counts
and probabilities are not durations and never warn.

**Limits.** A duration above 1e12 ms (about 31.7 years) is an error, and so is
a distribution whose mean or standard deviation is above it (a lognormal with
`p99: 1.0e+308`, a Pareto with an infinite mean: alpha <= 1 without `high`);
a Pareto with 1 < alpha <= 2 (infinite variance) is allowed.  A fault whose
`at` is at or after `run.duration` or `run.max_time` is an error (it would
never take effect), as is one on an instance that does not exist.
`run.max_wall` bounds the real (wall-clock) time of a run: when it is used up
the run ends cleanly and its summary says `partial: true` with a
`partial_reason`.

**Overrides.** Any key can be changed from the command line or from Python
with a dotted path; list items take `[i]`:
`meshsim run s.yaml --set services.api.replicas=5 --set faults[0].at=30s`,
or `meshsim.run("s.yaml", overrides={"services.api.replicas": 5})`.  A path
through a service or workload that does not exist is an error with a
suggestion (`services.webb: unknown service 'webb' (did you mean 'web'?)`);
setting a whole new entry (`services.cache={...}`) adds one.

This file is generated from `meshsim/scenario/spec.py` by `make docs`; do
not edit the reference tables by hand.

## A complete example

```yaml
{example}
```
"""

FULL_EXAMPLE = """\
name: shop
description: two zones, a frontend calling a cart service and a database
seed: 7
run: {duration: 1m, drain: true}
metrics: {warmup: 10s, mode: full}
topology:
  regions: {eu: [eu-a, eu-b]}
network:
  latency:
    cross_zone: {dist: lognormal, median: 1ms, p99: 4ms}
  links:
    - {between: [eu-a, eu-b], loss: 0.001}
services:
  frontend:
    replicas: 2
    workers: 16
    semantics: blocking
    service_time: {dist: lognormal, median: 2ms, p99: 10ms}
    calls:
      - parallel: [cart.get, {service: recommend, probability: 0.5}]
        wait: all
  cart:
    replicas: 3
    workers: 4
    queue: 50
    endpoints:
      get:
        service_time: {dist: exponential, mean: 3ms}
        calls: [db]
      put:
        service_time: 5ms
  recommend:
    service_time: {dist: uniform, low: 1ms, high: 4ms}
  db:
    workers: 8
    service_time: {dist: exponential, mean: 2ms}
workloads:
  shoppers: {type: poisson, rate: 200/s, target: frontend, source: eu-a, timeout: 2s}
faults:
  - {at: 30s, until: 40s, action: crash, instance: cart-1}
  - {at: 45s, until: 50s, action: partition, groups: [[eu-a], [eu-b]]}"""

SECTION_EXAMPLES: dict[str, str] = {
    "run": "run:\n  requests: 200000   # or duration: 10m; both: whichever comes first\n  drain: true",
    "metrics": "metrics:\n  mode: streaming\n  warmup: 30s\n  histogram_error: 0.005",
    "topology": "topology:\n  regions:\n    us: [us-a, us-b]\n    eu: [eu-a]\n  hosts:\n    h1: us-a\n    h2: {zone: us-b}\n    h3: eu-a",
    "network": "network:\n  latency:\n    same_zone: {dist: constant, value: 0.1ms}\n  loss: 0.0001\n  links:\n"
               "    - {between: [h1, h3], latency: {dist: normal, mean: 80ms, sd: 5ms}, oneway: true}",
    "services": "services:\n  api:\n    replicas: 3\n    workers: 8\n    queue: 100\n    placement: spread\n"
                "    endpoints:\n      read:\n        service_time: {dist: lognormal, mean: 4ms, sigma: 0.6}\n"
                "        calls:\n          - cache\n          - {service: db, endpoint: get, probability: 0.2}\n"
                "          - parallel: [search, ads]\n            wait: 1",
    "workloads": "workloads:\n  web: {type: poisson, rate: 100/s, target: api, endpoint: read}\n"
                 "  batch: {type: closed, users: 20, think_time: {dist: exponential, mean: 1s}, target: api, endpoint: read}\n"
                 "  spikes: {type: mmpp, rate: 500/s, off_rate: 20/s, on_time: 2s, off_time: 20s, target: api, endpoint: read}\n"
                 "  ramp: {type: steps, steps: [{at: 0s, rate: 10/s}, {at: 1m, rate: 50/s}], target: api, endpoint: read}\n"
                 "  day: {type: diurnal, rate: 30/s, amplitude: 0.8, period: 24h, target: api, endpoint: read}\n"
                 "  replay: {type: trace, file: traces/bursty.csv, column: time_ms, target: api, endpoint: read}",
    "faults": "faults:\n  - {at: 1m, until: 2m, action: crash, instance: api-0}\n  - {at: 3m, action: crash, host: h2}\n"
              "  - {at: 4m, action: restart, host: h2}\n"
              "  - {at: 5m, until: 6m, action: degrade, between: [us-a, us-b], extra_latency: 20ms, loss: 0.05}\n"
              "  - {at: 7m, until: 8m, action: partition, groups: [[us-a], [us-b, eu-a]], oneway: false}",
}


def _fmt_default(f: Field | None) -> str:
    if f is None or f.required:
        return "**required**"
    d = f.default
    if d is None:
        return "—"
    if d is dict or d is list:
        return "{}" if d is dict else "[]"
    if isinstance(d, bool):
        return "true" if d else "false"
    if isinstance(d, str):
        return f"`{d}`" if d else '""'
    return f"`{d}`"


def _rows(node: Node, path: str) -> list[str]:
    rows: list[str] = []

    def visit(n: Node, p: str) -> None:
        for key, child, f in n.children():
            cp = f"{p}[]" if key == "[]" else (f"{p}.{key}" if p else key)
            if f is not None:
                rows.append(f"| `{cp}` | {child.type_name} | {_fmt_default(f)} | {f.doc} |")
            if isinstance(child, (Struct, MapOf, ListOf, AnyOf)):
                if isinstance(child, Struct) and child.doc and f is None:
                    rows.append(f"| `{cp}` | {child.doc} | | |")
                visit(child, cp)

    visit(node, path)
    return rows


def render() -> str:
    out = [INTRO.replace("{example}", FULL_EXAMPLE)]
    for key, f in SCENARIO.fields.items():
        out.append(f"## `{key}`\n")
        node = f.node
        text = node.doc if isinstance(node, Struct) and node.doc else f.doc[:1].upper() + f.doc[1:] + "."
        if isinstance(node, MapOf) and isinstance(node.value, Struct) and node.value.doc:
            text += " Each entry: " + node.value.doc[:1].lower() + node.value.doc[1:]
        if isinstance(node, ListOf) and isinstance(node.item, Struct) and node.item.doc:
            text += " Each item: " + node.item.doc[:1].lower() + node.item.doc[1:]
        out.append(f"{text} Default: {_fmt_default(f)}.\n")
        rows = _rows(node, key)
        if rows:
            out.append("| key | type | default | meaning |\n|---|---|---|---|")
            out.extend(rows)
            out.append("")
        if key in SECTION_EXAMPLES:
            out.append("Example:\n\n```yaml\n" + SECTION_EXAMPLES[key] + "\n```\n")
    out.append("## Distributions\n")
    out.append(
        "Wherever a key's type is *distribution* (service times, latencies, think times) give either a "
        "number or duration (a constant) or a mapping with `dist:` and the kind's keys. Every distribution "
        "knows its mean, so utilisation is reported before a run.\n"
    )
    for kind, info in DISTRIBUTION_KINDS.items():
        out.append(f"### `{kind}`\n\n{info['summary']}\n")
        out.append("| key | type | required / default | meaning |\n|---|---|---|---|")
        for k, meta in info["keys"].items():
            req = "**required**" if meta.get("required") else (
                f"`{meta['default']}`" if "default" in meta else "one form of")
            out.append(f"| `{k}` | {meta['type']} | {req} | {meta['description']} |")
        out.append("")
        ex = info.get("example")
        if ex is not None:
            out.append(f"Example: `{_inline(ex)}`\n")
    return "\n".join(out).rstrip() + "\n"


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--write", metavar="PATH", help="write the reference here instead of printing it")
    args = p.parse_args(argv)
    text = render()
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
