"""The common part of Envoy's balancers: endpoints, priorities, panic, zone-aware routing.

Mirrors Envoy's ``LoadBalancerBase`` (:class:`EnvoyBalancer`: the endpoint
set split into priority levels, their loads and panic flags, the random
draws) and ``ZoneAwareLoadBalancerBase`` (:class:`ZoneAwareBalancer`: for
P=0, the choice of a zone before the host) in
``source/extensions/load_balancing_policies/common/load_balancer_impl.cc``
(formerly ``source/common/upstream/load_balancer_impl.cc``); the arithmetic
itself is in :mod:`meshsim.core.lb.priority`.

Every balancer takes ``endpoints`` (a sequence of :class:`Endpoint`, or a
count ``n`` for ``n`` equal, healthy, unnamed endpoints), an optional numpy
``Generator`` and an optional :class:`~meshsim.core.lb.options.LbOptions`;
keyword arguments override fields of the options, and a keyword the policy
does not read (not in its :attr:`~EnvoyBalancer.option_names`) is a
``TypeError``.

>>> from meshsim.core.lb.edf import WeightedRoundRobin
>>> lb = WeightedRoundRobin(3, None, LbOptions(healthy_panic_threshold=0))
>>> lb.healthy_panic_threshold, lb.options.healthy_panic_threshold
(0.0, 0.0)
>>> WeightedRoundRobin(3, table_size=7)
Traceback (most recent call last):
...
TypeError: WeightedRoundRobin() got an unexpected keyword argument 'table_size'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..selection import Balancer
from .options import OPTION_NAMES, LbOptions
from .priority import choose_priority, priority_loads, zone_routing

__all__ = ["Endpoint", "EnvoyBalancer", "NoHealthyUpstream", "ZoneAwareBalancer", "as_endpoints"]


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


# --------------------------------------------------------------------------- base


def _option(name: str) -> property:
    """A read-only attribute that reads ``self.options`` (for settings used only when the endpoints change).

    Settings read on every pick are copied to plain attributes instead (one attribute load, not two); the rest
    stay in the options object only, so the two cannot drift apart.
    """
    return property(lambda self: getattr(self.options, name), doc=f"``options.{name}`` (read-only)")


class EnvoyBalancer(Balancer):
    """Common part of the Envoy policies: endpoints, priorities and panic.

    ``healthy_panic_threshold`` (percent, Envoy default 50) and
    ``overprovisioning_factor`` (Envoy default 1.4) drive
    :func:`~meshsim.core.lb.priority.priority_loads`; ``self.priority_load``
    holds the current result.  ``update`` accepts a count (as in the base
    class: the first ``n`` endpoints are kept, new ones are equal and
    unnamed) or a new endpoint list (active counts carry over by endpoint
    name).

    Subclasses list the :class:`~meshsim.core.lb.options.LbOptions` fields
    they read in ``option_names``; each is an attribute of the balancer,
    copied in :meth:`_configure` when the pick path reads it
    (``self.choice_count``, not ``self.options.choice_count``), else a
    read-only property over ``self.options``.  ``default_options`` is what
    they start from when no options object is given.
    """

    name = "envoy"
    #: the LbOptions fields this policy reads (keywords outside it are a TypeError)
    option_names: ClassVar[frozenset[str]] = frozenset({"healthy_panic_threshold", "overprovisioning_factor"})
    #: the options used when none are given
    default_options: ClassVar[LbOptions] = LbOptions()

    def __init__(
        self,
        endpoints: int | Sequence[Endpoint],
        rng: np.random.Generator | None = None,
        options: LbOptions | None = None,
        **overrides: Any,
    ):
        opts = self._resolve_options(options, overrides)
        eps = as_endpoints(endpoints)
        super().__init__(len(eps), rng)
        #: the options this balancer was built with
        self.options = opts
        self._configure(opts, rng)
        # a private stream when none is given: deterministic, never numpy's global state
        self._rand = rng if rng is not None else np.random.default_rng(0)
        self._buf: list[int] = []  # pre-drawn values for _random
        self.active = [0] * len(eps)
        self.total_active = 0
        self._set_endpoints(eps)

    @classmethod
    def _resolve_options(cls, options: LbOptions | None, overrides: Mapping[str, Any]) -> LbOptions:
        for key in overrides:
            if key not in cls.option_names:
                why = "" if key in OPTION_NAMES else " (not an LbOptions field)"
                raise TypeError(f"{cls.__name__}() got an unexpected keyword argument '{key}'{why}")
        if options is None:
            options = cls.default_options
        elif not isinstance(options, LbOptions):
            raise TypeError(f"options must be an LbOptions, got {type(options).__name__}")
        return options.replace(**overrides) if overrides else options

    healthy_panic_threshold = _option("healthy_panic_threshold")
    overprovisioning_factor = _option("overprovisioning_factor")

    def _configure(self, opts: LbOptions, rng: np.random.Generator | None) -> None:
        """Copy the options this class reads on the pick path to attributes (before the endpoints are set)."""

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



# --------------------------------------------------------------------------- zone-aware routing


class ZoneAwareBalancer(EnvoyBalancer):
    """Envoy's ``ZoneAwareLoadBalancerBase``: priority, panic, then locality for P=0.

    ``local_zone`` is the caller's zone and ``local_zone_hosts`` the number of
    healthy instances of the caller's own service per zone (Envoy's "local
    cluster"); zone-aware routing is off unless both are given.
    ``min_cluster_size`` (Envoy default 6) turns it off for small upstreams,
    ``routing_enabled`` (percent, default 100) samples it per request.
    Subclasses implement ``_pick_from(source, hosts, now_ms)``.
    """

    option_names = EnvoyBalancer.option_names | {"local_zone", "local_zone_hosts", "min_cluster_size",
                                                 "routing_enabled"}

    local_zone = _option("local_zone")
    local_zone_hosts = _option("local_zone_hosts")
    min_cluster_size = _option("min_cluster_size")

    def _configure(self, opts: LbOptions, rng: np.random.Generator | None) -> None:
        super()._configure(opts, rng)
        self.routing_enabled = opts.routing_enabled
        self._rr_index: dict[tuple, int] = {}

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


#: the name this class had in meshsim.core.balancers
_ZoneAware = ZoneAwareBalancer
