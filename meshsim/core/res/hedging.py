"""Request hedging on per-try timeout.

Mirrors Envoy's ``config.route.v3.HedgePolicy`` (``api/envoy/config/route/v3/route_components.proto``)
as the router uses it (``source/common/router/router.cc`` ``onPerTryTimeout``,
``retry_state_impl.cc`` ``shouldHedgeRetryPerTryTimeout``).  The router's
choice on each hedged attempt's response is :func:`meshsim.core.res.retry.response_action`.

>>> HedgePolicy(True).on_per_try_timeout(), HedgePolicy().initial_attempts()
('hedge', 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import _check_count, _check_percent

__all__ = ["HedgePolicy"]


@dataclass(frozen=True)
class HedgePolicy:
    """Envoy's route hedge policy (``config.route.v3.HedgePolicy``).

    Only ``hedge_on_per_try_timeout`` does anything in Envoy's router: when
    the per-try timeout fires the attempt is *not* reset; if a retry is left
    (:meth:`RetryPolicy.can_hedge`, conditions ignored) and the retries
    breaker allows, another attempt is sent after the usual backoff.  The
    timed-out attempt is charged to outlier detection as a timeout (504) and
    is never retried again.  The first acceptable response wins and the other
    attempts are reset (:func:`response_action`).  ``initial_requests``
    (default 1) and ``additional_request_chance`` (percent, default 0) exist
    in the API but the router ignores them; :meth:`initial_attempts` gives
    their intended meaning for experiments.

    >>> HedgePolicy().on_per_try_timeout(), HedgePolicy(True).on_per_try_timeout()
    ('reset', 'hedge')
    """

    hedge_on_per_try_timeout: bool = False
    initial_requests: int = 1
    additional_request_chance: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.hedge_on_per_try_timeout, bool):
            raise ValueError(f"hedge_on_per_try_timeout must be a bool, got {self.hedge_on_per_try_timeout!r}")
        _check_count("initial_requests", self.initial_requests, 1)
        _check_percent("additional_request_chance", self.additional_request_chance)

    def on_per_try_timeout(self) -> str:
        """``"hedge"`` (keep the attempt, maybe start another) or ``"reset"`` (cancel it; retried as a reset)."""
        return "hedge" if self.hedge_on_per_try_timeout else "reset"

    def initial_attempts(self, rng: np.random.Generator | None = None) -> int:
        """Attempts to start at once: ``initial_requests`` plus one with ``additional_request_chance`` %.

        Not implemented by Envoy's router (it always starts one); with the
        defaults this is 1 and draws nothing.
        """
        n = self.initial_requests
        if self.additional_request_chance <= 0:
            return n
        if self.additional_request_chance >= 100:
            return n + 1
        if rng is None:
            raise ValueError("rng is required when 0 < additional_request_chance < 100")
        return n + int(rng.random() * 100 < self.additional_request_chance)
