"""Consul-like health checks as pure cores: time in, decisions and deadlines out.

Two kinds, both driven by the shell (:class:`meshsim.registry.agent.Agent`):

* :class:`TTLCheck` - the instance must report (``heartbeat``) within
  ``ttl_ms``; when the deadline passes without one the check turns critical
  ("TTL expired").  The TTL timer starts when the check starts (Consul's
  CheckTTL arms its timer at registration).
* :class:`ProbeCheck` - the agent probes the instance every ``interval_ms``
  (measured from the end of the previous probe, as Consul's check loops do);
  a probe that gets no answer fails after ``timeout_ms``.

Status changes go through Consul's ``StatusHandler`` thresholds: the status
becomes passing only after ``success_before_passing`` consecutive successes
and critical only after ``failures_before_critical`` consecutive failures
(warning after ``failures_before_warning``, which defaults to
``failures_before_critical``).  The counters start at the thresholds, so the
first result always takes effect.

Consul defaults used here (Consul "Health check configuration reference",
developer.hashicorp.com/consul/docs/services/configuration/checks-configuration-reference):
initial ``status`` critical; ``success_before_passing`` 0;
``failures_before_critical`` 0; ``timeout`` 10 s for HTTP/TCP/UDP/gRPC/H2ping
checks.  ``deregister_critical_service_after`` (Consul API docs for
``/v1/agent/check/register``): "The minimum timeout is 1 minute, and the
process that reaps critical services runs every 30 seconds" - so
:data:`MIN_DEREGISTER_AFTER_MS` and :data:`REAP_INTERVAL_MS`; shorter values
are raised to the minimum, as the Consul agent does.

>>> ttl = TTLCheck(ttl_ms=1_000)
>>> ttl.start(0.0), ttl.status
(1000.0, 'critical')
>>> ttl.heartbeat(200.0), ttl.deadline
('passing', 1200.0)
>>> ttl.expire(1_199.0), ttl.expire(1_200.0), ttl.output
(None, 'critical', 'TTL expired')
"""

from __future__ import annotations

import math

from .catalog import CRITICAL, PASSING, WARNING, _check_status

__all__ = [
    "DEFAULT_PROBE_TIMEOUT_MS",
    "HealthCheck",
    "MIN_DEREGISTER_AFTER_MS",
    "ProbeCheck",
    "REAP_INTERVAL_MS",
    "TTLCheck",
]

#: Consul: default timeout of HTTP, TCP, UDP, gRPC and H2ping checks (10 s)
DEFAULT_PROBE_TIMEOUT_MS = 10_000.0
#: Consul: smallest deregister_critical_service_after (1 minute)
MIN_DEREGISTER_AFTER_MS = 60_000.0
#: Consul: the agent's critical-service reaper runs every 30 s
REAP_INTERVAL_MS = 30_000.0


def _non_negative_int(value: int, what: str) -> int:
    if int(value) != value or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


class HealthCheck:
    """Status, thresholds and critical-service reaping shared by both check kinds."""

    def __init__(self, status: str = CRITICAL, success_before_passing: int = 0,
                 failures_before_critical: int = 0, failures_before_warning: int | None = None,
                 deregister_critical_after_ms: float | None = None):
        _check_status(status)
        self.success_before_passing = _non_negative_int(success_before_passing, "success_before_passing")
        self.failures_before_critical = _non_negative_int(failures_before_critical, "failures_before_critical")
        fbw = self.failures_before_critical if failures_before_warning is None else failures_before_warning
        self.failures_before_warning = _non_negative_int(fbw, "failures_before_warning")
        if self.failures_before_warning > self.failures_before_critical:
            raise ValueError("failures_before_warning cannot be more than failures_before_critical (Consul rule)")
        if deregister_critical_after_ms is not None:
            if not deregister_critical_after_ms > 0:
                raise ValueError(f"deregister_critical_after_ms must be positive, got {deregister_critical_after_ms!r}")
            deregister_critical_after_ms = max(float(deregister_critical_after_ms), MIN_DEREGISTER_AFTER_MS)
        self.deregister_critical_after_ms = deregister_critical_after_ms
        self.status = status
        self.output = ""
        #: when the status last became critical (None while not critical and before start)
        self.critical_since: float | None = None
        self._successes = self.success_before_passing
        self._failures = self.failures_before_critical
        self._started = False

    def _begin(self, now_ms: float) -> None:
        self._started = True
        if self.status == CRITICAL:
            self.critical_since = now_ms

    def _set(self, status: str, output: str, now_ms: float) -> str | None:
        self.output = output
        if status == self.status:
            return None
        self.status = status
        self.critical_since = now_ms if status == CRITICAL else None
        return status

    def _success(self, status: str, output: str, now_ms: float) -> str | None:
        self._successes += 1
        self._failures = 0
        if self._successes >= self.success_before_passing:
            return self._set(status, output, now_ms)
        return None

    def _failure(self, output: str, now_ms: float) -> str | None:
        self._failures += 1
        self._successes = 0
        if self._failures >= self.failures_before_critical:
            return self._set(CRITICAL, output, now_ms)
        if self._failures >= self.failures_before_warning:
            return self._set(WARNING, output, now_ms)
        return None

    def reap_due(self, now_ms: float) -> bool:
        """True when the instance has been critical for longer than ``deregister_critical_after_ms``."""
        return (self.deregister_critical_after_ms is not None and self.critical_since is not None
                and now_ms - self.critical_since > self.deregister_critical_after_ms)


