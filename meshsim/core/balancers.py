"""Envoy's load-balancing policies as :class:`~meshsim.core.selection.Balancer` s.

Importing this module registers them in ``BALANCERS``:

==========================  ==================================================
``weighted_round_robin``    :class:`WeightedRoundRobin` (EDF schedule)
``random``                  :class:`RandomBalancer`
``least_request``           :class:`LeastRequest` (P2C / weighted EDF)
``ring_hash``               :class:`RingHash` (Ketama ring, xxHash64)
``maglev``                  :class:`Maglev` (65537-entry lookup table)
``ring_hash_bounded``       :class:`RingHashBounded`: ring hash with bounded loads, factor 150 unless given
``maglev_bounded``          :class:`MaglevBounded`: Maglev with bounded loads, factor 150 unless given
==========================  ==================================================

Envoy has no ``*_bounded`` policies and no default ``hash_balance_factor``
(unset: loads are not bounded); the two names are meshsim shorthands for
ring hash / Maglev with a factor, and 150 is the example value of Envoy's
API documentation ("no upstream host will get a load more than 1.5 times
the average"), inside its "typical" 120-200.

Every policy takes ``endpoints`` (a sequence of :class:`Endpoint`, or just a
count ``n`` for ``n`` equal, healthy, unnamed endpoints as in the base class)
and an optional numpy ``Generator``.  All of them apply Envoy's priority
levels (overprovisioning factor 1.4) and panic threshold (50%);
round robin, least request and random also do zone-aware routing (when
given the caller's zone and the caller population per zone) and, for the
EDF-based two, slow start.  The arithmetic is available as pure functions
(:func:`priority_loads`, :func:`zone_split`, :func:`slow_start_factor`) so it
can be checked against Envoy's documentation tables.

>>> import numpy as np
>>> eps = [Endpoint("a", weight=1), Endpoint("b", weight=2)]
>>> wrr = WeightedRoundRobin(eps)
>>> [wrr.pick(0.0) for _ in range(6)]
[1, 0, 1, 1, 0, 1]
>>> ring = RingHash(eps, minimum_ring_size=64)
>>> ring.pick(0.0, key=hash_key(client_id="alice")) == ring.pick(0.0, key=hash_key(client_id="alice"))
True
>>> lr = LeastRequest(4, np.random.default_rng(1))
>>> lr.tracks_load, lr.pick(0.0) in range(4)
(True, True)
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .hashing import _probe_order, hash_key, murmur2_64, xxh64, xxh64_batch
from .selection import BALANCERS, Balancer

__all__ = [
    "DEFAULT_MAGLEV_TABLE_SIZE",
    "EdfScheduler",
    "Endpoint",
    "EnvoyBalancer",
    "LeastRequest",
    "Maglev",
    "NoHealthyUpstream",
    "PriorityLoad",
    "RandomBalancer",
    "RingHash",
    "RingHashBounded",
    "MaglevBounded",
    "WeightedRoundRobin",
    "ZoneRouting",
    "as_endpoints",
    "choose_priority",
    "hash_key",
    "is_prime",
    "priority_loads",
    "slow_start_factor",
    "zone_routing",
    "zone_split",
]

_M64 = 0xFFFFFFFFFFFFFFFF
#: Envoy ``MaglevTable::DefaultTableSize``
DEFAULT_MAGLEV_TABLE_SIZE = 65537
#: Envoy's limits for ``RingHashLbConfig`` (``minimum_ring_size`` default 1024, cap 8M)
DEFAULT_MIN_RING_SIZE = 1024
MAX_RING_SIZE = 8 * 1024 * 1024
#: Envoy's proto limit on ``MaglevLbConfig.table_size``
MAX_MAGLEV_TABLE_SIZE = 5000011
#: Envoy ``EdfScheduler::createWithPicks`` bounds its emulated picks by this
_EDF_MAX_PICKS = 429496729


class NoHealthyUpstream(LookupError):
    """No endpoint can be chosen (Envoy answers "503 no healthy upstream").

    Only possible with ``healthy_panic_threshold=0`` and no healthy endpoint:
    with any positive threshold Envoy (and this module) falls back to all
    endpoints instead.
    """


# --------------------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class Endpoint:
    """One upstream endpoint as a caller sees it.

    ``weight`` is Envoy's ``load_balancing_weight`` (an integer >= 1);
    ``priority`` its EDS priority (0 is the highest); ``start_ms`` when it
    joined or last became healthy, for slow start (``None``: established
    long ago, never ramped).

    >>> Endpoint("a", weight=0)
    Traceback (most recent call last):
    ...
    ValueError: weight must be an integer >= 1 (Envoy's load_balancing_weight), got 0
    """

    name: str
    weight: int = 1
    zone: str | None = None
    healthy: bool = True
    priority: int = 0
    start_ms: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, np.integer)) or self.weight < 1:
            raise ValueError(f"weight must be an integer >= 1 (Envoy's load_balancing_weight), got {self.weight!r}")
        if isinstance(self.priority, bool) or not isinstance(self.priority, (int, np.integer)) or self.priority < 0:
            raise ValueError(f"priority must be an integer >= 0, got {self.priority!r}")


def as_endpoints(endpoints: int | Sequence[Endpoint]) -> tuple[Endpoint, ...]:
    """``endpoints`` as a tuple; an int ``n`` gives ``n`` equal endpoints ``ep0..``.

    >>> [e.name for e in as_endpoints(3)]
    ['ep0', 'ep1', 'ep2']
    """
    if isinstance(endpoints, (int, np.integer)) and not isinstance(endpoints, bool):
        if endpoints < 1:
            raise ValueError("a balancer needs at least one endpoint")
        return tuple(Endpoint(f"ep{i}") for i in range(int(endpoints)))
    eps = tuple(endpoints)
    if not eps:
        raise ValueError("a balancer needs at least one endpoint")
    for e in eps:
        if not isinstance(e, Endpoint):
            raise ValueError(f"endpoints must be Endpoint instances, got {type(e).__name__}")
    return eps


# --------------------------------------------------------------------------- priority / panic


@dataclass(frozen=True)
class PriorityLoad:
    """Per-priority health score, traffic share (integer %, summing to 100) and panic flag."""

    health: tuple[int, ...]
    loads: tuple[int, ...]
    panic: tuple[bool, ...]


def priority_loads(
    levels: Sequence[tuple[int, int]],
    overprovisioning_factor: float = 1.4,
    healthy_panic_threshold: float = 50.0,
) -> PriorityLoad:
    """Envoy's priority load and panic flags for ``(healthy, total)`` per level.

    health(P) = min(100, 140 * healthy / total) (integer, as Envoy keeps the
    factor as a percentage); the loads share 100 in proportion to health
    normalised by min(100, sum of health), highest priority first, the
    rounding remainder going to the first available level.  A level is in
    panic when its healthy percentage is below the threshold, unless the
    normalised total health is 100; if every level is in panic the loads
    follow host counts instead (Envoy's "total panic").

    >>> priority_loads([(50, 100), (100, 100)]).loads     # docs: 50% healthy P=0 -> 70/30
    (70, 30)
    >>> priority_loads([(1, 4), (1, 4)])                  # both below 50%: both in panic
    PriorityLoad(health=(35, 35), loads=(50, 50), panic=(True, True))
    """
    if not levels:
        raise ValueError("priority_loads needs at least one level")
    factor = round(overprovisioning_factor * 100)
    health = []
    for healthy, total in levels:
        if healthy < 0 or total < 0 or healthy > total:
            raise ValueError(f"bad level (healthy={healthy}, total={total})")
        health.append(min(100, factor * healthy // total) if total else 0)
    normalized = min(100, sum(health))
    loads = [0] * len(levels)
    if normalized > 0:
        left = 100
        for i, hp in enumerate(health):
            loads[i] = min(left, hp * 100 // normalized)
            left -= loads[i]
        if left:
            loads[next(i for i, hp in enumerate(health) if hp > 0)] += left
    threshold = min(100.0, healthy_panic_threshold)
    if threshold == 0 and normalized == 0:
        loads = [100] + [0] * (len(levels) - 1)
        return PriorityLoad(tuple(health), tuple(loads), tuple(False for _ in levels))
    panic = [
        False if normalized == 100 else (100.0 * healthy / total if total else 0.0) < threshold
        for healthy, total in levels
    ]
    if all(panic):
        hosts = sum(total for _, total in levels)
        if hosts == 0:
            loads = [100] + [0] * (len(levels) - 1)
        else:
            loads = [100 * total // hosts for _, total in levels]
            loads[next(i for i, (_, t) in enumerate(levels) if t)] += 100 - sum(loads)
    return PriorityLoad(tuple(health), tuple(loads), tuple(panic))


def choose_priority(h: int, loads: Sequence[int]) -> int:
    """The level a 64-bit hash/random value selects: ``h % 100 + 1`` against cumulative loads.

    >>> [choose_priority(h, (70, 30)) for h in (0, 69, 70, 99)]
    [0, 0, 1, 1]
    """
    x = h % 100 + 1
    acc = 0
    for p, load in enumerate(loads):
        acc += load
        if x <= acc:
            return p
    return 0


# --------------------------------------------------------------------------- zone-aware routing


@dataclass(frozen=True)
class ZoneRouting:
    """Envoy's locality-routing state for one caller (P=0 only).

    ``state`` is ``"off"`` (not applicable), ``"direct"`` (everything to the
    local zone) or ``"residual"``; ``local_bp`` the basis points (1/10000)
    of requests kept local in residual mode; ``residual`` the cumulative
    residual capacity per upstream zone in ``zones`` order (local zone first).
    """

    state: str
    zones: tuple[str | None, ...] = ()
    local_bp: int = 0
    residual: tuple[int, ...] = ()

    def split(self) -> dict[str | None, float]:
        """Probability of routing to each zone (what :func:`zone_split` returns)."""
        if self.state == "off":
            return {}
        if self.state == "direct":
            return {z: float(i == 0) for i, z in enumerate(self.zones)}
        local = self.local_bp / 10000
        out = {z: 0.0 for z in self.zones}
        out[self.zones[0]] += local
        total = self.residual[-1]
        prev = 0
        for z, cum in zip(self.zones, self.residual):
            out[z] += (1 - local) * ((cum - prev) / total if total else 1 / len(self.zones))
            prev = cum
        return out


def _zone_order(zones: set[str | None], local_zone: str | None) -> tuple[str | None, ...]:
    rest = sorted((z for z in zones if z != local_zone), key=lambda z: (z is None, z or ""))
    return ((local_zone,) if local_zone in zones else ()) + tuple(rest)


def zone_routing(
    local_zone: str | None,
    local_zone_hosts: Mapping[str | None, int] | None,
    upstream_zone_hosts: Mapping[str | None, int],
    min_cluster_size: int = 6,
) -> ZoneRouting:
    """Envoy's ``regenerateLocalityRoutingStructures`` for one caller.

    ``local_zone_hosts`` counts the (healthy) instances of the caller's own
    service per zone, ``upstream_zone_hosts`` the healthy P=0 upstream
    endpoints per zone (zones with none may be listed with 0).  Percentages
    are in basis points, truncated, as in Envoy.
    """
    if local_zone is None or not local_zone_hosts:
        return ZoneRouting("off")
    zones = _zone_order(set(upstream_zone_hosts), local_zone)
    if len(zones) < 2:
        return ZoneRouting("off")
    local_counts = {z: c for z, c in local_zone_hosts.items() if c > 0}
    if len(local_counts) < 2 or local_counts.get(local_zone, 0) == 0:
        return ZoneRouting("off")
    total_up = sum(upstream_zone_hosts.values())
    if total_up == 0 or total_up < min_cluster_size:
        return ZoneRouting("off")
    total_local = sum(local_counts.values())
    local_pct = [10000 * local_counts.get(z, 0) // total_local for z in zones]
    up_pct = [10000 * upstream_zone_hosts.get(z, 0) // total_up for z in zones]
    has_local = zones[0] == local_zone
    if has_local and up_pct[0] > 0 and up_pct[0] >= local_pct[0]:
        return ZoneRouting("direct", zones)
    local_bp = up_pct[0] * 10000 // local_pct[0] if has_local and local_pct[0] > 0 else 0
    residual, acc = [], 0
    for i, (lp, upc) in enumerate(zip(local_pct, up_pct)):
        if not (i == 0 and has_local) and upc > lp:
            acc += upc - lp
        residual.append(acc)
    return ZoneRouting("residual", zones, local_bp, tuple(residual))


def zone_split(
    local_zone: str,
    local_zone_hosts: Mapping[str | None, int],
    upstream_zone_hosts: Mapping[str | None, int],
    min_cluster_size: int = 6,
) -> dict[str | None, float]:
    """Share of this caller's requests sent to each upstream zone ({} when routing is off).

    >>> zone_split("a", {"a": 2, "b": 2}, {"a": 5, "b": 5})      # same distribution: all local
    {'a': 1.0, 'b': 0.0}
    >>> zone_split("a", {"a": 4, "b": 4, "c": 2}, {"a": 5, "b": 10, "c": 5})
    {'a': 0.625, 'b': 0.25, 'c': 0.125}
    """
    return zone_routing(local_zone, local_zone_hosts, upstream_zone_hosts, min_cluster_size).split()


# --------------------------------------------------------------------------- slow start


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


# --------------------------------------------------------------------------- base


def _check_percent(name: str, value: float) -> float:
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"{name} must be a percentage in [0, 100], got {value!r}")
    return float(value)


class EnvoyBalancer(Balancer):
    """Common part of the Envoy policies: endpoints, priorities and panic.

    ``healthy_panic_threshold`` (percent, Envoy default 50) and
    ``overprovisioning_factor`` (Envoy default 1.4) drive
    :func:`priority_loads`; ``self.priority_load`` holds the current result.
    ``update`` accepts a count (as in the base class: the first ``n``
    endpoints are kept, new ones are equal and unnamed) or a new endpoint
    list (active counts carry over by endpoint name).
    """

    name = "envoy"

    def __init__(
        self,
        endpoints: int | Sequence[Endpoint],
        rng: np.random.Generator | None = None,
        *,
        healthy_panic_threshold: float = 50.0,
        overprovisioning_factor: float = 1.4,
    ):
        eps = as_endpoints(endpoints)
        super().__init__(len(eps), rng)
        self.healthy_panic_threshold = _check_percent("healthy_panic_threshold", healthy_panic_threshold)
        if not overprovisioning_factor > 0:
            raise ValueError(f"overprovisioning_factor must be > 0, got {overprovisioning_factor!r}")
        self.overprovisioning_factor = float(overprovisioning_factor)
        # a private stream when none is given: deterministic, never numpy's global state
        self._rand = rng if rng is not None else np.random.default_rng(0)
        self._buf: list[int] = []  # pre-drawn values for _random
        self.active = [0] * len(eps)
        self.total_active = 0
        self._set_endpoints(eps)

    # -- endpoint set
    def _set_endpoints(self, eps: tuple[Endpoint, ...]) -> None:
        self.endpoints = eps
        self.n = len(eps)
        levels = max(e.priority for e in eps) + 1
        self._hosts: list[list[int]] = [[] for _ in range(levels)]
        self._healthy: list[list[int]] = [[] for _ in range(levels)]
        for i, e in enumerate(eps):
            self._hosts[e.priority].append(i)
            if e.healthy:
                self._healthy[e.priority].append(i)
        self.priority_load = priority_loads(
            [(len(h), len(a)) for h, a in zip(self._healthy, self._hosts)],
            self.overprovisioning_factor,
            self.healthy_panic_threshold,
        )
        self._rebuild()

    def _rebuild(self) -> None:
        """Recompute per-view state after the endpoint set changed."""

    def update(self, n: int | Sequence[Endpoint]) -> None:
        """The view changed: ``n`` endpoints, or a new endpoint list."""
        old, old_active = self.endpoints, self.active
        if isinstance(n, (int, np.integer)) and not isinstance(n, bool):
            if n < 1:
                raise ValueError("a balancer needs at least one endpoint")
            eps = old[:n] + tuple(Endpoint(f"ep{i}") for i in range(len(old), n))
            active = old_active[:n] + [0] * max(0, n - len(old))
        else:
            eps = as_endpoints(n)
            by_name = {e.name: a for e, a in zip(old, old_active)}
            active = [by_name.get(e.name, 0) for e in eps]
        self.active = active
        self.total_active = sum(active)
        self._set_endpoints(eps)

    # -- helpers
    def _random(self) -> int:
        """A 63-bit random value (Envoy draws 64-bit; only residues are used).

        Drawn in blocks of 1024 (one numpy call, not one per pick: picks are on
        the simulator's hot path); a block yields the same values, in the same
        order, as drawing them one at a time.
        """
        buf = self._buf
        if not buf:
            buf.extend(reversed(self._rand.integers(0, 1 << 63, size=1024).tolist()))
        return buf.pop()

    def _random64(self) -> int:
        """A full-range 64-bit random value (a ring position must cover the whole ring)."""
        return int(self._rand.integers(0, 1 << 64, dtype=np.uint64))

    def _source_hosts(self, p: int) -> list[int]:
        hosts = self._hosts[p] if self.priority_load.panic[p] else self._healthy[p]
        if not hosts:
            raise NoHealthyUpstream("no healthy upstream (healthy_panic_threshold=0 and no healthy endpoint)")
        return hosts

    def _count_start(self, index: int) -> None:
        if 0 <= index < len(self.active):
            self.active[index] += 1
            self.total_active += 1

    def _count_end(self, index: int) -> None:
        if 0 <= index < len(self.active) and self.active[index] > 0:
            self.active[index] -= 1
            self.total_active -= 1


class _ZoneAware(EnvoyBalancer):
    """Envoy's ``ZoneAwareLoadBalancerBase``: priority, panic, then locality for P=0.

    ``local_zone`` is the caller's zone and ``local_zone_hosts`` the number of
    healthy instances of the caller's own service per zone (Envoy's "local
    cluster"); zone-aware routing is off unless both are given.
    ``min_cluster_size`` (Envoy default 6) turns it off for small upstreams,
    ``routing_enabled`` (percent, default 100) samples it per request.
    """

    def __init__(
        self,
        endpoints: int | Sequence[Endpoint],
        rng: np.random.Generator | None = None,
        *,
        local_zone: str | None = None,
        local_zone_hosts: Mapping[str | None, int] | None = None,
        min_cluster_size: int = 6,
        routing_enabled: float = 100.0,
        healthy_panic_threshold: float = 50.0,
        overprovisioning_factor: float = 1.4,
    ):
        if min_cluster_size < 0:
            raise ValueError(f"min_cluster_size must be >= 0, got {min_cluster_size!r}")
        if local_zone_hosts is not None and any(c < 0 for c in local_zone_hosts.values()):
            raise ValueError("local_zone_hosts counts must be >= 0")
        self.local_zone = local_zone
        self.local_zone_hosts = dict(local_zone_hosts) if local_zone_hosts else None
        self.min_cluster_size = int(min_cluster_size)
        self.routing_enabled = _check_percent("routing_enabled", routing_enabled)
        self._rr_index: dict[tuple, int] = {}
        super().__init__(
            endpoints,
            rng,
            healthy_panic_threshold=healthy_panic_threshold,
            overprovisioning_factor=overprovisioning_factor,
        )

    def _rebuild(self) -> None:
        by_zone: dict[str | None, list[int]] = {}
        for i in self._hosts[0]:
            by_zone.setdefault(self.endpoints[i].zone, [])
        for i in self._healthy[0]:
            by_zone[self.endpoints[i].zone].append(i)
        self._zone_hosts = by_zone
        self.zone_routing = zone_routing(
            self.local_zone,
            self.local_zone_hosts,
            {z: len(v) for z, v in by_zone.items()},
            self.min_cluster_size,
        )

    def _choose_zone(self) -> int:
        zr = self.zone_routing
        if zr.state == "direct":
            return 0
        if self._random() % 10000 < zr.local_bp:
            return 0
        total = zr.residual[-1]
        if total == 0:
            nonempty = [i for i, z in enumerate(zr.zones) if self._zone_hosts[z]]
            return nonempty[self._random() % len(nonempty)]
        threshold = self._random() % total
        i = 0
        while threshold >= zr.residual[i]:
            i += 1
        return i

    def _source(self, p: int) -> tuple[tuple, list[int]]:
        if self.priority_load.panic[p]:
            return ("all", p), self._source_hosts(p)
        if p == 0 and self.zone_routing.state != "off":
            if self.routing_enabled >= 100 or self._random() % 10000 < self.routing_enabled * 100:
                zone = self.zone_routing.zones[self._choose_zone()]
                return ("zone", 0, zone), self._zone_hosts[zone]
        return ("healthy", p), self._source_hosts(p)

    def pick(self, now_ms: float, key: int | None = None) -> int:
        p = choose_priority(self._random(), self.priority_load.loads)
        source, hosts = self._source(p)
        return self._pick_from(source, hosts, now_ms)

    def _pick_from(self, source: tuple, hosts: list[int], now_ms: float) -> int:
        raise NotImplementedError


class RandomBalancer(_ZoneAware):
    """Envoy's random policy: a uniformly random available endpoint (weights ignored).

    >>> import numpy as np
    >>> lb = RandomBalancer(3, np.random.default_rng(0))
    >>> sorted({lb.pick(0.0) for _ in range(50)})
    [0, 1, 2]
    """

    name = "random"

    def _pick_from(self, source: tuple, hosts: list[int], now_ms: float) -> int:
        return hosts[self._random() % len(hosts)]


class _EdfBalancer(_ZoneAware):
    """Envoy's ``EdfLoadBalancerBase``: EDF when weights differ or a host is in slow start.

    Slow start (Envoy ``SlowStartConfig``): ``slow_start_window_ms`` (0 =
    off), ``slow_start_aggression`` (default 1.0) and
    ``slow_start_min_weight_percent`` (default 10) scale the weight of a
    healthy endpoint whose ``start_ms`` lies within the window.  The choice
    between EDF and the unweighted pick is made per host source when it is
    first used after a view change (Envoy makes it when the host set changes).
    """

    def __init__(
        self,
        endpoints: int | Sequence[Endpoint],
        rng: np.random.Generator | None = None,
        *,
        slow_start_window_ms: float = 0.0,
        slow_start_aggression: float = 1.0,
        slow_start_min_weight_percent: float = 10.0,
        **kwargs,
    ):
        if slow_start_window_ms < 0:
            raise ValueError(f"slow_start_window_ms must be >= 0, got {slow_start_window_ms!r}")
        if not slow_start_aggression > 0:
            raise ValueError(f"slow_start_aggression must be > 0, got {slow_start_aggression!r}")
        self.slow_start_window_ms = float(slow_start_window_ms)
        self.slow_start_aggression = float(slow_start_aggression)
        self.slow_start_min_weight_percent = _check_percent(
            "slow_start_min_weight_percent", slow_start_min_weight_percent
        )
        # Envoy's seed_: one random value per balancer, the RR start and EDF pre-picks
        self._seed = int(rng.integers(0, 1 << 32)) if rng is not None else 0
        self._now = 0.0
        super().__init__(endpoints, rng, **kwargs)

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


class WeightedRoundRobin(_EdfBalancer):
    """Envoy's round robin: plain RR when weights are equal, else an EDF schedule.

    Both start at a random point of the rotation (Envoy's per-balancer
    seed); with no rng they start at the first endpoint.

    >>> wrr = WeightedRoundRobin([Endpoint("a"), Endpoint("b", weight=3)])
    >>> [wrr.pick(0.0) for _ in range(8)]
    [1, 1, 0, 1, 1, 1, 0, 1]
    """

    name = "weighted_round_robin"

    def _unweighted(self, source: tuple, hosts: list[int]) -> int:
        k = self._rr_index.get(source, self._seed)
        self._rr_index[source] = k + 1
        return hosts[k % len(hosts)]


class LeastRequest(_EdfBalancer):
    """Envoy's least request: P2C with equal weights, weighted EDF otherwise.

    Equal weights: sample ``choice_count`` (default 2) endpoints at random
    and take the one with fewest active requests (the first sampled wins
    ties); ``selection_method="full_scan"`` scans all, breaking ties at
    random.  Unequal weights (or slow start): EDF over
    ``weight / (active + 1) ** active_request_bias`` (bias default 1.0),
    evaluated when an endpoint is re-queued.  Active counts come from the
    ``on_start``/``on_end`` hooks.

    >>> import numpy as np
    >>> lr = LeastRequest(2, np.random.default_rng(0))
    >>> lr.on_start(0); lr.on_start(0)
    >>> {lr.pick(0.0) for _ in range(20)} <= {0, 1}, lr.active
    (True, [2, 0])
    """

    name = "least_request"

    def __init__(
        self,
        endpoints: int | Sequence[Endpoint],
        rng: np.random.Generator | None = None,
        *,
        choice_count: int = 2,
        active_request_bias: float = 1.0,
        selection_method: str = "n_choices",
        **kwargs,
    ):
        if isinstance(choice_count, bool) or not isinstance(choice_count, (int, np.integer)) or choice_count < 2:
            raise ValueError(f"choice_count must be an integer >= 2, got {choice_count!r}")
        if not active_request_bias >= 0:
            raise ValueError(f"active_request_bias must be >= 0, got {active_request_bias!r}")
        if selection_method not in ("n_choices", "full_scan"):
            raise ValueError(f"selection_method must be 'n_choices' or 'full_scan', got {selection_method!r}")
        self.choice_count = int(choice_count)
        self.active_request_bias = float(active_request_bias)
        self.selection_method = selection_method
        super().__init__(endpoints, rng, **kwargs)

    def _rebuild(self) -> None:
        super()._rebuild()
        # The common case gets a fast pick with the same draws as the general path: one level, no panic, no
        # zone routing, equal weights, no slow start, N choices.
        simple = (len(self._hosts) == 1 and not self.priority_load.panic[0] and self.zone_routing.state == "off"
                  and self.selection_method == "n_choices" and self.slow_start_window_ms <= 0
                  and len({e.weight for e in self.endpoints}) == 1 and bool(self._healthy[0]))
        self._fast_hosts = self._healthy[0] if simple else None

    def pick(self, now_ms: float, key: int | None = None) -> int:
        hosts = self._fast_hosts
        if hosts is None:
            return super().pick(now_ms, key)
        r = self._random
        r()  # the priority draw of the general path (one level: always P=0)
        n = len(hosts)
        active = self.active
        best = hosts[r() % n]
        if self.choice_count == 2:
            i = hosts[r() % n]
            return i if active[i] < active[best] else best
        for _ in range(self.choice_count - 1):
            i = hosts[r() % n]
            if active[i] < active[best]:
                best = i
        return best

    def host_weight(self, i: int) -> float:
        w = float(self.endpoints[i].weight)
        if self.active_request_bias == 1.0:
            w /= self.active[i] + 1
        elif self.active_request_bias != 0.0:
            w /= (self.active[i] + 1) ** self.active_request_bias
        return w * self._slow_start(i)

    def _unweighted(self, source: tuple, hosts: list[int]) -> int:
        active = self.active
        if self.selection_method == "full_scan":
            best, ties = hosts[0], 1
            for i in hosts[1:]:
                if active[i] < active[best]:
                    best, ties = i, 1
                elif active[i] == active[best]:
                    ties += 1
                    if self._random() % ties == 0:
                        best = i
            return best
        best = hosts[self._random() % len(hosts)]
        for _ in range(self.choice_count - 1):
            i = hosts[self._random() % len(hosts)]
            if active[i] < active[best]:
                best = i
        return best

    # the base class's counters, bound directly (one call fewer per request)
    on_start = EnvoyBalancer._count_start
    on_end = EnvoyBalancer._count_end


# --------------------------------------------------------------------------- consistent hashing


def is_prime(n: int) -> bool:
    """Deterministic primality test (trial division; table sizes are small).

    >>> [is_prime(k) for k in (65537, 65535, 2, 1)]
    [True, False, True, False]
    """
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    return all(n % d for d in range(3, math.isqrt(n) + 1, 2))


def _normalized(endpoints: Sequence[Endpoint], hosts: Sequence[int]) -> list[float]:
    total = sum(endpoints[i].weight for i in hosts)
    return [endpoints[i].weight * 1.0 / total for i in hosts]


class _HashTable:
    """One priority level's ring or Maglev table over ``hosts`` (endpoint indices)."""

    hosts: list[int]
    weights: dict[int, float]

    def lookup(self, h: int) -> int:
        raise NotImplementedError

    def walk(self, h: int) -> Iterator[int]:
        """Endpoints in ring/table order from ``h``'s slot, each once."""
        raise NotImplementedError


class _Ring(_HashTable):
    def __init__(self, endpoints: Sequence[Endpoint], hosts: list[int], min_size: int, max_size: int, fn: str):
        self.hosts = hosts
        norm = _normalized(endpoints, hosts)
        self.weights = dict(zip(hosts, norm))
        min_w = min(norm)
        scale = min(math.ceil(min_w * min_size) / min_w, float(max_size))
        keys: list[str] = []
        owners: list[int] = []
        current = target = 0.0
        self.hashes_per_host: dict[int, int] = {}
        for i, w in zip(hosts, norm):
            target += scale * w
            k = 0
            name = endpoints[i].name
            while current < target:
                keys.append(f"{name}_{k}")
                owners.append(i)
                k += 1
                current += 1
            self.hashes_per_host[i] = k
        if fn == "xx_hash":
            hashes = xxh64_batch(keys)
        else:
            hashes = np.array([murmur2_64(k) for k in keys], dtype=np.uint64)
        order = np.argsort(hashes, kind="stable")
        self.ring_hashes = hashes[order]
        self.ring_owners = np.asarray(owners, dtype=np.int64)[order]

    def _slot(self, h: int) -> int:
        pos = int(np.searchsorted(self.ring_hashes, np.uint64(h), side="left"))
        return 0 if pos == len(self.ring_hashes) else pos

    def lookup(self, h: int) -> int:
        return int(self.ring_owners[self._slot(h)])

    def walk(self, h: int) -> Iterator[int]:
        seen: set[int] = set()
        size = len(self.ring_owners)
        start = self._slot(h)
        for k in range(size):
            i = int(self.ring_owners[(start + k) % size])
            if i not in seen:
                seen.add(i)
                yield i
                if len(seen) == len(self.hosts):
                    return


class _MaglevTable(_HashTable):
    def __init__(self, endpoints: Sequence[Endpoint], hosts: list[int], size: int):
        self.size = size
        norm = _normalized(endpoints, hosts)
        self.weights = dict(zip(hosts, norm))
        order = sorted(range(len(hosts)), key=lambda k: endpoints[hosts[k]].name)
        self.hosts = [hosts[k] for k in order]
        w = [norm[k] for k in order]
        names = [endpoints[i].name for i in self.hosts]
        offset = [xxh64(nm) % size for nm in names]
        skip = [xxh64(nm, 1) % (size - 1) + 1 for nm in names]
        max_w = max(w)
        nb = len(self.hosts)
        table = [-1] * size
        nxt = [0] * nb
        target = [0.0] * nb
        count = [0] * nb
        filled, iteration = 0, 1
        while filled < size:
            for k in range(nb):
                if filled >= size:
                    break
                if iteration * w[k] < target[k]:
                    continue
                target[k] += max_w
                c = (offset[k] + skip[k] * nxt[k]) % size
                while table[c] >= 0:
                    nxt[k] += 1
                    c += skip[k]
                    if c >= size:
                        c -= size
                table[c] = k
                nxt[k] += 1
                count[k] += 1
                filled += 1
            iteration += 1
        self.table = np.asarray(self.hosts, dtype=np.int64)[np.asarray(table, dtype=np.int64)]
        self.entries_per_host = {self.hosts[k]: count[k] for k in range(nb)}

    def lookup(self, h: int) -> int:
        return int(self.table[h % self.size])

    def walk(self, h: int) -> Iterator[int]:
        seen: set[int] = set()
        start = h % self.size
        for k in range(self.size):
            i = int(self.table[(start + k) % self.size])
            if i not in seen:
                seen.add(i)
                yield i
                if len(seen) == len(self.hosts):
                    return


class _HashBalancer(EnvoyBalancer):
    """Envoy's thread-aware (consistent hashing) balancers: one table per priority.

    ``pick(now_ms, key)`` hashes ``key`` (a 64-bit int, e.g. from
    :func:`hash_key`) to a priority (``key % 100``, as Envoy) and then to an
    endpoint; without a key a random value is used (Envoy does the same).
    Tables cover the healthy endpoints of a level, or all of them when the
    level is in panic.

    Bounded loads (``hash_balance_factor``: Envoy's
    ``common_lb_config.consistent_hashing_lb_config.hash_balance_factor``, an
    integer >= 100, no default; ``None`` = off), as Envoy's
    ``BoundedLoadHashingLoadBalancer`` does it (Mirrokni, Thorup and
    Zadimoghaddam 2018).  With ``A`` active requests in the balancer
    and an endpoint of normalised weight ``w`` (its share of the table's
    hosts), the endpoint has ``slots = max(ceil(w * ceil((A + 1) * factor /
    100)), 1)`` and is *overloaded* when its active count is greater than
    ``slots``; an endpoint exactly at its slots is accepted (Envoy's
    ``active / slots <= 1``), so with equal weights an endpoint can reach
    ``ceil(factor/100 * mean active) + 1`` (the mean counted with the new
    request).  The hashed endpoint is taken unless overloaded; then the
    others are probed in :func:`~meshsim.core.hashing.bounded_load_probe_order`
    (a shuffle of the table's hosts by ``std::mt19937`` seeded with the hash,
    bit-exact with Envoy's for the same host list) and the first one not
    overloaded is taken; if all are, the one with the smallest
    ``active / slots`` (the hashed one on ties, then probe order).
    Two non-Envoy variants, for comparison: ``bounded_probe="walk"`` probes
    clockwise along the ring/table (the 2016 paper's and HAProxy's rule,
    prone to cascading overflow) and ``inclusive_bound=False`` refuses an
    endpoint at its slots (the paper's cap, ``ceil(factor/100 * mean)``).
    """

    def __init__(
        self,
        endpoints: int | Sequence[Endpoint],
        rng: np.random.Generator | None = None,
        *,
        hash_balance_factor: int | None = None,
        bounded_probe: str = "random",
        inclusive_bound: bool = True,
        healthy_panic_threshold: float = 50.0,
        overprovisioning_factor: float = 1.4,
    ):
        if hash_balance_factor is not None and (
            isinstance(hash_balance_factor, bool) or not isinstance(hash_balance_factor, (int, np.integer))
            or hash_balance_factor < 100
        ):
            raise ValueError(f"hash_balance_factor must be an integer >= 100 (or None), got {hash_balance_factor!r}")
        if bounded_probe not in ("walk", "random"):
            raise ValueError(f"bounded_probe must be 'walk' or 'random', got {bounded_probe!r}")
        self.hash_balance_factor = None if hash_balance_factor is None else int(hash_balance_factor)
        self.bounded_probe = bounded_probe
        self.inclusive_bound = bool(inclusive_bound)
        super().__init__(
            endpoints,
            rng,
            healthy_panic_threshold=healthy_panic_threshold,
            overprovisioning_factor=overprovisioning_factor,
        )
        # the shell calls on_start/on_end only when loads are bounded
        self.tracks_load = self.hash_balance_factor is not None

    def _rebuild(self) -> None:
        self.tables: list[_HashTable | None] = []
        for p in range(len(self._hosts)):
            hosts = self._hosts[p] if self.priority_load.panic[p] else self._healthy[p]
            self.tables.append(self._build(hosts) if hosts else None)

    def _build(self, hosts: list[int]) -> _HashTable:
        raise NotImplementedError

    def slots(self, index: int, table: _HashTable) -> int:
        """How many active requests endpoint ``index`` may hold before the next one."""
        assert self.hash_balance_factor is not None
        total_slots = ((self.total_active + 1) * self.hash_balance_factor + 99) // 100
        return max(math.ceil(total_slots * table.weights[index]), 1)

    def pick(self, now_ms: float, key: int | None = None) -> int:
        h = (key if key is not None else self._random64()) & _M64
        p = choose_priority(h, self.priority_load.loads)
        table = self.tables[p]
        if table is None:
            raise NoHealthyUpstream("no healthy upstream (healthy_panic_threshold=0 and no healthy endpoint)")
        if self.hash_balance_factor is None:
            return table.lookup(h)
        return self._bounded(table, h)

    def overloaded(self, index: int, table: _HashTable) -> bool:
        """Whether endpoint ``index`` of ``table`` is overloaded now (Envoy: active > slots)."""
        a, slots = self.active[index], self.slots(index, table)
        return a > slots if self.inclusive_bound else a >= slots

    def _bounded(self, table: _HashTable, h: int) -> int:
        first = table.lookup(h)
        slots = self.slots(first, table)
        a = self.active[first]
        if a < slots or (self.inclusive_bound and a == slots):
            return first
        if self.bounded_probe == "walk":
            candidates: Iterable[int] = table.walk(h)
        else:
            hosts = table.hosts
            candidates = [hosts[k] for k in _probe_order(h & 0xFFFFFFFF, len(hosts))]
        # all overloaded: the smallest active/slots, the hashed endpoint first on ties (Envoy: strict <)
        best, best_factor = first, a / slots
        for i in candidates:
            if i == first:
                continue
            slots = self.slots(i, table)
            a = self.active[i]
            if a < slots or (self.inclusive_bound and a == slots):
                return i
            if a / slots < best_factor:
                best, best_factor = i, a / slots
        return best

    # the base class's counters, bound directly (one call fewer per request)
    on_start = EnvoyBalancer._count_start
    on_end = EnvoyBalancer._count_end


class RingHash(_HashBalancer):
    """Envoy's ring hash (Ketama): each endpoint hashed onto a ring ~weight times.

    The ring holds ``ceil(scale)`` entries with ``scale =
    min(ceil(min_w * minimum_ring_size) / min_w, maximum_ring_size)``
    (``min_w`` the smallest normalised weight; defaults 1024 and 8M); entry
    keys are ``"<name>_<i>"`` hashed with xxHash64 (or ``hash_function=
    "murmur_hash_2"``); a key goes to the first entry clockwise (binary
    search).

    >>> rh = RingHash(4)
    >>> len(rh.tables[0].ring_hashes), set(rh.tables[0].hashes_per_host.values())
    (1024, {256})
    """

    name = "ring_hash"

    def __init__(
        self,
        endpoints: int | Sequence[Endpoint],
        rng: np.random.Generator | None = None,
        *,
        minimum_ring_size: int = DEFAULT_MIN_RING_SIZE,
        maximum_ring_size: int = MAX_RING_SIZE,
        hash_function: str = "xx_hash",
        **kwargs,
    ):
        if not 1 <= minimum_ring_size <= MAX_RING_SIZE:
            raise ValueError(f"minimum_ring_size must be in [1, {MAX_RING_SIZE}], got {minimum_ring_size!r}")
        if not 1 <= maximum_ring_size <= MAX_RING_SIZE:
            raise ValueError(f"maximum_ring_size must be in [1, {MAX_RING_SIZE}], got {maximum_ring_size!r}")
        if minimum_ring_size > maximum_ring_size:
            raise ValueError(
                f"minimum_ring_size ({minimum_ring_size}) > maximum_ring_size ({maximum_ring_size})"
            )
        if hash_function not in ("xx_hash", "murmur_hash_2"):
            raise ValueError(f"hash_function must be 'xx_hash' or 'murmur_hash_2', got {hash_function!r}")
        self.minimum_ring_size = int(minimum_ring_size)
        self.maximum_ring_size = int(maximum_ring_size)
        self.hash_function = hash_function
        super().__init__(endpoints, rng, **kwargs)

    def _build(self, hosts: list[int]) -> _HashTable:
        return _Ring(self.endpoints, hosts, self.minimum_ring_size, self.maximum_ring_size, self.hash_function)


class Maglev(_HashBalancer):
    """Envoy's Maglev: a prime-sized lookup table filled by per-endpoint permutations.

    Endpoints (sorted by name) get ``offset = xxh64(name) % M`` and ``skip =
    xxh64(name, seed=1) % (M - 1) + 1`` and take turns claiming the next free
    slot of their permutation; an endpoint of normalised weight ``w`` takes a
    turn whenever ``iteration * w`` has caught up with its running target
    (Envoy's weighting).  A key goes to ``table[key % M]``.

    >>> mg = Maglev([Endpoint("A", weight=1), Endpoint("B", weight=2)])
    >>> mg.tables[0].entries_per_host      # the Envoy docs' example
    {0: 21846, 1: 43691}
    """

    name = "maglev"

    def __init__(
        self,
        endpoints: int | Sequence[Endpoint],
        rng: np.random.Generator | None = None,
        *,
        table_size: int = DEFAULT_MAGLEV_TABLE_SIZE,
        **kwargs,
    ):
        if isinstance(table_size, bool) or not isinstance(table_size, (int, np.integer)) or not is_prime(table_size):
            raise ValueError(f"table_size must be a prime number, got {table_size!r}")
        if table_size > MAX_MAGLEV_TABLE_SIZE:
            raise ValueError(f"table_size must be <= {MAX_MAGLEV_TABLE_SIZE}, got {table_size!r}")
        self.table_size = int(table_size)
        super().__init__(endpoints, rng, **kwargs)

    def _build(self, hosts: list[int]) -> _HashTable:
        return _MaglevTable(self.endpoints, hosts, self.table_size)


class RingHashBounded(RingHash):
    """:class:`RingHash` with bounded loads, ``hash_balance_factor=150`` unless given.

    A meshsim shorthand (policy ``ring_hash_bounded``): Envoy sets the
    factor on ring hash or Maglev and has no default; 150 is the example of
    its API documentation.
    """

    name = "ring_hash_bounded"

    def __init__(self, endpoints: int | Sequence[Endpoint], rng: np.random.Generator | None = None, **kwargs):
        kwargs.setdefault("hash_balance_factor", 150)
        super().__init__(endpoints, rng, **kwargs)


class MaglevBounded(Maglev):
    """:class:`Maglev` with bounded loads, ``hash_balance_factor=150`` unless given.

    A meshsim shorthand (policy ``maglev_bounded``): Envoy sets the
    factor on ring hash or Maglev and has no default; 150 is the example of
    its API documentation.
    """

    name = "maglev_bounded"

    def __init__(self, endpoints: int | Sequence[Endpoint], rng: np.random.Generator | None = None, **kwargs):
        kwargs.setdefault("hash_balance_factor", 150)
        super().__init__(endpoints, rng, **kwargs)


for _cls in (WeightedRoundRobin, RandomBalancer, LeastRequest, RingHash, Maglev, RingHashBounded, MaglevBounded):
    BALANCERS[_cls.name] = _cls
del _cls
