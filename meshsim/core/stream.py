"""Streaming subscriptions, the pure part: per-topic event buffers, snapshots, resume, materialized views.

Pure and deterministic (no SimPy, no clock, no network): the registry's
servers (:mod:`meshsim.registry.streaming`) publish their catalog's applied
changes here and send what :meth:`EventPublisher.subscribe` and
:meth:`EventPublisher.publish` return over the simulated network; a
subscriber folds what it receives into a :class:`MaterializedView`.

What Consul does (hashicorp/consul, read for this model):

* ``agent/consul/stream/event_publisher.go``: the state store's commit hook
  publishes the change events of each Raft transaction (every event of one
  transaction carries that transaction's Raft index) into a buffer per
  topic (per topic *and subject* -- one service -- in later versions).
  ``Subscribe(req)`` resumes the stream only when the topic buffer's head,
  the most recently published item, carries exactly ``req.Index``
  (``topicHead.HasEventIndex(req.Index)``): the subscriber is up to date and
  gets the events after it.  Otherwise it gets a snapshot of the current
  state followed, seamlessly, by the events published after the snapshot's
  index; a request with ``Index > 0`` that cannot resume first gets a
  ``NewSnapshotToFollow`` event so that the client throws its view away.
  Snapshots are cached per topic and key for ``snapCacheTTL`` (10 s on
  servers) to absorb a thundering herd of identical subscriptions.
* ``agent/consul/stream/event_buffer.go``: the buffer is an unbounded,
  single-writer linked list of items, one per Raft transaction; items
  nobody references (no subscriber behind them, no cached snapshot) are
  garbage-collected, so the buffer holds exactly what slow readers and
  cached snapshots still need.
* ``proto/pbsubscribe/subscribe.proto``: the stream carries snapshot events,
  an ``EndOfSnapshot`` marker (with the snapshot's index), ``NewSnapshotToFollow``
  and then one event per changed instance (register or deregister of a
  ``CheckServiceNode``) with its Raft index.
* ``agent/submatview/materializer.go`` (the client agent): a ``View`` is reset
  and fed the snapshot, then each batch of events in order; the view's index
  is the last index applied; on any stream error it re-subscribes with that
  index after a ``retry.Waiter`` wait (see :func:`retry_wait_ms`), whose
  failure count is reset by every successful update.

What is modelled here, and how it differs:

* one topic per service (Consul >= 1.10's topic + subject), one
  :class:`Event` per changed instance with its Raft index (``value`` None
  for a deregistration);
* the buffer per topic keeps the last ``max_events`` events (a bound by size
  standing in for Consul's garbage collection: memory stays bounded however
  slow a reader is; there is no TTL as we do not model slow readers);
  ``floor`` is the highest index no longer covered (evicted events, or the
  state a restarted server began from);
* resume rule ``"consul"`` (default): resume only if the topic's last
  buffered event has exactly the requested index, as Consul does;
  ``"buffer"``: resume from any index the buffer still covers
  (``floor <= index <= last index``), the more generous rule a bounded log
  allows.  Anything else gets a :class:`Snapshot` (``reset=True`` when the
  request had an index: Consul's ``NewSnapshotToFollow``);
* no snapshot cache (each subscribe builds its own; the cost shows in the
  load counters as instances sent).

>>> pub = EventPublisher(max_events=3)
>>> for i, (key, val) in enumerate([("a", 1), ("b", 2), ("a", None), ("c", 4)], start=10):
...     _ = pub.publish(i, "web", key, val)
>>> state = {"b": 2, "c": 4}
>>> first = pub.subscribe("web", 0, state, 13)  # index 0: a snapshot
>>> first
[Snapshot(topic='web', index=13, items=(('b', 2), ('c', 4)), reset=False)]
>>> view = MaterializedView()
>>> for m in first: view.apply(m)
>>> view.index, view.items
(13, {'b': 2, 'c': 4})
>>> [e.index for e in pub.subscribe("web", 12, state, 13, resume="buffer")]  # resume: the events after 12
[13]
>>> pub.subscribe("web", 12, state, 13)[0].reset   # Consul's rule: 12 is not the head, a new snapshot
True
>>> pub.subscribe("web", 9, state, 13, resume="buffer")[0].reset  # event 10 was evicted (max_events=3)
True
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Event", "EventPublisher", "MaterializedView", "RESUME_RULES", "Snapshot", "StreamOrderError",
           "retry_wait_ms"]

#: how a server decides whether a subscriber with an index can resume (see module doc)
RESUME_RULES = ("consul", "buffer")


@dataclass(frozen=True, slots=True)
class Event:
    """A change of ``key`` (an instance id) in ``topic`` (a service) at Raft ``index``; ``value`` None = removed."""

    index: int
    topic: str
    key: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole state of ``topic`` at ``index`` (events then Consul's EndOfSnapshot, as one message).

    ``reset``: the subscriber asked to resume and could not (Consul's NewSnapshotToFollow first)."""

    topic: str
    index: int
    items: tuple[tuple[str, Any], ...]
    reset: bool = False


