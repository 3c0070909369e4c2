"""What every resilience core shares: the attempt outcomes a shell reports, and the argument checks.

:data:`OUTCOMES` is the vocabulary of failures that are not an HTTP status
(a connect failure, a refused stream, a reset, a per-try timeout, a local
overflow), as Envoy's router tells them apart (``source/common/router/router.cc``
``onUpstreamReset``, ``Http::StreamResetReason`` in ``envoy/http/stream_reset_handler.h``).
The ``_check_*`` helpers validate durations (ms), counts and percentages the
way every core of :mod:`meshsim.core.res` needs them.

>>> sorted(OUTCOMES)
['connect-failure', 'overflow', 'per-try-timeout', 'refused-stream', 'reset']
>>> _check_timeout("t", 0) is None, _check_count("n", 3)
(True, 3)
"""

from __future__ import annotations

import numpy as np

__all__ = ["OUTCOMES"]

#: Failure outcomes other than an HTTP status, as the shell reports them.
#:  ``connect-failure``  TCP/TLS connect failed or timed out (Envoy's Local/RemoteConnectionFailure, ConnectionTimeout)
#:  ``refused-stream``   the upstream reset the stream with REFUSED_STREAM (request safe to retry)
#:  ``reset``            any other reset/disconnect before response headers
#:  ``per-try-timeout``  the per-try timeout fired (not hedging): the router resets the attempt (a LocalReset)
#:  ``overflow``         a local circuit breaker refused the attempt (never retried, never charged to the host)
OUTCOMES = frozenset({"connect-failure", "refused-stream", "reset", "per-try-timeout", "overflow"})


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_count(name: str, value: object, minimum: int = 0) -> int:
    if not _is_int(value) or value < minimum:  # type: ignore[operator]
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def _check_percent(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 <= value <= 100:
        raise ValueError(f"{name} must be a percentage in [0, 100], got {value!r}")
    return float(value)


def _check_ms(name: str, value: object) -> float:
    """A duration that must be > 0 ms."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
        raise ValueError(f"{name} must be a duration > 0 ms, got {value!r}")
    return float(value)


def _check_timeout(name: str, value: object) -> float | None:
    """A timeout in ms; ``None`` or 0 disables it (Envoy: "a value of 0 will disable")."""
    if value is None or (not isinstance(value, bool) and isinstance(value, (int, float)) and value == 0):
        return None
    return _check_ms(name, value)
