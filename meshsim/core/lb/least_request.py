"""Envoy's least-request policy: power of N choices, or EDF with an active-request bias.

Mirrors ``source/extensions/load_balancing_policies/least_request/least_request_lb.cc``
(formerly ``LeastRequestLoadBalancer`` in ``source/common/upstream/load_balancer_impl.cc``):
equal weights sample ``choice_count`` hosts and keep the least loaded, unequal
weights (or slow start) run the EDF schedule of :mod:`meshsim.core.lb.edf` over
``weight / (active + 1) ** active_request_bias``.

>>> import numpy as np
>>> lr = LeastRequest(4, np.random.default_rng(1), LbOptions(choice_count=3))
>>> lr.tracks_load, lr.choice_count, lr.pick(0.0) in range(4)
(True, 3, True)
"""

from __future__ import annotations

import numpy as np

from ..selection import BALANCERS
from .base import EnvoyBalancer
from .edf import EdfBalancer
from .options import LbOptions

__all__ = ["LeastRequest"]


class LeastRequest(EdfBalancer):
    """Envoy's least request: P2C with equal weights, weighted EDF otherwise.

    Equal weights: sample ``choice_count`` (default 2) endpoints at random
    and take the one with fewest active requests (the first sampled wins
    ties); ``selection_method="full_scan"`` scans all, breaking ties at
    random.  Unequal weights (or slow start): EDF over
    ``weight / (active + 1) ** active_request_bias`` (bias default 1.0),
    evaluated when an endpoint is re-queued.  Active counts come from the
    ``on_start``/``on_end`` hooks.

    >>> import numpy as np
    >>> lr = LeastRequest(2, np.random.default_rng(0))
    >>> lr.on_start(0); lr.on_start(0)
    >>> {lr.pick(0.0) for _ in range(20)} <= {0, 1}, lr.active
    (True, [2, 0])
    """

    name = "least_request"

    option_names = EdfBalancer.option_names | {"choice_count", "active_request_bias", "selection_method"}

    def _configure(self, opts: LbOptions, rng: np.random.Generator | None) -> None:
        self.choice_count = opts.choice_count
        self.active_request_bias = opts.active_request_bias
        self.selection_method = opts.selection_method
        super()._configure(opts, rng)

    def _rebuild(self) -> None:
        super()._rebuild()
        # The common case gets a fast pick with the same draws as the general path: one level, no panic, no
        # zone routing, equal weights, no slow start, N choices.
        simple = (len(self._hosts) == 1 and not self.priority_load.panic[0] and self.zone_routing.state == "off"
                  and self.selection_method == "n_choices" and self.slow_start_window_ms <= 0
                  and len({e.weight for e in self.endpoints}) == 1 and bool(self._healthy[0]))
        self._fast_hosts = self._healthy[0] if simple else None

    def pick(self, now_ms: float, key: int | None = None) -> int:
        hosts = self._fast_hosts
        if hosts is None:
            return super().pick(now_ms, key)
        r = self._random
        r()  # the priority draw of the general path (one level: always P=0)
        n = len(hosts)
        active = self.active
        best = hosts[r() % n]
        if self.choice_count == 2:
            i = hosts[r() % n]
            return i if active[i] < active[best] else best
        for _ in range(self.choice_count - 1):
            i = hosts[r() % n]
            if active[i] < active[best]:
                best = i
        return best

    def host_weight(self, i: int) -> float:
        w = float(self.endpoints[i].weight)
        if self.active_request_bias == 1.0:
            w /= self.active[i] + 1
        elif self.active_request_bias != 0.0:
            w /= (self.active[i] + 1) ** self.active_request_bias
        return w * self._slow_start(i)

    def _unweighted(self, source: tuple, hosts: list[int]) -> int:
        active = self.active
        if self.selection_method == "full_scan":
            best, ties = hosts[0], 1
            for i in hosts[1:]:
                if active[i] < active[best]:
                    best, ties = i, 1
                elif active[i] == active[best]:
                    ties += 1
                    if self._random() % ties == 0:
                        best = i
            return best
        best = hosts[self._random() % len(hosts)]
        for _ in range(self.choice_count - 1):
            i = hosts[self._random() % len(hosts)]
            if active[i] < active[best]:
                best = i
        return best

    # the base class's counters, bound directly (one call fewer per request)
    on_start = EnvoyBalancer._count_start
    on_end = EnvoyBalancer._count_end


BALANCERS[LeastRequest.name] = LeastRequest