class StreamOrderError(ValueError):
    """A view got an event out of order (a duplicate or a step back): the stream is broken."""


class _Topic:
    __slots__ = ("events", "floor", "subscribers")

    def __init__(self, floor: int, max_events: int):
        self.events: deque[Event] = deque(maxlen=max_events)
        self.floor = floor  # every index <= floor is not covered by ``events``
        self.subscribers: dict[Any, None] = {}  # insertion-ordered set


class EventPublisher:
    """Per-topic bounded event buffers and the subscribers of each topic (see module doc).

    ``max_events``: events kept per topic; ``floor``: the Raft index the
    publisher starts from (a server that restarted from state at index N
    cannot resume anyone from an index below N).
    """

    def __init__(self, max_events: int = 4096, floor: int = 0):
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        self.max_events = int(max_events)
        self.floor = int(floor)
        self.last_index = int(floor)
        self._topics: dict[str, _Topic] = {}

    def _topic(self, topic: str) -> _Topic:
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = _Topic(self.floor, self.max_events)
        return t

    def truncate(self, index: int) -> None:
        """Nothing at or below ``index`` can be resumed from (state restored wholesale up to ``index``)."""
        self.floor = max(self.floor, index)
        self.last_index = max(self.last_index, index)
        for t in self._topics.values():
            t.events.clear()
            t.floor = max(t.floor, index)

    def publish(self, index: int, topic: str, key: str, value: Any = None) -> tuple[Event, tuple[Any, ...]]:
        """Append the change of ``key`` at Raft ``index`` (indexes never go down; one index may carry
        several keys); returns the event and the subscribers of ``topic`` to send it to."""
        if index < self.last_index:
            raise ValueError(f"index {index} published after {self.last_index}")
        self.last_index = index
        t = self._topic(topic)
        ev = Event(index, topic, key, value)
        if len(t.events) == t.events.maxlen:
            t.floor = max(t.floor, t.events[0].index)  # events up to the evicted one's index are not all here
        t.events.append(ev)
        return ev, tuple(t.subscribers)

    def subscribe(self, topic: str, index: int, state: Mapping[str, Any] | Sequence[tuple[str, Any]],
                  state_index: int, subscriber: Any = None, resume: str = "consul") -> list[Snapshot | Event]:
        """What a new subscription to ``topic`` from ``index`` gets first: the events after ``index``
        (resume) or a :class:`Snapshot` of ``state`` (the topic's current items, at the topic's index
        ``state_index``: a mapping, or its (key, value) pairs already sorted by key).  ``subscriber`` (any
        hashable) then receives the topic's later events (see :meth:`publish`) until :meth:`unsubscribe`.
        A snapshot's items are sorted by key."""
        if resume not in RESUME_RULES:
            raise ValueError(f"unknown resume rule {resume!r}; valid: {', '.join(RESUME_RULES)}")
        t = self._topic(topic)
        if subscriber is not None:
            t.subscribers[subscriber] = None
        if index > 0:
            if resume == "consul":
                if t.events and t.events[-1].index == index:
                    return []
            elif t.floor <= index <= state_index:
                return [e for e in t.events if e.index > index]
        items = tuple(sorted(state.items())) if isinstance(state, Mapping) else tuple(state)
        return [Snapshot(topic, state_index, items, reset=index > 0)]

    def unsubscribe(self, topic: str, subscriber: Any) -> None:
        t = self._topics.get(topic)
        if t is not None:
            t.subscribers.pop(subscriber, None)

    def subscribers(self, topic: str) -> tuple[Any, ...]:
        t = self._topics.get(topic)
        return tuple(t.subscribers) if t is not None else ()

    def buffered(self, topic: str) -> tuple[Event, ...]:
        """The events ``topic`` keeps now, oldest first."""
        t = self._topics.get(topic)
        return tuple(t.events) if t is not None else ()

    def topic_floor(self, topic: str) -> int:
        t = self._topics.get(topic)
        return t.floor if t is not None else self.floor


