"""Request waterfalls: the spans of a few requests as a Gantt chart.

One row per span, indented by its depth in the call tree, with a bar for
each part of its time: ``network`` (send -> arrive), ``queue`` (arrive ->
start), ``service`` (local work) and ``downstream`` (waiting for its own
calls and their replies).  Above a request's spans, its outer row runs from
its arrival to the reply reaching the client: ``downstream`` while its root
call is out, then ``network`` for the reply's way back.

What the recorder keeps, and so what can be drawn:

- every attempt of a call through a proxy's router is its own span, a
  sibling of the first one (same parent, same endpoint); which try it is
  is not recorded, so attempts are told from sibling spans to a service
  the run retried (``summary["resilience"]``): a later sibling is another
  attempt when the parent's endpoint has one call site for that endpoint,
  or when the attempt before it had failed or was still running; it is a
  *hedge* when the service's policy hedges and the attempt before had not
  failed, else a *retry* (see :func:`_mark_attempts`);
- with a mesh, the two request passes through proxies are inside the span's
  ``network_ms`` and the two response passes inside the caller's
  ``downstream_ms``; they are not recorded apart.  Without a network (mesh
  on, ``network.enabled: false``) ``network_ms`` is the proxy passes alone
  and is drawn as ``proxy``; with both, the bar is hatched.

A call that failed before reaching a milestone gets the rest of its time in
the part it was in (a call refused on arrival is all ``network``; one whose
instance crashed while it waited is ``queue`` up to the crash).

>>> import meshsim, matplotlib
>>> matplotlib.use("Agg")
>>> res = meshsim.run({"run": {"requests": 200}, "network": {"enabled": False},
...                    "services": {"web": {"service_time": "2ms", "calls": ["db"]},
...                                 "db": {"service_time": "3ms"}},
...                    "workloads": {"u": {"rate": 10, "target": "web"}}})
>>> df = waterfall_frame(res, [0])
>>> print(df[["kind", "label", "send_ms", "end_ms", "service_ms", "downstream_ms"]].to_string(index=False))
   kind         label  send_ms  end_ms  service_ms  downstream_ms
request request 0 (u)      0.0     5.0         0.0            5.0
   call     web/web-0      0.0     5.0         2.0            3.0
   call       db/db-0      2.0     5.0         3.0            0.0
>>> fig = waterfall(res, [0, 1])
>>> fig.axes[0].get_xlabel()
'time since request arrival (ms)'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .style import PART_COLORS, new_figure

PARTS = ("network", "queue", "service", "downstream")

#: bars shorter than this (ms) are rounding noise of the recorder's float32 parts, not drawn
_TINY_MS = 1e-6

COLUMNS = ["request", "row", "kind", "attempt", "span", "parent", "depth", "label", "service", "instance",
           "endpoint", "status", "send_ms", "end_ms", "network_ms", "queue_ms", "service_ms", "downstream_ms",
           "arrival_ms"]


# --------------------------------------------------------------------------- data


def _fill_parts(send: float, arrive: float, start: float, svc_end: float, end: float) -> tuple[float, ...]:
    """Parts of a span that sum to end - send: a missing milestone gives the rest to the current part."""
    parts: list[float] = []
    cur, missing = send, False
    for m in (arrive, start, svc_end):
        if missing:
            parts.append(0.0)
        elif m != m:  # never reached: the rest of the span stays in the part it was in
            parts.append(end - cur)
            cur, missing = end, True
        else:
            parts.append(m - cur)
            cur = m
    parts.append(end - cur)
    return tuple(parts)


def _retry_policies(result: Any) -> tuple[set[str], set[str]]:
    """(services some caller retried, services some caller hedges to), from the run's routers."""
    retried, hedged = set(), set()
    res = result.summary.get("resilience") or {}
    for name, entry in res.items():
        if isinstance(entry, dict) and (entry.get("retries", 0) or entry.get("hedges", 0)):
            retried.add(name)
    for r in getattr(getattr(result, "record", None), "routers", []):
        if r["hedge"]:
            hedged.add(r["service"])
    return retried, hedged


def _call_sites(scenario: Any) -> dict[tuple[str, str], dict[tuple[str, str], int]]:
    """(service, endpoint) -> how many of its call sites name each (callee, endpoint)."""
    out: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
    for s, svc in scenario.services.items():
        for e, ep in svc["endpoints"].items():
            sites = out[(s, e)] = {}
            for step in ep["calls"]:
                for c in step["parallel"] if "parallel" in step else [step]:
                    key = (c["service"], c["endpoint"])
                    sites[key] = sites.get(key, 0) + 1
    return out


