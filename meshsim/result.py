"""What a run gives back: pandas DataFrames and a summary dict.

A Result holds the run's :class:`~meshsim.run_record.RunRecord` (``.record``: plain
data, no Simulation), its summary and the tables, built on first access from the
record's columns (full mode):

- ``requests``: one row per request: ``request, workload, arrival_ms, end_ms,
  latency_ms, status``.
- ``spans``: one row per call: ``span, parent, request, service, endpoint,
  instance, host, send_ms, arrive_ms, start_ms, service_end_ms, end_ms,
  network_ms, queue_ms, service_ms, downstream_ms, status``.
- ``timeseries``: samples ``time_ms, service, instance, queue, busy``.
- ``instances``: one row per instance with utilisation and queue statistics.

``summary`` holds requests, completed, failed (and by reason), throughput,
latency statistics with a batch-means 95% confidence interval for the mean,
and a per-service breakdown (:func:`meshsim.run_summary.summarise`).  Requests
that arrive before ``metrics.warmup`` are left out of the summary (not of the
tables).  A Result pickles (without its built tables).
"""

from __future__ import annotations

import importlib.util
import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported when a table is first asked for: faster start-up
    import pandas as pd

from . import _background
from .run_record import ComponentRecord, RunRecord
from .run_summary import instance_rows, service_of_instance, summarise
from .units import format_duration


def _codes_dtype(n_categories: int) -> type:
    """The integer type pandas keeps a Categorical's codes in (``coerce_indexer_dtype``)."""
    for dt in (np.int8, np.int16, np.int32):
        if n_categories < np.iinfo(dt).max:
            return dt
    return np.int64


def _pandas_version() -> str:
    """``pandas.__version__`` (what pyarrow writes into the ``pandas`` metadata), without importing pandas.

    pandas built with meson (every release since 2.1) keeps it in ``pandas/_version_meson.py``; otherwise
    the installed distribution's metadata says it.
    """
    import sys

    loaded = sys.modules.get("pandas")
    if loaded is not None:
        return loaded.__version__
    import importlib.util
    import re

    spec = importlib.util.find_spec("pandas")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        try:
            text = (Path(folder) / "_version_meson.py").read_text(encoding="utf8")
        except OSError:
            continue
        m = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.M)
        if m:
            return m.group(1)
    import importlib.metadata

    return importlib.metadata.version("pandas")


def write_requests_parquet(record: RunRecord, path: str | Path) -> Path:
    """Write ``record``'s requests table as Parquet with pyarrow alone, without building a DataFrame.

    The table in it is the one ``Result.requests.to_parquet(path)`` writes:
    the same columns, Arrow types (categoricals as dictionaries with pandas'
    code width and string type), values (NaN end times stored as nulls, as
    pandas does) and ``pandas`` schema metadata, so ``pd.read_parquet`` gives
    back the same DataFrame and ``pq.read_table`` the same table
    (``tests/test_speed_paths.py`` checks).  Only the float columns' page
    encoding differs (plain; pandas' call tries a dictionary first).
    Skipping pandas saves its import (about 0.2 s) and a copy of every column.

    >>> import meshsim, pandas as pd, tempfile, pathlib
    >>> res = meshsim.run(meshsim.example("mmc"), seed=1, overrides={"run.requests": 300})
    >>> p = write_requests_parquet(res.record, pathlib.Path(tempfile.mkdtemp()) / "r.parquet")
    >>> pd.read_parquet(p).equals(res.requests)
    True
    """
    return write_requests_table(requests_columns(record), list(record.workloads), list(record.status_names), path)


def requests_columns(record: RunRecord) -> dict[str, np.ndarray]:
    """The record's columns the requests table is made of: ``workload`` (codes), ``arrival``, ``end``, ``status``."""
    return {k: record.requests[k] for k in ("workload", "arrival", "end", "status")}


def load_parquet_writer() -> None:
    """Import what :func:`write_requests_table` needs (pyarrow and its parquet module), ahead of it.

    The command line has a child do this while the simulation runs (:func:`meshsim._background.warm_up`).
    """
    import pyarrow.parquet  # noqa: F401


