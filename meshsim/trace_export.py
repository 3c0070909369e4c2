"""A run as a Chrome trace: open it in Perfetto (ui.perfetto.dev) or chrome://tracing.

The file is Chrome's trace-event JSON, ``{"traceEvents": [...], "displayTimeUnit": "ms"}``,
with times in MICROseconds (simulated ms x 1000):

- one process per service (``pid``), one thread per instance (``tid``; an
  instance serving several calls at once gets extra lanes, ``api-1 #2``, so
  that slices on a thread nest as the format requires);
- each call (a row of ``result.spans``) is a complete event (``ph: "X"``)
  from ``send_ms`` to ``end_ms``, with its ``network``, ``queue``,
  ``service`` and ``downstream`` parts as complete events nested inside;
- with a registry, one more process for its Raft cluster, a thread per
  server: role bands as complete events, every role change, crash and
  restart as an instant event (``ph: "i"``), and each recorded message
  (scenario key ``registry.record_messages``) as a flow (``ph: "s"``
  at the sender when sent, ``ph: "f"`` at the receiver when it arrived, each
  bound to a zero-length slice there).  Lost messages are not drawn.

>>> import json, tempfile, meshsim
>>> res = meshsim.run(meshsim.example("tandem"), seed=1, overrides={"run.requests": 50})
>>> path = to_chrome_trace(res, tempfile.mkdtemp() + "/tandem.json", requests=range(10))
>>> trace = json.loads(path.read_text())
>>> trace["displayTimeUnit"], sorted({e["ph"] for e in trace["traceEvents"]})
('ms', ['M', 'X'])
>>> spans = [e for e in trace["traceEvents"] if e.get("cat") == "span"]
>>> len(spans) == len(res.spans.query("request < 10"))
True
"""

from __future__ import annotations

import gzip
import heapq
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_REQUESTS", "PARTS", "chrome_trace", "to_chrome_trace"]

#: requests exported when none are chosen (the ones with the lowest ids), so files stay small
DEFAULT_REQUESTS = 200
#: the parts of a span, in time order, each from one column of result.spans to the next
PARTS = (("network", "send_ms", "arrive_ms"), ("queue", "arrive_ms", "start_ms"),
         ("service", "start_ms", "service_end_ms"), ("downstream", "service_end_ms", "end_ms"))

_US = 1000.0  # microseconds per simulated ms


def _us(ms: float) -> float:
    return float(ms) * _US


def _meta(pid: int, tid: int, name: str, value: Any) -> dict[str, Any]:
    key = "name" if name.endswith("_name") else "sort_index"
    return {"ph": "M", "name": name, "pid": pid, "tid": tid, "ts": 0, "args": {key: value}}


