"""The thin layer over SimPy's event loop that the request path runs on.

SimPy's ``Environment.step`` pops an object from its heap and calls each
function in its ``callbacks`` list with the object.  Anything with a
``callbacks`` attribute and a true ``_ok`` can therefore ride on SimPy's loop
without being a ``simpy.Event``: a :class:`Carrier`.  The request path makes
its call objects carriers and schedules them directly, so a service
completion costs one heap push and one function call, not a generator
process and several events.  Ordinary SimPy processes (the registry, control
plane) share the same loop and clock.

This module is the only one that touches SimPy's private state (its heap,
event counter and clock; tests/test_simpy_boundary.py checks).  The rest of
the package reads the time with :attr:`Kernel.now` or, on hot paths,
``Kernel.clock()``, and schedules with :meth:`Kernel.push` /
:meth:`Kernel.push_at` (carriers) and :meth:`Kernel.call_later` /
:meth:`Kernel.call_at` (timers); tests/test_kernel_contract.py pins what
this relies on against SimPy's own ``schedule`` and ``step``.

>>> k = Kernel()
>>> seen = []
>>> _ = k.call_later(5.0, seen.append, "five")
>>> _ = k.call_later(2.0, seen.append, "two")
>>> k.env.run()
>>> seen, k.now
(['two', 'five'], 5.0)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial
from heapq import heapify, heappop, heappush
from operator import attrgetter
from typing import Any

import simpy
from simpy.core import EmptySchedule, StopSimulation

from ..errors import ScenarioError
from ..units import MAX_DURATION_MS, format_duration

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
        # SimPy's heap and event-id counter, bound once: pushing onto them is
        # Environment.schedule's body minus a call (pinned by tests/test_kernel_contract.py)
        self._heap: list = self.env._queue
        self._eid = self.env._eid
        self._eid0 = next(self._eid) + 1  # ids handed out before this kernel (and the one taken here)
        #: the current simulated time (ms) as a zero-argument call, for hot paths: ``now = clock()``
        #: costs about a third of the :attr:`now` property and equals it
        self.clock: Callable[[], float] = _clock_of(self.env)

    @property
    def now(self) -> float:
        """Current simulated time in milliseconds."""
        return self.env._now

    def call_later(self, delay_ms: float, fn: Callable[[Any], Any], arg: Any = None) -> Timer:
        """Call ``fn(arg)`` after ``delay_ms``; returns a cancellable Timer."""
        return self.call_exactly_at(self.env._now + delay_ms, fn, arg)  # env.schedule's time

    def call_at(self, time_ms: float, fn: Callable[[Any], Any], arg: Any = None) -> Timer:
        """Call ``fn(arg)`` at absolute time ``time_ms`` (not before now), at the time :meth:`due` says."""
        return self.call_exactly_at(self.due(self.env._now, time_ms), fn, arg)

    @staticmethod
    def due(now_ms: float, time_ms: float) -> float:
        """The time a :meth:`call_at` for ``time_ms`` made when the clock read ``now_ms`` runs at:
        ``now + max(0, time - now)``, which may differ from ``time_ms`` in the last bit.

        >>> Kernel.due(0.1, 0.45), Kernel.due(5.0, 2.0)
        (0.44999999999999996, 5.0)
        """
        return now_ms + max(0.0, time_ms - now_ms)

    def call_exactly_at(self, time_ms: float, fn: Callable[[Any], Any], arg: Any = None) -> Timer:
        """Call ``fn(arg)`` at ``time_ms`` as it is (the caller makes sure it is not before now): for a
        shell that worked out, with :meth:`due`, when calls it did not make would have run."""
        t = Timer(fn, arg, self)
        t.callbacks = _FIRE
        heappush(self._heap, (time_ms, NORMAL, next(self._eid), t))  # env.schedule, inlined
        return t

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
        """Schedule a carrier: after ``delay_ms`` each of ``callbacks`` gets it.

        Exactly ``env.schedule(carrier, NORMAL, delay_ms)`` (time ``now + delay_ms``),
        one call cheaper.

        >>> k = Kernel(); seen = []
        >>> c = Carrier(); k.push(c, 2.5, [lambda c: seen.append(k.now)])
        >>> k.env.run(); seen
        [2.5]
        """
        carrier.callbacks = callbacks
        heappush(self._heap, (self.env._now + delay_ms, NORMAL, next(self._eid), carrier))

    def push_at(self, carrier: Carrier, at_ms: float, callbacks: list) -> None:
        """Schedule a carrier at absolute time ``at_ms`` (the caller makes sure it is not before now).

        For callers that computed the time themselves (``now + d``, a FIFO
        clamp, a queue's free time): the heap gets ``at_ms`` as it is, no
        ``now + (at_ms - now)`` round trip.

        >>> k = Kernel(); seen = []
        >>> c = Carrier(); k.push_at(c, 7.0, [lambda c: seen.append(k.now)])
        >>> k.env.run(); seen
        [7.0]
        """
        carrier.callbacks = callbacks
        heappush(self._heap, (at_ms, NORMAL, next(self._eid), carrier))

    def push_due(self, carrier: Carrier, due_ms: float, callbacks: list) -> float:
        """Schedule a carrier at ``due_ms``, or now if that has passed; return the time it will run at.

        The time is ``now + max(0, due_ms - now)``, the float ``env.schedule``
        and :meth:`call_at` make of it (it may differ from ``due_ms`` in the
        last bit); when the carrier runs, the clock reads exactly the value
        returned, so the caller can keep it instead of reading the clock then.

        >>> k = Kernel(); k.env.run(until=0.1)
        >>> k.push_due(Carrier(), 0.45, []), k.push_due(Carrier(), 0.05, [])
        (0.44999999999999996, 0.1)
        """
        now = self.env._now
        at = now + (due_ms - now if due_ms > now else 0.0)
        carrier.callbacks = callbacks
        heappush(self._heap, (at, NORMAL, next(self._eid), carrier))
        return at

    def carrier_queue(self) -> tuple[list, Any]:
        """The heap and event-id counter carriers go on, for a hot path that pushes them inline.

        Pushing ``(time_ms, NORMAL, next(eid), carrier)`` onto the heap is
        :meth:`push_at` without the call; the engine does it once per call
        (a service start), where the saved call is worth a few percent.
        Set ``carrier.callbacks`` first.  ``heap[0][0]`` is the time of the next
        event (what ``env.peek()`` returns; the engine's fused proxy passes read
        it, tests/test_kernel_contract.py pins it).

        >>> k = Kernel(); heap, eid = k.carrier_queue(); seen = []
        >>> c = Carrier(); c.callbacks = [lambda c: seen.append(k.now)]
        >>> heappush(heap, (3.0, NORMAL, next(eid), c)); k.env.run(); seen
        [3.0]
        """
        return self._heap, self._eid

    def pending(self) -> int:
        """Entries on the heap (events, carriers and timers, cancelled ones included)."""
        return len(self._heap)

    def events_processed(self) -> int:
        """Heap entries taken off so far (events, carriers and timers run, cancelled ones included): the
        run's event count.  It uses one of SimPy's event ids, which changes no ordering.

        >>> k = Kernel(); _ = k.call_later(1.0, lambda a: None); _ = k.call_later(2.0, lambda a: None)
        >>> k.events_processed(), k.env.run(), k.events_processed()
        (0, None, 2)
        """
        self._eid0 += 1  # the id taken now is not an event
        return next(self._eid) - len(self._heap) - self._eid0 + 1



def _clock_of(env: simpy.Environment) -> Callable[[], float]:
    """A zero-argument callable returning ``env``'s current time, with no Python frame.

    A partial of ``attrgetter("_now")``: C code all the way.  (Reading the
    instance dict instead would be a little faster per call but makes CPython
    give up the environment's inline attribute values, which slows every
    ``step`` of SimPy's loop by more than it saves.)

    >>> k = Kernel(); _ = k.call_later(4.0, len, ()); k.env.run(); k.clock()
    4.0
    """
    return partial(attrgetter("_now"), env)


#: events run between two checks of the clock (finite, sane) and of the wall-clock budget
CHECK_EVERY = 1024

#: a simulated clock beyond this (ms) is refused: 1e12 ms is about 31.7 years, where a float still
#: resolves a microsecond; much further, now + delay == now and a run can loop without time advancing
MAX_TIME_MS: float = 10 * MAX_DURATION_MS


class SimulationTimeError(ScenarioError):
    """An event was scheduled at a non-finite or absurd simulated time; ``path`` names the component."""


def describe_event(obj: Any) -> tuple[str, str]:
    """(scenario path, words) of the component behind a heap entry, for error messages.

    >>> describe_event(Timer(print, None))
    ('', 'a timer of print')
    """
    ep = getattr(obj, "ep", None)
    if ep is not None and hasattr(ep, "service"):
        inst = getattr(obj, "inst", None)
        where = f" on {inst.name}" if inst is not None and hasattr(inst, "name") else ""
        return (f"services.{ep.service}.endpoints.{ep.name}.service_time",
                f"a call of {ep.service}.{ep.name}{where} (its service time, or a proxy or network delay on its way)")
    if hasattr(obj, "msg") and hasattr(obj, "dst"):
        return "network", f"a network message to {obj.dst} (a latency distribution)"
    if isinstance(obj, Timer):
        fn = getattr(obj.fn, "__qualname__", repr(obj.fn))
        owner = getattr(obj.fn, "__self__", None)
        name = getattr(owner, "name", None)
        return "", f"a timer of {fn}" + (f" ({name})" if isinstance(name, str) else "")
    name = getattr(obj, "name", None)
    if isinstance(name, str) and hasattr(obj, "times"):
        return f"workloads.{name}", f"workload {name}'s arrivals"
    gen = getattr(obj, "_generator", None)
    if gen is not None:
        return "", f"the process {getattr(gen, '__qualname__', gen)}"
    return "", type(obj).__name__


def _bad_time_error(env: simpy.Environment, last: Any) -> SimulationTimeError:
    """The error for a clock that went (or is about to go) beyond MAX_TIME_MS, naming the culprit."""
    q = env._queue
    culprit = last
    if culprit is None:
        bad = [e for e in q if not e[0] <= MAX_TIME_MS]
        culprit = min(bad, key=lambda e: (e[0] if e[0] == e[0] else math.inf, e[2]))[3] if bad else None
    path, words = describe_event(culprit) if culprit is not None else ("", "an unknown component")
    at = q[0][0] if q and not q[0][0] <= MAX_TIME_MS else env._now
    when = "a non-finite time" if not math.isfinite(at) else f"simulated time {format_duration(at)}"
    return SimulationTimeError(path, f"{words} was scheduled at {when} (the limit is {format_duration(MAX_TIME_MS)}); "
                                     "a distribution or duration in the scenario is absurdly large")


def run_until(env: simpy.Environment, stop: simpy.Event, max_wall_s: float | None = None) -> str | None:
    """Run ``env`` until ``stop`` fires; return None, or why it stopped early (the wall-clock budget).

    Same events in the same order as ``env.run(until=stop)``, and each one
    handled as ``Environment.step`` handles it (its body is inlined here: one
    call fewer per event; tests/test_kernel_contract.py runs both side by side,
    failures and a stop in the middle of an event's callbacks included).  Every
    :data:`CHECK_EVERY` events the clock is checked (a non-finite or absurd
    simulated time raises :class:`SimulationTimeError` naming the component)
    and, with ``max_wall_s``, the wall clock.  The checks cost nothing per event.

    >>> k = Kernel(); stop = k.env.event()
    >>> _ = k.call_later(3.0, lambda _: stop.succeed())
    >>> run_until(k.env, stop), k.now
    (None, 3.0)
    """
    if stop.callbacks is None:
        return None
    stop.callbacks.append(StopSimulation.callback)
    q = env._queue
    pop = heappop
    deadline = None if max_wall_s is None else time.perf_counter() + max_wall_s
    chunk = range(CHECK_EVERY)
    event: Any = None
    callbacks: list = []
    callback: Any = None
    try:
        while True:
            if q and not q[0][0] <= MAX_TIME_MS:  # the next event is already beyond the limit: name it
                raise _bad_time_error(env, q[0][3])
            for _ in chunk:
                # Environment.step, inlined: pop the next entry, set the clock, hand the object to each callback
                try:
                    env._now, _, _, event = pop(q)
                except IndexError:
                    raise EmptySchedule from None
                callbacks, event.callbacks = event.callbacks, None
                for callback in callbacks:
                    callback(event)
                if not event._ok and not hasattr(event, "_defused"):
                    raise _failure(event)
            if not env._now <= MAX_TIME_MS:
                raise _bad_time_error(env, None)
            if deadline is not None and time.perf_counter() > deadline:
                stop.callbacks.remove(StopSimulation.callback)
                return (f"wall-clock budget of {max_wall_s:g}s (run.max_wall) used up at simulated time "
                        f"{format_duration(env._now)}")
    except StopSimulation:
        # as step does: the event keeps the callbacks after the one that stopped the run and goes back on the
        # heap ahead of everything at this time, for a later run to carry on with
        event.callbacks = callbacks[callbacks.index(callback) + 1:]
        env.schedule(event, RESUME_PRIORITY)
    except EmptySchedule:
        pass
    if not env._now <= MAX_TIME_MS:  # the clock went wrong in the last events before the end
        raise _bad_time_error(env, None)
    return None


#: the priority ``Environment.step`` puts a stopped event back with (ahead of URGENT events at the same time)
RESUME_PRIORITY = -1


def _failure(event: Any) -> BaseException:
    """What ``Environment.step`` raises for a failed event nobody defused: a copy of its exception, caused by it."""
    exc = type(event._value)(*event._value.args)
    exc.__cause__ = event._value
    return exc
