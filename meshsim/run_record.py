"""A finished run as plain data: :class:`RunRecord`, what a :class:`~meshsim.result.Result` is made of.

``Simulation.record()`` builds one at the end of a run: the recorder's columns
(numpy views of them, not copies), the name tables (services, instances with
their service, host and zone, endpoints, workloads), the time marks (warm-up,
close, end, why it stopped early), the counters (network, routers, proxies,
faults, instance busy and queue areas) and, per component (the registry...),
its summary and tables.  Nothing in it refers to the kernel, SimPy, the
instances or the components, so the Simulation can go once the record is
taken, and a record pickles.  :func:`meshsim.run_summary.summarise` turns a
record into the run's summary dict.

>>> import meshsim
>>> from meshsim.sim.simulation import Simulation
>>> scenario = meshsim.load_scenario(meshsim.example("mmc"), {"run.duration": "10s", "metrics.warmup": "1s"})
>>> rec = Simulation(scenario, seed=1).run().record()
>>> rec.services, rec.instances["name"], len(rec.requests["arrival"])
(['server'], ['server-0'], 424)
>>> rec.warmup_ms, rec.close_ms, rec.end_ms > rec.close_ms
(1000.0, 10000.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from .scenario.model import Scenario
    from .stats import LogHistogram

#: a registry's tables, by their names in ``Registry.frame`` (the last seven are its Raft cluster's)
#: columns of the ``streams`` table (meshsim.registry.streaming.deliveries_frame)
STREAM_COLUMNS = ("time", "host", "service", "kind", "index", "delay_ms", "server", "sent_ms")
REGISTRY_TABLES = ("writes", "reads", "watches", "health", "dns_lookups", "commit_times", "streams", "leader_changes",
                   "events", "terms", "commits", "proposals", "windows", "messages")


class TableData:
    """A table kept as plain columns or rows until it is first asked for as a DataFrame (so a run's
    record does not import pandas): ``TableData(columns={...})`` or ``TableData(rows=[...], names=[...])``."""

    __slots__ = ("columns", "rows", "names")

    def __init__(self, columns: dict[str, Any] | None = None, rows: list | None = None,
                 names: list[str] | None = None):
        self.columns, self.rows, self.names = columns, rows, names

    def __getstate__(self) -> tuple:
        return self.columns, self.rows, self.names

    def __setstate__(self, state: tuple) -> None:
        self.columns, self.rows, self.names = state

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        if self.columns is not None:
            return pd.DataFrame(self.columns)
        return pd.DataFrame(self.rows, columns=self.names)


@dataclass(frozen=True)
class ComponentRecord:
    """What a component (or a part of one) left behind: its summary section and tables.

    ``frame(name)`` gives a table as a DataFrame (a copy: the record stays as
    it was); ``parts`` are sub-records reached as attributes (the registry
    component's ``.registry``, whose ``.cluster`` is its Raft cluster's);
    ``data`` holds plain values reached as attributes too (a cluster's
    ``servers``, ``events``, ``windows``...).  Tables may be stored as
    :class:`TableData`, made DataFrames on first use.
    """

    name: str
    summary: dict[str, Any] | None = None
    tables: dict[str, pd.DataFrame | TableData] = field(default_factory=dict)
    parts: dict[str, ComponentRecord] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def frame(self, which: str) -> pd.DataFrame:
        """The table ``which`` (a copy)."""
        tables = self.tables
        if which not in tables:
            names = ", ".join(tables) or "none"
            raise KeyError(f"no table {which!r} recorded for {self.name!r} (tables: {names})")
        t = tables[which]
        if isinstance(t, TableData):
            t = tables[which] = t.frame()
            return t.copy()
        return t.copy()

    def __getattr__(self, attr: str) -> Any:
        d = self.__dict__
        if not attr.startswith("__"):
            for where in ("parts", "data"):
                if attr in d.get(where, ()):
                    return d[where][attr]
        raise AttributeError(f"{d.get('name')!r}: a finished run keeps a component's summary and tables "
                             f"(.frame(name)), not the live object; no {attr!r} here")


@dataclass(frozen=True)
class StreamingCounters:
    """Streaming mode's histograms and counters (the recorder's, as they were at the end)."""

    counts: dict[int, int]  # status code -> requests measured
    arrivals_measured: int
    latency: LogHistogram
    batch_sums: list[float]  # fine batch means
    ok_in_window: int
    service_latency: dict[int, LogHistogram]  # instance gid -> service latency


@dataclass(frozen=True)
class RunRecord:
    """One finished run as data; times in simulated ms.

    ``requests``: the recorder's request columns (``workload, arrival, end,
    status``; full mode), ``span_rows``: its packed span rows (a structured
    array with :data:`~meshsim.sim.recorder.SPAN_DTYPE`), ``samples``:
    ``time, inst, queue, busy``.  ``instances`` is a name table of columns,
    one entry per instance in gid order: name, service, host, zone, workers,
    arrivals, completed, rejected, refused, crashes and the (busy, queue) areas
    at the end of warm-up and when arrivals stopped.
    """

    scenario: Scenario
    seed: int
    streaming: bool
    spans_on: bool
    status_names: list[str]
    requests: dict[str, np.ndarray]
    span_rows: np.ndarray
    samples: dict[str, np.ndarray]
    services: list[str]
    workloads: list[str]
    endpoints: list[str]
    instances: dict[str, list]
    hosts: dict[str, str]  # host -> zone
    warmup_ms: float
    close_ms: float
    end_ms: float
    partial_reason: str | None
    in_flight: int
    network: dict[str, int]
    fault_log: list[tuple[float, str, str]]
    mesh_events: list[tuple[float, str, str, str]]
    proxies: list[dict[str, Any]]
    routers: list[dict[str, Any]]  # service, hedge, summary (what the router did)
    components: list[ComponentRecord]
    stream: StreamingCounters | None = None

    def component(self, name: str) -> ComponentRecord:
        """The record of the component ``name`` (e.g. ``"registry"``)."""
        for c in self.components:
            if c.name == name:
                return c
        names = ", ".join(c.name for c in self.components) or "none"
        raise KeyError(f"no component {name!r} in this run (components: {names})")

    def nbytes(self) -> int:
        """Bytes of the recorded columns and span rows."""
        return int(sum(a.nbytes for a in self.requests.values()) + self.span_rows.nbytes
                   + sum(a.nbytes for a in self.samples.values()))


class _Clock:
    """The end time of a finished run where a live kernel's ``now`` was read."""

    __slots__ = ("now",)

    def __init__(self, now: float):
        self.now = now

    def __getstate__(self) -> float:
        return self.now

    def __setstate__(self, now: float) -> None:
        self.now = now


