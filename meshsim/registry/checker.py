"""A small linearizability checker for registry reads against writes.

Each read returns the Raft index of the catalog state it was answered from
(``applied``); each acknowledged write has the index it was committed at.
For a linearizable history:

1. a read must reflect every write that completed before it was invoked:
   its index >= the index of each such write;
2. reads must not go back in time: a read invoked after another read
   completed returns an index >= that read's index.

Both are checked in O(n log n) with a sweep over invocation times.
Consistent reads must pass; stale reads may fail.

>>> ok = check_history(writes=[(0.0, 5.0, 3)], reads=[(6.0, 8.0, 3)])
>>> ok.ok, ok.violations
(True, [])
>>> bad = check_history(writes=[(0.0, 5.0, 3)], reads=[(6.0, 8.0, 2), (9.0, 9.5, 4), (10.0, 11.0, 3)])
>>> bad.ok, [v.kind for v in bad.violations]
(False, ['missed_write', 'went_back'])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CheckResult", "Violation", "check_history", "check_registry"]

#: (invoked_ms, completed_ms, index)
Op = tuple[float, float, int]


@dataclass(frozen=True)
class Violation:
    """Read ``read`` (its position in the reads given) saw ``index`` but needed at least ``required``."""

    kind: str  # "missed_write" or "went_back"
    read: int
    index: int
    required: int


@dataclass
class CheckResult:
    ok: bool
    violations: list[Violation] = field(default_factory=list)
    reads: int = 0
    writes: int = 0


def check_history(writes: Iterable[Op], reads: Sequence[Op]) -> CheckResult:
    """Check reads ``(invoked, completed, index)`` against acknowledged writes ``(invoked, completed, index)``."""
    ws = sorted((c, i) for _inv, c, i in writes)
    reads = list(reads)
    order = sorted(range(len(reads)), key=lambda k: reads[k][0])
    done_reads = sorted((reads[k][1], reads[k][2]) for k in range(len(reads)))
    violations: list[Violation] = []
    wi = ri = 0
    max_write = max_read = -math.inf
    for k in order:
        inv, _c, index = reads[k]
        while wi < len(ws) and ws[wi][0] < inv:
            max_write = max(max_write, ws[wi][1])
            wi += 1
        while ri < len(done_reads) and done_reads[ri][0] < inv:
            max_read = max(max_read, done_reads[ri][1])
            ri += 1
        if index < max_write:
            violations.append(Violation("missed_write", k, index, int(max_write)))
        elif index < max_read:
            violations.append(Violation("went_back", k, index, int(max_read)))
    return CheckResult(not violations, violations, len(reads), len(ws))


def check_registry(registry: Any, modes: Iterable[str] = ("consistent",)) -> CheckResult:
    """Check the successful reads of ``modes`` recorded by a Registry against its acknowledged writes."""
    w, r = registry.writes, registry.reads
    modes = set(modes)
    writes = [(w["invoked"][i], w["time"][i], w["raft_index"][i]) for i in range(len(w["time"])) if w["ok"][i]]
    reads = [(r["invoked"][i], r["time"][i], r["applied"][i]) for i in range(len(r["time"]))
             if r["ok"][i] and r["mode"][i] in modes and r["op"][i] == "read"]
    return check_history(writes, reads)