def _mark_attempts(rows: list[dict], retried: set[str], hedged: set[str], sites: dict) -> None:
    """Set kind/attempt of later attempts: siblings (same parent, same endpoint) of a retried service.

    When the parent's endpoint calls that endpoint from one call site only
    (the common case, and always for a workload's root call), every later
    sibling is another attempt.  Otherwise a later sibling is an attempt
    only if the one before it failed or was still running when it was sent
    (else it is taken for a call of a later step).  An attempt to a service
    whose policy hedges is a hedge unless the attempt before it had failed.
    """
    by_span = {r["span"]: r for r in rows}
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["service"] in retried:
            groups.setdefault((r["parent"], r["endpoint"]), []).append(r)
    for (parent, _ep), members in groups.items():
        if len(members) < 2:
            continue
        members.sort(key=lambda r: (r["_send"], r["span"]))
        up = by_span.get(parent)
        callee = (members[0]["service"], members[0]["endpoint"])
        single = parent == -1 or (up is not None and sites.get((up["service"], up["endpoint"]), {}).get(callee) == 1)
        attempt = 1
        prev = members[0]
        for r in members[1:]:
            later = r["_send"] > prev["_send"]
            failed = prev["status"] != "ok" and prev["_end"] <= r["_send"]
            if later and (single or failed or prev["_end"] > r["_send"]):
                attempt += 1
                r["attempt"] = attempt
                r["kind"] = "hedge" if (r["service"] in hedged and not failed) else "retry"
                prev = r
            elif later:  # a new call of the same endpoint (a later step), not a retry
                attempt = 1
                prev = r


def waterfall_frame(result: Any, requests: int | Iterable[int]) -> Any:
    """The rows of a waterfall: each chosen request, then its spans, parents before children.

    Times ``send_ms``/``end_ms`` are relative to the request's arrival; the
    four parts of each row sum to ``end_ms - send_ms``.  ``kind`` is
    ``request`` (the outer row), ``call``, ``retry`` or ``hedge``;
    ``attempt`` counts the tries of one call (1 for the first).
    """
    import pandas as pd

    ids = [int(requests)] if np.isscalar(requests) else [int(r) for r in requests]
    req = result.requests
    spans = result.spans
    mesh = result.scenario.spec["mesh"]["mode"] != "none"
    retried, hedged = _retry_policies(result)
    sites = _call_sites(result.scenario)
    sel = spans[np.isin(spans["request"].to_numpy(), ids)]
    # plain Python columns: one pass over the selected spans, no per-row pandas indexing
    cols = {c: sel[c].to_numpy().tolist() for c in ("request", "span", "parent", "send_ms", "arrive_ms", "start_ms",
                                                    "service_end_ms", "end_ms")}
    for c in ("service", "instance", "endpoint", "status"):
        cols[c] = sel[c].astype(str).tolist()
    by_req: dict[int, list[int]] = {}
    for i, rid in enumerate(cols["request"]):
        by_req.setdefault(rid, []).append(i)
    reqs = req.loc[ids]
    arrivals = reqs["arrival_ms"].to_numpy().tolist()
    latencies = reqs["latency_ms"].to_numpy().tolist()
    statuses = reqs["status"].astype(str).tolist()
    workloads = reqs["workload"].astype(str).tolist()
    out: list[dict] = []
    for k, rid in enumerate(ids):
        arrival = arrivals[k]
        rows: list[dict] = []
        for i in by_req.get(rid, ()):
            send, end = cols["send_ms"][i], cols["end_ms"][i]
            parts = _fill_parts(send, cols["arrive_ms"][i], cols["start_ms"][i], cols["service_end_ms"][i], end)
            rows.append({
                "request": rid, "kind": "call", "attempt": 1, "span": cols["span"][i], "parent": cols["parent"][i],
                "service": cols["service"][i], "instance": cols["instance"][i],
                "endpoint": cols["endpoint"][i].split(".", 1)[1], "status": cols["status"][i],
                "send_ms": send - arrival, "end_ms": end - arrival,
                **{f"{p}_ms": v for p, v in zip(PARTS, parts)},
                "arrival_ms": arrival, "_send": send, "_end": end,
            })
        _mark_attempts(rows, retried, hedged, sites)
        known = {x["span"] for x in rows}
        children: dict[int, list[dict]] = {}
        for x in rows:  # spans whose parent was not recorded hang under the request row
            children.setdefault(x["parent"] if x["parent"] in known else -1, []).append(x)
        for kids in children.values():
            kids.sort(key=lambda x: (x["_send"], x["span"]))
        latency = latencies[k]
        root_end = max((x["end_ms"] for x in children.get(-1, [])), default=math.nan)
        if latency != latency:  # incomplete: draw up to the last span's end
            latency = max([x["end_ms"] for x in rows], default=0.0)
        waited = min(max(root_end, 0.0), latency) if root_end == root_end else latency
        out.append({
            "request": rid, "kind": "request", "attempt": 1, "span": -1, "parent": pd.NA, "service": "",
            "instance": "", "endpoint": "", "status": statuses[k], "depth": 0,
            "label": f"request {rid} ({workloads[k]})", "send_ms": 0.0, "end_ms": latency,
            "network_ms": latency - waited, "queue_ms": 0.0, "service_ms": 0.0, "downstream_ms": waited,
            "arrival_ms": arrival,
        })
        stack = [(x, 1) for x in reversed(children.get(-1, []))]
        while stack:
            x, depth = stack.pop()
            x["depth"] = depth
            ep = "" if x["endpoint"] == "default" else f".{x['endpoint']}"
            x["label"] = f"{x['service']}{ep}/{x['instance']}"
            out.append(x)
            stack.extend((c, depth + 1) for c in reversed(children.get(x["span"], [])))
    df = pd.DataFrame(out, columns=COLUMNS) if out else pd.DataFrame(columns=COLUMNS)
    df["row"] = np.arange(len(df))
    df["parent"] = df["parent"].astype("Int64")
    df.attrs["mesh"] = mesh
    df.attrs["network"] = bool(result.scenario.spec["network"]["enabled"])
    return df


