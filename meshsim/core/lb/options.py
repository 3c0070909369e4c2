"""One options object for every Envoy load-balancing policy: :class:`LbOptions`.

Envoy spreads a cluster's balancing settings over ``Cluster.CommonLbConfig``
(panic threshold, zone-aware routing, consistent-hashing bounds; the
overprovisioning factor comes with the EDS ``ClusterLoadAssignment``) and
one typed config per policy (``RoundRobin``, ``LeastRequest``, ``RingHash``,
``Maglev``, in ``source/extensions/load_balancing_policies/*/config.cc``).
Here they are one frozen dataclass, checked once when it is made; every
balancer takes it (``Maglev(endpoints, rng, LbOptions(table_size=251))``)
and reads the fields it uses (:attr:`EnvoyBalancer.option_names
<meshsim.core.lb.base.EnvoyBalancer.option_names>`), ignoring the others, so
one object can configure a comparison of several policies.  Keyword
arguments still work and are stricter: a keyword the policy does not read
is a ``TypeError``, as before (the scenario checker relies on it to say
"does not apply to policy ...").

Defaults are Envoy's; ``hash_balance_factor`` has none (``None``: loads are
not bounded).

>>> LbOptions().healthy_panic_threshold, LbOptions().overprovisioning_factor
(50.0, 1.4)
>>> LbOptions(table_size=65535)
Traceback (most recent call last):
...
ValueError: table_size must be a prime number, got 65535
>>> LbOptions(choice_count=3).replace(active_request_bias=0.5).choice_count
3
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_MAGLEV_TABLE_SIZE",
    "DEFAULT_MIN_RING_SIZE",
    "MAX_MAGLEV_TABLE_SIZE",
    "MAX_RING_SIZE",
    "LbOptions",
    "is_prime",
]

#: Envoy ``MaglevTable::DefaultTableSize``
DEFAULT_MAGLEV_TABLE_SIZE = 65537
#: Envoy's limits for ``RingHashLbConfig`` (``minimum_ring_size`` default 1024, cap 8M)
DEFAULT_MIN_RING_SIZE = 1024
MAX_RING_SIZE = 8 * 1024 * 1024
#: Envoy's proto limit on ``MaglevLbConfig.table_size``
MAX_MAGLEV_TABLE_SIZE = 5000011


@lru_cache(maxsize=256)
def is_prime(n: int) -> bool:
    """Deterministic primality test (trial division; table sizes are small; cached: every options object asks).

    >>> [is_prime(k) for k in (65537, 65535, 2, 1)]
    [True, False, True, False]
    """
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    return all(n % d for d in range(3, math.isqrt(n) + 1, 2))


def _percent(name: str, value: float) -> float:
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"{name} must be a percentage in [0, 100], got {value!r}")
    return float(value)


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


@dataclass(frozen=True)
class LbOptions:
    """Every setting of Envoy's balancers, with Envoy's defaults (times in ms, percentages 0-100).

    Priority and panic (all policies; Envoy ``load_balancer_impl.cc``):

    - ``healthy_panic_threshold``: percent healthy below which a level's health is ignored (50);
    - ``overprovisioning_factor``: EDS overprovisioning (1.4).

    Zone-aware routing (round robin, random, least request):

    - ``local_zone``: the caller's zone; ``local_zone_hosts``: healthy instances of the caller's own
      service per zone (Envoy's local cluster); routing is off unless both are set;
    - ``min_cluster_size``: off below this many upstream endpoints (6);
    - ``routing_enabled``: percent of requests it applies to (100).

    Slow start (round robin, least request): ``slow_start_window_ms`` (0: off),
    ``slow_start_aggression`` (1.0: linear), ``slow_start_min_weight_percent`` (10).

    Least request: ``choice_count`` (2), ``active_request_bias`` (1.0),
    ``selection_method`` (``"n_choices"`` or ``"full_scan"``).

    Consistent hashing (ring hash, Maglev): ``hash_balance_factor`` (``None``: unbounded; else an integer
    >= 100), ``bounded_probe`` (``"random"``: Envoy's; ``"walk"``: along the ring), ``inclusive_bound``
    (True: Envoy's ``active <= slots``); ring hash ``minimum_ring_size`` (1024), ``maximum_ring_size`` (8M),
    ``hash_function`` (``"xx_hash"`` or ``"murmur_hash_2"``); Maglev ``table_size`` (65537, a prime).

    Values are normalised (ints to ``int``, rates to ``float``, ``local_zone_hosts`` to a ``dict``).
    """

    healthy_panic_threshold: float = 50.0
    overprovisioning_factor: float = 1.4
    local_zone: str | None = None
    local_zone_hosts: Mapping[str | None, int] | None = None
    min_cluster_size: int = 6
    routing_enabled: float = 100.0
    slow_start_window_ms: float = 0.0
    slow_start_aggression: float = 1.0
    slow_start_min_weight_percent: float = 10.0
    choice_count: int = 2
    active_request_bias: float = 1.0
    selection_method: str = "n_choices"
    hash_balance_factor: int | None = None
    bounded_probe: str = "random"
    inclusive_bound: bool = True
    minimum_ring_size: int = DEFAULT_MIN_RING_SIZE
    maximum_ring_size: int = MAX_RING_SIZE
    hash_function: str = "xx_hash"
    table_size: int = DEFAULT_MAGLEV_TABLE_SIZE

    def __post_init__(self) -> None:
        def put(name: str, value: Any, _set: Any = object.__setattr__) -> None:
            _set(self, name, value)

        put("healthy_panic_threshold", _percent("healthy_panic_threshold", self.healthy_panic_threshold))
        if not self.overprovisioning_factor > 0:
            raise ValueError(f"overprovisioning_factor must be > 0, got {self.overprovisioning_factor!r}")
        put("overprovisioning_factor", float(self.overprovisioning_factor))
        # zone-aware routing
        if self.min_cluster_size < 0:
            raise ValueError(f"min_cluster_size must be >= 0, got {self.min_cluster_size!r}")
        put("min_cluster_size", int(self.min_cluster_size))
        hosts = self.local_zone_hosts
        if hosts is not None and any(c < 0 for c in hosts.values()):
            raise ValueError("local_zone_hosts counts must be >= 0")
        put("local_zone_hosts", dict(hosts) if hosts else None)
        put("routing_enabled", _percent("routing_enabled", self.routing_enabled))
        # slow start
        if self.slow_start_window_ms < 0:
            raise ValueError(f"slow_start_window_ms must be >= 0, got {self.slow_start_window_ms!r}")
        if not self.slow_start_aggression > 0:
            raise ValueError(f"slow_start_aggression must be > 0, got {self.slow_start_aggression!r}")
        put("slow_start_window_ms", float(self.slow_start_window_ms))
        put("slow_start_aggression", float(self.slow_start_aggression))
        put("slow_start_min_weight_percent",
            _percent("slow_start_min_weight_percent", self.slow_start_min_weight_percent))
        # least request
        if not _is_int(self.choice_count) or self.choice_count < 2:
            raise ValueError(f"choice_count must be an integer >= 2, got {self.choice_count!r}")
        if not self.active_request_bias >= 0:
            raise ValueError(f"active_request_bias must be >= 0, got {self.active_request_bias!r}")
        if self.selection_method not in ("n_choices", "full_scan"):
            raise ValueError(f"selection_method must be 'n_choices' or 'full_scan', got {self.selection_method!r}")
        put("choice_count", int(self.choice_count))
        put("active_request_bias", float(self.active_request_bias))
        # consistent hashing
        factor = self.hash_balance_factor
        if factor is not None and (not _is_int(factor) or factor < 100):
            raise ValueError(f"hash_balance_factor must be an integer >= 100 (or None), got {factor!r}")
        if self.bounded_probe not in ("walk", "random"):
            raise ValueError(f"bounded_probe must be 'walk' or 'random', got {self.bounded_probe!r}")
        put("hash_balance_factor", None if factor is None else int(factor))
        put("inclusive_bound", bool(self.inclusive_bound))
        lo, hi = self.minimum_ring_size, self.maximum_ring_size
        if not 1 <= lo <= MAX_RING_SIZE:
            raise ValueError(f"minimum_ring_size must be in [1, {MAX_RING_SIZE}], got {lo!r}")
        if not 1 <= hi <= MAX_RING_SIZE:
            raise ValueError(f"maximum_ring_size must be in [1, {MAX_RING_SIZE}], got {hi!r}")
        if lo > hi:
            raise ValueError(f"minimum_ring_size ({lo}) > maximum_ring_size ({hi})")
        if self.hash_function not in ("xx_hash", "murmur_hash_2"):
            raise ValueError(f"hash_function must be 'xx_hash' or 'murmur_hash_2', got {self.hash_function!r}")
        put("minimum_ring_size", int(lo))
        put("maximum_ring_size", int(hi))
        size = self.table_size
        if not _is_int(size) or not is_prime(size):
            raise ValueError(f"table_size must be a prime number, got {size!r}")
        if size > MAX_MAGLEV_TABLE_SIZE:
            raise ValueError(f"table_size must be <= {MAX_MAGLEV_TABLE_SIZE}, got {size!r}")
        put("table_size", int(size))

    def replace(self, **changes: Any) -> LbOptions:
        """A copy with ``changes`` (checked again).

        >>> LbOptions().replace(healthy_panic_threshold=0).healthy_panic_threshold
        0.0
        """
        return replace(self, **changes)

    def changed(self) -> dict[str, Any]:
        """The fields that differ from Envoy's defaults.

        >>> LbOptions(choice_count=4, table_size=251).changed()
        {'choice_count': 4, 'table_size': 251}
        """
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}


#: every field name of :class:`LbOptions`
OPTION_NAMES: frozenset[str] = frozenset(f.name for f in fields(LbOptions))
