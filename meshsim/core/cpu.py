"""A server's processors as a FIFO multi-core queue: when does a piece of work finish?

:class:`CpuQueue` serves jobs in arrival order on ``cores`` identical cores
(the M/G/c discipline of a Go server whose goroutines share GOMAXPROCS
threads, in the simplest form): a job admitted at ``now`` starts when the
earliest core is free and runs for its work time.  It is pure (no SimPy):
the registry shell asks it when an answer is ready and sends the answer then.

:class:`ServeCost` prices what a registry server sends: a fixed cost per
message (an RPC answer, a stream event or snapshot) plus a cost per instance
in it (encoding).  With blocking queries a change to a service costs each
watcher the whole service; with streaming one instance (see
docs/registry.md, "At global scale").

>>> q = CpuQueue(cores=2)
>>> [q.admit(0.0, 1.0), q.admit(0.0, 1.0), q.admit(0.0, 1.0), q.admit(5.0, 1.0)]
[1.0, 1.0, 2.0, 6.0]
>>> q.jobs, q.busy_ms, q.wait_ms, q.max_wait_ms
(4, 4.0, 1.0, 1.0)
>>> ServeCost(per_message_ms=0.05, per_instance_ms=0.01).work_ms(85)
0.9
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from heapq import heapreplace

__all__ = ["CpuQueue", "ServeCost"]


class CpuQueue:
    """Jobs served first come, first served on ``cores`` cores (see module doc).  Counts the jobs, the busy
    time, the total and the largest wait before a core was free (ms)."""

    __slots__ = ("cores", "_free", "jobs", "busy_ms", "wait_ms", "max_wait_ms")

    def __init__(self, cores: int):
        if not isinstance(cores, int) or cores < 1:
            raise ValueError(f"cores must be a positive integer, got {cores!r}")
        self.cores = cores
        self._free = [-math.inf] * cores  # a heap of the times each core is free
        self.jobs = 0
        self.busy_ms = self.wait_ms = self.max_wait_ms = 0.0

    def admit(self, now_ms: float, work_ms: float) -> float:
        """Queue ``work_ms`` of work arriving at ``now_ms`` (arrivals in time order); returns its finish time."""
        if not work_ms >= 0.0:
            raise ValueError(f"work_ms must be >= 0, got {work_ms!r}")
        free = self._free[0]
        start = free if free > now_ms else now_ms
        finish = start + work_ms
        heapreplace(self._free, finish)
        wait = start - now_ms
        self.jobs += 1
        self.busy_ms += work_ms
        self.wait_ms += wait
        if wait > self.max_wait_ms:
            self.max_wait_ms = wait
        return finish

    def backlog_ms(self, now_ms: float) -> float:
        """How long a job arriving now would wait."""
        free = self._free[0]
        return free - now_ms if free > now_ms else 0.0

    def utilisation(self, duration_ms: float) -> float:
        """Busy time over ``duration_ms`` of ``cores`` cores (can exceed 1 when work is still queued)."""
        return self.busy_ms / (duration_ms * self.cores) if duration_ms > 0 else math.nan


@dataclass(frozen=True)
class ServeCost:
    """Work (ms of one core) to send one message with ``instances`` instances in it:
    ``per_message_ms + per_instance_ms * instances``."""

    per_message_ms: float = 0.05
    per_instance_ms: float = 0.01

    def __post_init__(self):
        for name in ("per_message_ms", "per_instance_ms"):
            v = getattr(self, name)
            if not (v >= 0.0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")

    def work_ms(self, instances: int) -> float:
        return self.per_message_ms + self.per_instance_ms * instances
