"""Hosts, zones, regions and the links between them: the message-delivery primitive.

``Network.send(src_host, dst_host, fn, msg, on_drop)`` delivers ``fn(msg)``
after the link's one-way latency, or calls ``on_drop(msg, reason)`` if the
message is lost (link loss), blocked (partition) or its destination host is
down.  The request path, the registry and the proxies all use it.

Latency (and, separately, loss) of a pair of hosts: the most specific
``network.links`` entry that sets it (host beats zone beats region; later
entries win ties), else the class
default (same host / same zone / cross zone / cross region).  Faults add
degradations (replacement or extra latency, loss) and partitions for a time.
With ``network.enabled: false`` delivery is immediate and never fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..distributions import Distribution, from_spec
from ..rng import RandomStreams, uniform_stream
from ..calibration import DEFAULT_LATENCY
from .kernel import Carrier, Kernel

DropFn = Callable[[Any, str], Any]

#: Reasons a message may not arrive.
LOSS, PARTITIONED, HOST_DOWN = "network_loss", "partitioned", "host_down"

_STREAM_BATCH = 256


class _Delivery(Carrier):
    __slots__ = ("fn", "msg", "dst", "on_drop")


class _PairState:
    """Resolved, cached link properties of one ordered host pair."""

    __slots__ = ("latency", "extra", "loss", "uniform", "blocked")

    def __init__(self, latency, extra, loss, uniform, blocked):
        self.latency = latency
        self.extra = extra
        self.loss = loss
        self.uniform = uniform
        self.blocked = blocked


class Network:
    """Topology plus link behaviour; see module docstring."""

    def __init__(
        self,
        kernel: Kernel,
        hosts: dict[str, str],
        zones: dict[str, str],
        spec: dict,
        streams: RandomStreams,
    ):
        self.kernel = kernel
        self.env = kernel.env
        self.enabled: bool = spec["enabled"]
        self.host_zone = dict(hosts)
        self.zone_region = dict(zones)
        self.host_up: dict[str, bool] = {h: True for h in hosts}
        self._streams = streams
        self._rngs: dict[str, Any] = {}
        self._iters: dict[tuple, Any] = {}
        lat = spec["latency"]
        self.classes: dict[str, Distribution] = {
            k: lat.get(k) if lat.get(k) is not None else from_spec(v, f"network.latency.{k}")
            for k, v in DEFAULT_LATENCY.items()
        }
        self.base_loss: float = spec["loss"]
        self.links: list[dict] = list(spec["links"])
        self.degrades: dict[int, dict] = {}
        self.partitions: dict[int, dict] = {}
        self._pairs: dict[tuple[str, str], _PairState] = {}
        self._deliver_cbs = [self._deliver]
        self._clock = kernel.clock
        self._push_at = kernel.push_at
        self.messages_sent = 0
        self.messages_dropped = 0

    # -- names ---------------------------------------------------------------
    def add_host(self, host: str, zone: str) -> None:
        self.host_zone[host] = zone
        self.host_up[host] = True

    def covers(self, name: str, host: str) -> bool:
        """True if ``name`` is the host itself, its zone or its region."""
        zone = self.host_zone[host]
        return name == host or name == zone or name == self.zone_region[zone]

    def _level(self, name: str) -> int:
        if name in self.host_zone:
            return 2
        if name in self.zone_region:
            return 1
        return 0

    def relation(self, src: str, dst: str) -> str:
        """same_host, same_zone, cross_zone or cross_region."""
        if src == dst:
            return "same_host"
        za, zb = self.host_zone[src], self.host_zone[dst]
        if za == zb:
            return "same_zone"
        if self.zone_region[za] == self.zone_region[zb]:
            return "cross_zone"
        return "cross_region"

    # -- random streams --------------------------------------------------------
    def _iter(self, key: tuple, dist: Distribution):
        it = self._iters.get(key)
        if it is None:
            name = "net/" + "/".join(str(k) for k in key)
            it = dist.stream(self._streams.generator(name), _STREAM_BATCH)
            self._iters[key] = it
        return it

    # -- resolution ------------------------------------------------------------
    def _matches(self, between: list, src: str, dst: str, oneway: bool) -> bool:
        a, b = between
        if self.covers(a, src) and self.covers(b, dst):
            return True
        return not oneway and self.covers(b, src) and self.covers(a, dst)

    def _resolve(self, src: str, dst: str) -> _PairState:
        rel = self.relation(src, dst)
        latency_key: tuple = ("class", rel, self.host_zone[src], self.host_zone[dst])
        latency = self.classes[rel]
        loss = self.base_loss
        # each field (latency, loss) independently: the most specific link that sets it wins,
        # and among equally specific links the later one
        best_latency = best_loss = -1
        for i, link in enumerate(self.links):
            if self._matches(link["between"], src, dst, link["oneway"]):
                spec = sum(self._level(n) for n in link["between"])
                if link["latency"] is not None and spec >= best_latency:
                    best_latency = spec
                    latency, latency_key = link["latency"], ("link", i, src, dst)
                if link["loss"] is not None and spec >= best_loss:
                    best_loss = spec
                    loss = link["loss"]
        extra = None
        for i, d in self.degrades.items():
            if self._matches(d["between"], src, dst, d["oneway"]):
                if d["latency"] is not None:
                    latency, latency_key = d["latency"], ("fault", i, "latency", src, dst)
                if d["extra_latency"] is not None:
                    extra = self._iter(("fault", i, "extra", src, dst), d["extra_latency"])
                if d["loss"] is not None:
                    loss = 1.0 - (1.0 - loss) * (1.0 - d["loss"])
        blocked = False
        for p in self.partitions.values():
            groups = p["groups"]
            gs = [i for i, g in enumerate(groups) if any(self.covers(n, src) for n in g)]
            gd = [i for i, g in enumerate(groups) if any(self.covers(n, dst) for n in g)]
            if p["oneway"]:
                blocked |= 0 in gs and any(i != 0 for i in gd)
            else:
                blocked |= any(i != j for i in gs for j in gd)
        uniform = None
        if loss > 0:
            uniform = self._iter(("loss", src, dst), _UNIFORM)
        return _PairState(self._iter(latency_key, latency), extra, loss, uniform, blocked)

    def _invalidate(self) -> None:
        self._pairs.clear()

    # -- faults ------------------------------------------------------------------
    def degrade(self, fault_id: int, spec: dict) -> None:
        self.degrades[fault_id] = spec
        self._invalidate()

    def partition(self, fault_id: int, spec: dict) -> None:
        self.partitions[fault_id] = spec
        self._invalidate()

    def heal(self, fault_id: int) -> None:
        self.degrades.pop(fault_id, None)
        self.partitions.pop(fault_id, None)
        self._invalidate()

    def set_host_up(self, host: str, up: bool) -> None:
        self.host_up[host] = up

    # -- delivery ------------------------------------------------------------------
    def reachable(self, src: str, dst: str) -> bool:
        """Whether messages from ``src`` to ``dst`` get through now: no partition, ``dst`` up (loss aside)."""
        st = self._pairs.get((src, dst))
        if st is None:
            st = self._pairs[(src, dst)] = self._resolve(src, dst)
        return not st.blocked and self.host_up[dst]

    def latency(self, src: str, dst: str) -> float:
        """Draw one one-way latency (ms) for a message from ``src`` to ``dst``."""
        st = self._pairs.get((src, dst))
        if st is None:
            st = self._pairs[(src, dst)] = self._resolve(src, dst)
        d = next(st.latency)
        if st.extra is not None:
            d += next(st.extra)
        return d

    def send(self, src: str, dst: str, fn: Callable[[Any], Any], msg: Any, on_drop: DropFn | None = None,
             stream: list[float] | None = None) -> None:
        """Deliver ``fn(msg)`` at ``dst`` after the link latency, or report a drop.

        A drop decided at send time (loss, partition, destination down) calls
        ``on_drop(msg, reason)`` at once; a destination that goes down while the
        message is in flight drops it on arrival.

        Messages are independent datagrams: with a random latency a later one
        may arrive first.  ``stream`` (a one-element list, kept by the sender
        per connection) makes them a connection, as TCP does: no message
        arrives before the one sent ahead of it on the same stream.
        """
        if not self.enabled:
            fn(msg)
            return
        self.messages_sent += 1
        st = self._pairs.get((src, dst))
        if st is None:
            st = self._pairs[(src, dst)] = self._resolve(src, dst)
        reason = None
        if st.blocked:
            reason = PARTITIONED
        elif not self.host_up[dst]:
            reason = HOST_DOWN
        elif st.uniform is not None and next(st.uniform) < st.loss:
            reason = LOSS
        if reason is not None:
            self.messages_dropped += 1
            if on_drop is not None:
                on_drop(msg, reason)
            return
        d = next(st.latency)
        if st.extra is not None:
            d += next(st.extra)
        ev = _Delivery()
        ev.fn, ev.msg, ev.dst, ev.on_drop = fn, msg, dst, on_drop
        at = self._clock() + d
        if stream is not None:
            if at < stream[0]:
                at = stream[0]
            stream[0] = at
        self._push_at(ev, at, self._deliver_cbs)

    def _deliver(self, ev: _Delivery) -> None:
        if self.host_up[ev.dst]:
            ev.fn(ev.msg)
        else:
            self.messages_dropped += 1
            if ev.on_drop is not None:
                ev.on_drop(ev.msg, HOST_DOWN)


class _Uniform:
    """Uniform(0, 1) with the ``stream`` interface of a Distribution."""

    def stream(self, rng, batch: int):
        return uniform_stream(rng, batch)


_UNIFORM = _Uniform()
