"""Columnar recording of requests, spans and samples.

Full mode appends to ``array.array`` columns (a few bytes per field, no Python
object per record) and converts them to numpy at the end without copying.
Streaming mode keeps log-bucketed histograms and counters only, so memory
does not grow with the number of requests.
"""

from __future__ import annotations

import math
from array import array

import numpy as np

from ..stats import LogHistogram

#: Status codes of requests and spans.  0 is success; later layers may add reasons.
STATUS: list[str] = [
    "ok",
    "queue_full",
    "connection_refused",
    "instance_crashed",
    "host_down",
    "network_loss",
    "partitioned",
    "timeout",
]
_CODES = {name: i for i, name in enumerate(STATUS)}

OK = 0
QUEUE_FULL = _CODES["queue_full"]
REFUSED = _CODES["connection_refused"]
CRASHED = _CODES["instance_crashed"]
TIMEOUT = _CODES["timeout"]


def status_code(reason: str) -> int:
    """The code of a status name, registering new reasons (e.g. ``circuit_open``)."""
    code = _CODES.get(reason)
    if code is None:
        code = _CODES[reason] = len(STATUS)
        STATUS.append(reason)
    return code


NAN = math.nan


class Recorder:
    """Full mode: one row per request and per span, in typed columns."""

    streaming = False

    def __init__(self, spans: bool = True):
        self.spans_on = spans
        # requests, indexed by request id
        self.r_workload = array("h")
        self.r_arrival = array("d")
        self.r_end = array("d")
        self.r_status = array("b")
        # spans, one row per call, in order of completion
        self.s_id = array("i")
        self.s_parent = array("i")
        self.s_req = array("i")
        self.s_inst = array("i")
        self.s_ep = array("h")
        self.s_status = array("b")
        self.s_send = array("d")
        self.s_arrive = array("d")
        self.s_start = array("d")
        self.s_svc = array("d")
        self.s_end = array("d")
        # samples of instance state
        self.t_time = array("d")
        self.t_inst = array("i")
        self.t_queue = array("i")
        self.t_busy = array("i")

    def request_start(self, workload: int, t: float) -> int:
        rid = len(self.r_arrival)
        self.r_workload.append(workload)
        self.r_arrival.append(t)
        self.r_end.append(NAN)
        self.r_status.append(-1)
        return rid

    def request_end(self, rid: int, t: float, status: int) -> None:
        self.r_end[rid] = t
        self.r_status[rid] = status

    def span(self, c, inst_gid: int, ep_gid: int, t_end: float) -> None:
        """Record a finished call ``c`` (a Call object)."""
        if not self.spans_on:
            return
        self.s_id.append(c.span)
        self.s_parent.append(c.parent_span)
        self.s_req.append(c.req)
        self.s_inst.append(inst_gid)
        self.s_ep.append(ep_gid)
        self.s_status.append(c.status)
        self.s_send.append(c.t_send)
        self.s_arrive.append(c.t_arrive)
        self.s_start.append(c.t_start)
        self.s_svc.append(c.t_svc)
        self.s_end.append(t_end)

    def sample(self, t: float, inst_gid: int, queue: int, busy: int) -> None:
        self.t_time.append(t)
        self.t_inst.append(inst_gid)
        self.t_queue.append(queue)
        self.t_busy.append(busy)

    def columns(self, prefix: str) -> dict[str, np.ndarray]:
        """Zero-copy numpy views of the columns whose names start with ``prefix``."""
        out = {}
        for name, col in vars(self).items():
            if name.startswith(prefix) and isinstance(col, array):
                out[name[len(prefix):]] = np.frombuffer(col, dtype=col.typecode) if len(col) else np.empty(0, col.typecode)
        return out


class StreamingRecorder(Recorder):
    """Streaming mode: histograms and counters; memory independent of run length.

    Only requests that arrive at or after ``warmup`` are counted.  Latency
    means by batch (for the confidence interval) are kept per fixed-size batch
    of completed requests, so their number stays small.
    """

    streaming = True

    def __init__(self, warmup: float, relative_error: float, batch_size: int):
        super().__init__(spans=False)
        self.warmup = warmup
        self.err = relative_error
        self.latency = LogHistogram(relative_error=relative_error)
        self.service_latency: dict[int, LogHistogram] = {}
        self.counts: dict[int, int] = {}
        self.arrivals = 0
        self.arrivals_measured = 0
        self.batch_size = max(1, batch_size)
        self.batch_sums: list[float] = []
        self._bsum = 0.0
        self._bn = 0
        self.ok_in_window = 0
        self.close_time = math.inf  # set when arrivals stop
        self._req_arrival: dict[int, float] = {}  # requests in flight only

    def request_start(self, workload: int, t: float) -> int:
        rid = self.arrivals
        self.arrivals += 1
        if t >= self.warmup:
            self.arrivals_measured += 1
            self._req_arrival[rid] = t
        return rid

    def request_end(self, rid: int, t: float, status: int) -> None:
        t0 = self._req_arrival.pop(rid, None)
        if t0 is None:
            return
        self.counts[status] = self.counts.get(status, 0) + 1
        if status == OK:
            lat = t - t0
            self.latency.add(lat)
            if t <= self.close_time:
                self.ok_in_window += 1
            self._bsum += lat
            self._bn += 1
            if self._bn == self.batch_size:
                self.batch_sums.append(self._bsum / self._bn)
                self._bsum, self._bn = 0.0, 0

    def span(self, c, inst_gid: int, ep_gid: int, t_end: float) -> None:
        if c.t_send < self.warmup:
            return
        h = self.service_latency.get(inst_gid)
        if h is None:
            h = self.service_latency[inst_gid] = LogHistogram(relative_error=self.err)
        if c.status == OK:
            h.add(t_end - c.t_arrive)
