"""Topology library: generated call graphs for scenarios and sweeps.

A scenario may hold a ``graph`` key instead of (or besides) ``services``; the
graph's services are generated and named ``svc0``, ``svc1``, ... with ``svc0``
the entry, and explicitly listed services override generated ones of the same
name.  Because ``graph`` is an ordinary scenario key, sweeps can vary it
(``graph.kind``, ``graph.n``, ``graph.width`` ...).

Kinds:

- ``chain``: svc0 -> svc1 -> ... -> svc(n-1), one call after another;
- ``fanout``: every node calls ``width`` children in parallel, ``depth`` levels;
- ``tree``: like fanout but children are called one after another;
- ``random_dag``: ``n`` nodes, edge i->j (i<j) with probability ``edge_probability``,
  seeded by ``graph.seed`` (independent of the run seed: the graph is part of
  the scenario), every node reachable from svc0.

>>> spec = {"kind": "chain", "n": 3, "replicas": 1, "workers": 2, "service_time": "5ms", "semantics": "async"}
>>> sorted(generate(spec))
['svc0', 'svc1', 'svc2']
>>> generate(spec)["svc0"]["calls"]
['svc1']
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

GRAPH_KINDS = ("chain", "fanout", "tree", "random_dag")


def _node(spec: dict, calls: list) -> dict[str, Any]:
    return {
        "replicas": spec["replicas"],
        "workers": spec["workers"],
        "semantics": spec["semantics"],
        "service_time": spec["service_time"],
        "calls": calls,
    }


def generate(spec: dict[str, Any]) -> dict[str, dict]:
    """The raw ``services`` mapping of a graph spec (see module doc)."""
    kind = spec["kind"]
    if kind == "chain":
        n = spec["n"]
        return {f"svc{i}": _node(spec, [f"svc{i + 1}"] if i + 1 < n else []) for i in range(n)}
    if kind in ("fanout", "tree"):
        width, depth = spec["width"], spec["depth"]
        services: dict[str, dict] = {}
        level = ["svc0"]
        count = 1
        for _ in range(depth):
            nxt = []
            for parent in level:
                children = [f"svc{count + i}" for i in range(width)]
                count += width
                nxt.extend(children)
                calls = [{"parallel": children, "wait": "all"}] if kind == "fanout" else list(children)
                services[parent] = _node(spec, calls)
            level = nxt
        for leaf in level:
            services[leaf] = _node(spec, [])
        return dict(sorted(services.items(), key=lambda kv: int(kv[0][3:])))
    if kind == "random_dag":
        n, p = spec["n"], spec["edge_probability"]
        rng = np.random.default_rng(np.random.SeedSequence(spec["seed"], spawn_key=(zlib.crc32(b"random_dag"),)))
        children: list[list[int]] = [[] for _ in range(n)]
        for j in range(1, n):
            parents = [i for i in range(j) if rng.random() < p]
            if not parents:  # keep every node reachable
                parents = [int(rng.integers(j))]
            for i in parents:
                children[i].append(j)
        return {f"svc{i}": _node(spec, [f"svc{j}" for j in children[i]]) for i in range(n)}
    raise ValueError(f"unknown graph kind {kind!r}")


def merge_graph(raw_services: dict | None, graph_spec: dict) -> dict[str, Any]:
    """Generated services with explicitly listed ones on top."""
    services = generate(graph_spec)
    services.update(raw_services or {})
    return services
