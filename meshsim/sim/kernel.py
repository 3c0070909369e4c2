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
from heapq import heappush
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

    __slots__ = ("fn", "arg")

    def __init__(self, fn: Callable[[Any], Any], arg: Any):
        self.fn = fn
        self.arg = arg

    def cancel(self) -> None:
        self.fn = _noop


def _fire(timer: Timer) -> None:
    timer.fn(timer.arg)


#: Shared callbacks list of all timers; SimPy only iterates it, never mutates it.
_FIRE = [_fire]


class Kernel:
    """The simulation clock (milliseconds) and scheduler, on a ``simpy.Environment``."""

    def __init__(self, env: simpy.Environment | None = None):
        self.env = env if env is not None else simpy.Environment()
        self._schedule = self.env.schedule

    @property
    def now(self) -> float:
        """Current simulated time in milliseconds."""
        return self.env._now

    def call_later(self, delay_ms: float, fn: Callable[[Any], Any], arg: Any = None) -> Timer:
        """Call ``fn(arg)`` after ``delay_ms``; returns a cancellable Timer."""
        t = Timer(fn, arg)
        t.callbacks = _FIRE
        env = self.env
        heappush(env._queue, (env._now + delay_ms, NORMAL, next(env._eid), t))  # env.schedule, inlined
        return t

    def call_at(self, time_ms: float, fn: Callable[[Any], Any], arg: Any = None) -> Timer:
        """Call ``fn(arg)`` at absolute time ``time_ms`` (not before now)."""
        return self.call_later(max(0.0, time_ms - self.env.now), fn, arg)

    def push(self, carrier: Carrier, delay_ms: float, callbacks: list) -> None:
        """Schedule a carrier: after ``delay_ms`` each of ``callbacks`` gets it."""
        carrier.callbacks = callbacks
        self._schedule(carrier, NORMAL, delay_ms)
