"""Topology drawings: services, the calls between them, the workloads that enter, proxies and registry.

``topology_frame`` gives the picture's data: one node per service, workload
and (when present) registry, and one edge per distinct caller -> callee
pair (a workload's edge goes to its target).  ``topology`` draws it with a
layered layout and no graph library: a node's layer is the longest call
path from a workload to it, and nodes within a layer are ordered by the
mean position of their callers (one barycentre sweep), which keeps most
arrows from crossing.

>>> import meshsim, matplotlib
>>> matplotlib.use("Agg")
>>> nodes, edges = topology_frame(meshsim.example("three_tier"))
>>> print(nodes[["node", "kind", "replicas", "zones", "layer"]].to_string(index=False))
    node     kind  replicas     zones  layer
   users workload         1      eu-a      0
frontend  service         2 eu-a,eu-b      1
     api  service         3 eu-a,eu-b      2
      db  service         1      eu-a      3
>>> print(edges[["caller", "callee", "probability", "mode"]].to_string(index=False))
  caller   callee  probability       mode
   users frontend          1.0      entry
frontend      api          1.0 sequential
     api       db          0.7 sequential
>>> fig = topology(meshsim.example("fanout"))
>>> sum(1 for a in fig.axes[0].texts if (a.get_gid() or "").startswith("edge:"))
12
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .style import PALETTE, PART_COLORS, new_figure

NODE_COLUMNS = ["node", "kind", "replicas", "workers", "zones", "proxy", "layer", "order", "x", "y", "detail"]
EDGE_COLUMNS = ["caller", "callee", "endpoint", "caller_endpoint", "probability", "group", "wait", "mode", "calls"]

#: colours of parallel groups' arrows and tags (the palette without black and yellow, which text cannot use)
_GROUP_COLORS = (PALETTE[2], PALETTE[3], PALETTE[1], PALETTE[7], PALETTE[6], PALETTE[5])

_KIND_COLORS = {"workload": PALETTE[3], "service": PALETTE[5], "registry": PALETTE[1]}


def _scenario(obj: Any) -> Any:
    """A checked Scenario from a Scenario, a Result, a dict or a path."""
    from ..scenario.model import Scenario

    if isinstance(obj, Scenario):
        return obj
    sc = getattr(obj, "scenario", None)
    if isinstance(sc, Scenario):
        return sc
    from ..scenario.load import load_scenario

    return load_scenario(obj)


def _workload_nodes(sc: Any) -> dict[str, str]:
    """Workload -> its node name: the workload's own, or ``name (workload)`` when a service has it too."""
    taken = set(sc.services) | ({"registry"} if sc.spec.get("registry") is not None else set())
    return {w: f"{w} (workload)" if w in taken else w for w in sc.workloads}


def _calls(sc: Any) -> list[dict]:
    """Every call site: workload entries, then each service endpoint's steps."""
    out = []
    wnode = _workload_nodes(sc)
    for w, spec in sc.workloads.items():
        out.append({"caller": wnode[w], "callee": spec["target"], "endpoint": spec["endpoint"], "caller_endpoint": "",
                    "probability": 1.0, "group": None, "wait": None, "mode": "entry"})
    for s, svc in sc.services.items():
        for e, ep in svc["endpoints"].items():
            for j, step in enumerate(ep["calls"]):
                par = "parallel" in step
                for c in (step["parallel"] if par else [step]):
                    out.append({"caller": s, "callee": c["service"], "endpoint": c["endpoint"], "caller_endpoint": e,
                                "probability": float(c["probability"]), "group": f"{s}.{e}#{j}" if par else None,
                                "wait": step["wait"] if par else None, "mode": "parallel" if par else "sequential"})
    return out


def _merge(calls: list[dict]) -> list[dict]:
    """One edge per caller -> callee: endpoints joined, the highest probability, parallel if any call is."""
    edges: dict[tuple[str, str], dict] = {}
    for c in calls:
        key = (c["caller"], c["callee"])
        e = edges.get(key)
        if e is None:
            edges[key] = dict(c, endpoint=[c["endpoint"]], caller_endpoint=[c["caller_endpoint"]], calls=1)
            continue
        e["calls"] += 1
        e["probability"] = max(e["probability"], c["probability"])
        for k in ("endpoint", "caller_endpoint"):
            if c[k] not in e[k]:
                e[k].append(c[k])
        if e["group"] is None and c["group"] is not None:
            e.update(group=c["group"], wait=c["wait"], mode="parallel")
    for e in edges.values():
        e["endpoint"] = ",".join(str(x) for x in e["endpoint"])
        e["caller_endpoint"] = ",".join(str(x) for x in e["caller_endpoint"])
    return list(edges.values())


