"""Extra lines for the summary table: the mesh, the callers' resilience, the registry, and failed calls.

:meth:`meshsim.result.Result.table` prints these between the latency line and
the per-service table, each only when the run has something to say there:

- ``mesh``: the proxies (mode, count, utilisation, passes, mTLS handshakes);
- ``retries`` and ``mesh events``: what the callers' routers did (retries of
  attempts, timeouts, overflows, outlier ejections, no healthy upstream);
- ``registry``: the Raft-replicated registry (leader, leader changes, time
  without a leader, writes, health transitions, control-plane pushes);
- ``calls``: failed calls against failed requests.  The service table counts
  *calls*, one per attempt and per hop, so a request that failed on its way
  through two services fails two calls, and a call that failed and was retried
  successfully fails a call but not its request.

All of them read only the summary dict (``result.summary``, or a loaded
``summary.json``).

>>> s = {"failed": 0, "services": {"api": {"failed": 12}, "web": {"failed": 0}},
...      "resilience": {"api": {"callers": 2, "requests": 1000, "attempts": 1012, "retries": 12}}}
>>> for line in summary_notes(s):
...     print(line)
retries   api 12 (1.2% of 1012 attempts)
calls     12 failed (api 12) but 0 requests failed: the service table counts calls, one per attempt and hop; 12 retries re-sent failed calls, so a failed call need not fail its request
"""

from __future__ import annotations

from typing import Any

from .units import format_duration

# router counters worth a word, in the order they are printed (key, label)
_ROUTER_EVENTS = (
    ("timeouts", "timeouts"),
    ("per_try_timeouts", "per-try timeouts"),
    ("hedges", "hedges"),
    ("overflow", "breaker overflows"),
    ("pending_overflow", "pending overflows"),
    ("retry_overflow", "retries refused by budget"),
    ("ejections", "outlier ejections"),
    ("no_healthy", "no healthy upstream"),
)


def _dur(ms: Any) -> str:
    return "-" if ms is None else format_duration(ms)


