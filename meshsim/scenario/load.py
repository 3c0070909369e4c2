"""Reading scenarios: YAML file or dict -> checked :class:`Scenario`.

>>> sc = load_scenario({"run": {"requests": 100},
...                     "services": {"web": {"workers": 2, "service_time": "10ms"}},
...                     "workloads": {"users": {"rate": "50/s", "target": "web"}}})
>>> sc.name, sc.instances()
('scenario', ['web-0'])
>>> round(sc.utilisation()["web"], 3)
0.25
"""

from __future__ import annotations

import copy
import os
import re
import warnings
from pathlib import Path
from typing import Any

import yaml

from ..errors import ScenarioError, ScenarioErrors, ScenarioWarning, closest
from ..units import format_duration
from .model import Scenario
from .schema import Context, join
from ..topology import merge_graph
from .spec import GRAPH, SCENARIO


def _not_found(p: Path) -> str:
    """Where a missing scenario was looked for, and the shipped example it may have meant."""
    from ..examples import examples

    where = p if p.is_absolute() else Path.cwd() / p
    msg = f"no such file (looked in {where.parent})"
    names = examples()
    stem = p.stem
    if stem in names:
        return msg + f"; the shipped example is meshsim.example({stem!r})"
    hint = closest(stem, names)
    return msg + (f"; did you mean meshsim.example({hint!r})?" if hint else
                  "; meshsim.examples() lists the shipped scenarios, meshsim.example(name) gives a path")


