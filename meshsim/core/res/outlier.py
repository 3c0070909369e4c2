"""Outlier detection: consecutive errors, success rate, failure percentage, ejection times.

Mirrors Envoy's ``source/common/upstream/outlier_detection_impl.cc``
(``DetectorImpl``, ``DetectorHostMonitorImpl``, ``resultToHttpCode``) with the
defaults of ``config/cluster/v3/outlier_detection.proto``; Istio's changes
are ``applyOutlierDetection`` in ``pilot/pkg/networking/core/cluster_traffic_policy.go``.

>>> od = OutlierDetector(range(20))
>>> [e.reason for _ in range(5) for e in od.record(0, 500, 0.0)], od.ejected_hosts()
(['consecutive_5xx'], [0])
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np

from .base import OUTCOMES, _check_count, _check_ms, _check_percent, _is_int
from .istio import _check_profile

__all__ = ["OutlierConfig", "OutlierDetector", "OutlierEvent", "outlier_status"]


@dataclass(frozen=True)
class OutlierConfig:
    """Envoy's ``config.cluster.v3.OutlierDetection`` (defaults from outlier_detection.proto).

    Times in ms.  ``max_ejection_time_ms=None`` means Envoy's default:
    ``max(300 s, base_ejection_time)``.  ``success_rate_stdev_factor`` is in
    thousandths (1900 = 1.9).  Enforcing values are percent chances.  Local-
    and external-origin errors are not split (Envoy's default
    ``split_external_local_origin_errors: false``).
    """

    consecutive_5xx: int = 5
    consecutive_gateway_failure: int = 5
    interval_ms: float = 10_000.0
    base_ejection_time_ms: float = 30_000.0
    max_ejection_time_ms: float | None = None
    max_ejection_time_jitter_ms: int = 0
    max_ejection_percent: float = 10.0
    always_eject_one_host: bool = False
    enforcing_consecutive_5xx: float = 100.0
    enforcing_consecutive_gateway_failure: float = 0.0
    enforcing_success_rate: float = 100.0
    success_rate_minimum_hosts: int = 5
    success_rate_request_volume: int = 100
    success_rate_stdev_factor: int = 1900
    failure_percentage_threshold: float = 85.0
    enforcing_failure_percentage: float = 0.0
    failure_percentage_minimum_hosts: int = 5
    failure_percentage_request_volume: int = 50

    def __post_init__(self) -> None:
        for name in (
            "consecutive_5xx",
            "consecutive_gateway_failure",
            "max_ejection_time_jitter_ms",
            "success_rate_minimum_hosts",
            "success_rate_request_volume",
            "success_rate_stdev_factor",
            "failure_percentage_minimum_hosts",
            "failure_percentage_request_volume",
        ):
            _check_count(name, getattr(self, name))
        for name in (
            "max_ejection_percent",
            "enforcing_consecutive_5xx",
            "enforcing_consecutive_gateway_failure",
            "enforcing_success_rate",
            "failure_percentage_threshold",
            "enforcing_failure_percentage",
        ):
            object.__setattr__(self, name, _check_percent(name, getattr(self, name)))
        object.__setattr__(self, "interval_ms", _check_ms("interval_ms", self.interval_ms))
        base = _check_ms("base_ejection_time_ms", self.base_ejection_time_ms)
        object.__setattr__(self, "base_ejection_time_ms", base)
        mx = self.max_ejection_time_ms
        mx = max(300_000.0, base) if mx is None else _check_ms("max_ejection_time_ms", mx)
        if mx < base:  # Envoy rejects the config (DetectorImpl::create)
            raise ValueError(f"max_ejection_time_ms must be >= base_ejection_time_ms ({base}), got {mx}")
        object.__setattr__(self, "max_ejection_time_ms", mx)
        if not isinstance(self.always_eject_one_host, bool):
            raise ValueError(f"always_eject_one_host must be a bool, got {self.always_eject_one_host!r}")

    @classmethod
    def profile(cls, name: str) -> OutlierConfig:
        """``"envoy"``: the proto defaults; an Istio profile: the same with success-rate ejection off.

        Istio (cluster_traffic_policy.go ``applyOutlierDetection``) always sets
        ``enforcing_success_rate: 0``; fields the DestinationRule leaves unset
        keep Envoy's defaults.  Either way detection runs only when configured.
        """
        if _check_profile(name) == "envoy":
            return cls()
        return cls(enforcing_success_rate=0.0)


@dataclass(frozen=True)
class OutlierEvent:
    """Something the detector did.

    ``action``: ``"eject"``, ``"uneject"``, ``"not_enforced"`` (detected but
    the enforcing chance said no) or ``"overflow"`` (detected but
    ``max_ejection_percent`` forbids it; Envoy's ``ejections_overflow``).
    ``reason``: ``consecutive_5xx``, ``consecutive_gateway_failure``,
    ``success_rate`` or ``failure_percentage`` (``None`` for unejections).
    ``ejection_ms``: for ejections, how long until the host is eligible to
    return (it returns at the first interval tick at or after that).
    """

    action: str
    host: Hashable
    time_ms: float
    reason: str | None = None
    ejection_ms: float | None = None


def outlier_status(result: bool | int | str) -> int | None:
    """The HTTP status outlier detection charges for an attempt's result (``None``: not charged).

    Without split local/external errors Envoy maps everything to a code
    (outlier_detection_impl.cc ``resultToHttpCode``; router.cc): a connect
    failure or any upstream reset is 503, a (per-try) timeout 504, and an
    overflow of a local breaker is not charged.  ``True``/``False`` are read
    as 200/500.

    >>> [outlier_status(r) for r in (True, False, 502, "connect-failure", "per-try-timeout", "overflow")]
    [200, 500, 502, 503, 504, None]
    """
    if isinstance(result, bool):
        return 200 if result else 500
    if _is_int(result):
        if not 100 <= result <= 599:  # type: ignore[operator]
            raise ValueError(f"result must be a bool, an HTTP status or one of {sorted(OUTCOMES)}, got {result!r}")
        return int(result)  # type: ignore[arg-type]
    if result == "overflow":
        return None
    if result == "per-try-timeout":
        return 504
    if result in OUTCOMES:
        return 503
    raise ValueError(f"result must be a bool, an HTTP status or one of {sorted(OUTCOMES)}, got {result!r}")


class _HostState:
    __slots__ = (
        "consecutive_5xx",
        "consecutive_gateway",
        "ejected",
        "num_ejections",
        "backoff",
        "jitter_ms",
        "last_ejection_ms",
        "last_unejection_ms",
        "bucket",
        "backup",
    )

    def __init__(self) -> None:
        self.consecutive_5xx = 0
        self.consecutive_gateway = 0
        self.ejected = False
        self.num_ejections = 0
        self.backoff = 0
        self.jitter_ms = 0
        self.last_ejection_ms: float | None = None
        self.last_unejection_ms: float | None = None
        self.bucket = [0, 0]  # [successes, total] this interval
        self.backup = [0, 0]  # the previous full interval


class OutlierDetector:
    """Envoy's outlier detector for one cluster (outlier_detection_impl.cc).

    * Consecutive errors: each 5xx bumps ``consecutive_5xx``; each 502/503/504
      also bumps the gateway count (another 5xx resets only that one); any
      other status resets both.  Reaching the threshold exactly triggers an
      ejection attempt and resets that counter (unless the host is already
      ejected, then nothing happens).
    * An ejection attempt is refused (``overflow``) when it would put more
      than ``max_ejection_percent`` of all hosts out: Envoy (since
      envoyproxy/envoy#27909, 2023) checks ``100 * (ejected + 1) / hosts <=
      max_ejection_percent``, so with the default 10 % fewer than 10 hosts
      eject nothing.  The older "will eject at least one host regardless" (the
      proto comment until #34796) is now ``always_eject_one_host`` (Envoy
      1.31, default off).  Then the enforcing
      chance decides (``not_enforced``); gateway failures are enforced 0 % by
      default: detected, never ejected.
    * Ejection time: ``min(base * k, max) + jitter`` where ``k`` counts up on
      each ejection and down by one at each interval tick the host spends
      healthy a full interval after returning (so the docs' "base times the
      number of ejections" holds for back-to-back ejections).
    * Hosts return only on :meth:`on_interval` ticks (Envoy's interval timer),
      at the first tick at or after their ejection time.  The tick also runs
      success-rate and failure-percentage ejection on the previous interval's
      counts.

    ``record`` and ``on_interval`` return the :class:`OutlierEvent` list.

    >>> od = OutlierDetector(range(20))
    >>> [e.action for e in od.record(3, 500, 0.0)]
    []
    >>> events = [e for _ in range(4) for e in od.record(3, 500, 1.0)]
    >>> [(e.action, e.reason, e.ejection_ms) for e in events]
    [('eject', 'consecutive_5xx', 30000.0)]
    >>> od.is_ejected(3), [e.action for e in od.on_interval(30_000.0)]
    (True, [])
    >>> [e.action for e in od.on_interval(40_000.0)], od.ejected_hosts()
    (['uneject'], [])
    """

    def __init__(
        self,
        hosts: Iterable[Hashable],
        config: OutlierConfig | None = None,
        rng: np.random.Generator | None = None,
    ):
        if config is not None and not isinstance(config, OutlierConfig):
            raise ValueError(f"config must be an OutlierConfig or None, got {config!r}")
        self.config = config if config is not None else OutlierConfig()
        self.rng = rng
        c = self.config
        needs_rng = c.max_ejection_time_jitter_ms > 0 or any(
            0 < p < 100
            for p in (
                c.enforcing_consecutive_5xx,
                c.enforcing_consecutive_gateway_failure,
                c.enforcing_success_rate,
                c.enforcing_failure_percentage,
            )
        )
        if needs_rng and rng is None:
            raise ValueError("rng is required with ejection jitter or an enforcing chance strictly between 0 and 100")
        self._hosts: dict[Hashable, _HostState] = {}
        self.active_ejections = 0
        self.stats: dict[str, int] = {}
        self.set_hosts(hosts)

    # -- membership
    def set_hosts(self, hosts: Iterable[Hashable]) -> None:
        """The cluster's hosts are now ``hosts``: new ones start clean, removed ones are forgotten."""
        new = list(dict.fromkeys(hosts))
        keep = set(new)
        for h in [h for h in self._hosts if h not in keep]:
            if self._hosts[h].ejected:
                self.active_ejections -= 1
            del self._hosts[h]
        for h in new:
            if h not in self._hosts:
                self._hosts[h] = _HostState()

    @property
    def hosts(self) -> list[Hashable]:
        return list(self._hosts)

    def _state(self, host: Hashable) -> _HostState:
        try:
            return self._hosts[host]
        except KeyError:
            raise ValueError(f"unknown host {host!r}") from None

    def _bump(self, stat: str) -> None:
        self.stats[stat] = self.stats.get(stat, 0) + 1

    # -- queries
    def is_ejected(self, host: Hashable, now_ms: float | None = None) -> bool:
        """Whether ``host`` is ejected.  ``now_ms`` is accepted for symmetry only: the
        state changes in :meth:`record` and :meth:`on_interval`, as in Envoy."""
        return self._state(host).ejected

    def ejected_hosts(self) -> list[Hashable]:
        return [h for h, s in self._hosts.items() if s.ejected]

    def num_ejections(self, host: Hashable) -> int:
        return self._state(host).num_ejections

    def ejection_time_ms(self, host: Hashable) -> float:
        """The ejection time the host's current backoff gives (without jitter)."""
        return self._ejection_ms(self._state(host))

    def _ejection_ms(self, s: _HostState) -> float:
        c = self.config
        return min(c.base_ejection_time_ms * s.backoff, c.max_ejection_time_ms)  # type: ignore[type-var]

    # -- inputs
    def record(self, host: Hashable, result: bool | int | str, now_ms: float) -> list[OutlierEvent]:
        """Charge one attempt's result to ``host`` (see :func:`outlier_status`)."""
        s = self._state(host)
        code = outlier_status(result)
        if code is None:
            return []
        s.bucket[1] += 1
        c = self.config
        triggered = []
        if 500 <= code <= 599:
            if code in (502, 503, 504):
                s.consecutive_gateway += 1
                if s.consecutive_gateway == c.consecutive_gateway_failure:
                    triggered.append("consecutive_gateway_failure")
            else:
                s.consecutive_gateway = 0
            s.consecutive_5xx += 1
            if s.consecutive_5xx == c.consecutive_5xx:
                triggered.append("consecutive_5xx")
        else:
            s.bucket[0] += 1
            s.consecutive_5xx = 0
            s.consecutive_gateway = 0
        events: list[OutlierEvent] = []
        for reason in triggered:
            if s.ejected:  # onConsecutiveErrorWorker returns early, counters untouched
                continue
            self._bump("ejections_detected_" + reason)
            events.append(self._eject(host, s, reason, now_ms))
            if reason == "consecutive_5xx":
                s.consecutive_5xx = 0
            else:
                s.consecutive_gateway = 0
        return events

    def on_interval(self, now_ms: float) -> list[OutlierEvent]:
        """The interval timer fired (every ``interval_ms``): unejections, then statistical ejections."""
        c = self.config
        events: list[OutlierEvent] = []
        for host, s in self._hosts.items():
            if s.ejected and s.last_ejection_ms is not None:
                if self._ejection_ms(s) + s.jitter_ms <= now_ms - s.last_ejection_ms:
                    s.ejected = False
                    self.active_ejections -= 1
                    s.consecutive_5xx = s.consecutive_gateway = 0
                    s.last_unejection_ms = now_ms
                    events.append(OutlierEvent("uneject", host, now_ms))
            s.backup, s.bucket = s.bucket, [0, 0]
        events.extend(self._statistical(now_ms))
        for s in self._hosts.values():
            if not s.ejected and s.last_unejection_ms is not None and now_ms - s.last_unejection_ms >= c.interval_ms:
                if s.backoff:
                    s.backoff -= 1
        return events

    # -- internals
    def _enforced(self, percent: float) -> bool:
        if percent >= 100:
            return True
        if percent <= 0:
            return False
        return int(self.rng.integers(0, 100)) < percent  # type: ignore[union-attr]

    def _eject(self, host: Hashable, s: _HostState, reason: str, now_ms: float) -> OutlierEvent:
        c = self.config
        n = len(self._hosts)
        allowed = 100.0 * (self.active_ejections + 1) / n <= c.max_ejection_percent
        if c.always_eject_one_host:
            allowed = allowed or self.active_ejections == 0
        if not allowed:
            self._bump("ejections_overflow")
            return OutlierEvent("overflow", host, now_ms, reason)
        if not self._enforced(getattr(c, "enforcing_" + reason)):
            return OutlierEvent("not_enforced", host, now_ms, reason)
        self.active_ejections += 1
        self._bump("ejections_enforced_" + reason)
        self._bump("ejections_enforced_total")
        s.ejected = True
        s.num_ejections += 1
        s.last_ejection_ms = now_ms
        jitter = c.max_ejection_time_jitter_ms
        s.jitter_ms = int(self.rng.integers(0, jitter + 1)) if jitter else 0  # type: ignore[union-attr]
        base, mx = c.base_ejection_time_ms, c.max_ejection_time_ms
        if s.backoff * base < mx + base:  # type: ignore[operator]
            s.backoff += 1
        return OutlierEvent("eject", host, now_ms, reason, self._ejection_ms(s) + s.jitter_ms)

    def _statistical(self, now_ms: float) -> list[OutlierEvent]:
        c = self.config
        n = len(self._hosts)
        if n < c.success_rate_minimum_hosts and n < c.failure_percentage_minimum_hosts:
            return []
        sr_hosts, fp_hosts = [], []
        for host, s in self._hosts.items():
            if s.ejected or s.backup[1] == 0:
                continue
            rate = s.backup[0] * 100.0 / s.backup[1]
            if s.backup[1] >= c.success_rate_request_volume:
                sr_hosts.append((host, rate))
            if s.backup[1] >= c.failure_percentage_request_volume:
                fp_hosts.append((host, rate))
        events = []
        if sr_hosts and len(sr_hosts) >= c.success_rate_minimum_hosts:
            rates = np.array([r for _, r in sr_hosts])
            mean = float(rates.mean())
            threshold = mean - c.success_rate_stdev_factor / 1000.0 * float(np.sqrt(((rates - mean) ** 2).mean()))
            for host, rate in sr_hosts:
                if rate < threshold and not self._hosts[host].ejected:
                    self._bump("ejections_detected_success_rate")
                    events.append(self._eject(host, self._hosts[host], "success_rate", now_ms))
        if fp_hosts and len(fp_hosts) >= c.failure_percentage_minimum_hosts:
            for host, rate in fp_hosts:
                if 100.0 - rate >= c.failure_percentage_threshold and not self._hosts[host].ejected:
                    self._bump("ejections_detected_failure_percentage")
                    events.append(self._eject(host, self._hosts[host], "failure_percentage", now_ms))
        return events
