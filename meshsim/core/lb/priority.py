"""Priority levels, panic and zone-aware routing: the arithmetic, as pure functions.

Mirrors Envoy's ``LoadBalancerBase`` and ``ZoneAwareLoadBalancerBase``
(``source/extensions/load_balancing_policies/common/load_balancer_impl.cc``,
formerly ``source/common/upstream/load_balancer_impl.cc``):
``recalculatePerPriorityState`` (:func:`priority_loads`: health per level
with the overprovisioning factor, traffic shares, panic),
``choosePriority`` (:func:`choose_priority`) and
``regenerateLocalityRoutingStructures`` (:func:`zone_routing`,
:func:`zone_split`).  The balancers that apply them are in
:mod:`meshsim.core.lb.base`.

>>> priority_loads([(50, 100), (100, 100)]).loads
(70, 30)
>>> zone_split("a", {"a": 4, "b": 4, "c": 2}, {"a": 5, "b": 10, "c": 5})
{'a': 0.625, 'b': 0.25, 'c': 0.125}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["PriorityLoad", "ZoneRouting", "choose_priority", "priority_loads", "zone_routing", "zone_split"]

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
