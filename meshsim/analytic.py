"""Closed-form queueing results used to validate the simulator.

Units: every function takes rates in one consistent unit of your choice
(``lam`` and ``mu`` both per millisecond, or both per second) and returns
times in the reciprocal unit (milliseconds, or seconds).  Lengths (``L``,
``Lq``) and probabilities are dimensionless.  Service disciplines are FCFS and
queues have unlimited waiting room.

>>> m = mm1(0.5, 1.0)                 # lam = 0.5/ms, mu = 1/ms
>>> m.mean_sojourn, m.mean_in_system  # W in ms, L in jobs
(2.0, 1.0)
>>> round(tandem_mmc(8.0, 1.0, 10, 3), 4)   # three M/M/10 stations, seconds
3.6138
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "QueueMetrics",
    "JacksonResult",
    "erlang_b",
    "erlang_c",
    "mm1",
    "mmc",
    "mg1",
    "jackson",
    "tandem_mmc",
]


# --------------------------------------------------------------------------- validation


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a positive real number, got {value!r}")
    x = float(value)
    if not math.isfinite(x) or x <= 0.0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return x


def _servers(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _probability(q: object) -> float:
    if isinstance(q, bool) or not isinstance(q, numbers.Real) or not 0.0 <= float(q) < 1.0:
        raise ValueError(f"quantile level must be a number in [0, 1), got {q!r}")
    return float(q)


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class QueueMetrics:
    """Steady-state metrics of one queueing station.

    Times are in the reciprocal of the rate unit used to build it.  Fields:
    ``utilisation`` (rho per server), ``p_wait`` (probability an arrival
    waits), ``mean_wait`` (Wq), ``mean_sojourn`` (W = Wq + mean service),
    ``mean_queue_length`` (Lq), ``mean_in_system`` (L).  ``arrival_rate``,
    ``service_rate`` (per server), ``servers`` and ``model`` describe the
    station; the distribution methods exist for the ``"M/M/c"`` model only.

    >>> m = mmc(2.0, 1.0, 3)
    >>> round(m.utilisation, 4), round(m.p_wait, 4), round(m.mean_sojourn, 4)
    (0.6667, 0.4444, 1.4444)
    """

    utilisation: float
    p_wait: float
    mean_wait: float
    mean_sojourn: float
    mean_queue_length: float
    mean_in_system: float
    arrival_rate: float
    service_rate: float
    servers: int
    model: str = "M/M/c"

    def _require_markovian(self) -> None:
        if self.model != "M/M/c":
            raise NotImplementedError(
                f"time distributions are only available in closed form for M/M/c, not {self.model}"
            )

    @property
    def _theta(self) -> float:
        # rate of the conditional waiting time: Wq | Wq > 0 ~ Exp(c*mu - lam)
        return self.servers * self.service_rate - self.arrival_rate

    def wait_cdf(self, t: float) -> float:
        """P(Wq <= t) = 1 - C * exp(-(c*mu - lam) t) for t >= 0.

        >>> round(mm1(0.5, 1.0).wait_cdf(0.0), 4)   # P(no wait) = 1 - rho
        0.5
        """
        self._require_markovian()
        if t < 0:
            return 0.0
        return 1.0 - self.p_wait * math.exp(-self._theta * t)

    def sojourn_cdf(self, t: float) -> float:
        """P(W <= t), where W = S + Wq, S ~ Exp(mu) independent of Wq.

        Wq is 0 with probability 1 - C and Exp(theta) with probability C,
        theta = c*mu - lam, so
        P(W > t) = (1 - C) e^{-mu t} + C (theta e^{-mu t} - mu e^{-theta t}) / (theta - mu)
        (the limit (1 + mu t) e^{-mu t} when theta == mu).  For c = 1 this
        collapses to e^{-(mu - lam) t}.

        >>> round(mm1(0.5, 1.0).sojourn_cdf(2.0), 6) == round(1 - math.exp(-1.0), 6)
        True
        """
        self._require_markovian()
        if t <= 0:
            return 0.0
        return 1.0 - self._sojourn_survival(t)

    def _sojourn_survival(self, t: float) -> float:
        mu, theta, c_wait = self.service_rate, self._theta, self.p_wait
        if self.servers == 1:
            return math.exp(-theta * t)
        em = math.exp(-mu * t)
        d = theta - mu
        # P(S + E > t) for S ~ Exp(mu), E ~ Exp(theta): e^{-mu t} + mu (e^{-mu t} - e^{-theta t}) / d
        if abs(d) <= 1e-3 * mu:
            # (1 - e^{-d t}) / d via expm1: no cancellation, and -> t (Erlang-2 tail) as d -> 0
            ratio = t if d == 0.0 else -math.expm1(-d * t) / d
            conv = em + mu * em * ratio
        else:
            conv = em + mu * (em - math.exp(-theta * t)) / d
        return (1.0 - c_wait) * em + c_wait * conv

    def wait_quantile(self, q: float) -> float:
        """The q-quantile of the waiting time Wq (0 when q <= 1 - C).

        Closed form: t = ln(C / (1 - q)) / (c*mu - lam).

        >>> round(mm1(0.5, 1.0).wait_quantile(0.99), 4)   # ln(50)/0.5
        7.824
        """
        self._require_markovian()
        q = _probability(q)
        tail = 1.0 - q
        if tail >= self.p_wait:
            return 0.0
        return math.log(self.p_wait / tail) / self._theta

    def sojourn_quantile(self, q: float) -> float:
        """The q-quantile of the sojourn (response) time W.

        M/M/1: W ~ Exp(mu - lam), so t = -ln(1 - q) / (mu - lam).  M/M/c: the
        CDF of :meth:`sojourn_cdf` is inverted by bisection to a relative
        tolerance of about 1e-12.

        >>> round(mm1(0.5, 1.0).sojourn_quantile(0.99), 4)   # ln(100)/0.5
        9.2103
        """
        self._require_markovian()
        q = _probability(q)
        if q == 0.0:
            return 0.0
        tail = 1.0 - q
        if self.servers == 1:
            return -math.log(tail) / self._theta
        # The survival is bounded by that of Exp(min(mu, theta)) times a small
        # constant, so start from that scale and double until bracketed.
        lo, hi = 0.0, -math.log(tail) / min(self.service_rate, self._theta)
        while self._sojourn_survival(hi) > tail:
            lo, hi = hi, 2.0 * hi
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if self._sojourn_survival(mid) > tail:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-12 * hi:
                break
        return 0.5 * (lo + hi)


# --------------------------------------------------------------------------- Erlang formulas


def erlang_b(c: int, a: float) -> float:
    """Erlang B blocking probability for ``c`` servers and offered load ``a`` (erlangs).

    Uses the recursion B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1)), which is
    stable for thousands of servers (no factorials).  ``a`` may be any value
    >= 0; a = lam / mu in any consistent unit.

    >>> round(erlang_b(10, 8.0), 4)
    0.1217
    """
    c = _servers("c", c)
    if isinstance(a, bool) or not isinstance(a, numbers.Real) or not math.isfinite(a) or a < 0:
        raise ValueError(f"offered load a must be a finite number >= 0, got {a!r}")
    a = float(a)
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Erlang C: probability an arrival waits in M/M/c with offered load ``a = lam/mu``.

    Computed from Erlang B as C = B / (1 - rho (1 - B)), rho = a / c.
    Requires 0 <= a < c (a stable queue); raises ValueError otherwise.

    >>> round(erlang_c(10, 8.0), 4)
    0.4092
    >>> erlang_c(1, 0.5)   # M/M/1: C = rho
    0.5
    """
    c = _servers("c", c)
    b = erlang_b(c, a)
    rho = float(a) / c
    if rho >= 1.0:
        raise ValueError(f"Erlang C needs a < c (stable queue), got a={a!r}, c={c}: utilisation {rho:.4g} >= 1")
    return b / (1.0 - rho * (1.0 - b))