def write_requests_table(columns: dict[str, np.ndarray], workloads: list[str], status_names: list[str],
                         path: str | Path) -> Path:
    """:func:`write_requests_parquet` from plain data: :func:`requests_columns`, the workload names and the
    status names (what a child that did not fork from the finished run is sent)."""
    import json as _json

    import pyarrow as pa
    import pyarrow.parquet as pq

    pandas_version = _pandas_version()
    # pandas 3 keeps string labels as its "str" dtype (Arrow large_string underneath), pandas 2 as "object"
    pandas3 = int(pandas_version.split(".")[0]) >= 3
    labels = pa.large_string() if pandas3 else pa.string()
    c = columns
    n = len(c["arrival"])
    workloads = list(workloads)
    statuses = list(status_names) + ["incomplete"]
    status = np.where(c["status"] < 0, len(statuses) - 1, c["status"]).astype(_codes_dtype(len(statuses)))
    workload = c["workload"].astype(_codes_dtype(len(workloads)))
    arrival, end = c["arrival"], c["end"]

    # Arrays are made from their buffers: pa.array() would import pandas (pyarrow looks for it on first use)
    def strings(values: list[str]) -> Any:
        data = [v.encode("utf8") for v in values]
        offsets = np.zeros(len(data) + 1, np.int64 if pandas3 else np.int32)
        np.cumsum([len(b) for b in data], out=offsets[1:])
        return pa.Array.from_buffers(labels, len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))],
                                     null_count=0)

    def cat(codes: np.ndarray, names: list[str]) -> Any:
        codes = np.ascontiguousarray(codes)
        index = pa.Array.from_buffers(pa.from_numpy_dtype(codes.dtype), len(codes), [None, pa.py_buffer(codes)],
                                      null_count=0)
        return pa.DictionaryArray.from_arrays(index, strings(names))

    def num(x: np.ndarray) -> Any:
        x = np.ascontiguousarray(x, dtype=np.float64)
        valid = ~np.isnan(x)  # NaN -> null, as DataFrame.to_parquet stores it
        nulls = len(x) - int(np.count_nonzero(valid))
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
        return pa.Array.from_buffers(pa.float64(), len(x), [bitmap, pa.py_buffer(x)], null_count=nulls)

    names = ["workload", "arrival_ms", "end_ms", "latency_ms", "status"]
    arrays = [cat(workload, workloads), num(arrival), num(end), num(end - arrival), cat(status, statuses)]
    code_types = {"workload": workload.dtype, "status": status.dtype}

    def meta(name: str) -> dict[str, Any]:
        if name in code_types:
            return {"name": name, "field_name": name, "pandas_type": "categorical",
                    "numpy_type": str(code_types[name]),
                    "metadata": {"num_categories": len(workloads if name == "workload" else statuses),
                                 "ordered": False}}
        return {"name": name, "field_name": name, "pandas_type": "float64", "numpy_type": "float64", "metadata": None}

    labels_dtype = "str" if pandas3 else "object"  # the dtype of the column labels' own index
    pandas_meta = {
        "index_columns": [{"kind": "range", "name": "request", "start": 0, "stop": n, "step": 1}],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": labels_dtype,
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [meta(name) for name in names],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": pandas_version,
    }
    table = pa.Table.from_arrays(arrays, names=names, metadata={b"pandas": _json.dumps(pandas_meta).encode("utf8")})
    # dictionary encoding for the two categoricals only: pandas' call tries it on every column and, for the
    # float columns, gives up after the first page (same values; about 50 ms less for 200,000 rows)
    pq.write_table(table, str(path), compression="snappy", use_dictionary=list(code_types))
    return Path(path)