class _Log:
    """A recorded message log's table (``.frame()``), as a cluster's ``message_log``."""

    __slots__ = ("table",)

    def __init__(self, table: pd.DataFrame | TableData):
        self.table = table

    def __getstate__(self) -> pd.DataFrame | TableData:
        return self.table

    def __setstate__(self, table: pd.DataFrame | TableData) -> None:
        self.table = table

    def frame(self) -> pd.DataFrame:
        t = self.table
        return t.frame() if isinstance(t, TableData) else t.copy()


def _columns(cols: dict[str, list]) -> dict[str, list]:
    return {k: list(v) for k, v in cols.items()}


def cluster_record(cluster: Any, summary: dict[str, Any] | None = None) -> ComponentRecord:
    """A Raft cluster's record: its tables (as ``cluster.frame(name)`` gives them) and the columns a
    Raft timeline reads."""
    from .registry.raft_shell import MessageLog

    log = cluster.message_log
    cols = {name: _columns(getattr(cluster, name)) for name in ("leader_changes", "events", "terms", "commits",
                                                                "proposals")}
    windows = [tuple(w) for w in cluster.windows]
    tables: dict[str, Any] = {name: TableData(columns=c) for name, c in cols.items()}
    tables["windows"] = TableData(rows=windows, names=["start", "end"])
    # the messages hold live Message objects: made a frame now (pandas only when messages were recorded)
    tables["messages"] = log.frame() if log is not None and len(log) else TableData(rows=[], names=list(MessageLog.COLUMNS))
    return ComponentRecord(
        name=cluster.name, summary=summary, tables=tables,
        data={"servers": {n: s.host for n, s in cluster.servers.items()}, **cols, "windows": windows,
              "message_log": None if log is None else _Log(tables["messages"]),
              "_started_at": cluster._started_at, "kernel": _Clock(cluster.kernel.now)})