# --------------------------------------------------------------------------- single stations


def _mmc_metrics(lam: float, mu: float, c: int) -> QueueMetrics:
    """M/M/c metrics; ``lam`` may be 0 (an idle node of a network)."""
    rho = lam / (c * mu)
    if rho >= 1.0:
        raise ValueError(
            f"unstable queue: utilisation rho = lam/(c*mu) = {lam:.6g}/({c}*{mu:.6g}) = {rho:.4g} >= 1"
        )
    if c == 1:
        p_wait = rho  # exact; avoids one rounding step
    else:
        p_wait = erlang_c(c, lam / mu)
    wq = p_wait / (c * mu - lam)
    w = wq + 1.0 / mu
    return QueueMetrics(
        utilisation=rho,
        p_wait=p_wait,
        mean_wait=wq,
        mean_sojourn=w,
        mean_queue_length=lam * wq,
        mean_in_system=lam * w,
        arrival_rate=lam,
        service_rate=mu,
        servers=c,
        model="M/M/c",
    )


def mm1(lam: float, mu: float) -> QueueMetrics:
    """M/M/1 queue: arrival rate ``lam``, service rate ``mu`` (same unit; times in 1/unit).

    Raises ValueError when lam >= mu or either rate is not positive.

    >>> m = mm1(0.5, 1.0)
    >>> m.mean_wait, m.mean_queue_length, round(m.sojourn_quantile(0.5), 4)
    (1.0, 0.5, 1.3863)
    """
    return _mmc_metrics(_positive("lam", lam), _positive("mu", mu), 1)


