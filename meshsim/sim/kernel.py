"""The thin layer over SimPy's event loop that the request path runs on.

SimPy's ``Environment.step`` pops an object from its heap and calls each
function in its ``callbacks`` list with the object.  Anything with a
``callbacks`` attribute and a true ``_ok`` can therefore ride on SimPy's loop
without being a ``simpy.Event``: a :class:`Carrier`.  The request path makes
its call objects carriers and schedules them directly, so a service
completion costs one heap push and one function call, not a generator
process and several events.  Ordinary SimPy processes (the registry, control
plane) share the same loop and clock.

>>> k = Kernel()
>>> seen = []
>>> _ = k.call_later(5.0, seen.append, "five")
>>> _ = k.call_later(2.0, seen.append, "two")
>>> k.env.run()
>>> seen, k.now
(['two', 'five'], 5.0)
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heapify, heappush
from typing import Any

import simpy

#: SimPy's normal event priority; carriers use it so they interleave with events fairly.
NORMAL = 1


class Carrier:
    """Base for objects scheduled directly on SimPy's heap (see module doc)."""

    __slots__ = ("callbacks",)
    _ok = True
    _value = None


def _noop(_arg: Any) -> None:
    return None


class Timer(Carrier):
    """A scheduled call ``fn(arg)``; :meth:`cancel` turns it into a no-op."""

    __slots__ = ("fn", "arg", "kernel")

    def __init__(self, fn: Callable[[Any], Any], arg: Any, kernel: Kernel | None = None):
        self.fn = fn
        self.arg = arg
        self.kernel = kernel

    def cancel(self) -> None:
        if self.fn is _noop:
            return
        self.fn = _noop
        self.arg = None  # let go of what it would have been called with
        k = self.kernel
        if k is not None and self.callbacks is not None:  # still on the heap (SimPy clears callbacks on pop)
            k._cancelled += 1
            if k._cancelled >= COMPACT_MIN and 2 * k._cancelled > len(k.env._queue):
                k.compact()


def _fire(timer: Timer) -> None:
    timer.fn(timer.arg)


#: Shared callbacks list of all timers; SimPy only iterates it, never mutates it.
_FIRE = [_fire]

#: cancelled timers stay on the heap until this many, and half of it, are dead; then it is rebuilt
COMPACT_MIN = 1024


class Kernel:
    """The simulation clock (milliseconds) and scheduler, on a ``simpy.Environment``."""

    def __init__(self, env: simpy.Environment | None = None):
        self.env = env if env is not None else simpy.Environment()
        self._schedule = self.env.schedule
        self._cancelled = 0  # cancelled timers on the heap (an upper bound)

    @property
    def now(self) -> float:
        """Current simulated time in milliseconds."""
        return self.env._now

    def call_later(self, delay_ms: float, fn: Callable[[Any], Any], arg: Any = None) -> Timer:
        """Call ``fn(arg)`` after ``delay_ms``; returns a cancellable Timer."""
        t = Timer(fn, arg, self)
        t.callbacks = _FIRE
        env = self.env
        heappush(env._queue, (env._now + delay_ms, NORMAL, next(env._eid), t))  # env.schedule, inlined
        return t

    def call_at(self, time_ms: float, fn: Callable[[Any], Any], arg: Any = None) -> Timer:
        """Call ``fn(arg)`` at absolute time ``time_ms`` (not before now)."""
        return self.call_later(max(0.0, time_ms - self.env.now), fn, arg)

    def compact(self) -> None:
        """Drop cancelled timers from the heap.

        Long timeouts that are nearly always cancelled (a blocking query's,
        minutes long) would otherwise pile up on the heap and make every push,
        pop and garbage collection slower.  Entries are ordered by (time,
        priority, sequence number), all distinct, so the events that remain run
        in the same order: results do not change.
        """
        q = self.env._queue
        q[:] = [e for e in q if not (type(e[3]) is Timer and e[3].fn is _noop)]
        heapify(q)
        self._cancelled = 0

    def push(self, carrier: Carrier, delay_ms: float, callbacks: list) -> None:
        """Schedule a carrier: after ``delay_ms`` each of ``callbacks`` gets it."""
        carrier.callbacks = callbacks
        self._schedule(carrier, NORMAL, delay_ms)