def _layers(names: list[str], entries: list[str], edges: list[dict]) -> dict[str, int]:
    """Longest path from an entry (layer 0); nodes nobody calls start at layer 1; cycles are cut."""
    callers: dict[str, list[str]] = {n: [] for n in names}
    for e in edges:
        callers[e["callee"]].append(e["caller"])
    layer: dict[str, int] = {w: 0 for w in entries}
    on_path: set[str] = set()

    def depth(n: str) -> int:
        if n in layer:
            return layer[n]
        on_path.add(n)
        ups = [depth(c) for c in callers[n] if c not in on_path]
        on_path.discard(n)
        layer[n] = max(ups) + 1 if ups else 1
        return layer[n]

    for n in names:
        depth(n)
    return layer


def topology_frame(scenario: Any) -> tuple[Any, Any]:
    """``(nodes, edges)`` DataFrames of a scenario's topology (see module doc).

    Nodes: ``node`` (a workload named like a service is ``name (workload)``),
    ``kind`` (workload, service, registry), ``replicas``
    (workload: users of a closed loop, else 1; registry: servers),
    ``workers``, ``zones`` the instances were placed in, ``proxy``
    (sidecar / node proxy, or empty), and the layout: ``layer, order, x, y``.
    Edges: ``caller, callee, endpoint`` (callee endpoints),
    ``caller_endpoint``, ``probability`` (the highest of its call sites),
    ``group`` and ``wait`` of a parallel fan-out, ``mode`` (entry,
    sequential, parallel) and ``calls`` (call sites merged into the edge).
    """
    import pandas as pd

    sc = _scenario(scenario)
    hosts = sc.hosts()
    placement = sc.placement()
    mesh = sc.spec["mesh"]
    proxy = {"sidecar": "sidecar", "node": "node proxy"}.get(mesh["mode"], "")
    rows: list[dict] = []
    wnode = _workload_nodes(sc)
    for w, spec in sc.workloads.items():
        rows.append({"node": wnode[w], "kind": "workload", "replicas": spec.get("users") or 1, "workers": np.nan,
                     "zones": hosts.get(sc.client_host(w), ""), "proxy": proxy if mesh["client_sidecar"] else "",
                     "detail": f"{spec['type']} -> {spec['target']}"})
    for s, svc in sc.services.items():
        zones = sorted({hosts[placement[f"{s}-{i}"]] for i in range(svc["replicas"])})
        rows.append({"node": s, "kind": "service", "replicas": svc["replicas"], "workers": svc["workers"],
                     "zones": ",".join(zones), "proxy": proxy, "detail": svc["semantics"]})
    reg = sc.spec.get("registry")
    if reg is not None:
        zones = sorted({hosts[f"registry-{i}"] for i in range(reg["servers"])})
        rows.append({"node": "registry", "kind": "registry", "replicas": reg["servers"], "workers": np.nan,
                     "zones": ",".join(zones), "proxy": "", "detail": f"Raft, {reg['profile']}"})
    edges = _merge(_calls(sc))
    names = [r["node"] for r in rows if r["kind"] == "service"]
    layer = _layers(names, list(wnode.values()), edges)
    if reg is not None:
        layer["registry"] = 0
    # order within layers: by the mean order of callers (barycentre), layer by layer
    pos: dict[str, float] = {}
    callers: dict[str, list[str]] = {}
    for e in edges:
        callers.setdefault(e["callee"], []).append(e["caller"])
    by_layer: dict[int, list[str]] = {}
    for r in rows:
        by_layer.setdefault(layer[r["node"]], []).append(r["node"])
    for lay in sorted(by_layer):
        members = by_layer[lay]
        key = {}
        for i, n in enumerate(members):
            ups = [pos[c] for c in callers.get(n, []) if c in pos]
            key[n] = (float(np.mean(ups)) if ups else float("inf") if n == "registry" else i, i)
        members.sort(key=lambda n: key[n])
        m = len(members)
        for i, n in enumerate(members):
            pos[n] = i - (m - 1) / 2.0
    for r in rows:
        r["layer"] = layer[r["node"]]
        r["order"] = by_layer[r["layer"]].index(r["node"])
        r["x"] = float(r["layer"])
        r["y"] = -pos[r["node"]]
    nodes = pd.DataFrame(rows, columns=NODE_COLUMNS)
    nodes["replicas"] = nodes["replicas"].astype(int)
    return nodes, pd.DataFrame(edges, columns=EDGE_COLUMNS)