class Result:
    """The outcome of one run.  Build one with :func:`meshsim.run`."""

    def __init__(self, source: RunRecord | Any):
        """``source``: a :class:`~meshsim.run_record.RunRecord`, or a Simulation that has run (its
        :meth:`~meshsim.sim.simulation.Simulation.record` is taken; the Result keeps no reference to it)."""
        record = source if isinstance(source, RunRecord) else source.record()
        #: the run as plain data: columns, name tables, time marks, counters, components' tables
        self.record: RunRecord = record
        self.scenario = record.scenario
        self.seed: int = record.seed
        self._status_names = record.status_names
        self.streaming: bool = record.streaming
        self._cache: dict[str, pd.DataFrame] = {}

    @cached_property
    def summary(self) -> dict[str, Any]:
        """The run's summary (:func:`~meshsim.run_summary.summarise`), computed on first use."""
        return summarise(self.record)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cache"] = {}  # tables are rebuilt from the record on demand
        return state

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

            c = self.record.requests
            names = self.record.workloads
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

            rec = self.record
            c = rec.span_rows
            inst = c["inst"]
            services = rec.services
            svc_of_inst = service_of_instance(rec)
            inst_hosts = rec.instances["host"]
            hosts = sorted(set(inst_hosts))
            host_of_inst = np.array([hosts.index(h) for h in inst_hosts], dtype=np.int32)
            ep_names = rec.endpoints
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
                    "instance": cat(inst, categories=rec.instances["name"]),
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

            rec = self.record
            c = rec.samples
            names = rec.instances["name"]
            services = rec.services
            svc_of_inst = service_of_instance(rec)
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

            self._cache["instances"] = pd.DataFrame(instance_rows(self.record)).set_index("instance")
        return self._cache["instances"]

    # -- output ------------------------------------------------------------------------
    def latencies(self) -> np.ndarray:
        """Latencies (ms) of successful requests after warm-up, in arrival order."""
        df = self.requests
        sel = (df["arrival_ms"] >= self.record.warmup_ms) & (df["status"] == "ok")
        return df["latency_ms"].to_numpy()[sel.to_numpy()]

    def component(self, name: str) -> ComponentRecord:
        """What a component that ran beside the request path left behind, by name (e.g. ``"registry"``):
        a read-only :class:`~meshsim.run_record.ComponentRecord` with its summary and tables.

        The registry's tables: ``res.component("registry").registry.frame("health")`` (also
        ``"reads"``, ``"writes"``, ``"watches"``, ``"dns_lookups"``, ``"commit_times"``), and its Raft
        cluster's ``.registry.cluster.frame("leader_changes")`` (also ``"events"``, ``"terms"``,
        ``"commits"``, ``"proposals"``, ``"windows"``, ``"messages"``).
        """
        return self.record.component(name)

    @property
    def mesh_events(self) -> pd.DataFrame:
        """Outlier ejections and returns: time_ms, event, caller, instance."""
        import pandas as pd

        return pd.DataFrame(self.record.mesh_events, columns=["time_ms", "event", "caller", "instance"])

    def to_chrome_trace(self, path: str | Path, requests: Any = None, raft: bool = True) -> Path:
        """Write the run as a Chrome trace (Perfetto, chrome://tracing); see :mod:`meshsim.trace_export`."""
        from .trace_export import to_chrome_trace

        return to_chrome_trace(self, path, requests=requests, raft=raft)

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.summary, indent=indent)

    def save(self, out_dir: str | Path, tables: bool = True, format: str = "parquet",
             background: bool = False) -> dict[str, Path]:
        """Write summary.json and (full mode) the requests table: ``requests.parquet``, or ``requests.csv``
        with ``format="csv"``.  Parquet needs pyarrow, a core dependency of meshsim.

        ``background=True`` (the command line) writes the parquet table in a child process while this process
        computes the summary, if it has not yet, and writes summary.json (:mod:`meshsim._background`; Linux,
        elsewhere one after the other): the same files, sooner on two cores.  Not for a process with threads
        of its own at work (a notebook's kernel): a fork copies only the calling thread.
        """
        if format not in ("parquet", "csv"):
            raise ValueError(f"format must be 'parquet' or 'csv', got {format!r}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = {"summary": out / "summary.json"}
        job = None
        if tables and not self.streaming:
            if format == "parquet":
                if importlib.util.find_spec("pyarrow") is None:  # pragma: no cover - a core dependency
                    raise ImportError("writing requests.parquet needs pyarrow, a core dependency of meshsim "
                                      "(pip install pyarrow), or ask for CSV (format='csv', --format csv)")
                p = out / "requests.parquet"
                if "requests" in self._cache:  # built already (and perhaps changed by the caller): write that
                    self.requests.to_parquet(p)
                elif background:
                    rec = self.record
                    job = _background.start(write_requests_table, requests_columns(rec), list(rec.workloads),
                                            list(rec.status_names), p)
                else:  # the same file straight from the record's columns, without pandas
                    write_requests_parquet(self.record, p)
            else:
                p = out / "requests.csv"
                self.requests.to_csv(p)
            written["requests"] = p
        try:
            written["summary"].write_text(self.to_json() + "\n", encoding="utf-8")
        finally:
            if job is not None:
                job.wait()
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
