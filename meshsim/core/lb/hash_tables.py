"""Envoy's consistent-hashing balancers: ring hash, Maglev and bounded loads.

Mirrors Envoy's ``ThreadAwareLoadBalancerBase`` and
``BoundedLoadHashingLoadBalancer``
(``source/extensions/load_balancing_policies/common/thread_aware_lb_impl.cc``,
formerly ``source/common/upstream/thread_aware_lb_impl.cc``: one table per
priority level, the hash choosing the level, bounded loads) and the two
tables, ``load_balancing_policies/ring_hash/ring_hash_lb.cc`` (:class:`RingHash`)
and ``load_balancing_policies/maglev/maglev_lb.cc`` (:class:`Maglev`).  The
hash functions and the bounded-load probe order are in
:mod:`meshsim.core.hashing`; the option limits (ring sizes, prime table size)
are checked by :class:`~meshsim.core.lb.options.LbOptions`.

>>> from meshsim.core.hashing import hash_key
>>> mg = MaglevBounded(4, None, LbOptions(table_size=251))
>>> mg.hash_balance_factor, mg.pick(0.0, key=hash_key(client_id="alice")) in range(4)
(150, True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from ..hashing import _probe_order, murmur2_64, xxh64, xxh64_batch
from ..selection import BALANCERS
from .base import Endpoint, EnvoyBalancer, NoHealthyUpstream, _option
from .options import LbOptions, is_prime
from .priority import choose_priority

__all__ = ["Maglev", "MaglevBounded", "RingHash", "RingHashBounded", "is_prime"]

_M64 = 0xFFFFFFFFFFFFFFFF


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

    option_names = EnvoyBalancer.option_names | {"hash_balance_factor", "bounded_probe", "inclusive_bound"}

    def _configure(self, opts: LbOptions, rng: np.random.Generator | None) -> None:
        super()._configure(opts, rng)
        self.hash_balance_factor = opts.hash_balance_factor
        self.bounded_probe = opts.bounded_probe
        self.inclusive_bound = opts.inclusive_bound
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

    option_names = _HashBalancer.option_names | {"minimum_ring_size", "maximum_ring_size", "hash_function"}

    minimum_ring_size = _option("minimum_ring_size")
    maximum_ring_size = _option("maximum_ring_size")
    hash_function = _option("hash_function")

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

    option_names = _HashBalancer.option_names | {"table_size"}

    table_size = _option("table_size")

    def _build(self, hosts: list[int]) -> _HashTable:
        return _MaglevTable(self.endpoints, hosts, self.table_size)


class _Bounded:
    """Bounded loads on by default: ``hash_balance_factor`` 150 when the options leave it unset (None)."""

    default_options: ClassVar[LbOptions] = LbOptions(hash_balance_factor=150)

    @classmethod
    def _resolve_options(cls, options: LbOptions | None, overrides: Any) -> LbOptions:
        opts = super()._resolve_options(options, overrides)  # type: ignore[misc]
        return opts if opts.hash_balance_factor is not None else opts.replace(hash_balance_factor=150)


class RingHashBounded(_Bounded, RingHash):
    """:class:`RingHash` with bounded loads, ``hash_balance_factor=150`` unless given.

    A meshsim shorthand (policy ``ring_hash_bounded``): Envoy sets the
    factor on ring hash or Maglev and has no default; 150 is the example of
    its API documentation.
    """

    name = "ring_hash_bounded"


class MaglevBounded(_Bounded, Maglev):
    """:class:`Maglev` with bounded loads, ``hash_balance_factor=150`` unless given.

    A meshsim shorthand (policy ``maglev_bounded``): Envoy sets the
    factor on ring hash or Maglev and has no default; 150 is the example of
    its API documentation.
    """

    name = "maglev_bounded"


for _cls in (RingHash, Maglev, RingHashBounded, MaglevBounded):
    BALANCERS[_cls.name] = _cls
del _cls