def read_yaml(path: str | os.PathLike) -> Any:
    """Read a YAML file; every failure becomes a ScenarioError naming the file."""
    p = Path(path)
    if not p.exists():
        raise ScenarioError(str(p), _not_found(p))
    if p.is_dir():
        raise ScenarioError(str(p), "is a directory, not a scenario file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(str(p), f"cannot be read: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ScenarioError(str(p), f"is not valid YAML{where}: {problem}") from None
    if data is None:
        raise ScenarioError(str(p), "is empty")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``"services.cart.replicas=3"`` into a path and a YAML-parsed value.

    >>> parse_override("run.requests=1000")
    ('run.requests', 1000)
    """
    if not isinstance(text, str):
        raise ScenarioError(str(text), "an override must be a string PATH=VALUE, e.g. services.cart.replicas=3")
    if "=" not in text:
        raise ScenarioError(text, "an override must look like PATH=VALUE, e.g. services.cart.replicas=3")
    path, _, raw = text.partition("=")
    path = path.strip()
    if not path:
        raise ScenarioError(text, "an override needs a path before '='")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return path, value


_PATH_TOKEN = re.compile(r"([^.\[\]]*)((?:\[[^\[\]]*\])*)")


def _split_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for token in path.split("."):
        m = _PATH_TOKEN.fullmatch(token)
        if m is None or not (m.group(1) or m.group(2)):
            raise ScenarioError(path, "is not a valid path: write keys separated by dots and list items as [i], "
                                      "e.g. faults[0].at")
        if m.group(1):
            parts.append(m.group(1))
        for inner in re.findall(r"\[([^\[\]]*)\]", m.group(2)):
            try:
                parts.append(int(inner))
            except ValueError:
                raise ScenarioError(path, f"list index {inner!r} is not an integer") from None
    return parts


def set_path(data: dict, path: str, value: Any) -> dict:
    """Return a copy of ``data`` with ``path`` (dots, [i] for list items) set to ``value``.

    Intermediate mappings are created; a path through a non-mapping, or a list
    index out of range, is a ScenarioError naming the path.

    >>> set_path({"run": {"requests": 1}}, "run.requests", 5)
    {'run': {'requests': 5}}
    """
    out = copy.deepcopy(data)
    parts = _split_path(path)
    _check_named(out, parts)
    node: Any = out
    where = ""
    for i, key in enumerate(parts):
        last = i == len(parts) - 1
        where = join(where, key)
        if isinstance(key, int):
            if not isinstance(node, list) or not -len(node) <= key < len(node):
                raise ScenarioError(where, "no such list item")
            if last:
                node[key] = value
            else:
                node = node[key]
            continue
        if not isinstance(node, dict):
            raise ScenarioError(where, "cannot set a key inside a value that is not a mapping")
        if last:
            node[key] = value
        else:
            if node.get(key) is None:
                node[key] = {}
            node = node[key]
    return out


#: top-level mappings of user-chosen names, and what one of their entries is called in messages
_NAMED_SECTIONS = {"services": "service", "workloads": "workload"}
_GRAPH_SERVICE = re.compile(r"svc\d+")


def _check_named(data: dict, parts: list[str | int]) -> None:
    """A path *through* a service or workload (services.web.replicas) must name one that exists.

    Setting a whole entry (``services.cache={...}``) adds one; a deeper path
    into a name that does not exist is a typo far more often than a wish to
    create a service from one key, so it is an error with a suggestion.
    """
    if len(parts) < 3 or not isinstance(parts[0], str) or parts[0] not in _NAMED_SECTIONS:
        return
    section, name = parts[0], parts[1]
    existing = data.get(section)
    if not isinstance(existing, dict) or not isinstance(name, str) or name in existing:
        return
    if section == "services" and isinstance(data.get("graph"), dict) and _GRAPH_SERVICE.fullmatch(name):
        return  # a generated service (svc0, svc1, ...) of the graph
    what = _NAMED_SECTIONS[section]
    known = ", ".join(map(str, existing)) or "none"
    raise ScenarioError(f"{section}.{name}", f"unknown {what} {name!r} (the {section} are: {known})",
                        closest(name, [str(k) for k in existing]))


def _bare_duration_warning(paths: list[str]) -> None:
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    warnings.warn(f"{shown}: a bare number where a duration is expected is taken as milliseconds; "
                  "write the unit (e.g. '10ms' or '10s') to make it explicit", ScenarioWarning, stacklevel=3)


def load_scenario(
    source: str | os.PathLike | dict | Scenario,
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    warn: bool = True,
) -> Scenario:
    """Load, override, check and return a :class:`Scenario`.

    ``source`` is a path to a YAML file, a dict of the same structure, or a
    Scenario (re-checked with the overrides).  ``overrides`` are ``PATH=VALUE``
    strings or a ``{path: value}`` dict.  Raises :class:`ScenarioErrors`
    listing every problem; warns :class:`ScenarioWarning` for stations whose
    utilisation is >= 1.
    """
    base_dir: Path | None = None
    origin = "<dict>"
    end_overridden = False
    if isinstance(source, Scenario):
        raw, base_dir, origin = copy.deepcopy(source.raw), source.base_dir, source.origin
        end_overridden = source.end_overridden
    elif isinstance(source, dict):
        raw = copy.deepcopy(source)
    elif isinstance(source, (str, os.PathLike)):
        raw = read_yaml(source)
        base_dir = Path(source).resolve().parent
        origin = str(source)
    else:
        raise ScenarioError("", f"a scenario must be a file path or a mapping, got {type(source).__name__}")
    if not isinstance(raw, dict):
        raise ScenarioError("", f"a scenario must be a mapping of keys (run, services, workloads, ...), got {type(raw).__name__}")
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides or [])
    typed: list[str] = []  # override paths written as text (PATH=VALUE): their bare durations warn
    coded: list[str] = []  # override paths given from Python ({path: value}): numbers are ms, as in the API
    for path, value in items:
        if not isinstance(path, str):
            raise ScenarioError(str(path), "an override path must be a string such as 'services.cart.replicas'")
        raw = set_path(raw, path, value)
        (coded if isinstance(overrides, dict) else typed).append(path)

    ctx = Context(base_dir=base_dir)
    ctx.end_overridden = end_overridden or any(p == "run" or p.startswith(("run.duration", "run.max_time"))
                                               for p in typed + coded)
    checked = raw
    if isinstance(raw.get("graph"), dict):  # generate services from the graph before checking them
        graph = GRAPH.check(raw["graph"], "graph", ctx)
        if not ctx.errors:
            if graph["service_time"] is None:
                graph["service_time"] = {"dist": "exponential", "mean": 1.0}
            checked = dict(raw, services=merge_graph(raw.get("services"), graph))
    spec = SCENARIO.check(checked, "", ctx)
    if not ctx.errors:
        _check_references(spec, ctx)
    if ctx.errors:
        raise ScenarioErrors(ctx.errors)
    scenario = Scenario(raw=raw, spec=spec, base_dir=base_dir, origin=origin, end_overridden=ctx.end_overridden)
    if warn:
        # numbers are milliseconds throughout the Python API; in text a person wrote (a file, --set) say so
        from_text = isinstance(source, (str, os.PathLike))
        def under(p: str, paths: list[str]) -> bool:
            return any(p == t or p.startswith((t + ".", t + "[")) for t in paths)

        bare = [p for p in dict.fromkeys(ctx.bare_durations)
                if (from_text and not under(p, coded)) or under(p, typed)]
        if bare:
            _bare_duration_warning(bare)
        for service, u in scenario.utilisation(include_closed=False).items():
            if u >= 1.0:
                bounded = scenario.services[service]["queue"] is not None
                fate = "requests will be rejected (queue_full)" if bounded else "its queue will grow without bound"
                warnings.warn(f"services.{service}: offered utilisation {u:.2f} >= 1; {fate}", ScenarioWarning,
                              stacklevel=2)
        reg = spec.get("registry")
        if reg is not None and reg["servers"] % 2 == 0:
            warnings.warn(f"registry.servers: {reg['servers']} servers tolerate no more failures than "
                          f"{reg['servers'] - 1} (a majority is {reg['servers'] // 2 + 1}); use an odd number",
                          ScenarioWarning, stacklevel=2)
        if not spec["network"]["enabled"]:
            for i, f in enumerate(spec["faults"]):
                if f["action"] in ("degrade", "partition"):
                    warnings.warn(f"faults[{i}]: network.enabled is false, so this {f['action']} has no effect",
                                  ScenarioWarning, stacklevel=2)
    return scenario


def _check_references(spec: dict, ctx: Context) -> None:
    """Cross-reference checks: names that must exist, and an acyclic call graph."""
    topo = spec["topology"]
    if topo["regions"] is None:
        zones_used = {h["zone"] for h in topo["hosts"].values()} or {"zone-a"}
        topo["regions"] = {"region-1": sorted(zones_used)}
    zone_region: dict[str, str] = {}
    for region, zones in topo["regions"].items():
        for z in zones:
            if z in zone_region:
                ctx.error(f"topology.regions.{region}", f"zone {z!r} is already in region {zone_region[z]!r}")
            zone_region[z] = region
    if not zone_region:
        ctx.error("topology.regions", "must define at least one region with at least one zone")
    for host, h in topo["hosts"].items():
        if h["zone"] not in zone_region:
            ctx.error(f"topology.hosts.{host}.zone", f"unknown zone {h['zone']!r}", closest(h["zone"], zone_region))
    if set(topo["hosts"]) & set(zone_region) or set(topo["hosts"]) & set(topo["regions"]) or set(zone_region) & set(topo["regions"]):
        ctx.error("topology", "host, zone and region names must all be different")

    services = spec["services"]
    for name, svc in services.items():
        base = f"services.{name}"
        if isinstance(svc["placement"], list):
            for i, h in enumerate(svc["placement"]):
                if h not in topo["hosts"]:
                    ctx.error(f"{base}.placement[{i}]", f"unknown host {h!r}", closest(h, topo["hosts"]))
        for i, z in enumerate(svc["zones"] or []):
            if z not in zone_region:
                ctx.error(f"{base}.zones[{i}]", f"unknown zone {z!r}", closest(z, zone_region))
            elif topo["hosts"] and not any(h["zone"] == z for h in topo["hosts"].values()):
                ctx.error(f"{base}.zones[{i}]", f"zone {z!r} has no hosts")
        for ep_name, ep in svc["endpoints"].items():
            for i, step in enumerate(ep["calls"]):
                calls = step["parallel"] if "parallel" in step else [step]
                for j, call in enumerate(calls):
                    where = f"{base}.endpoints.{ep_name}.calls[{i}]" + (f".parallel[{j}]" if "parallel" in step else "")
                    _resolve_endpoint(call, services, where, ctx)

    for name, w in spec["workloads"].items():
        _resolve_endpoint(w, services, f"workloads.{name}", ctx, key="target")
        src = w["source"]
        if src is not None and src not in zone_region and src not in topo["hosts"]:
            ctx.error(f"workloads.{name}.source", f"unknown zone or host {src!r}",
                      closest(src, list(zone_region) + list(topo["hosts"])))

    places = set(zone_region) | set(topo["regions"]) | set(topo["hosts"])
    for i, link in enumerate(spec["network"]["links"]):
        for j, n in enumerate(link["between"]):
            if n not in places:
                ctx.error(f"network.links[{i}].between[{j}]", f"unknown host, zone or region {n!r}", closest(n, places))
    if ctx.errors:
        return
    _check_acyclic(services, ctx)

    # faults reference instances and hosts, which exist once placement is known
    sc = Scenario(raw={}, spec=spec, base_dir=None, origin="")
    instances = set(sc.instances())
    hosts = set(sc.hosts())
    places |= hosts
    run = spec["run"]
    # a fault after the end of the run as written never fires; a run shortened by an override is deliberate
    ends = [] if ctx.end_overridden else [(k, run[k]) for k in ("duration", "max_time") if run[k] is not None]
    for i, f in enumerate(spec["faults"]):
        for key, end in ends:
            if f["at"] >= end:
                ctx.error(f"faults[{i}].at", f"{format_duration(f['at'])} is at or after the end of the run "
                          f"(run.{key} is {format_duration(end)}): the fault would never take effect")
                break
        if f["instance"] is not None and f["instance"] not in instances:
            ctx.error(f"faults[{i}].instance", f"unknown instance {f['instance']!r} (instances are named service-index)",
                      closest(f["instance"], instances))
        if f["host"] is not None and f["host"] not in hosts:
            ctx.error(f"faults[{i}].host", f"unknown host {f['host']!r}", closest(f["host"], hosts))
        if f.get("server") is not None:
            reg = spec.get("registry")
            if reg is None:
                ctx.error(f"faults[{i}].action", f"{f['action']} needs a registry (add a registry: section)")
            else:
                servers = [f"registry-{k}" for k in range(reg["servers"])] + ["leader"]
                if f["server"] not in servers:
                    ctx.error(f"faults[{i}].server", f"unknown registry server {f['server']!r}; valid: "
                              f"{', '.join(servers)}", closest(f["server"], servers))
        for key in ("between", "groups"):
            names = f[key] or []
            flat = [n for g in names for n in (g if isinstance(g, list) else [g])]
            for n in flat:
                if n not in places:
                    ctx.error(f"faults[{i}].{key}", f"unknown host, zone or region {n!r}", closest(n, places))


def _resolve_endpoint(call: dict, services: dict, where: str, ctx: Context, key: str = "service") -> None:
    target = call[key]
    if target not in services:
        ctx.error(f"{where}.{key}", f"unknown service {target!r}", closest(target, services))
        return
    eps = services[target]["endpoints"]
    if call["endpoint"] is None:
        if len(eps) != 1:
            ctx.error(f"{where}.endpoint", f"is required: {target} has endpoints {', '.join(eps)}")
            return
        call["endpoint"] = next(iter(eps))
    elif call["endpoint"] not in eps:
        ctx.error(f"{where}.endpoint", f"{target} has no endpoint {call['endpoint']!r}; it has {', '.join(eps)}",
                  closest(call["endpoint"], eps))


def _check_acyclic(services: dict, ctx: Context) -> None:
    WHITE, GREY, BLACK = 0, 1, 2
    color: dict[tuple[str, str], int] = {}

    def edges(node: tuple[str, str]):
        ep = services[node[0]]["endpoints"][node[1]]
        for step in ep["calls"]:
            for call in step["parallel"] if "parallel" in step else [step]:
                yield (call["service"], call["endpoint"])

    def visit(node, stack):
        color[node] = GREY
        for nxt in edges(node):
            c = color.get(nxt, WHITE)
            if c == GREY:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                ctx.error(f"services.{node[0]}.endpoints.{node[1]}.calls",
                          "call graph has a cycle: " + " -> ".join(f"{s}.{e}" for s, e in cycle))
                return True
            if c == WHITE and visit(nxt, stack + [nxt]):
                return True
        color[node] = BLACK
        return False

    for s, svc in services.items():
        for e in svc["endpoints"]:
            if color.get((s, e), WHITE) == WHITE and visit((s, e), [(s, e)]):
                return
