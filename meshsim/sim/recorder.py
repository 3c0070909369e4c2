"""Columnar recording of requests, spans and samples.

Full mode appends to ``array.array`` columns (a few bytes per field, no Python
object per record) and converts them to numpy at the end without copying.
Streaming mode keeps log-bucketed histograms and counters only, so memory
does not grow with the number of requests.
"""

from __future__ import annotations

import math
import struct
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

#: Layout of a span row (47 bytes, packed): ids; the send and end times (ms,
#: float64, exact); then three parts of the span as float32 durations (about 7
#: significant digits): network (send -> arrive), queue (arrive -> start),
#: service (start -> end of local work).  Parts that did not happen (a call
#: refused on arrival never starts) are NaN.
SPAN_LAYOUT = (
    ("id", "i", "=i4"),
    ("parent", "i", "=i4"),
    ("req", "i", "=i4"),
    ("inst", "i", "=i4"),
    ("ep", "H", "=u2"),
    ("status", "b", "=i1"),
    ("send", "d", "=f8"),
    ("end", "d", "=f8"),
    ("network", "f", "=f4"),
    ("queue", "f", "=f4"),
    ("service", "f", "=f4"),
)
SPAN_STRUCT = struct.Struct("=" + "".join(code for _, code, _ in SPAN_LAYOUT))
SPAN_PACK = SPAN_STRUCT.pack
SPAN_DTYPE = np.dtype([(name, dt) for name, _, dt in SPAN_LAYOUT])
assert SPAN_DTYPE.itemsize == SPAN_STRUCT.size
#: endpoints are stored as uint16
MAX_ENDPOINTS = 65535


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
        # spans, one row per call, in order of completion: packed rows of SPAN_STRUCT
        # appended to one bytearray (one C call per span; read back with SPAN_DTYPE)
        self.s_rows = bytearray()
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
        """Record a finished call ``c`` (a Call object); the engine inlines this."""
        if self.spans_on:
            self.s_rows += SPAN_PACK(c.span, c.parent_span, c.req, inst_gid, ep_gid, c.status, c.t_send,
                                     t_end, c.t_arrive - c.t_send, c.t_start - c.t_arrive,
                                     c.t_svc - c.t_start)

    def span_rows(self) -> np.ndarray:
        """The spans as a structured array (a view of the packed rows, no copy)."""
        if not self.s_rows:
            return np.empty(0, dtype=SPAN_DTYPE)
        return np.frombuffer(self.s_rows, dtype=SPAN_DTYPE)

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