class TTLCheck(HealthCheck):
    """A TTL check (see module doc); ``deadline`` is when :meth:`expire` must be called next."""

    def __init__(self, ttl_ms: float, status: str = CRITICAL, **thresholds):
        if not ttl_ms > 0 or not math.isfinite(ttl_ms):
            raise ValueError(f"ttl_ms must be a positive number of ms, got {ttl_ms!r}")
        super().__init__(status, **thresholds)
        self.ttl_ms = float(ttl_ms)
        self.deadline: float | None = None

    def start(self, now_ms: float) -> float:
        """Arm the TTL timer; returns the deadline."""
        self._begin(now_ms)
        self.deadline = now_ms + self.ttl_ms
        return self.deadline

    def heartbeat(self, now_ms: float, status: str = PASSING, output: str = "") -> str | None:
        """The instance reports ``status`` (Consul's /v1/agent/check/pass|warn|fail); the new status if it changed."""
        _check_status(status)
        if not self._started:
            self._begin(now_ms)
        self.deadline = now_ms + self.ttl_ms
        if status == CRITICAL:
            return self._failure(output, now_ms)
        return self._success(status, output, now_ms)

    def expire(self, now_ms: float) -> str | None:
        """Call at :attr:`deadline`: the check fails ("TTL expired") if no heartbeat came since."""
        if self.deadline is None or now_ms < self.deadline:
            return None
        self.deadline = None  # stays expired until the next heartbeat
        return self._failure("TTL expired", now_ms)


class ProbeCheck(HealthCheck):
    """An active probe (HTTP/TCP-like, see module doc).

    The shell starts a probe at :attr:`next_probe`, learns its outcome at
    :meth:`outcome_time` and reports it with :meth:`result`, which sets the next
    probe ``interval_ms`` later.

    >>> p = ProbeCheck(interval_ms=5_000, timeout_ms=1_000, failures_before_critical=2, failures_before_warning=1)
    >>> p.start(0.0)
    0.0
    >>> p.result(True, p.outcome_time(0.0, True)), p.next_probe
    ('passing', 5000.0)
    >>> t = p.outcome_time(5_000.0, False); t, p.result(False, t), p.status   # 1st failure: warning
    (6000.0, 'warning', 'warning')
    >>> p.result(False, p.outcome_time(p.next_probe, False)), p.next_probe
    ('critical', 17000.0)
    """

    def __init__(self, interval_ms: float, timeout_ms: float = DEFAULT_PROBE_TIMEOUT_MS,
                 status: str = CRITICAL, **thresholds):
        if not interval_ms > 0 or not math.isfinite(interval_ms):
            raise ValueError(f"interval_ms must be a positive number of ms, got {interval_ms!r}")
        if not timeout_ms > 0 or not math.isfinite(timeout_ms):
            raise ValueError(f"timeout_ms must be a positive number of ms, got {timeout_ms!r}")
        super().__init__(status, **thresholds)
        self.interval_ms = float(interval_ms)
        self.timeout_ms = float(timeout_ms)
        self.next_probe: float | None = None

    def start(self, now_ms: float, delay_ms: float = 0.0) -> float:
        """Schedule the first probe ``delay_ms`` from now (Consul staggers it); returns its time."""
        self._begin(now_ms)
        self.next_probe = now_ms + delay_ms
        return self.next_probe

    def outcome_time(self, started_ms: float, ok: bool, response_ms: float = 0.0) -> float:
        """When a probe started at ``started_ms`` is decided: a success after ``response_ms``
        (if within the timeout), a failure (no answer) when the timeout expires."""
        if ok and response_ms <= self.timeout_ms:
            return started_ms + response_ms
        return started_ms + self.timeout_ms

    def result(self, ok: bool, now_ms: float, output: str = "") -> str | None:
        """Record a probe outcome decided at ``now_ms``; the new status if it changed."""
        self.next_probe = now_ms + self.interval_ms
        if ok:
            return self._success(PASSING, output or "probe ok", now_ms)
        return self._failure(output or "probe timed out", now_ms)

    @property
    def quiet(self) -> bool:
        """True when another successful probe would change nothing but the success count and :attr:`next_probe`:
        passing, no failure counted, the success threshold reached, the output a success's.

        A shell may then stop probing for as long as the answer cannot change; when it may, the shell reports
        the probes it skipped with :meth:`result` (all successes) and probes again from when the next is due.

        >>> p = ProbeCheck(interval_ms=5_000, status="passing")
        >>> p.quiet, (p.start(0.0), p.result(True, 0.0))[1], p.quiet
        (False, None, True)
        """
        return (self.status == PASSING and self._failures == 0 and self._successes >= self.success_before_passing
                and self.output == "probe ok")
