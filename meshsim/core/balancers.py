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

Every setting is a field of one options object, :class:`LbOptions`
(``Maglev(endpoints, rng, LbOptions(table_size=251))``); keyword arguments
(``Maglev(endpoints, rng, table_size=251)``) override its fields.

This module is a façade: the code lives in :mod:`meshsim.core.lb`, one
module per concept as Envoy splits its sources (``options``, ``priority``,
``base``, ``edf``, ``least_request``, ``hash_tables``).

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

from .hashing import hash_key
from .lb.base import Endpoint, EnvoyBalancer, NoHealthyUpstream, ZoneAwareBalancer, as_endpoints  # noqa: F401
from .lb.edf import EdfBalancer, EdfScheduler, RandomBalancer, WeightedRoundRobin, slow_start_factor  # noqa: F401
from .lb.hash_tables import Maglev, MaglevBounded, RingHash, RingHashBounded
from .lb.least_request import LeastRequest
from .lb.options import (
    DEFAULT_MAGLEV_TABLE_SIZE,
    DEFAULT_MIN_RING_SIZE,  # noqa: F401
    MAX_MAGLEV_TABLE_SIZE,  # noqa: F401
    MAX_RING_SIZE,  # noqa: F401
    LbOptions,
    is_prime,
)
from .lb.priority import PriorityLoad, ZoneRouting, choose_priority, priority_loads, zone_routing, zone_split
from .selection import BALANCERS, Balancer  # noqa: F401 - importable from here, as before

__all__ = [
    "DEFAULT_MAGLEV_TABLE_SIZE",
    "EdfScheduler",
    "Endpoint",
    "EnvoyBalancer",
    "LbOptions",
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