def mmc(lam: float, mu: float, c: int) -> QueueMetrics:
    """M/M/c queue: arrival rate ``lam``, per-server rate ``mu`` (same unit), ``c`` servers.

    P(wait) is Erlang C via the stable Erlang B recursion; Wq = C / (c mu - lam).
    Raises ValueError when lam >= c*mu or an input is not positive.

    >>> m = mmc(8.0, 1.0, 10)       # rates per second -> times in seconds
    >>> round(m.mean_wait, 4), round(m.mean_sojourn, 4)
    (0.2046, 1.2046)
    """
    return _mmc_metrics(_positive("lam", lam), _positive("mu", mu), _servers("c", c))


def mg1(lam: float, mean_service: float, second_moment_service: float) -> QueueMetrics:
    """M/G/1 queue by Pollaczek-Khinchine: Wq = lam E[S^2] / (2 (1 - rho)), rho = lam E[S].

    ``lam`` is a rate and ``mean_service`` (E[S]) a time in the reciprocal
    unit; ``second_moment_service`` is E[S^2] in that time unit squared
    (E[S^2] = Var[S] + E[S]^2, so it must be >= E[S]^2).  p_wait = rho.
    The time distributions are not available (NotImplementedError).

    >>> md1 = mg1(0.5, 1.0, 1.0)     # M/D/1 waits half as long as M/M/1
    >>> md1.mean_wait, mm1(0.5, 1.0).mean_wait
    (0.5, 1.0)
    """
    lam = _positive("lam", lam)
    es = _positive("mean_service", mean_service)
    es2 = _positive("second_moment_service", second_moment_service)
    if es2 < es * es * (1.0 - 1e-12):
        raise ValueError(
            f"second_moment_service must be >= mean_service**2 (variance >= 0), got {es2!r} < {es * es!r}"
        )
    rho = lam * es
    if rho >= 1.0:
        raise ValueError(f"unstable queue: utilisation rho = lam*E[S] = {rho:.4g} >= 1")
    wq = lam * es2 / (2.0 * (1.0 - rho))
    w = wq + es
    return QueueMetrics(
        utilisation=rho,
        p_wait=rho,
        mean_wait=wq,
        mean_sojourn=w,
        mean_queue_length=lam * wq,
        mean_in_system=lam * w,
        arrival_rate=lam,
        service_rate=1.0 / es,
        servers=1,
        model="M/G/1",
    )


def tandem_mmc(lam: float, mu: float, c: int, stations: int) -> float:
    """Mean end-to-end sojourn through ``stations`` identical M/M/c stations in series.

    By Burke's theorem each station sees Poisson(lam) arrivals, so the total
    is ``stations * mmc(lam, mu, c).mean_sojourn`` (time in 1/rate unit).

    >>> round(tandem_mmc(0.5, 1.0, 1, 2), 6)
    4.0
    """
    stations = _servers("stations", stations)
    return stations * mmc(lam, mu, c).mean_sojourn


# --------------------------------------------------------------------------- Jackson networks