def registry_record(registry: Any) -> ComponentRecord:
    """A registry's record: its tables (as ``registry.frame(name)`` gives them) and its cluster's
    (``.cluster``)."""
    cluster = cluster_record(registry.cluster)
    commit_times = list(registry.commit_times)
    tables: dict[str, Any] = {name: TableData(columns=_columns(getattr(registry, name).columns()))
                              for name in ("writes", "reads")}
    tables.update({name: TableData(columns=_columns(getattr(registry, name)))
                   for name in ("watches", "health", "dns_lookups")})
    tables["commit_times"] = TableData(columns={"index": np.arange(1, len(commit_times) + 1), "time": commit_times})
    hub = getattr(registry, "_hub", None)  # streaming subscriptions (meshsim.registry.streaming)
    tables["streams"] = TableData(rows=list(hub.deliveries) if hub is not None else [], names=list(STREAM_COLUMNS))
    tables.update(cluster.tables)
    return ComponentRecord(name=registry.name, tables=tables, parts={"cluster": cluster},
                           data={"commit_times": commit_times})


def component_record(component: Any) -> ComponentRecord:
    """The record of a component: its own ``record()`` if it has one, else its summary (and, for a
    registry component or a Raft cluster, their tables)."""
    own = getattr(component, "record", None)
    if callable(own):
        return own()
    summary = component.summary()
    reg = getattr(component, "registry", None)
    if reg is not None and hasattr(reg, "cluster") and hasattr(reg, "frame"):
        return ComponentRecord(component.name, summary, parts={"registry": registry_record(reg)})
    if all(hasattr(component, a) for a in ("leader_changes", "events", "servers", "frame")):  # a RaftCluster
        rec = cluster_record(component, summary)
        return ComponentRecord(component.name, summary, rec.tables, data=rec.data)
    return ComponentRecord(component.name, summary)


def record_of(sim: Any) -> RunRecord:
    """The record of a Simulation that has run (see :meth:`Simulation.record`)."""
    from .sim.recorder import STATUS

    rec = sim.recorder
    insts = sim.instances
    warm, close = sim.snapshots["warmup"], sim.snapshots["close"]
    areas_w = [warm.get(i.gid, (0.0, 0.0)) for i in insts]
    areas_c = [close.get(i.gid) or i.areas(sim.end_time) for i in insts]
    instances = {
        "name": [i.name for i in insts],
        "service": [i.service.name for i in insts],
        "host": [i.host for i in insts],
        "zone": [sim.hosts[i.host] for i in insts],
        "workers": [i.workers for i in insts],
        "arrivals": [i.arrivals for i in insts],
        "completed": [i.completed for i in insts],
        "rejected": [i.rejected for i in insts],
        "refused": [i.refused for i in insts],
        "crashes": [i.crashes for i in insts],
        "busy_area_warmup": [a[0] for a in areas_w],
        "queue_area_warmup": [a[1] for a in areas_w],
        "busy_area_close": [a[0] for a in areas_c],
        "queue_area_close": [a[1] for a in areas_c],
    }
    stream = None
    if rec.streaming:
        stream = StreamingCounters(counts=dict(rec.counts), arrivals_measured=rec.arrivals_measured,
                                   latency=rec.latency, batch_sums=list(rec.batch_sums),
                                   ok_in_window=rec.ok_in_window, service_latency=dict(rec.service_latency))
    return RunRecord(
        scenario=sim.scenario, seed=sim.seed, streaming=rec.streaming, spans_on=rec.spans_on,
        status_names=list(STATUS),
        requests=rec.columns("r_"), span_rows=rec.span_rows(), samples=rec.columns("t_"),
        services=list(sim.services), workloads=list(sim.scenario.workloads),
        endpoints=[f"{e.service}.{e.name}" for e in sim.endpoints],
        instances=instances, hosts=dict(sim.hosts),
        warmup_ms=sim.warmup, close_ms=sim.close_time, end_ms=sim.end_time,
        partial_reason=getattr(sim, "partial_reason", None), in_flight=sim.inflight,
        network={"messages": sim.network.messages_sent, "dropped": sim.network.messages_dropped},
        fault_log=list(sim.fault_log), mesh_events=list(sim.mesh_events),
        proxies=[p.summary(sim.end_time) for p in sim.proxies],
        routers=[{"service": r.service.name, "hedge": bool(getattr(r, "hedge", False)), "summary": r.summary()}
                 for r in sim.routers],
        components=[component_record(c) for c in sim.components],
        stream=stream,
    )


__all__ = ["RunRecord", "ComponentRecord", "TableData", "StreamingCounters", "record_of", "component_record",
           "registry_record", "cluster_record"]
