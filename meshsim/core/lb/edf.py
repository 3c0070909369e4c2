"""EDF scheduling, slow start, weighted round robin and random.

Mirrors Envoy's ``EdfScheduler`` (``source/common/upstream/edf_scheduler.h``:
:class:`EdfScheduler`), ``EdfLoadBalancerBase`` with its slow start
(``source/extensions/load_balancing_policies/common/load_balancer_impl.cc``:
:class:`EdfBalancer`, :func:`slow_start_factor`), the round robin policy
(``load_balancing_policies/round_robin/round_robin_lb.cc``:
:class:`WeightedRoundRobin`) and the random policy
(``load_balancing_policies/random/random_lb.cc``: :class:`RandomBalancer`,
a few lines on the zone-aware base, kept here with its round-robin sibling).
Least request, the other EDF policy, is in :mod:`meshsim.core.lb.least_request`.

>>> from meshsim.core.lb.base import Endpoint
>>> wrr = WeightedRoundRobin([Endpoint("a", weight=1), Endpoint("b", weight=2)])
>>> [wrr.pick(0.0) for _ in range(6)]
[1, 0, 1, 1, 0, 1]
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

import numpy as np

from ..selection import BALANCERS
from .base import ZoneAwareBalancer
from .options import LbOptions

__all__ = ["EdfBalancer", "EdfScheduler", "RandomBalancer", "WeightedRoundRobin", "slow_start_factor"]

#: Envoy ``EdfScheduler::createWithPicks`` bounds its emulated picks by this
_EDF_MAX_PICKS = 429496729


def slow_start_factor(
    elapsed_ms: float, window_ms: float, aggression: float = 1.0, min_weight_percent: float = 10.0
) -> float:
    """Envoy's slow-start weight multiplier ``max(min%, time_factor ** (1/aggression))``.

    ``time_factor = max(elapsed, 1 ms) / window``; 1.0 once the window is over.

    >>> slow_start_factor(30_000, 60_000), slow_start_factor(1_000, 60_000), slow_start_factor(60_000, 60_000)
    (0.5, 0.1, 1.0)
    """
    if window_ms <= 0 or elapsed_ms >= window_ms:
        return 1.0
    tf = max(elapsed_ms, 1.0) / window_ms
    f = tf if aggression == 1.0 else tf ** (1.0 / aggression)
    return max(f, min_weight_percent / 100.0)


# --------------------------------------------------------------------------- EDF scheduler


class EdfScheduler:
    """Earliest-deadline-first weighted schedule (Envoy's ``EdfScheduler``).

    Each entry is due ``1/weight`` after its last pick; ties go to the entry
    queued first.  ``picks`` emulates that many picks up front
    (``createWithPicks``: the random starting point of weighted round robin)
    without doing them one by one.  ``weight`` is asked again each time an
    entry is re-queued, so weights may change over time.

    >>> s = EdfScheduler([0, 1, 2], {0: 1, 1: 2, 2: 3}.__getitem__)
    >>> [s.pick_and_add() for _ in range(6)]
    [2, 1, 2, 0, 1, 2]
    """

    def __init__(self, entries: Sequence[int], weight: Callable[[int], float], picks: int = 0):
        self.weight = weight
        self.now = 0.0
        picks %= _EDF_MAX_PICKS
        aug = [weight(e) + 1e-13 for e in entries]
        if any(w <= 1e-13 for w in aug):
            raise ValueError("EDF weights must be positive")
        total = sum(aug)
        queue, done = [], 0
        for i, (e, w) in enumerate(zip(entries, aug)):
            k = int(w * picks / total)
            if k > 0 and k / w >= picks / total:
                k -= 1
            self.now = max(self.now, k / w)
            queue.append(((k + 1) / w, i, e))
            done += k
        heapq.heapify(queue)
        self._queue = queue
        self._order = len(queue)
        for _ in range(done, picks):
            self.pick_and_add()

    def pick_and_add(self) -> int:
        """Pop the entry with the earliest deadline and queue it again."""
        deadline, _, entry = heapq.heappop(self._queue)
        self.now = deadline
        heapq.heappush(self._queue, (deadline + 1.0 / self.weight(entry), self._order, entry))
        self._order += 1
        return entry


# --------------------------------------------------------------------------- EDF policies


class EdfBalancer(ZoneAwareBalancer):
    """Envoy's ``EdfLoadBalancerBase``: EDF when weights differ or a host is in slow start.

    Slow start (Envoy ``SlowStartConfig``): ``slow_start_window_ms`` (0 =
    off), ``slow_start_aggression`` (default 1.0) and
    ``slow_start_min_weight_percent`` (default 10) scale the weight of a
    healthy endpoint whose ``start_ms`` lies within the window.  The choice
    between EDF and the unweighted pick is made per host source when it is
    first used after a view change (Envoy makes it when the host set changes).
    Subclasses implement ``_unweighted(source, hosts)``.
    """

    option_names = ZoneAwareBalancer.option_names | {"slow_start_window_ms", "slow_start_aggression",
                                                     "slow_start_min_weight_percent"}

    def _configure(self, opts: LbOptions, rng: np.random.Generator | None) -> None:
        self.slow_start_window_ms = opts.slow_start_window_ms
        self.slow_start_aggression = opts.slow_start_aggression
        self.slow_start_min_weight_percent = opts.slow_start_min_weight_percent
        # Envoy's seed_: one random value per balancer, the RR start and EDF pre-picks
        self._seed = int(rng.integers(0, 1 << 32)) if rng is not None else 0
        self._now = 0.0
        super()._configure(opts, rng)

    def _rebuild(self) -> None:
        super()._rebuild()
        self._edf: dict[tuple, EdfScheduler | None] = {}

    def _slow_start(self, i: int) -> float:
        e = self.endpoints[i]
        if self.slow_start_window_ms <= 0 or e.start_ms is None or not e.healthy:
            return 1.0
        return slow_start_factor(
            self._now - e.start_ms,
            self.slow_start_window_ms,
            self.slow_start_aggression,
            self.slow_start_min_weight_percent,
        )

    def _in_slow_start(self, hosts: list[int]) -> bool:
        if self.slow_start_window_ms <= 0:
            return False
        return any(
            (s := self.endpoints[i].start_ms) is not None and self._now - s < self.slow_start_window_ms for i in hosts
        )

    def host_weight(self, i: int) -> float:
        """The weight the EDF schedule uses for endpoint ``i`` now."""
        return self.endpoints[i].weight * self._slow_start(i)

    def _pick_from(self, source: tuple, hosts: list[int], now_ms: float) -> int:
        self._now = now_ms
        if source not in self._edf:
            weighted = len(hosts) > 1 and (
                len({self.endpoints[i].weight for i in hosts}) > 1 or self._in_slow_start(hosts)
            )
            self._edf[source] = EdfScheduler(hosts, self.host_weight, self._seed) if weighted else None
        edf = self._edf[source]
        if edf is not None:
            return edf.pick_and_add()
        return self._unweighted(source, hosts)

    def _unweighted(self, source: tuple, hosts: list[int]) -> int:
        raise NotImplementedError


class WeightedRoundRobin(EdfBalancer):
    """Envoy's round robin: plain RR when weights are equal, else an EDF schedule.

    Both start at a random point of the rotation (Envoy's per-balancer
    seed); with no rng they start at the first endpoint.

    >>> from meshsim.core.lb.base import Endpoint
    >>> wrr = WeightedRoundRobin([Endpoint("a"), Endpoint("b", weight=3)])
    >>> [wrr.pick(0.0) for _ in range(8)]
    [1, 1, 0, 1, 1, 1, 0, 1]
    """

    name = "weighted_round_robin"

    def _unweighted(self, source: tuple, hosts: list[int]) -> int:
        k = self._rr_index.get(source, self._seed)
        self._rr_index[source] = k + 1
        return hosts[k % len(hosts)]


class RandomBalancer(ZoneAwareBalancer):
    """Envoy's random policy: a uniformly random available endpoint (weights ignored).

    >>> import numpy as np
    >>> lb = RandomBalancer(3, np.random.default_rng(0))
    >>> sorted({lb.pick(0.0) for _ in range(50)})
    [0, 1, 2]
    """

    name = "random"

    def _pick_from(self, source: tuple, hosts: list[int], now_ms: float) -> int:
        return hosts[self._random() % len(hosts)]


#: the name this class had in meshsim.core.balancers
_EdfBalancer = EdfBalancer

BALANCERS[WeightedRoundRobin.name] = WeightedRoundRobin
BALANCERS[RandomBalancer.name] = RandomBalancer