# --------------------------------------------------------------------------- choice of requests


def _nearest(lat: np.ndarray, ids: np.ndarray, q: float) -> int:
    target = np.percentile(lat, q)
    return int(ids[np.argmin(np.abs(lat - target))])


def pick_requests(result: Any, n: int = 4) -> dict[int, str]:
    """A handful of telling requests: ``{request: why}`` (median, p99, slowest, one retried or failed).

    Then, if ``n`` asks for more, the requests nearest p90, p75, p25 and p10.

    Only requests after warm-up count; a retried one is looked for only when
    the run retried anything.
    """
    req = result.requests
    warm = result.summary["warmup_ms"] or 0.0
    after = req[req["arrival_ms"] >= warm]
    ok = after[after["status"] == "ok"]
    chosen: dict[int, str] = {}

    def add(rid: int, why: str) -> None:
        if rid not in chosen and len(chosen) < n:
            chosen[rid] = why

    if len(ok):
        lat = ok["latency_ms"].to_numpy()
        ids = ok.index.to_numpy()
        add(_nearest(lat, ids, 50), "median")
        add(_nearest(lat, ids, 99), "p99")
        add(int(ids[np.argmax(lat)]), "slowest")
    retried, _ = _retry_policies(result)
    if retried and len(chosen) < n:
        sp = result.spans
        sp = sp[sp["service"].isin(list(retried)) & (sp["send_ms"] >= warm)]
        dup = sp[sp.duplicated(["request", "parent", "endpoint"], keep=False)]
        for rid in dup["request"].unique()[:50]:
            f = waterfall_frame(result, [int(rid)])
            later = f.loc[f["kind"].isin(["retry", "hedge"]), "kind"]
            if len(later):
                add(int(rid), "hedged" if (later == "hedge").any() else "retried")
                break
    failed = after[~after["status"].isin(["ok", "incomplete"])]
    if len(failed):
        add(int(failed.index[0]), f"failed ({failed['status'].iloc[0]})")
    if len(ok):
        for q in (90, 75, 25, 10):
            add(_nearest(lat, ids, q), f"p{q}")
    if not chosen and len(req):
        add(int(req.index[0]), "first")
    return chosen


# --------------------------------------------------------------------------- figure