@dataclass(frozen=True, eq=False)
class JacksonResult:
    """Steady state of an open Jackson network.

    ``nodes``: per-node :class:`QueueMetrics`; ``throughputs``: total arrival
    rate lambda_i at each node; ``visit_ratios``: lambda_i / sum(gamma)
    (mean visits per job); ``mean_sojourn``: network response time
    sum(L_i) / sum(gamma) (Little); ``mean_in_system``: sum(L_i);
    ``total_arrival_rate``: sum(gamma).
    """

    nodes: list[QueueMetrics]
    throughputs: np.ndarray
    visit_ratios: np.ndarray
    mean_sojourn: float
    mean_in_system: float
    total_arrival_rate: float


def _per_node(name: str, value: object, n: int) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have one entry per node ({n}), got shape {arr.shape}")
    return arr


def jackson(
    arrivals: Sequence[float] | np.ndarray,
    routing: Sequence[Sequence[float]] | np.ndarray,
    mu: float | Sequence[float] | np.ndarray,
    servers: int | Sequence[int] | np.ndarray = 1,
) -> JacksonResult:
    """Solve an open Jackson network of M/M/c nodes.

    ``arrivals``: external Poisson rate gamma_i per node (>= 0, sum > 0);
    ``routing``: n x n matrix, ``routing[i][j]`` = probability a job leaving i
    goes to j (row sums <= 1; the rest leaves the network); ``mu``: per-server
    rate per node (scalar or vector); ``servers``: c_i (scalar or vector).
    Rates share one unit; times come back in its reciprocal.  Solves
    lambda = gamma + P^T lambda with ``numpy.linalg.solve``.  Raises
    ValueError on bad shapes/values or when a node has rho >= 1 (naming it).

    >>> net = jackson([1.0], [[0.5]], [4.0])    # M/M/1 with 50% feedback
    >>> float(net.throughputs[0]), round(net.mean_sojourn, 6)
    (2.0, 1.0)
    """
    gamma = np.asarray(arrivals, dtype=float)
    if gamma.ndim != 1 or gamma.size == 0:
        raise ValueError(f"arrivals must be a non-empty 1-D vector, got shape {gamma.shape}")
    n = gamma.size
    p = np.asarray(routing, dtype=float)
    if p.shape != (n, n):
        raise ValueError(f"routing must be a {n}x{n} matrix to match arrivals, got shape {p.shape}")
    if not np.all(np.isfinite(gamma)) or np.any(gamma < 0):
        raise ValueError("arrivals must be finite and >= 0")
    total = float(gamma.sum())
    if total <= 0:
        raise ValueError("arrivals must have a positive sum (an open network needs external traffic)")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError("routing probabilities must be finite and in [0, 1]")
    rows = p.sum(axis=1)
    bad = np.flatnonzero(rows > 1.0 + 1e-9)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"routing row {i} sums to {rows[i]:.6g} > 1")
    mus = _per_node("mu", mu, n)
    if not np.all(np.isfinite(mus)) or np.any(mus <= 0):
        raise ValueError("mu must be finite and > 0 for every node")
    cs_raw = _per_node("servers", servers, n)
    if np.any(cs_raw < 1) or np.any(cs_raw != np.round(cs_raw)):
        raise ValueError("servers must be integers >= 1 for every node")
    cs = cs_raw.astype(int)

    try:
        lam = np.linalg.solve(np.eye(n) - p.T, gamma)
    except np.linalg.LinAlgError:
        raise ValueError(
            "traffic equations are singular: some jobs can never leave the network (not an open network)"
        ) from None
    if not np.all(np.isfinite(lam)) or np.any(lam < -1e-9 * total):
        raise ValueError("traffic equations have no non-negative solution: check that the network is open")
    lam = np.clip(lam, 0.0, None)

    nodes: list[QueueMetrics] = []
    for i in range(n):
        rho = lam[i] / (cs[i] * mus[i])
        if rho >= 1.0:
            raise ValueError(
                f"node {i} is unstable: throughput {lam[i]:.6g} >= capacity {cs[i]}*{mus[i]:.6g} "
                f"(utilisation {rho:.4g} >= 1)"
            )
        nodes.append(_mmc_metrics(float(lam[i]), float(mus[i]), int(cs[i])))
    l_total = float(sum(m.mean_in_system for m in nodes))
    lam.setflags(write=False)
    visits = lam / total
    visits.setflags(write=False)
    return JacksonResult(
        nodes=nodes,
        throughputs=lam,
        visit_ratios=visits,
        mean_sojourn=l_total / total,
        mean_in_system=l_total,
        total_arrival_rate=total,
    )