def _targets(resilience: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-target entries of summary["resilience"] (its "events" list is not a target)."""
    return {k: v for k, v in resilience.items() if isinstance(v, dict) and "callers" in v}


def mesh_line(summary: dict[str, Any]) -> str | None:
    """The proxies in one line, or None without a mesh.

    >>> mesh_line({"mesh": {"mode": "sidecar", "proxies": 6, "mean_utilisation": 0.009,
    ...                     "max_utilisation": 0.0138, "passes": 126038, "handshakes": 8}})
    'mesh      sidecar: 6 proxies, utilisation mean 0.009 max 0.014, 126038 passes, 8 mTLS handshakes'
    """
    m = summary.get("mesh")
    if not m:
        return None
    return (f"mesh      {m['mode']}: {m['proxies']} proxies, utilisation mean {(m.get('mean_utilisation') or 0):.3f} "
            f"max {(m.get('max_utilisation') or 0):.3f}, {m.get('passes', 0)} passes, {m.get('handshakes', 0)} mTLS handshakes")


def resilience_lines(summary: dict[str, Any]) -> list[str]:
    """Retries per target service, and the other router events that happened (only those that did).

    >>> resilience_lines({"resilience": {"api": {"callers": 1, "requests": 10, "attempts": 10, "retries": 0}}})
    []
    >>> resilience_lines({"resilience": {"db": {"callers": 1, "requests": 90, "attempts": 100, "retries": 10,
    ...                                         "timeouts": 4, "ejections": 1},
    ...                                  "events": [{"time_ms": 5.0, "event": "eject", "caller": "a", "instance": "db-0"}]}})
    ['retries   db 10 (10.0% of 100 attempts)', 'mesh events  db: timeouts 4, outlier ejections 1']
    """
    targets = _targets(summary.get("resilience") or {})
    lines = []
    retried = [(name, e) for name, e in targets.items() if e.get("retries", 0)]
    if retried:
        lines.append("retries   " + ", ".join(
            f"{name} {e['retries']} ({100.0 * e['retries'] / e['attempts']:.1f}% of {e['attempts']} attempts)"
            for name, e in retried))
    events = []
    for name, e in targets.items():
        parts = [f"{label} {e[key]}" for key, label in _ROUTER_EVENTS if e.get(key, 0)]
        if parts:
            events.append(f"{name}: " + ", ".join(parts))
    if events:
        lines.append("mesh events  " + "; ".join(events))
    return lines


def registry_line(summary: dict[str, Any]) -> str | None:
    """The registry's Raft cluster and catalog in one line, or None without a registry.

    >>> registry_line({"registry": {"raft": {"servers": 3, "leader": "registry-2", "term": 2, "leader_changes": 2,
    ...     "unavailable_ms": 2508.1, "unavailability_windows": [[0, 1218.9], [31000, 32289.3]],
    ...     "max_unavailable_ms": 1289.3}, "writes": {"count": 7, "errors": 0},
    ...     "health_transitions": {"count": 1}, "control_plane": {"pushes": 2}}})
    'registry  3 Raft servers, leader registry-2 (term 2), 2 leader changes, no leader for 2.508s in 2 windows (longest 1.289s); 7 writes (0 errors), 1 health transitions, 2 control-plane pushes'
    """
    reg = summary.get("registry")
    if not isinstance(reg, dict):
        return None
    raft = reg.get("raft") or {}
    parts = []
    if raft:
        windows = raft.get("unavailability_windows") or []
        parts.append(
            f"{raft.get('servers', '?')} Raft servers, leader {raft.get('leader') or 'none'} (term {raft.get('term', '?')}), "
            f"{raft.get('leader_changes', 0)} leader changes, no leader for {_dur(raft.get('unavailable_ms') or 0)} "
            f"in {len(windows)} windows (longest {_dur(raft.get('max_unavailable_ms') or 0)})")
    rest = []
    writes = reg.get("writes") or {}
    if writes:
        rest.append(f"{writes.get('count', 0)} writes ({writes.get('errors', 0)} errors)")
    health = reg.get("health_transitions") or {}
    if health:
        rest.append(f"{health.get('count', 0)} health transitions")
    cp = reg.get("control_plane") or {}
    if cp:
        rest.append(f"{cp.get('pushes', 0)} control-plane pushes")
    text = "; ".join(p for p in (", ".join(parts), ", ".join(rest)) if p)
    return "registry  " + (text or "present")


def calls_line(summary: dict[str, Any]) -> str | None:
    """Failed calls against failed requests, when they differ (None when they agree or calls are not counted).

    >>> calls_line({"failed": 3, "services": {"web": {"failed": 3}, "db": {"failed": 3}}})
    'calls     6 failed (web 3, db 3) but 3 requests failed: the service table counts calls, one per attempt and hop; a failed request fails a call at each service it passed'
    >>> calls_line({"failed": 3, "services": {"web": {"failed": 3}}}) is None
    True
    """
    services = summary.get("services") or {}
    per = {name: e["failed"] for name, e in services.items() if isinstance(e, dict) and e.get("failed")}
    total = sum(per.values())
    failed_requests = summary.get("failed", 0) or 0
    retries = sum(e.get("retries", 0) for e in _targets(summary.get("resilience") or {}).values())
    if total == failed_requests and not retries:
        return None
    if total == 0:
        return None
    why = [f"{retries} retries re-sent failed calls, so a failed call need not fail its request"] if retries else []
    if not retries or total > failed_requests + retries:
        why.append("a failed request fails a call at each service it passed")
    if total < failed_requests:
        why.append("a request can also fail before any call is made (no healthy upstream, overflow)")
    by = ", ".join(f"{k} {v}" for k, v in per.items())
    return (f"calls     {total} failed ({by}) but {failed_requests} requests failed: the service table counts calls, "
            "one per attempt and hop; " + "; ".join(why))


def summary_notes(summary: dict[str, Any]) -> list[str]:
    """Every line above that applies to this run, in table order (mesh, retries, registry, calls)."""
    lines = [mesh_line(summary), *resilience_lines(summary), registry_line(summary), calls_line(summary)]
    return [line for line in lines if line]


__all__ = ["calls_line", "mesh_line", "registry_line", "resilience_lines", "summary_notes"]