def _segments(row: Any) -> list[tuple[str, float, float]]:
    """(part, start, width) of a row's bars, in time order."""
    if row.kind == "request":
        return [("downstream", 0.0, row.downstream_ms), ("network", row.downstream_ms, row.network_ms)]
    out, t = [], row.send_ms
    for p in PARTS:
        w = getattr(row, f"{p}_ms")
        out.append((p, t, w))
        t += w
    return out


def waterfall(result: Any, requests: int | Iterable[int] | None = None, n: int = 4, ax: Any = None):
    """A Gantt chart of the spans of ``requests`` (default: :func:`pick_requests` ``(result, n)``).

    Bars are coloured by part (``PART_COLORS``); retries and hedges are
    outlined in their colours and tagged; failed spans are tagged with their
    status.  The x axis is the time since each request's arrival (ms).
    """
    why: dict[int, str] = {}
    if requests is None:
        why = pick_requests(result, n)
        requests = list(why)
    df = waterfall_frame(result, requests)
    mesh, net = df.attrs["mesh"], df.attrs["network"]
    if ax is None:
        fig, ax = new_figure(figsize=(12, max(2.5, 0.28 * len(df) + 1.2)))
    else:
        fig = ax.figure
    labels = {
        "network": "network + request proxy passes" if mesh and net else ("proxy passes" if mesh else "network"),
        "queue": "queue", "service": "service", "downstream": "downstream (waiting for calls, replies)",
    }
    used: set[str] = set()
    height = 0.6
    xmax = float(np.nanmax(df["end_ms"])) if len(df) else 1.0
    for row in df.itertuples(index=False):
        y = row.row
        for part, start, width in _segments(row):
            if not width > _TINY_MS:
                continue
            color = PART_COLORS["proxy"] if (part == "network" and mesh and not net) else PART_COLORS[part]
            kw: dict[str, Any] = {"color": color, "edgecolor": "none"}
            if part == "network" and mesh and net:
                kw.update(hatch="///", edgecolor=PART_COLORS["proxy"], linewidth=0)
            used.add(part)
            ax.barh(y, width, left=start, height=height, gid=f"bar:{row.request}:{row.span}:{part}", **kw)
        if row.kind in ("retry", "hedge"):
            ax.barh(y, row.end_ms - row.send_ms, left=row.send_ms, height=height + 0.2, fill=False,
                    edgecolor=PART_COLORS[row.kind], linewidth=1.5, gid=f"{row.kind}:{row.request}:{row.span}")
            used.add(row.kind)
        tags = []
        if row.kind in ("retry", "hedge"):
            tags.append(f"{row.kind} {row.attempt}")
        if row.status != "ok":
            tags.append(row.status)
        if tags:
            ax.text(row.end_ms + 0.01 * xmax, y, ", ".join(tags), va="center", fontsize=7,
                    color=PART_COLORS.get(row.kind, PART_COLORS["retry"]))
    ticks = []
    for row in df.itertuples(index=False):
        if row.kind == "request" and row.request in why:
            ticks.append(f"{row.label}: {why[row.request]}, {row.end_ms:.3g} ms")
        else:
            ticks.append("    " * row.depth + row.label)
    ax.set_yticks(df["row"].to_numpy(), ticks, fontsize=8)
    for y in df.loc[df["kind"] == "request", "row"].to_numpy()[1:]:
        ax.axhline(y - 0.5, color="#888888", linewidth=0.6)
    ax.set_ylim(len(df) - 0.5, -0.5)
    ax.set_xlabel("time since request arrival (ms)")
    ax.set_ylabel("span (service/instance)")
    ax.grid(axis="y", visible=False)
    from matplotlib.patches import Patch

    handles = []
    for part in PARTS:
        if part in used:
            color = PART_COLORS["proxy"] if (part == "network" and mesh and not net) else PART_COLORS[part]
            kw = {"hatch": "///", "edgecolor": PART_COLORS["proxy"]} if (part == "network" and mesh and net) else {}
            handles.append(Patch(facecolor=color, label=labels[part], **kw))
    for kind in ("retry", "hedge"):
        if kind in used:
            handles.append(Patch(fill=False, edgecolor=PART_COLORS[kind], linewidth=1.5,
                                 label=f"{kind} (a later attempt)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    ax.set_title(f"request waterfall: {result.summary['scenario']} (seed {result.seed})")
    fig.tight_layout()
    return fig


__all__ = ["pick_requests", "waterfall", "waterfall_frame"]