class MaterializedView:
    """A subscriber's copy of one topic (Consul's submatview ``View`` and the Materializer's index).

    A :class:`Snapshot` replaces the items; an :class:`Event` upserts or removes one key and must not
    go below the view's index (one Raft index may carry several keys, each at most once).

    >>> v = MaterializedView()
    >>> v.apply(Snapshot("web", 5, (("a", 1),)))
    >>> v.apply(Event(7, "web", "b", 2)); v.apply(Event(7, "web", "a", None))
    >>> v.index, v.items, v.events, v.snapshots
    (7, {'b': 2}, 2, 1)
    >>> v.apply(Event(7, "web", "b", 2))
    Traceback (most recent call last):
    ...
    meshsim.core.stream.StreamOrderError: event (7, 'b') delivered twice
    """

    __slots__ = ("index", "_items", "_snapshot", "events", "snapshots", "_at_index")

    def __init__(self) -> None:
        self.index = 0
        self._items: dict[str, Any] | None = {}
        #: the last snapshot's items, until an event needs them as a dict (most views of a large cluster
        #: never get one: no dict for them)
        self._snapshot: tuple[tuple[str, Any], ...] = ()
        self.events = 0
        self.snapshots = 0
        self._at_index: set[str] = set()  # keys applied at ``index`` (to catch duplicates)

    @property
    def items(self) -> dict[str, Any]:
        """The topic's items (key -> value) as of :attr:`index`."""
        if self._items is None:
            self._items = dict(self._snapshot)
            self._snapshot = ()
        return self._items

    @property
    def loaded(self) -> bool:
        """A snapshot has been applied (Consul's Fetch waits for one)."""
        return self.snapshots > 0

    def apply(self, msg: Snapshot | Event) -> None:
        if isinstance(msg, Snapshot):
            self._items, self._snapshot = None, msg.items
            self.index = msg.index
            self.snapshots += 1
            self._at_index = set()
            return
        if msg.index < self.index:
            raise StreamOrderError(f"event {msg.index} after index {self.index}")
        if msg.index == self.index:
            if msg.key in self._at_index:
                raise StreamOrderError(f"event ({msg.index}, {msg.key!r}) delivered twice")
        else:
            self._at_index = set()
        self._at_index.add(msg.key)
        self.index = msg.index
        self.events += 1
        items = self.items
        if msg.value is None:
            items.pop(msg.key, None)
        else:
            items[msg.key] = msg.value


def retry_wait_ms(failures: int, u: float, factor_ms: float = 1_000.0, max_wait_ms: float = 60_000.0,
                  min_failures: int = 1, jitter_pct: float = 100.0) -> float:
    """The wait before re-subscribing after ``failures`` consecutive failures (this one included).

    Consul's streaming views use ``lib/retry.Waiter{MinFailures: 1, MinWait: 0, MaxWait: 60 s,
    Jitter: NewJitter(100)}`` with lib/retry's default factor of 1 s (``agent/rpcclient/health/view.go``;
    ``agent/cache-types/streaming_health_services.go`` in some 1.9/1.10 releases set ``Factor: 200 ms``):
    no wait for the first failure, then ``factor * 2**(failures - min_failures - 1)`` capped at
    ``max_wait``, plus a jitter of up to ``jitter_pct`` percent of it (``u`` uniform in [0, 1)).

    >>> [retry_wait_ms(n, 0.0) for n in (1, 2, 3, 4, 8, 9)], retry_wait_ms(2, 0.5)
    ([0.0, 1000.0, 2000.0, 4000.0, 60000.0, 60000.0], 1500.0)
    """
    if failures <= min_failures:
        return 0.0
    shift = failures - min_failures - 1
    wait = max_wait_ms if shift >= 31 else factor_ms * (1 << shift)
    wait = min(wait, max_wait_ms)
    return wait + wait * jitter_pct / 100.0 * u
