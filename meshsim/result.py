"""What a run gives back: pandas DataFrames and a summary dict.

Tables (full mode; built on first access, from the recorder's columns):

- ``requests``: one row per request: ``request, workload, arrival_ms, end_ms,
  latency_ms, status``.
- ``spans``: one row per call: ``span, parent, request, service, endpoint,
  instance, host, send_ms, arrive_ms, start_ms, service_end_ms, end_ms,
  network_ms, queue_ms, service_ms, downstream_ms, status``.
- ``timeseries``: samples ``time_ms, service, instance, queue, busy``.
- ``instances``: one row per instance with utilisation and queue statistics.

``summary`` holds requests, completed, failed (and by reason), throughput,
latency statistics with a batch-means 95% confidence interval for the mean,
and a per-service breakdown.  Requests that arrive before ``metrics.warmup``
are left out of the summary (not of the tables).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported when a table is first asked for: faster start-up
    import pandas as pd

from .stats import auto_batch_means_ci
from .units import format_duration

QUANTILES = {"p50": 50, "p90": 90, "p99": 99, "p999": 99.9}


def _lat_stats(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {"mean": math.nan, **{k: math.nan for k in QUANTILES}, "max": math.nan}
    qs = np.percentile(x, list(QUANTILES.values()))
    out = {"mean": float(x.mean(dtype=np.float64))}
    out.update({k: float(v) for k, v in zip(QUANTILES, qs)})
    out["max"] = float(x.max())
    return out


def _hist_stats(h: Any) -> dict[str, float]:
    if h.count == 0:
        return {"mean": math.nan, **{k: math.nan for k in QUANTILES}, "max": math.nan}
    out = {"mean": h.mean}
    out.update({k: h.quantile(q / 100.0) for k, q in QUANTILES.items()})
    out["max"] = h.max
    return out


def _ci_from_means(means: list[float], max_batches: int) -> tuple[float, float]:
    """95% interval from streaming mode's equal-size fine batch means (the recorder keeps
    ``FINE_BATCHES * max_batches`` of them): they are treated as the values of
    :func:`~meshsim.stats.auto_batch_means_ci`, which merges them into fewer, longer batches."""
    ci = auto_batch_means_ci(np.asarray(means, dtype=float), max_batches)
    return ci.low, ci.high


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


class Result:
    """The outcome of one run.  Build one with :func:`meshsim.run`."""

    def __init__(self, sim: Any):
        from .sim.recorder import STATUS

        self.scenario = sim.scenario
        self.seed: int = sim.seed
        self._sim = sim
        self._status_names = list(STATUS)
        self.streaming: bool = sim.recorder.streaming
        self._cache: dict[str, pd.DataFrame] = {}
        self.summary: dict[str, Any] = self._summarise()

    # -- tables -------------------------------------------------------------------
    def _status_cat(self, codes: np.ndarray) -> pd.Categorical:
        import pandas as pd

        names = self._status_names + ["incomplete"]
        codes = np.where(codes < 0, len(names) - 1, codes).astype(np.int16)
        return pd.Categorical.from_codes(codes, categories=names)

    def _require_full(self, what: str) -> None:
        if self.streaming:
            raise ValueError(f"{what} is not recorded in streaming mode (metrics.mode: streaming); use the summary")

    @property
    def requests(self) -> pd.DataFrame:
        """One row per request (full mode)."""
        self._require_full("the requests table")
        if "requests" not in self._cache:
            import pandas as pd

            c = self._sim.recorder.columns("r_")
            names = list(self.scenario.workloads)
            self._cache["requests"] = pd.DataFrame(
                {
                    "workload": pd.Categorical.from_codes(c["workload"].astype(np.int16), categories=names),
                    "arrival_ms": c["arrival"],
                    "end_ms": c["end"],
                    "latency_ms": c["end"] - c["arrival"],
                    "status": self._status_cat(c["status"]),
                }
            ).rename_axis("request")
        return self._cache["requests"]

    @property
    def spans(self) -> pd.DataFrame:
        """One row per call (full mode with metrics.spans)."""
        self._require_full("the spans table")
        if "spans" not in self._cache:
            import pandas as pd

            sim = self._sim
            c = sim.recorder.span_rows()
            inst = c["inst"]
            services = list(sim.services)
            svc_of_inst = np.array([services.index(i.service.name) for i in sim.instances], dtype=np.int16)
            hosts = sorted({i.host for i in sim.instances})
            host_of_inst = np.array([hosts.index(i.host) for i in sim.instances], dtype=np.int32)
            ep_names = [f"{e.service}.{e.name}" for e in sim.endpoints]
            cat = pd.Categorical.from_codes
            send = c["send"]
            network, queue = c["network"].astype(np.float64), c["queue"].astype(np.float64)
            service = c["service"].astype(np.float64)
            end = c["end"]
            arrive = send + network
            start = arrive + queue
            svc_end = start + service
            self._cache["spans"] = pd.DataFrame(
                {
                    "span": c["id"],
                    "parent": c["parent"],
                    "request": c["req"],
                    "service": cat(svc_of_inst[inst] if len(inst) else np.empty(0, np.int16), categories=services),
                    "endpoint": cat(c["ep"].astype(np.int32), categories=ep_names),
                    "instance": cat(inst, categories=[i.name for i in sim.instances]),
                    "host": cat(host_of_inst[inst] if len(inst) else np.empty(0, np.int32), categories=hosts),
                    "send_ms": send,
                    "arrive_ms": arrive,
                    "start_ms": start,
                    "service_end_ms": svc_end,
                    "end_ms": end,
                    "network_ms": network,
                    "queue_ms": queue,
                    "service_ms": service,
                    "downstream_ms": end - svc_end,
                    "status": self._status_cat(c["status"].astype(np.int16)),
                }
            )
        return self._cache["spans"]

    @property
    def timeseries(self) -> pd.DataFrame:
        """Queue length and busy workers per instance, sampled every metrics.sample_interval."""
        if "timeseries" not in self._cache:
            import pandas as pd

            sim = self._sim
            c = sim.recorder.columns("t_")
            names = [i.name for i in sim.instances]
            services = list(sim.services)
            svc_of_inst = np.array([services.index(i.service.name) for i in sim.instances], dtype=np.int16)
            inst = c["inst"]
            self._cache["timeseries"] = pd.DataFrame(
                {
                    "time_ms": c["time"],
                    "service": pd.Categorical.from_codes(svc_of_inst[inst] if len(inst) else np.empty(0, np.int16), categories=services),
                    "instance": pd.Categorical.from_codes(inst, categories=names),
                    "queue": c["queue"],
                    "busy": c["busy"],
                }
            )
        return self._cache["timeseries"]

    @property
    def instances(self) -> pd.DataFrame:
        """Per-instance utilisation and queue statistics over the measurement window."""
        if "instances" not in self._cache:
            import pandas as pd

            self._cache["instances"] = pd.DataFrame(self._instance_rows()).set_index("instance")
        return self._cache["instances"]

    # -- summary ---------------------------------------------------------------------
    def _instance_rows(self) -> list[dict]:
        sim = self._sim
        t0 = min(sim.warmup, sim.close_time)
        window = sim.close_time - t0
        rows = []
        for inst in sim.instances:
            b0, q0 = sim.snapshots["warmup"].get(inst.gid, (0.0, 0.0))
            b1, q1 = sim.snapshots["close"].get(inst.gid) or inst.areas(sim.end_time)
            rows.append(
                {
                    "instance": inst.name,
                    "service": inst.service.name,
                    "host": inst.host,
                    "zone": sim.hosts[inst.host],
                    "workers": inst.workers,
                    "utilisation": (b1 - b0) / (inst.workers * window) if window > 0 else math.nan,
                    "mean_queue_length": (q1 - q0) / window if window > 0 else math.nan,
                    "arrivals": inst.arrivals,
                    "completed": inst.completed,
                    "rejected": inst.rejected,
                    "refused": inst.refused,
                    "crashes": inst.crashes,
                }
            )
        return rows

    def _summarise(self) -> dict[str, Any]:
        sim = self._sim
        sc = self.scenario
        m = sc.spec["metrics"]
        warm = sim.warmup
        window = sim.close_time - warm
        names = self._status_names
        summary: dict[str, Any] = {
            "scenario": sc.name,
            "seed": self.seed,
            "mode": "streaming" if self.streaming else "full",
            "sim_time_ms": sim.end_time,
            "partial": getattr(sim, "partial_reason", None) is not None,  # stopped early by run.max_wall
            "warmup_ms": warm,
            "window_ms": window,
        }
        if self.streaming:
            rec = sim.recorder
            by_reason = {names[k]: v for k, v in sorted(rec.counts.items()) if k != 0}
            completed = rec.counts.get(0, 0)
            requests = rec.arrivals_measured
            lat = _hist_stats(rec.latency)
            low, high = _ci_from_means(rec.batch_sums, m["batches"])
            ok_window = rec.ok_in_window
        else:
            c = sim.recorder.columns("r_")
            keep = c["arrival"] >= warm
            status = c["status"][keep]
            lat_all = (c["end"] - c["arrival"])[keep]
            ok = status == 0
            requests = int(keep.sum())
            completed = int(ok.sum())
            codes, counts = np.unique(status[(status != 0)], return_counts=True)
            by_reason = {("incomplete" if k < 0 else names[k]): int(n) for k, n in zip(codes, counts)}
            x = lat_all[ok]
            lat = _lat_stats(x)
            ci = auto_batch_means_ci(x, m["batches"]) if x.size else None
            low, high = (ci.low, ci.high) if ci else (math.nan, math.nan)
            ok_window = int((ok & (c["end"][keep] <= sim.close_time)).sum())
        failed = int(sum(v for k, v in by_reason.items() if k != "incomplete"))
        lat["ci95"] = [low, high]
        summary.update(
            {
                "requests": requests,
                "completed": completed,
                "failed": failed,
                "failed_by_reason": {k: v for k, v in by_reason.items() if k != "incomplete"},
                "incomplete": by_reason.get("incomplete", requests - completed - failed if self.streaming else 0),
                "throughput_rps": ok_window * 1000.0 / window if window > 0 else math.nan,
                "latency_ms": lat,
                "services": self._service_summary(),
                "network": {"messages": sim.network.messages_sent, "dropped": sim.network.messages_dropped},
                "faults": [{"time_ms": t, "event": e, "target": w} for t, e, w in sim.fault_log],
            }
        )
        if sim.proxies:
            per = [p.summary(sim.end_time) for p in sim.proxies]
            summary["mesh"] = {
                "mode": sc.spec["mesh"]["mode"],
                "proxies": len(per),
                "mean_utilisation": float(np.mean([p["utilisation"] for p in per])),
                "max_utilisation": float(np.max([p["utilisation"] for p in per])),
                "passes": int(sum(p["passes"] for p in per)),
                "handshakes": int(sum(p["handshakes"] for p in per)),
            }
        if sim.routers:
            summary["resilience"] = self._resilience_summary()
        for component in sim.components:
            summary[component.name] = component.summary()
        if summary["partial"]:
            summary["partial_reason"] = sim.partial_reason
        return _clean(summary)

    def _resilience_summary(self) -> dict[str, Any]:
        """Per target service: what callers' routers did (retries, timeouts, overflows, ejections)."""
        sim = self._sim
        out: dict[str, dict[str, Any]] = {}
        for r in sim.routers:
            entry = out.setdefault(r.service.name, {"callers": 0})
            entry["callers"] += 1
            for k, v in r.summary().items():
                entry[k] = entry.get(k, 0) + v
        for entry in out.values():
            req = entry.get("requests", 0)
            entry["retry_ratio"] = entry.get("retries", 0) / req if req else 0.0
        if sim.mesh_events:
            out["events"] = [{"time_ms": t, "event": e, "caller": c, "instance": i} for t, e, c, i in sim.mesh_events]
        return out

    def _service_summary(self) -> dict[str, Any]:
        sim = self._sim
        inst_rows = self._instance_rows()
        offered = self.scenario.utilisation()
        out: dict[str, Any] = {}
        per_service = None
        if not self.streaming and sim.recorder.spans_on:
            per_service = self._span_stats_by_service()
        for si, (name, svc) in enumerate(sim.services.items()):
            rows = [r for r in inst_rows if r["service"] == name]
            entry: dict[str, Any] = {
                "instances": len(rows),
                "utilisation": float(np.mean([r["utilisation"] for r in rows])),
                "offered_utilisation": offered[name],
                "mean_queue_length": float(np.sum([r["mean_queue_length"] for r in rows])),
                "rejected": int(sum(r["rejected"] for r in rows)),
            }
            if per_service is not None:
                entry.update(per_service[si])
            elif self.streaming:
                from .stats import LogHistogram

                h = LogHistogram(relative_error=self.scenario.spec["metrics"]["histogram_error"])
                for inst in svc.instances:
                    if inst.gid in sim.recorder.service_latency:
                        h.merge(sim.recorder.service_latency[inst.gid])
                entry.update({"completed": h.count, "latency_ms": _hist_stats(h)})
            entry["instance_utilisation"] = {r["instance"]: r["utilisation"] for r in rows}
            out[name] = entry
        return out

    def _span_stats_by_service(self, chunk: int = 1 << 18) -> list[dict[str, Any]]:
        """Calls, failures and latency statistics per service from the span rows.

        Works through the rows in chunks, keeping only float32 latencies per
        service, so the summary of a long run needs little memory beyond the
        rows themselves.
        """
        sim = self._sim
        rows = sim.recorder.span_rows()
        names = list(sim.services)
        svc_of_inst = np.array([names.index(i.service.name) for i in sim.instances], dtype=np.int16)
        k = len(names)
        calls = np.zeros(k, dtype=np.int64)
        done = np.zeros(k, dtype=np.int64)
        queue_sum = np.zeros(k)
        service_sum = np.zeros(k)
        lat_parts: list[list[np.ndarray]] = [[] for _ in range(k)]
        for lo in range(0, len(rows), chunk):
            c = rows[lo:lo + chunk]
            svc = svc_of_inst[c["inst"]]
            svc[c["send"] < sim.warmup] = -1  # calls sent during warm-up are left out
            ok = c["status"] == 0
            calls += np.bincount(svc[svc >= 0], minlength=k)[:k]
            okm = ok & (svc >= 0)
            s_ok = svc[okm]
            done += np.bincount(s_ok, minlength=k)[:k]
            queue_sum += np.bincount(s_ok, weights=c["queue"][okm], minlength=k)[:k]
            service_sum += np.bincount(s_ok, weights=c["service"][okm], minlength=k)[:k]
            lat = (c["end"][okm] - c["send"][okm] - c["network"][okm]).astype(np.float32)
            for si in range(k):
                lat_parts[si].append(lat[s_ok == si])
        out = []
        for si in range(k):
            lat = np.concatenate(lat_parts[si]) if lat_parts[si] else np.empty(0, np.float32)
            lat_parts[si] = []
            n = int(done[si])
            out.append({
                "calls": int(calls[si]),
                "completed": n,
                "failed": int(calls[si] - n),
                "latency_ms": _lat_stats(lat.astype(np.float64) if lat.size < chunk else lat),
                "queue_ms_mean": queue_sum[si] / n if n else math.nan,
                "service_ms_mean": service_sum[si] / n if n else math.nan,
            })
        return out

    # -- output ------------------------------------------------------------------------
    def latencies(self) -> np.ndarray:
        """Latencies (ms) of successful requests after warm-up, in arrival order."""
        df = self.requests
        sel = (df["arrival_ms"] >= self._sim.warmup) & (df["status"] == "ok")
        return df["latency_ms"].to_numpy()[sel.to_numpy()]

    def component(self, name: str) -> Any:
        """A component that ran beside the request path, by name (e.g. ``"registry"``).

        The registry's tables: ``res.component("registry").registry.frame("health")`` (also
        ``"reads"``, ``"writes"``, ``"watches"``, ``"dns"``), and its Raft cluster's
        ``.registry.cluster.frame("leader_changes")``.
        """
        for c in self._sim.components:
            if c.name == name:
                return c
        names = ", ".join(c.name for c in self._sim.components) or "none"
        raise KeyError(f"no component {name!r} in this run (components: {names})")

    @property
    def mesh_events(self) -> pd.DataFrame:
        """Outlier ejections and returns: time_ms, event, caller, instance."""
        import pandas as pd

        return pd.DataFrame(self._sim.mesh_events, columns=["time_ms", "event", "caller", "instance"])

    def to_chrome_trace(self, path: str | Path, requests: Any = None, raft: bool = True) -> Path:
        """Write the run as a Chrome trace (Perfetto, chrome://tracing); see :mod:`meshsim.trace_export`."""
        from .trace_export import to_chrome_trace

        return to_chrome_trace(self, path, requests=requests, raft=raft)

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.summary, indent=indent)

    def save(self, out_dir: str | Path, tables: bool = True, format: str = "parquet") -> dict[str, Path]:
        """Write summary.json and (full mode) the requests table: ``requests.parquet``, or ``requests.csv``
        with ``format="csv"``.  Parquet needs pyarrow, a core dependency of meshsim."""
        if format not in ("parquet", "csv"):
            raise ValueError(f"format must be 'parquet' or 'csv', got {format!r}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = {"summary": out / "summary.json"}
        written["summary"].write_text(self.to_json() + "\n", encoding="utf-8")
        if tables and not self.streaming:
            if format == "parquet":
                try:
                    import pyarrow  # noqa: F401
                except ImportError as e:  # pragma: no cover - pyarrow is a core dependency
                    raise ImportError("writing requests.parquet needs pyarrow, a core dependency of meshsim "
                                      "(pip install pyarrow), or ask for CSV (format='csv', --format csv)") from e
                p = out / "requests.parquet"
                self.requests.to_parquet(p)
            else:
                p = out / "requests.csv"
                self.requests.to_csv(p)
            written["requests"] = p
        return written

    def table(self) -> str:
        """A plain-text summary table for terminals."""
        s = self.summary
        lat = s["latency_ms"]

        def f(v: Any) -> str:
            return "-" if v is None else format_duration(v)

        lines = [
            f"scenario {s['scenario']}  seed {s['seed']}  simulated {f(s['sim_time_ms'])}  ({s['mode']} metrics)",
            f"requests {s['requests']}  completed {s['completed']}  failed {s['failed']}  "
            f"throughput {s['throughput_rps']:.2f} req/s" if s["throughput_rps"] is not None else "",
        ]
        if s["failed_by_reason"]:
            lines.append("failed by reason: " + ", ".join(f"{k} {v}" for k, v in s["failed_by_reason"].items()))
        ci = lat["ci95"]
        ci_txt = f"  (95% CI {f(ci[0])} .. {f(ci[1])})" if ci[0] is not None else ""
        lines.append(
            "latency  mean {}{}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}".format(
                f(lat["mean"]), ci_txt, f(lat["p50"]), f(lat["p90"]), f(lat["p99"]), f(lat["p999"]), f(lat["max"])
            )
        )
        from .report import summary_notes  # mesh, retries, registry, failed calls vs requests (when present)

        lines.extend(summary_notes(s))
        lines.append("")
        lines.append(f"{'service':<20}{'inst':>5}{'util':>8}{'offered':>9}{'queue':>8}{'mean':>10}{'p99':>10}{'failed':>8}")
        for name, e in s["services"].items():
            sl = e.get("latency_ms", {})
            lines.append(
                f"{name:<20}{e['instances']:>5}{(e['utilisation'] or 0):>8.3f}{e['offered_utilisation']:>9.3f}"
                f"{(e['mean_queue_length'] or 0):>8.2f}{f(sl.get('mean')):>10}{f(sl.get('p99')):>10}{e.get('failed', 0):>8}"
            )
        return "\n".join(line for line in lines if line is not None)

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        return "<pre>" + self.table().replace("&", "&amp;").replace("<", "&lt;") + "</pre>"
