"""How long a Consul server waits between tries while it holds an RPC that has no usable leader.

A Consul server that gets a request it must send to the leader, and knows
no leader (or cannot reach it), does not fail at once: it holds the request
and tries again, until ``rpc_hold_timeout`` (7 s by default) has passed.
Since hashicorp/consul PR #16165 ("rpc: reduce max retries", Consul 1.15)
the waits between tries back off.  In the current source
(``agent/consul/rpc.go``):

* ``forwardRequestToLeader`` counts its tries (``retryCount``, 1 for the
  first) and remembers the previous wait (``previousJitter``, 0 at first);
  after a failed try that ``canRetry`` allows it waits
  ``lib.RandomStaggerWithRange(previousJitter, getWaitTime(hold, retryCount))``;
* ``getWaitTime(hold, n)`` is ``initial * 2**(n - 1)`` whole milliseconds,
  ``initial = hold_ms // JitterFraction`` (integer division, at least 1 ms;
  ``structs.JitterFraction`` = 16): 437, 874, 1748, 3496, 6992 ms, ... for
  the 7 s default;
* ``lib.RandomStaggerWithRange(lo, hi)`` (``lib/cluster.go``) is
  ``lo + RandomStagger(hi - lo)``, uniform on [lo, hi): so the n-th wait is
  uniform between the previous wait and the n-th ceiling, and the waits never
  shrink;
* ``canRetry`` stops the loop once more than the hold timeout has passed
  since the first try (``time.Since(start) > RPCHoldTimeout`` for writes and
  plain reads; ``QueryOptions.HasTimedOut`` in ``agent/structs/structs.go``
  adds the blocking query's own timeout, ``wait + wait/16``, for a blocking
  read).  The check comes *before* a wait: there is no cap on the ceiling and
  nothing shortens the last wait, so the request is answered "No cluster
  leader" at the first try after the hold timeout, which can be up to one
  (growing) wait later than the timeout itself (with the defaults, when no
  leader ever appears, between 7.0 s and about 13.5 s after the first try).

Before PR #16165 every wait was ``RandomStagger(hold / 16)``, uniform on
[0, 437.5 ms) for 7 s, for as long as the hold lasted.

This module is pure arithmetic (no simulation): :class:`Registry
<meshsim.registry.catalog.Registry>` calls :func:`next_hold_wait_ms` with a
uniform draw each time it holds a request.

>>> [hold_wait_ceiling_ms(7_000.0, n) for n in range(1, 6)]
[437.0, 874.0, 1748.0, 3496.0, 6992.0]
>>> next_hold_wait_ms(7_000.0, 1, 0.0, 0.5)       # first wait: U(0, 437)
218.5
>>> next_hold_wait_ms(7_000.0, 2, 218.5, 0.5)     # second: U(218.5, 874)
546.25
>>> s = hold_schedule(7_000.0, [0.999] * 10)      # draws near 1: the slowest schedule
>>> [round(w) for w in s.waits_ms], round(s.answered_ms)
([437, 874, 1747, 3494, 6989], 13540)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["JITTER_FRACTION", "HoldSchedule", "hold_budget_ms", "hold_schedule", "hold_wait_ceiling_ms",
           "next_hold_wait_ms"]

#: hashicorp/consul ``structs.JitterFraction``: the first hold ceiling is the hold timeout / 16
JITTER_FRACTION = 16


def hold_wait_ceiling_ms(hold_timeout_ms: float, n: int) -> float:
    """The upper bound (exclusive) of the ``n``-th wait, n = 1, 2, ... (Consul's ``getWaitTime``).

    Whole milliseconds as in Go: ``(hold_ms // 16) * 2**(n - 1)``, the first at least 1 ms.

    >>> hold_wait_ceiling_ms(7_000.0, 1), hold_wait_ceiling_ms(7_000.0, 3), hold_wait_ceiling_ms(10.0, 2)
    (437.0, 1748.0, 2.0)
    """
    if n < 1:
        raise ValueError(f"the first wait is n = 1, got n = {n}")
    initial = max(int(math.floor(hold_timeout_ms)) // JITTER_FRACTION, 1)
    return float(initial * 2 ** (n - 1))


def next_hold_wait_ms(hold_timeout_ms: float, n: int, previous_ms: float, u: float) -> float:
    """The ``n``-th wait for a uniform draw ``u`` in [0, 1): uniform on [previous wait, n-th ceiling)
    (Consul's ``RandomStaggerWithRange(previousJitter, getWaitTime(hold, n))``).

    >>> next_hold_wait_ms(7_000.0, 3, 500.0, 0.0), next_hold_wait_ms(7_000.0, 3, 500.0, 0.5)
    (500.0, 1124.0)
    """
    hi = hold_wait_ceiling_ms(hold_timeout_ms, n)
    lo = min(max(previous_ms, 0.0), hi)
    return lo + (hi - lo) * u


def hold_budget_ms(hold_timeout_ms: float, op: str = "read", wait_ms: float = 0.0) -> float:
    """How long after its first try a held request may still be retried (Consul's ``HasTimedOut``):
    the hold timeout, plus ``wait + wait/16`` for a blocking read (``op="block"``).

    >>> hold_budget_ms(7_000.0), hold_budget_ms(7_000.0, "block", 16_000.0)
    (7000.0, 24000.0)
    """
    if op == "block":
        return hold_timeout_ms + wait_ms + wait_ms / JITTER_FRACTION
    return hold_timeout_ms


@dataclass(frozen=True)
class HoldSchedule:
    """The tries of a request held while no leader ever appears: the waits and when it is answered."""

    waits_ms: tuple[float, ...]
    #: time from the first try to the try that finds the budget spent (and answers "no cluster leader")
    answered_ms: float


def hold_schedule(hold_timeout_ms: float, draws: Iterable[float], budget_ms: float | None = None) -> HoldSchedule:
    """The waits a server makes, one uniform draw each, when no leader appears at all; the tries
    themselves take no time.  It stops at the first try more than ``budget_ms`` (default: the hold
    timeout) after the first, as Consul's ``canRetry`` does.

    >>> s = hold_schedule(7_000.0, [0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    >>> [round(w, 1) for w in s.waits_ms], round(s.answered_ms, 1)
    ([0.0, 437.0, 1092.5, 2294.2, 4643.1], 8466.9)
    """
    budget = hold_timeout_ms if budget_ms is None else budget_ms
    waits: list[float] = []
    elapsed, previous = 0.0, 0.0
    for u in draws:
        if elapsed > budget:
            break
        previous = next_hold_wait_ms(hold_timeout_ms, len(waits) + 1, previous, u)
        waits.append(previous)
        elapsed += previous
    else:
        if elapsed <= budget:
            raise ValueError("ran out of draws before the hold budget was spent")
    return HoldSchedule(tuple(waits), elapsed)