def topology(scenario_or_result: Any, ax: Any = None):
    """Draw a scenario's topology (a Scenario, Result, dict or path): nodes in layers, calls as arrows.

    Labels: a service's replicas, workers and zones; an arrow's probability
    when below 1; a parallel fan-out's arrows share a colour and are tagged
    with the group's wait (``all`` or the first k).  A proxy on the request
    path is a badge on each node it serves; the registry is a dashed box.
    Every arrow is an annotation with gid ``edge:caller->callee``, every
    node a patch with gid ``node:name``.
    """
    from matplotlib.patches import FancyBboxPatch, Patch

    nodes, edges = topology_frame(scenario_or_result)
    sc = _scenario(scenario_or_result)
    n_layers = int(nodes["layer"].max()) + 1
    tallest = int(nodes.groupby("layer").size().max())
    if ax is None:
        fig, ax = new_figure(figsize=(max(5.0, 2.4 * n_layers), max(2.5, 0.75 * tallest + 1.2)))
    else:
        fig = ax.figure
    w, h = 0.62, 0.6
    small = tallest > 12
    fs = 6 if small else 8
    xy = {r.node: (r.x, r.y) for r in nodes.itertuples(index=False)}
    for r in nodes.itertuples(index=False):
        color = _KIND_COLORS[r.kind]
        box = FancyBboxPatch((r.x - w / 2, r.y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                             facecolor=color + "22", edgecolor=color, linewidth=1.3,
                             linestyle="--" if r.kind == "registry" else "-", gid=f"node:{r.node}")
        ax.add_patch(box)
        if r.kind == "service":
            sub = f"{r.replicas}x{int(r.workers)} workers" + (f"\n{r.zones}" if r.zones and not small else "")
        elif r.kind == "registry":
            sub = f"{r.replicas} servers\n{r.detail}"
        else:
            sub = r.detail if not small else ""
        ax.text(r.x, r.y, f"{r.node}\n{sub}" if sub else r.node, ha="center", va="center", fontsize=fs,
                gid=f"label:{r.node}")
        if r.proxy:
            ax.add_patch(FancyBboxPatch((r.x + w / 2 - 0.11, r.y + h / 2 - 0.11), 0.1, 0.1, boxstyle="square,pad=0",
                                        facecolor=PART_COLORS["proxy"], edgecolor="none", gid=f"proxy:{r.node}"))
    groups = sorted(set(edges["group"].dropna()))
    group_color = {g: _GROUP_COLORS[i % len(_GROUP_COLORS)] for i, g in enumerate(groups)}
    tagged: set[str] = set()
    tags_at: dict[str, int] = {}
    group_size: dict[str, int] = {}
    for c in _calls(sc):
        if c["group"] is not None:
            group_size[c["group"]] = group_size.get(c["group"], 0) + 1
    for e in edges.itertuples(index=False):
        (x0, y0), (x1, y1) = xy[e.caller], xy[e.callee]
        forward = x1 > x0
        grouped = isinstance(e.group, str)
        color = group_color[e.group] if grouped else "#444444"
        start = (x0 + w / 2, y0) if forward else (x0, y0 - h / 2)
        end = (x1 - w / 2, y1) if forward else (x1, y1 + h / 2)
        ax.annotate("", xy=end, xytext=start, gid=f"edge:{e.caller}->{e.callee}",
                    arrowprops={"arrowstyle": "-|>", "color": color, "linewidth": 1.1, "shrinkA": 1, "shrinkB": 1,
                                "linestyle": ":" if e.mode == "entry" else "-",
                                "connectionstyle": "arc3,rad=0.0" if forward else "arc3,rad=0.35"})
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        if e.probability < 1.0:
            ax.text(mx, my, f"p={e.probability:g}", fontsize=fs, ha="center", va="bottom", color=color,
                    gid=f"prob:{e.caller}->{e.callee}")
        if grouped and e.group not in tagged:
            tagged.add(e.group)
            k = tags_at.get(e.caller, 0)
            tags_at[e.caller] = k + 1
            ax.text(x0 + w / 2 + 0.03, y0 + h / 2 + 0.22 * k, f"parallel x{group_size[e.group]}, wait {e.wait}",
                    fontsize=fs, color=color, va="bottom", gid=f"group:{e.group}")
    handles = [Patch(facecolor=c + "22", edgecolor=c, label=k) for k, c in _KIND_COLORS.items()
               if (nodes["kind"] == k).any()]
    if (nodes["proxy"] != "").any():
        handles.append(Patch(facecolor=PART_COLORS["proxy"], label=f"{nodes['proxy'][nodes['proxy'] != ''].iloc[0]} "
                                                                   f"({sc.spec['mesh']['profile']})"))
    if groups:
        handles.append(Patch(facecolor="none", edgecolor=group_color[groups[0]], label="parallel fan-out"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    ax.set_xlim(-0.6, n_layers - 0.4)
    ys = nodes["y"].to_numpy()
    ax.set_ylim(ys.min() - 0.7, ys.max() + 0.8)
    ax.set_xticks(range(n_layers), ["clients"] + [f"depth {i}" for i in range(1, n_layers)], fontsize=8)
    ax.set_yticks([])
    ax.grid(False)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("longest call path from the clients (hops)")
    ax.set_title(f"topology: {sc.name}")
    fig.tight_layout()
    return fig


__all__ = ["topology", "topology_frame"]