def _lanes(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Greedy lane per interval (in start order) so that intervals on one lane do not overlap."""
    lane = np.zeros(len(starts), dtype=np.int64)
    free: list[tuple[float, int]] = []  # (end of the lane's last interval, lane)
    n = 0
    for i in np.argsort(starts, kind="stable"):
        if free and free[0][0] <= starts[i]:
            _, k = heapq.heappop(free)
        else:
            k, n = n, n + 1
        lane[i] = k
        heapq.heappush(free, (float(ends[i]), k))
    return lane


def _span_events(result: Any, requests: Iterable[int] | int | None) -> list[dict[str, Any]]:
    if getattr(result, "streaming", False):
        return []
    spans = result.spans
    if requests is None or isinstance(requests, (int, np.integer)):
        n = DEFAULT_REQUESTS if requests is None else int(requests)
        chosen = np.unique(spans["request"].to_numpy())[:n]
    else:
        chosen = np.asarray(list(requests))
    s = spans[spans["request"].isin(chosen)]
    s = s[np.isfinite(s["send_ms"].to_numpy(float)) & np.isfinite(s["end_ms"].to_numpy(float))]
    services = list(spans["service"].cat.categories)
    instances = list(spans["instance"].cat.categories)
    events: list[dict[str, Any]] = []
    for p, svc in enumerate(services, start=1):
        events.append(_meta(p, 0, "process_name", svc))
        events.append(_meta(p, 0, "process_sort_index", p))
    send_all, end_all = s["send_ms"].to_numpy(float), s["end_ms"].to_numpy(float)
    inst_codes = s["instance"].cat.codes.to_numpy()
    pid_of = s["service"].cat.codes.to_numpy().astype(np.int64) + 1
    tid_of = np.zeros(len(s), dtype=np.int64)
    next_tid: dict[int, int] = {}
    for code in np.unique(inst_codes):
        rows = np.flatnonzero(inst_codes == code)
        lanes = _lanes(send_all[rows], end_all[rows])
        inst = instances[code]
        pid = int(pid_of[rows[0]])
        for k in range(int(lanes.max()) + 1):
            tid = next_tid.get(pid, 1)
            next_tid[pid] = tid + 1
            tid_of[rows[lanes == k]] = tid
            events.append(_meta(pid, tid, "thread_name", inst if k == 0 else f"{inst} #{k + 1}"))
            events.append(_meta(pid, tid, "thread_sort_index", tid))
    cols = {c: s[c].to_numpy() for c in ("span", "parent", "request", "endpoint", "status",
                                         "send_ms", "arrive_ms", "start_ms", "service_end_ms", "end_ms")}
    for i in range(len(s)):
        pid, tid = int(pid_of[i]), int(tid_of[i])
        t0, t1 = float(cols["send_ms"][i]), float(cols["end_ms"][i])
        events.append({"name": str(cols["endpoint"][i]), "cat": "span", "ph": "X", "pid": pid, "tid": tid,
                       "ts": _us(t0), "dur": _us(t1) - _us(t0),
                       "args": {"span": int(cols["span"][i]), "parent": int(cols["parent"][i]),
                                "request": int(cols["request"][i]), "status": str(cols["status"][i]),
                                "latency_ms": t1 - t0}})
        for part, a, b in PARTS:
            # clamped to the call: parts are stored in float32 and may overrun its end by ~1e-7 ms
            pa, pb = max(float(cols[a][i]), t0), min(float(cols[b][i]), t1)
            if math.isfinite(pa) and math.isfinite(pb) and pb > pa:
                events.append({"name": part, "cat": "span.part", "ph": "X", "pid": pid, "tid": tid,
                               "ts": _us(pa), "dur": _us(pb) - _us(pa), "args": {"span": int(cols["span"][i])}})
    return events


def _raft_events(result: Any, pid: int) -> list[dict[str, Any]]:
    try:
        comp = result.component("registry")
    except (KeyError, AttributeError):
        return []
    from .viz.raft import cluster_of, raft_frames

    cluster = cluster_of(comp)
    frames = raft_frames(cluster)
    tid = {s: i for i, s in enumerate(cluster.servers, start=1)}
    events = [_meta(pid, 0, "process_name", f"Raft: {cluster.name}"), _meta(pid, 0, "process_sort_index", pid)]
    for s, t in tid.items():
        events += [_meta(pid, t, "thread_name", s), _meta(pid, t, "thread_sort_index", t)]
    for s, a, b, role, term in frames["roles"].itertuples(index=False):
        events.append({"name": f"{role} T{term}" if role != "crashed" else "crashed", "cat": "raft.role",
                       "ph": "X", "pid": pid, "tid": tid[s], "ts": _us(a), "dur": _us(b) - _us(a),
                       "args": {"role": role, "term": int(term)}})
    ev = cluster.events
    for t, s, e, term in zip(ev["time"], ev["server"], ev["event"], ev["term"]):
        if s is None:  # partition / heal: the whole cluster
            events.append({"name": e, "cat": "raft.network", "ph": "i", "s": "g", "pid": pid, "tid": 0,
                           "ts": _us(t)})
        elif s in tid:
            events.append({"name": e, "cat": "raft.event", "ph": "i", "s": "t", "pid": pid, "tid": tid[s],
                           "ts": _us(t), "args": {"term": None if term is None else int(term)}})
    msgs = frames["messages"]
    arrived = msgs[np.isfinite(msgs["arrive_ms"].to_numpy(float))] if len(msgs) else msgs
    for k, (send, arrive, src, dst, kind, term, n, ok) in enumerate(
            arrived[["send_ms", "arrive_ms", "src", "dst", "kind", "term", "entries", "ok"]].itertuples(index=False)):
        args = {"src": src, "dst": dst, "term": int(term), "entries": int(n), "ok": None if ok is None else bool(ok)}
        # a zero-length slice at each end for the flow to bind to (same cat, pid, tid and ts as the flow event)
        ends = (("s", send, src, f"send {kind} to {dst}"), ("f", arrive, dst, f"receive {kind} from {src}"))
        for ph, t, who, label in ends:
            events.append({"name": label, "cat": "raft.message", "ph": "X", "pid": pid, "tid": tid[who],
                           "ts": _us(t), "dur": 0.0, "args": args})
            flow = {"name": kind, "cat": "raft.message", "ph": ph, "id": k, "pid": pid, "tid": tid[who], "ts": _us(t)}
            if ph == "f":
                flow["bp"] = "e"
            events.append(flow)
    return events


def chrome_trace(result: Any, requests: Iterable[int] | int | None = None, raft: bool = True) -> dict[str, Any]:
    """The trace as a dict (what :func:`to_chrome_trace` writes); arguments as there."""
    events = _span_events(result, requests)
    if raft:
        pids = [e["pid"] for e in events]
        events += _raft_events(result, max(pids, default=0) + 1)
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"scenario": str(result.summary.get("scenario")), "seed": result.seed,
                          "time_unit": "ts and dur in microseconds of simulated time"}}


def to_chrome_trace(result: Any, path: str | Path, requests: Iterable[int] | int | None = None,
                    raft: bool = True) -> Path:
    """Write ``result`` as a Chrome trace-event file (see module doc) and return its path.

    ``requests``: the request ids whose calls are exported (an int n: the n
    lowest ids; default the first :data:`DEFAULT_REQUESTS`).  ``raft``: add
    the registry's Raft cluster, if the run has one.  A path ending in
    ``.gz`` is written gzip-compressed (Perfetto opens it as is).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(chrome_trace(result, requests, raft), separators=(",", ":"), allow_nan=False)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path
