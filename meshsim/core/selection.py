"""Instance selection: the interface every load-balancing policy implements.

A balancer belongs to ONE caller (a client or an instance) and sees only that
caller's view of the target's endpoints and its own in-flight counts — as in
Envoy, callers share no load information.  It is a plain class: it gets the
current time and returns an index into the caller's endpoint list.

>>> rr = RoundRobin(3)
>>> [rr.pick(0.0) for _ in range(5)]
[0, 1, 2, 0, 1]
>>> rr.update(2); rr.pick(0.0) in (0, 1)
True
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Balancer(ABC):
    """Chooses an endpoint index in ``range(n)`` for each request.

    Subclasses implement :meth:`pick`; they may override :meth:`on_start` and
    :meth:`on_end` (then the shell calls them when a call it routed is sent
    and when its reply, or its failure, comes back) to keep per-endpoint state
    such as active request counts, and :meth:`update`, called when the
    caller's view of the endpoints changes.
    """

    #: name used in scenario files
    name = "balancer"
    #: True when a subclass overrides on_start/on_end; the shell calls them only then
    tracks_load = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.tracks_load = cls.on_start is not Balancer.on_start or cls.on_end is not Balancer.on_end

    def __init__(self, n: int, rng: np.random.Generator | None = None):
        if n < 1:
            raise ValueError("a balancer needs at least one endpoint")
        self.n = n
        self.rng = rng

    def update(self, n: int) -> None:
        """The view now has ``n`` endpoints."""
        if n < 1:
            raise ValueError("a balancer needs at least one endpoint")
        self.n = n

    @abstractmethod
    def pick(self, now_ms: float, key: int | None = None) -> int:
        """Index of the endpoint for the next request (``key``: optional hash key)."""

    def on_start(self, index: int) -> None:  # noqa: B027 - optional hook
        """A request routed to ``index`` has started."""

    def on_end(self, index: int) -> None:  # noqa: B027 - optional hook
        """A request routed to ``index`` has ended."""


class RoundRobin(Balancer):
    """Each endpoint in turn.  The start offset is random when an rng is given,
    so many callers do not all hit endpoint 0 first (Envoy does the same)."""

    name = "round_robin"

    def __init__(self, n: int, rng: np.random.Generator | None = None):
        super().__init__(n, rng)
        self._next = int(rng.integers(n)) if rng is not None else 0

    def pick(self, now_ms: float, key: int | None = None) -> int:
        i = self._next
        if i >= self.n:
            i = 0
        self._next = i + 1
        return i


#: Policies by scenario name; later layers register more.
BALANCERS: dict[str, type[Balancer]] = {RoundRobin.name: RoundRobin}
