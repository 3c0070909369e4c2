"""Service-time, latency and think-time distributions (all times in milliseconds).

A scenario gives a distribution either as a bare duration (a constant) or as a
mapping with a ``dist`` key naming the kind; :func:`from_spec` turns that into
an immutable :class:`Distribution`.  Every sampling method takes an explicit
:class:`numpy.random.Generator`; the global ``random`` module and numpy's
global state are never used.

>>> d = from_spec({"dist": "exponential", "mean": "10ms"})
>>> d.describe(), d.mean, d.scv
('exponential(mean=10ms)', 10.0, 1.0)
>>> from_spec("2s")
Constant(value=2000.0)
>>> it = d.stream(np.random.default_rng(7))
>>> x = next(it); isinstance(x, float) and x >= 0
True
>>> from_spec({"dist": "exponental", "mean": 10}, "svc.service_time")
Traceback (most recent call last):
...
meshsim.errors.ScenarioError: svc.service_time.dist: unknown distribution 'exponental'; known kinds: constant, exponential, uniform, normal, lognormal, pareto, empirical, mixture (did you mean 'exponential'?)

:data:`DISTRIBUTION_KINDS` documents every kind and its keys.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .errors import ScenarioError, closest
from .units import format_duration, parse_duration
from .examples import DATA_DIR

__all__ = [
    "DATA_DIR",
    "DISTRIBUTION_KINDS",
    "Z_99",
    "Constant",
    "Distribution",
    "Empirical",
    "Exponential",
    "LogNormal",
    "Mixture",
    "Normal",
    "Pareto",
    "Uniform",
    "from_spec",
    "norm_cdf",
    "norm_pdf",
    "norm_ppf",
]

#: A draw beyond this (ms, about 317 years) stops the run with a ScenarioError naming the distribution.
MAX_DRAW_MS: float = 1e13

#: The standard normal 0.99 quantile, used by the lognormal ``median``/``p99`` form.
Z_99: float = 2.3263478740408408

_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)

Size = int | tuple[int, ...]


# --------------------------------------------------------------------------
# Standard normal helpers (no SciPy)
# --------------------------------------------------------------------------


def norm_pdf(x: float) -> float:
    """Standard normal density phi(x).

    >>> round(norm_pdf(0.0), 6)
    0.398942
    """
    if math.isinf(x):
        return 0.0
    return math.exp(-0.5 * x * x) / _SQRT2PI


def norm_cdf(x: float) -> float:
    """Standard normal CDF Phi(x), accurate in the lower tail.

    >>> round(norm_cdf(1.0), 6)
    0.841345
    """
    return 0.5 * math.erfc(-x / _SQRT2)


def _norm_sf(x: float) -> float:
    """Upper tail 1 - Phi(x), accurate in the upper tail."""
    return 0.5 * math.erfc(x / _SQRT2)


# Acklam's rational approximation of the inverse normal CDF (rel. error 1.15e-9).
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
      3.754408361159381e00)
_P_LOW = 0.02425


def _acklam_tail(q: Any) -> Any:
    c, d = _C, _D
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
        (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0
    )


def _acklam_central(q: Any) -> Any:
    a, b = _A, _B
    r = q * q
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (
        ((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0
    )


def norm_ppf(p: float) -> float:
    """Inverse standard normal CDF (Acklam's algorithm plus one Halley step).

    >>> round(norm_ppf(0.99), 9)
    2.326347874
    >>> norm_ppf(0.5), norm_ppf(0.0), norm_ppf(1.0)
    (0.0, -inf, inf)
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p!r}")
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    if p == 0.5:
        return 0.0
    if p < _P_LOW:
        x = _acklam_tail(math.sqrt(-2.0 * math.log(p)))
    elif p > 1.0 - _P_LOW:
        x = -_acklam_tail(math.sqrt(-2.0 * math.log1p(-p)))
    else:
        x = _acklam_central(p - 0.5)
    if abs(x) < 37.0:  # Halley refinement to full double precision
        e = 0.5 * math.erfc(-x / _SQRT2) - p
        u = e * _SQRT2PI * math.exp(0.5 * x * x)
        x = x - u / (1.0 + 0.5 * x * u)
    return x


def _norm_ppf_array(p: np.ndarray) -> np.ndarray:
    """Vectorised Acklam inverse normal CDF (no refinement; used for sampling)."""
    p = np.asarray(p, dtype=float)
    x = np.empty_like(p)
    lo = p < _P_LOW
    hi = p > 1.0 - _P_LOW
    mid = ~(lo | hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        x[lo] = _acklam_tail(np.sqrt(-2.0 * np.log(p[lo])))
        x[hi] = -_acklam_tail(np.sqrt(-2.0 * np.log1p(-p[hi])))
    x[mid] = _acklam_central(p[mid] - 0.5)
    x[p <= 0.0] = -math.inf
    x[p >= 1.0] = math.inf
    return x


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _expm1(x: float) -> float:
    try:
        return math.expm1(x)
    except OverflowError:
        return math.inf


def _fsum(values: Any) -> float:
    try:
        return math.fsum(values)
    except OverflowError:
        return math.inf


def _fmt(ms: float) -> str:
    return "inf" if math.isinf(ms) else format_duration(ms)


def _check_q(q: float) -> float:
    q = float(q)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile level must be in [0, 1], got {q!r}")
    return q


def _finite(key: str, value: float, what: str = "a finite number") -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ScenarioError(key, f"must be {what}, got {value!r}")
    return value


# --------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------


class Distribution:
    """Base of every distribution: moments, sampling, and spec round trip.

    Subclasses are immutable (frozen, slotted dataclasses) and cheap to share.
    """

    __slots__ = ()
    kind: ClassVar[str] = ""

    # -- moments ----------------------------------------------------------
    @property
    def mean(self) -> float:
        """Mean in ms (``math.inf`` when it does not exist)."""
        raise NotImplementedError

    @property
    def variance(self) -> float:
        """Variance in ms^2 (``math.inf`` when infinite)."""
        raise NotImplementedError

    @property
    def second_moment(self) -> float:
        """E[X^2] = variance + mean^2 (ms^2)."""
        m, v = self.mean, self.variance
        if math.isinf(m) or math.isinf(v):
            return math.inf
        return v + m * m

    @property
    def scv(self) -> float:
        """Squared coefficient of variation variance / mean^2."""
        m, v = self.mean, self.variance
        if math.isinf(m) or math.isinf(v):
            return math.inf
        if m == 0.0:
            return 0.0 if v == 0.0 else math.inf
        return v / m / m

    # -- sampling ---------------------------------------------------------
    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, size: Size = 1) -> np.ndarray:
        """Draw ``size`` values (ms) as a float64 array using ``rng``."""
        shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        n = math.prod(shape)
        if n < 0 or any(s < 0 for s in shape):
            raise ValueError(f"size must be non-negative, got {size!r}")
        return self._draw(rng, int(n)).reshape(shape)

    def stream(self, rng: np.random.Generator, batch: int = 4096) -> Iterator[float]:
        """Infinite iterator of Python floats (ms) drawn in batches of ``batch``.

        ``next()`` on it is a list-iterator step; the same ``rng`` state gives
        the same sequence, equal to concatenated ``sample(rng, batch)`` calls.
        """
        if int(batch) < 1:
            raise ValueError(f"batch must be >= 1, got {batch!r}")
        return self._stream(rng, int(batch))

    def _stream(self, rng: np.random.Generator, batch: int) -> Iterator[float]:
        # chained lists: next() is C code from one list to the next; Python runs once per batch
        return itertools.chain.from_iterable(self._batches(rng, batch))

    def _batches(self, rng: np.random.Generator, batch: int) -> Iterator[list[float]]:
        draw = self._draw
        while True:
            x = draw(rng, batch)
            if not x.max() <= MAX_DRAW_MS:  # one check per batch: a non-finite or absurd draw would stall the clock
                bad = x[~(x <= MAX_DRAW_MS)][0]
                raise ScenarioError("", f"{self.describe()} drew an absurd time ({float(bad):.3g} ms); a simulation "
                                        "cannot advance past it: check this distribution's parameters")
            yield x.tolist()

    # -- distribution functions -------------------------------------------
    def cdf(self, x: float) -> float:
        """P(X <= x)."""
        raise NotImplementedError(f"{self.kind} has no closed-form cdf")

    def quantile(self, q: float) -> float:
        """Smallest x with P(X <= x) >= q."""
        raise NotImplementedError(f"{self.kind} has no closed-form quantile")

    # -- description ------------------------------------------------------
    def describe(self) -> str:
        """Short human-readable form, e.g. ``exponential(mean=10ms)``."""
        raise NotImplementedError

    def to_spec(self) -> dict[str, Any]:
        """A plain dict (numbers in ms) that :func:`from_spec` turns back into ``self``."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.describe()


# --------------------------------------------------------------------------
# Kinds
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Constant(Distribution):
    """Always ``value`` ms.

    >>> d = Constant(5.0)
    >>> d.mean, d.variance, d.describe(), d.quantile(0.3)
    (5.0, 0.0, 'constant(5ms)', 5.0)
    >>> next(d.stream(np.random.default_rng(0)))
    5.0
    """

    kind: ClassVar[str] = "constant"
    value: float

    def __post_init__(self) -> None:
        v = _finite("value", self.value, "a finite duration >= 0")
        if v < 0:
            raise ScenarioError("value", f"must not be negative, got {v!r}")
        object.__setattr__(self, "value", v)

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)

    def _stream(self, rng: np.random.Generator, batch: int) -> Iterator[float]:
        return itertools.repeat(self.value)

    def cdf(self, x: float) -> float:
        return 1.0 if x >= self.value else 0.0

    def quantile(self, q: float) -> float:
        _check_q(q)
        return self.value

    def describe(self) -> str:
        return f"constant({_fmt(self.value)})"

    def to_spec(self) -> dict[str, Any]:
        return {"dist": "constant", "value": self.value}


@dataclass(frozen=True, slots=True)
class Exponential(Distribution):
    """Exponential with the given ``mean`` (ms); scv = 1.

    >>> d = Exponential(mean=10.0)
    >>> d.variance, d.describe()
    (100.0, 'exponential(mean=10ms)')
    >>> round(d.quantile(0.5), 4), round(d.cdf(10.0), 4)
    (6.9315, 0.6321)
    """

    kind: ClassVar[str] = "exponential"
    mean: float  # type: ignore[misc]

    def __post_init__(self) -> None:
        m = _finite("mean", self.mean, "a finite duration > 0")
        if not m > 0:
            raise ScenarioError("mean", f"must be > 0, got {m!r}")
        object.__setattr__(self, "mean", m)

    @property
    def variance(self) -> float:
        return self.mean * self.mean

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean, n)

    def cdf(self, x: float) -> float:
        return 0.0 if x <= 0 else -math.expm1(-x / self.mean)

    def quantile(self, q: float) -> float:
        q = _check_q(q)
        return math.inf if q == 1.0 else -self.mean * math.log1p(-q)

    def describe(self) -> str:
        return f"exponential(mean={_fmt(self.mean)})"

    def to_spec(self) -> dict[str, Any]:
        return {"dist": "exponential", "mean": self.mean}


@dataclass(frozen=True, slots=True)
class Uniform(Distribution):
    """Uniform on [``low``, ``high``] ms.

    >>> d = Uniform(1.0, 3.0)
    >>> d.mean, round(d.variance, 6), d.quantile(0.25), d.describe()
    (2.0, 0.333333, 1.5, 'uniform(low=1ms, high=3ms)')
    """

    kind: ClassVar[str] = "uniform"
    low: float
    high: float

    def __post_init__(self) -> None:
        lo = _finite("low", self.low, "a finite duration >= 0")
        hi = _finite("high", self.high, "a finite duration")
        if lo < 0:
            raise ScenarioError("low", f"must not be negative, got {lo!r}")
        if not hi > lo:
            raise ScenarioError("high", f"must be greater than low ({_fmt(lo)}), got {_fmt(hi)}")
        object.__setattr__(self, "low", lo)
        object.__setattr__(self, "high", hi)

    @property
    def mean(self) -> float:
        return 0.5 * self.low + 0.5 * self.high

    @property
    def variance(self) -> float:
        w = self.high - self.low
        return w * w / 12.0

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)

    def cdf(self, x: float) -> float:
        if x <= self.low:
            return 0.0
        if x >= self.high:
            return 1.0
        return (x - self.low) / (self.high - self.low)

    def quantile(self, q: float) -> float:
        q = _check_q(q)
        return self.low + q * (self.high - self.low)

    def describe(self) -> str:
        return f"uniform(low={_fmt(self.low)}, high={_fmt(self.high)})"

    def to_spec(self) -> dict[str, Any]:
        return {"dist": "uniform", "low": self.low, "high": self.high}


def _normal_mass(a: float, b: float) -> float:
    """P(a <= Z <= b) for standard normal Z, computed in the accurate tail."""
    if a >= 0.0:
        return _norm_sf(a) - _norm_sf(b)
    if b <= 0.0:
        return norm_cdf(b) - norm_cdf(a)
    return 1.0 - norm_cdf(a) - _norm_sf(b)


def _x_pdf(x: float) -> float:
    return 0.0 if math.isinf(x) else x * norm_pdf(x)


@dataclass(frozen=True, slots=True)
class Normal(Distribution):
    """Normal(``mu``, ``sd``) truncated to [``low``, ``high``] (default [0, inf)).

    ``mu`` and ``sd`` are the parameters of the parent normal (the spec's
    ``mean`` and ``sd``); :attr:`mean` and :attr:`variance` are the exact
    moments of the truncated distribution.

    >>> d = Normal(mu=1.0, sd=1.0)          # truncated at 0
    >>> round(d.mean, 4)                    # 1 + phi(1)/Phi(1)
    1.2876
    >>> Normal(mu=10.0, sd=2.0, high=15.0).describe()
    'normal(mean=10ms, sd=2ms, low=0ms, high=15ms)'
    """

    kind: ClassVar[str] = "normal"
    mu: float
    sd: float
    low: float = 0.0
    high: float = math.inf
    _alpha: float = field(init=False, repr=False, compare=False)
    _beta: float = field(init=False, repr=False, compare=False)
    _mass: float = field(init=False, repr=False, compare=False)
    _mean: float = field(init=False, repr=False, compare=False)
    _var: float = field(init=False, repr=False, compare=False)

    #: Truncation keeping less probability than this is rejected as a mistake.
    MIN_MASS: ClassVar[float] = 1e-250
    #: Below this kept probability, sample by inverse CDF instead of rejection.
    REJECTION_MIN_MASS: ClassVar[float] = 0.25

    def __post_init__(self) -> None:
        mu = _finite("mean", self.mu, "a finite duration")
        sd = _finite("sd", self.sd, "a finite duration > 0")
        lo = _finite("low", self.low, "a finite duration >= 0")
        hi = float(self.high)
        if not sd > 0:
            raise ScenarioError("sd", f"must be > 0, got {sd!r}")
        if lo < 0:
            raise ScenarioError("low", f"must not be negative (times are >= 0), got {lo!r}")
        if math.isnan(hi) or not hi > lo:
            raise ScenarioError("high", f"must be greater than low ({_fmt(lo)}), got {hi!r}")
        a = (lo - mu) / sd
        b = (hi - mu) / sd
        mass = _normal_mass(a, b) if not (math.isnan(a) or math.isnan(b)) else 0.0
        if not mass >= self.MIN_MASS:
            key = "low" if a > 0 else "high"
            raise ScenarioError(
                key,
                f"truncation to [{_fmt(lo)}, {_fmt(hi)}] keeps essentially no probability of "
                f"normal(mean={_fmt(mu)}, sd={_fmt(sd)})",
            )
        pa, pb = norm_pdf(a), norm_pdf(b)
        ratio = (pa - pb) / mass
        mean = mu + sd * ratio
        var = sd * (sd * max(0.0, 1.0 + (_x_pdf(a) - _x_pdf(b)) / mass - ratio * ratio))
        mean = min(max(mean, lo), hi)
        for name, value in (("mu", mu), ("sd", sd), ("low", lo), ("high", hi), ("_alpha", a),
                            ("_beta", b), ("_mass", mass), ("_mean", mean), ("_var", var)):
            object.__setattr__(self, name, value)

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def variance(self) -> float:
        return self._var

    def _z_from_u(self, u: Any) -> Any:
        """Map u in [0, 1) (fraction of the kept mass above low) to a standard score."""
        a, mass = self._alpha, self._mass
        if a >= 0.0:  # work with the upper tail: Q(z) = Q(a) - u * mass
            qa = _norm_sf(a)
            if isinstance(u, np.ndarray):
                return -_norm_ppf_array(qa - u * mass)
            return -norm_ppf(min(1.0, max(0.0, qa - u * mass)))
        pa = norm_cdf(a)
        if isinstance(u, np.ndarray):
            return _norm_ppf_array(pa + u * mass)
        return norm_ppf(min(1.0, max(0.0, pa + u * mass)))

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        mu, sd, lo, hi = self.mu, self.sd, self.low, self.high
        if self._mass < self.REJECTION_MIN_MASS:
            x = mu + sd * self._z_from_u(rng.random(n))
            return np.clip(x, lo, hi)
        out = np.empty(n)
        filled = 0
        while filled < n:
            need = n - filled
            x = rng.normal(mu, sd, int(need / self._mass * 1.05) + 16)
            x = x[(x >= lo) & (x <= hi)]
            take = min(need, x.size)
            out[filled:filled + take] = x[:take]
            filled += take
        return out

    def cdf(self, x: float) -> float:
        if x <= self.low:
            return 0.0
        if x >= self.high:
            return 1.0
        return min(1.0, _normal_mass(self._alpha, (x - self.mu) / self.sd) / self._mass)

    def quantile(self, q: float) -> float:
        q = _check_q(q)
        if q == 0.0:
            return self.low
        if q == 1.0:
            return self.high
        return min(max(self.mu + self.sd * self._z_from_u(q), self.low), self.high)

    def describe(self) -> str:
        text = f"normal(mean={_fmt(self.mu)}, sd={_fmt(self.sd)}, low={_fmt(self.low)}"
        if math.isfinite(self.high):
            text += f", high={_fmt(self.high)}"
        return text + ")"

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"dist": "normal", "mean": self.mu, "sd": self.sd, "low": self.low}
        if math.isfinite(self.high):
            spec["high"] = self.high
        return spec


@dataclass(frozen=True, slots=True)
class LogNormal(Distribution):
    """exp(Normal(``mu``, ``sigma``)) in ms; build it with :meth:`from_mean` or :meth:`from_median_p99`.

    >>> d = LogNormal.from_median_p99(8.0, 40.0)
    >>> round(d.quantile(0.5), 6), round(d.quantile(0.99), 6)
    (8.0, 40.0)
    >>> e = LogNormal.from_mean(10.0, 0.5)
    >>> e.mean, e.describe()
    (10.0, 'lognormal(mean=10ms, sigma=0.5)')
    """

    kind: ClassVar[str] = "lognormal"
    mu: float
    sigma: float
    #: The spec parameters the distribution was built from, for describe()/to_spec().
    given: tuple[tuple[str, float], tuple[str, float]] | None = field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        mu = _finite("mu", self.mu)
        sigma = _finite("sigma", self.sigma, "a finite number > 0")
        if not sigma > 0:
            raise ScenarioError("sigma", f"must be > 0, got {sigma!r}")
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "sigma", sigma)

    @classmethod
    def from_mean(cls, mean: float, sigma: float) -> LogNormal:
        """Lognormal whose mean is ``mean`` ms and whose log has sd ``sigma``."""
        m = _finite("mean", mean, "a finite duration > 0")
        if not m > 0:
            raise ScenarioError("mean", f"must be > 0, got {m!r}")
        s = _finite("sigma", sigma, "a finite number > 0")
        if not s > 0:
            raise ScenarioError("sigma", f"must be > 0, got {s!r}")
        mu = math.log(m) - 0.5 * s * s
        if not math.isfinite(mu):
            raise ScenarioError("sigma", f"is too large, got {s!r}")
        return cls(mu, s, (("mean", m), ("sigma", s)))

    @classmethod
    def from_median_p99(cls, median: float, p99: float) -> LogNormal:
        """Lognormal with the given median and 99th percentile (ms)."""
        med = _finite("median", median, "a finite duration > 0")
        if not med > 0:
            raise ScenarioError("median", f"must be > 0, got {med!r}")
        p = _finite("p99", p99, "a finite duration")
        if not p > med:
            raise ScenarioError("p99", f"must be greater than median ({_fmt(med)}), got {_fmt(p)}")
        mu = math.log(med)
        return cls(mu, (math.log(p) - mu) / Z_99, (("median", med), ("p99", p)))

    @property
    def mean(self) -> float:
        if self.given and self.given[0][0] == "mean":
            return self.given[0][1]
        return _exp(self.mu + 0.5 * self.sigma * self.sigma)

    @property
    def variance(self) -> float:
        m = self.mean
        if math.isinf(m):
            return math.inf
        return m * (m * _expm1(self.sigma * self.sigma))

    @property
    def median(self) -> float:
        return math.exp(self.mu)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, n)

    def cdf(self, x: float) -> float:
        if x <= 0:
            return 0.0
        return norm_cdf((math.log(x) - self.mu) / self.sigma)

    def quantile(self, q: float) -> float:
        q = _check_q(q)
        if q == 0.0:
            return 0.0
        return _exp(self.mu + self.sigma * norm_ppf(q))

    def describe(self) -> str:
        if self.given and self.given[0][0] == "median":
            return f"lognormal(median={_fmt(self.given[0][1])}, p99={_fmt(self.given[1][1])})"
        return f"lognormal(mean={_fmt(self.mean)}, sigma={self.sigma:.4g})"

    def to_spec(self) -> dict[str, Any]:
        if self.given:
            return {"dist": "lognormal", **dict(self.given)}
        # built from (mu, sigma) directly: the mean form round-trips up to rounding of mu
        return {"dist": "lognormal", "mean": self.mean, "sigma": self.sigma}


def _pareto_raw_moment(alpha: float, low: float, high: float, k: int) -> float:
    """E[X^k] (k = 1 or 2) of the Pareto(alpha) with minimum ``low``, bounded above by ``high``.

    Bounded: alpha low^k g(k - alpha) / (1 - (low/high)^alpha) with
    g(d) = ((high/low)^d - 1) / d, and g(0) = ln(high/low) (the alpha == k case);
    evaluated in log space so extreme parameters do not overflow.
    """
    if math.isinf(high):
        if alpha <= k:
            return math.inf
        return low * (low * (alpha / (alpha - k))) if k == 2 else low * (alpha / (alpha - k))
    log_r = math.log(high) - math.log(low)
    d = k - alpha
    x = d * log_r
    if x == 0.0:
        log_g = math.log(log_r)
    elif x > 30.0:
        log_g = x + math.log1p(-math.exp(-x)) - math.log(d)
    elif x < -30.0:
        log_g = math.log1p(-math.exp(x)) - math.log(-d)
    else:
        log_g = math.log(math.expm1(x) / d)
    y = alpha * log_r
    log_kept = math.log(y) if y < 1e-300 else math.log(-math.expm1(-y))
    return _exp(math.log(alpha) + k * math.log(low) + log_g - log_kept)


@dataclass(frozen=True, slots=True)
class Pareto(Distribution):
    """Pareto type I with shape ``alpha`` and minimum ``scale`` ms; bounded on [scale, high] if ``high`` is finite.

    >>> Pareto(alpha=2.5, scale=1.0).mean
    1.6666666666666667
    >>> Pareto(alpha=0.8, scale=1.0).mean
    inf
    >>> b = Pareto(alpha=1.0, scale=1.0, high=100.0)   # mean = H L ln(H/L) / (H - L)
    >>> round(b.mean, 6), b.describe()
    (4.651687, 'pareto(alpha=1, scale=1ms, high=100ms)')
    """

    kind: ClassVar[str] = "pareto"
    alpha: float
    scale: float
    high: float = math.inf
    _mean: float = field(init=False, repr=False, compare=False)
    _m2: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        a = _finite("alpha", self.alpha, "a finite number > 0")
        if not a > 0:
            raise ScenarioError("alpha", f"must be > 0, got {a!r}")
        s = _finite("scale", self.scale, "a finite duration > 0")
        if not s > 0:
            raise ScenarioError("scale", f"must be > 0, got {s!r}")
        h = float(self.high)
        if math.isnan(h) or not h > s:
            raise ScenarioError("high", f"must be greater than scale ({_fmt(s)}), got {h!r}")
        if math.isfinite(h) and not -math.expm1(-a * (math.log(h) - math.log(s))) >= 1e-9:
            raise ScenarioError(
                "alpha", f"is too small for the bounds [{_fmt(s)}, {_fmt(h)}]: alpha * ln(high/scale) "
                f"must be >= 1e-9, got alpha={a!r}"
            )
        for name, value in (("alpha", a), ("scale", s), ("high", h),
                            ("_mean", _pareto_raw_moment(a, s, h, 1)),
                            ("_m2", _pareto_raw_moment(a, s, h, 2))):
            object.__setattr__(self, name, value)

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.high)

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def variance(self) -> float:
        m, m2 = self._mean, self._m2
        if math.isinf(m) or math.isinf(m2):
            return math.inf
        if not self.bounded:  # closed form avoids cancellation
            a = self.alpha
            s = self.scale
            return s * (s * (a / (a - 1) / (a - 1) / (a - 2)))
        return max(0.0, m2 - m * m)

    def _kept(self) -> float:
        if not self.bounded:
            return 1.0
        return -math.expm1(-self.alpha * (math.log(self.high) - math.log(self.scale)))

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        u = rng.random(n)
        with np.errstate(over="ignore", divide="ignore"):
            x = self.scale * (1.0 - u * self._kept()) ** (-1.0 / self.alpha)
        return np.minimum(x, self.high) if self.bounded else x

    def cdf(self, x: float) -> float:
        if x <= self.scale:
            return 0.0
        if x >= self.high:
            return 1.0
        return -math.expm1(self.alpha * (math.log(self.scale) - math.log(x))) / self._kept()

    def quantile(self, q: float) -> float:
        q = _check_q(q)
        base = 1.0 - q * self._kept()
        if base <= 0.0:
            return self.high
        return min(self.scale * _exp(-math.log(base) / self.alpha), self.high)

    def describe(self) -> str:
        text = f"pareto(alpha={self.alpha:.4g}, scale={_fmt(self.scale)}"
        if self.bounded:
            text += f", high={_fmt(self.high)}"
        return text + ")"

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"dist": "pareto", "alpha": self.alpha, "scale": self.scale}
        if self.bounded:
            spec["high"] = self.high
        return spec


@dataclass(frozen=True, slots=True)
class Empirical(Distribution):
    """Bootstrap resampling of observed ``values`` (ms), drawn with replacement.

    >>> d = Empirical((1.0, 2.0, 3.0, 10.0))
    >>> d.mean, d.variance, d.quantile(0.5), d.cdf(2.5)
    (4.0, 12.5, 2.0, 0.5)
    >>> d.describe()
    'empirical(n=4, mean=4ms)'
    """

    kind: ClassVar[str] = "empirical"
    values: tuple[float, ...]
    #: File the values were read from (absolute path) and its column, for to_spec().
    source: str | None = field(default=None, compare=False)
    column: str | int | None = field(default=None, compare=False)
    _arr: np.ndarray = field(init=False, repr=False, compare=False)
    _sorted: np.ndarray = field(init=False, repr=False, compare=False)
    _mean: float = field(init=False, repr=False, compare=False)
    _var: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values = tuple(float(v) for v in self.values)
        if not values:
            raise ScenarioError("values", "must hold at least one value")
        for i, v in enumerate(values):
            if not math.isfinite(v) or v < 0:
                raise ScenarioError(f"values[{i}]", f"must be a finite duration >= 0, got {v!r}")
        arr = np.array(values, dtype=float)
        arr.setflags(write=False)
        srt = np.sort(arr)
        srt.setflags(write=False)
        n = len(values)
        mean = _fsum(v / n for v in values)
        var = _fsum((v - mean) * (v - mean) / n for v in values)
        for name, value in (("values", values), ("_arr", arr), ("_sorted", srt),
                            ("_mean", mean), ("_var", var)):
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        src = f", source={self.source!r}" if self.source else ""
        return f"Empirical(n={len(self.values)}, mean={self._mean!r}{src})"

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def variance(self) -> float:
        return self._var

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self._arr[rng.integers(0, self._arr.size, n)]

    def cdf(self, x: float) -> float:
        return float(np.searchsorted(self._sorted, x, side="right")) / self._sorted.size

    def quantile(self, q: float) -> float:
        q = _check_q(q)
        n = self._sorted.size
        return float(self._sorted[max(0, min(n - 1, math.ceil(q * n) - 1))])

    def describe(self) -> str:
        text = f"empirical(n={len(self.values)}, mean={_fmt(self._mean)}"
        if self.source:
            text += f", file={Path(self.source).name}"
        return text + ")"

    def to_spec(self) -> dict[str, Any]:
        if self.source:
            spec: dict[str, Any] = {"dist": "empirical", "file": self.source}
            if self.column is not None:
                spec["column"] = self.column
            return spec
        return {"dist": "empirical", "values": list(self.values)}


@dataclass(frozen=True, slots=True)
class Mixture(Distribution):
    """With probability proportional to ``weights[i]``, a draw from ``components[i]``.

    >>> d = Mixture((0.9, 0.1), (Exponential(10.0), Constant(50.0)))
    >>> round(d.mean, 6), round(d.variance, 6)
    (14.0, 234.0)
    >>> d.describe()
    'mixture(0.9*exponential(mean=10ms) + 0.1*constant(50ms))'
    """

    kind: ClassVar[str] = "mixture"
    weights: tuple[float, ...]
    components: tuple[Distribution, ...]
    _p: np.ndarray = field(init=False, repr=False, compare=False)
    _mean: float = field(init=False, repr=False, compare=False)
    _var: float = field(init=False, repr=False, compare=False)

    @classmethod
    def of(cls, pairs: Sequence[tuple[float, Distribution]]) -> Mixture:
        """Build from ``[(weight, distribution), ...]``."""
        return cls(tuple(w for w, _ in pairs), tuple(d for _, d in pairs))

    def __post_init__(self) -> None:
        weights = tuple(float(w) for w in self.weights)
        comps = tuple(self.components)
        if not comps:
            raise ScenarioError("components", "must list at least one component")
        if len(weights) != len(comps):
            raise ScenarioError("components", f"{len(weights)} weights for {len(comps)} components")
        for i, (w, c) in enumerate(zip(weights, comps)):
            if not (math.isfinite(w) and w > 0):
                raise ScenarioError(f"components[{i}].weight", f"must be a finite number > 0, got {w!r}")
            if not isinstance(c, Distribution):
                raise ScenarioError(f"components[{i}].dist", f"must be a distribution, got {c!r}")
        total = _fsum(weights)
        if not math.isfinite(total):
            raise ScenarioError("components", "weights are too large to sum")
        p = np.array([w / total for w in weights])
        p = p / p.sum()
        p.setflags(write=False)
        means = [c.mean for c in comps]
        if all(math.isfinite(m) for m in means):
            mean = _fsum(float(pi) * m for pi, m in zip(p, means))
            parts = [float(pi) * (c.variance + (m - mean) * (m - mean)) if pi > 0 else 0.0
                     for pi, c, m in zip(p, comps, means)]
            var = math.inf if any(math.isinf(x) for x in parts) else _fsum(parts)
        else:
            mean = var = math.inf
        for name, value in (("weights", weights), ("components", comps), ("_p", p),
                            ("_mean", mean), ("_var", var)):
            object.__setattr__(self, name, value)

    @property
    def probabilities(self) -> tuple[float, ...]:
        """The normalised weights."""
        return tuple(float(x) for x in self._p)

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def variance(self) -> float:
        return self._var

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        k = len(self.components)
        if k == 1:
            return self.components[0]._draw(rng, n)
        idx = rng.choice(k, size=n, p=self._p)
        out = np.empty(n)
        for j, comp in enumerate(self.components):
            mask = idx == j
            count = int(np.count_nonzero(mask))
            if count:
                out[mask] = comp._draw(rng, count)
        return out

    def cdf(self, x: float) -> float:
        return math.fsum(float(p) * c.cdf(x) for p, c in zip(self._p, self.components))

    def describe(self) -> str:
        parts = " + ".join(f"{p:.3g}*{c.describe()}" for p, c in zip(self.probabilities, self.components))
        return f"mixture({parts})"

    def to_spec(self) -> dict[str, Any]:
        return {
            "dist": "mixture",
            "components": [{"weight": w, "dist": c.to_spec()} for w, c in zip(self.weights, self.components)],
        }


# --------------------------------------------------------------------------
# Spec documentation (single source of truth for keys; rendered into docs)
# --------------------------------------------------------------------------


def _req(type_: str, description: str) -> dict[str, Any]:
    return {"type": type_, "required": True, "description": description}


def _opt(type_: str, description: str, default: Any) -> dict[str, Any]:
    return {"type": type_, "required": False, "default": default, "description": description}


def _alt(type_: str, description: str) -> dict[str, Any]:
    return {"type": type_, "required": False, "description": description}


#: For each ``dist:`` kind: a summary, its keys (type, required or default,
#: description), alternative key sets where there are several forms, and an
#: example.  Durations are numbers in ms or strings such as ``"10ms"``, ``"2s"``.
#: A bare duration anywhere a distribution is expected means ``constant``.
DISTRIBUTION_KINDS: dict[str, dict[str, Any]] = {
    "constant": {
        "summary": "Always the same value. A bare duration (5, '5ms') is shorthand for this.",
        "keys": {"value": _req("duration", "the value")},
        "example": {"dist": "constant", "value": "5ms"},
    },
    "exponential": {
        "summary": "Exponential (memoryless); squared coefficient of variation 1.",
        "keys": {"mean": _req("duration", "mean, > 0")},
        "example": {"dist": "exponential", "mean": "10ms"},
    },
    "uniform": {
        "summary": "Uniform on [low, high].",
        "keys": {
            "low": _req("duration", "lower bound, >= 0"),
            "high": _req("duration", "upper bound, > low"),
        },
        "example": {"dist": "uniform", "low": "1ms", "high": "3ms"},
    },
    "normal": {
        "summary": "Normal truncated to [low, high]; mean/sd are those of the untruncated normal, "
                   "the reported mean is that of the truncated one.",
        "keys": {
            "mean": _req("duration", "mean of the untruncated normal"),
            "sd": _req("duration", "standard deviation of the untruncated normal, > 0"),
            "low": _opt("duration", "lower truncation point, >= 0 (times are non-negative)", 0),
            "high": _opt("duration", "upper truncation point, > low; null for none", None),
        },
        "example": {"dist": "normal", "mean": "10ms", "sd": "2ms"},
    },
    "lognormal": {
        "summary": "Lognormal, given either by mean and sigma or by median and p99 (exactly one form).",
        "keys": {
            "mean": _alt("duration", "mean of the distribution, > 0 (with sigma)"),
            "sigma": _alt("number", "standard deviation of log(X), > 0 (with mean)"),
            "median": _alt("duration", "median, > 0 (with p99)"),
            "p99": _alt("duration", "99th percentile, > median (with median)"),
        },
        "forms": [["mean", "sigma"], ["median", "p99"]],
        "example": {"dist": "lognormal", "median": "8ms", "p99": "40ms"},
    },
    "pareto": {
        "summary": "Pareto type I (heavy tail) with minimum scale; with high, the bounded Pareto on "
                   "[scale, high]. Unbounded: mean infinite if alpha <= 1, variance infinite if alpha <= 2.",
        "keys": {
            "alpha": _req("number", "tail index (shape), > 0"),
            "scale": _req("duration", "minimum value, > 0"),
            "high": _opt("duration", "upper bound, > scale; null for unbounded", None),
        },
        "example": {"dist": "pareto", "alpha": 2.5, "scale": "1ms", "high": "1s"},
    },
    "empirical": {
        "summary": "Resamples observed values (ms) with replacement, from a CSV file or an inline list "
                   "(exactly one of file, values). A relative file is looked up next to the scenario, "
                   "then in the repository's data/ directory.",
        "keys": {
            "file": _alt("string", "CSV file of values in ms (header row optional)"),
            "column": _opt("string", "column name (or 0-based index); needed when the file has "
                                     "several columns", None),
            "values": _alt("list", "inline list of durations"),
        },
        "forms": [["file"], ["values"]],
        "example": {"dist": "empirical", "file": "latency_sample.csv", "column": "latency_ms"},
    },
    "mixture": {
        "summary": "Picks a component at random with probability proportional to its weight.",
        "keys": {
            "components": _req("list", "list of {weight: number > 0, dist: distribution}"),
        },
        "example": {
            "dist": "mixture",
            "components": [
                {"weight": 0.9, "dist": {"dist": "exponential", "mean": "10ms"}},
                {"weight": 0.1, "dist": "50ms"},
            ],
        },
    },
}

_COMPONENT_KEYS = ("weight", "dist")


# --------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _duration(value: object, path: str, *, allow_negative: bool = False) -> float:
    try:
        return parse_duration(value, path, allow_negative=allow_negative)
    except OverflowError:
        raise ScenarioError(path, f"must be a finite duration, got {value!r}") from None


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(path, f"must be a number, got {value!r}")
    try:
        x = float(value)
    except OverflowError:
        raise ScenarioError(path, f"must be a finite number, got {value!r}") from None
    if not math.isfinite(x):
        raise ScenarioError(path, f"must be a finite number, got {value!r}")
    return x


def _construct(path: str, ctor: Any, *args: Any, **kwargs: Any) -> Distribution:
    """Call a constructor, re-rooting its (relative) ScenarioError at ``path``."""
    try:
        dist = ctor(*args, **kwargs)
    except ScenarioError as e:
        raise ScenarioError(_join(path, e.path) if e.path else path, e.message, e.suggestion) from None
    if math.isnan(dist.mean) or math.isnan(dist.variance):
        raise ScenarioError(path, f"parameters are outside the numerically supported range ({dist.describe()})")
    _check_sane(dist, path)
    return dist


#: Scenario distributions whose mean or standard deviation exceeds this (ms, about 31.7 years) are refused.
MAX_MOMENT_MS: float = 1e12


def _check_sane(dist: Distribution, path: str) -> None:
    """Refuse a distribution no run could simulate: an infinite or absurd mean, or an absurd spread.

    An infinite variance is allowed only for the Pareto (a heavy tail on purpose, 1 < alpha <= 2); other
    kinds always have a finite one, and one beyond (1e12 ms)^2 means the parameters are a mistake (a p99
    of 1e308 ms).  Draws of such a distribution push the clock to where it cannot advance.

    >>> _check_sane(LogNormal.from_median_p99(5.0, 1e30), "s.service_time")
    Traceback (most recent call last):
    ...
    meshsim.errors.ScenarioError: s.service_time: has an absurd mean (2.2e+183ms); lognormal(median=5ms, p99=2.778e+23h) cannot be simulated: means and standard deviations must be at most 1e12ms (about 31.7 years)
    """
    mean, var = dist.mean, dist.variance
    desc = dist.describe()
    if not mean <= MAX_MOMENT_MS:
        if isinstance(dist, Pareto) and math.isinf(mean):
            raise ScenarioError(_join(path, "alpha"), f"gives an infinite mean ({desc}): use alpha > 1, or bound "
                                                      "the tail with high")
        raise ScenarioError(path, f"has an absurd mean ({_fmt_big(mean)}); {desc} cannot be simulated: means "
                                  "and standard deviations must be at most 1e12ms (about 31.7 years)")
    if math.isinf(var) and isinstance(dist, Pareto):
        return
    if not var <= MAX_MOMENT_MS * MAX_MOMENT_MS:
        raise ScenarioError(path, f"has an absurd standard deviation ({_fmt_big(math.sqrt(var))}); {desc} cannot "
                                  "be simulated: means and standard deviations must be at most 1e12ms "
                                  "(about 31.7 years)")


def _fmt_big(ms: float) -> str:
    return "inf" if math.isinf(ms) else f"{ms:.3g}ms"


def _get(spec: Mapping[Any, Any], key: str, path: str) -> Any:
    if key not in spec:
        desc = DISTRIBUTION_KINDS[str(spec["dist"]).strip().lower()]["keys"][key]["description"]
        raise ScenarioError(path, f"missing required key '{key}' ({desc})")
    return spec[key]


def _resolve_file(value: object, path: str, base_dir: Path | None) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(path, f"must be a file name, got {value!r}")
    tried: list[Path] = []
    try:
        p = Path(value).expanduser()
        candidates = [p] if p.is_absolute() else (
            ([Path(base_dir) / p] if base_dir is not None else []) + [DATA_DIR / p]
        )
        for c in candidates:
            tried.append(c)
            if c.is_file():
                return c.resolve()
    except (OSError, ValueError, RuntimeError):
        pass
    where = ", ".join(str(t) for t in tried) or value
    raise ScenarioError(path, f"file {value!r} not found (looked for {where})")


def _read_csv_column(file: Path, column: object, path: str) -> tuple[float, ...]:
    file_path = _join(path, "file")
    column_path = _join(path, "column")
    if column is not None and (isinstance(column, bool) or not isinstance(column, (str, int))):
        raise ScenarioError(column_path, f"must be a column name or 0-based index, got {column!r}")
    try:
        with open(file, newline="", encoding="utf-8-sig") as fh:
            rows = [(i + 1, row) for i, row in enumerate(csv.reader(fh)) if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ScenarioError(file_path, f"cannot read {file}: {e}") from None
    if not rows:
        raise ScenarioError(file_path, f"{file.name} holds no data")

    def is_number(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return False
        return True

    header: list[str] | None = None
    if not all(is_number(c.strip()) for c in rows[0][1] if c.strip()):
        header = [c.strip() for c in rows[0][1]]
        rows = rows[1:]
    width = len(header) if header is not None else max(len(r) for _, r in rows) if rows else 0
    if column is None:
        if width != 1:
            names = f" ({', '.join(header)})" if header else ""
            raise ScenarioError(
                column_path, f"{file.name} has {width} columns{names}; name the one to use with 'column'"
            )
        idx = 0
    elif isinstance(column, str):
        if header is None:
            raise ScenarioError(column_path, f"{file.name} has no header row; give a 0-based column index")
        if column not in header:
            raise ScenarioError(
                column_path,
                f"no column {column!r} in {file.name}; columns: {', '.join(header)}",
                closest(column, header),
            )
        idx = header.index(column)
    else:
        if not 0 <= column < width:
            raise ScenarioError(column_path, f"column index must be in 0..{width - 1}, got {column}")
        idx = column
    values: list[float] = []
    for line, row in rows:
        if idx >= len(row) or not row[idx].strip():
            continue  # missing value
        cell = row[idx].strip()
        try:
            v = float(cell)
        except ValueError:
            raise ScenarioError(file_path, f"{file.name} line {line}: {cell!r} is not a number") from None
        if not math.isfinite(v) or v < 0:
            raise ScenarioError(file_path, f"{file.name} line {line}: {cell!r} is not a duration >= 0 (ms)")
        values.append(v)
    if not values:
        raise ScenarioError(file_path, f"{file.name} holds no values in the chosen column")
    return tuple(values)


def _parse_constant(spec: Mapping[Any, Any], path: str, base_dir: Path | None) -> Distribution:
    value = _duration(_get(spec, "value", path), _join(path, "value"))
    return _construct(path, Constant, value)


def _parse_exponential(spec: Mapping[Any, Any], path: str, base_dir: Path | None) -> Distribution:
    mean = _duration(_get(spec, "mean", path), _join(path, "mean"))
    return _construct(path, Exponential, mean)


def _parse_uniform(spec: Mapping[Any, Any], path: str, base_dir: Path | None) -> Distribution:
    low = _duration(_get(spec, "low", path), _join(path, "low"))
    high = _duration(_get(spec, "high", path), _join(path, "high"))
    return _construct(path, Uniform, low, high)


def _parse_normal(spec: Mapping[Any, Any], path: str, base_dir: Path | None) -> Distribution:
    mu = _duration(_get(spec, "mean", path), _join(path, "mean"), allow_negative=True)
    sd = _duration(_get(spec, "sd", path), _join(path, "sd"))
    low = 0.0 if spec.get("low") is None else _duration(spec["low"], _join(path, "low"))
    high = math.inf if spec.get("high") is None else _duration(spec["high"], _join(path, "high"))
    return _construct(path, Normal, mu, sd, low, high)


def _parse_lognormal(spec: Mapping[Any, Any], path: str, base_dir: Path | None) -> Distribution:
    by_mean = [k for k in ("mean", "sigma") if k in spec]
    by_median = [k for k in ("median", "p99") if k in spec]
    if by_mean and by_median:
        raise ScenarioError(
            path, f"give either mean and sigma or median and p99, not both (found {', '.join(by_mean + by_median)})"
        )
    if by_median:
        med = _duration(_get(spec, "median", path), _join(path, "median"))
        p99 = _duration(_get(spec, "p99", path), _join(path, "p99"))
        return _construct(path, LogNormal.from_median_p99, med, p99)
    if not by_mean:
        raise ScenarioError(path, "missing keys: give either mean and sigma, or median and p99")
    mean = _duration(_get(spec, "mean", path), _join(path, "mean"))
    sigma = _number(_get(spec, "sigma", path), _join(path, "sigma"))
    return _construct(path, LogNormal.from_mean, mean, sigma)


def _parse_pareto(spec: Mapping[Any, Any], path: str, base_dir: Path | None) -> Distribution:
    alpha = _number(_get(spec, "alpha", path), _join(path, "alpha"))
    scale = _duration(_get(spec, "scale", path), _join(path, "scale"))
    high = math.inf if spec.get("high") is None else _duration(spec["high"], _join(path, "high"))
    return _construct(path, Pareto, alpha, scale, high)


def _parse_empirical(spec: Mapping[Any, Any], path: str, base_dir: Path | None) -> Distribution:
    if ("file" in spec) == ("values" in spec):
        raise ScenarioError(path, "give exactly one of 'file' (a CSV file) or 'values' (an inline list)")
    if "values" in spec:
        if "column" in spec:
            raise ScenarioError(_join(path, "column"), "only applies with 'file'")
        raw = spec["values"]
        vpath = _join(path, "values")
        if not isinstance(raw, (list, tuple)):
            raise ScenarioError(vpath, f"must be a list of durations, got {raw!r}")
        if not raw:
            raise ScenarioError(vpath, "must hold at least one value")
        values = tuple(_duration(v, f"{vpath}[{i}]") for i, v in enumerate(raw))
        return _construct(path, Empirical, values)
    file = _resolve_file(spec["file"], _join(path, "file"), base_dir)
    column = spec.get("column")
    values = _read_csv_column(file, column, path)
    return _construct(path, Empirical, values, str(file), column)


def _parse_mixture(spec: Mapping[Any, Any], path: str, base_dir: Path | None) -> Distribution:
    raw = _get(spec, "components", path)
    cpath = _join(path, "components")
    if not isinstance(raw, (list, tuple)):
        raise ScenarioError(cpath, f"must be a list of {{weight: ..., dist: ...}}, got {raw!r}")
    if not raw:
        raise ScenarioError(cpath, "must list at least one component")
    weights: list[float] = []
    comps: list[Distribution] = []
    for i, item in enumerate(raw):
        ipath = f"{cpath}[{i}]"
        if not isinstance(item, Mapping):
            raise ScenarioError(ipath, f"must be a mapping {{weight: ..., dist: ...}}, got {item!r}")
        for key in item:
            if key not in _COMPONENT_KEYS:
                raise ScenarioError(
                    _join(ipath, key), f"unknown key {key!r} in a mixture component; valid keys: weight, dist",
                    closest(str(key), _COMPONENT_KEYS),
                )
        for key in _COMPONENT_KEYS:
            if key not in item:
                raise ScenarioError(ipath, f"missing required key '{key}'")
        w = _number(item["weight"], _join(ipath, "weight"))
        if not w > 0:
            raise ScenarioError(_join(ipath, "weight"), f"must be > 0, got {item['weight']!r}")
        weights.append(w)
        comps.append(from_spec(item["dist"], _join(ipath, "dist"), base_dir))
    return _construct(path, Mixture, tuple(weights), tuple(comps))


_PARSERS = {
    "constant": _parse_constant,
    "exponential": _parse_exponential,
    "uniform": _parse_uniform,
    "normal": _parse_normal,
    "lognormal": _parse_lognormal,
    "pareto": _parse_pareto,
    "empirical": _parse_empirical,
    "mixture": _parse_mixture,
}

_SHORT_EXAMPLE = "{dist: exponential, mean: 10ms}"


def from_spec(spec: object, path: str = "", base_dir: Path | str | None = None) -> Distribution:
    """Build a :class:`Distribution` from a scenario value.

    ``spec`` is a bare duration (a constant) or a mapping with a ``dist`` key;
    see :data:`DISTRIBUTION_KINDS`.  Any problem raises :class:`ScenarioError`
    whose path (``path`` plus the offending key) points at the bad field.
    ``base_dir`` is where relative empirical files are looked up first.

    >>> from_spec({"dist": "uniform", "low": "1ms", "high": "3ms"}).mean
    2.0
    >>> from_spec({"dist": "pareto", "alpha": 2.5, "scael": 1}, "x")
    Traceback (most recent call last):
    ...
    meshsim.errors.ScenarioError: x.scael: unknown key 'scael' for a pareto distribution; valid keys: alpha, scale, high (did you mean 'scale'?)
    """
    if isinstance(spec, Distribution):
        return spec
    bdir = Path(base_dir) if base_dir is not None else None
    if isinstance(spec, Mapping):
        return _from_mapping(spec, path, bdir)
    if isinstance(spec, str):
        name = spec.strip().lower()
        if name in DISTRIBUTION_KINDS:
            raise ScenarioError(
                path, f"'{spec}' needs parameters: write a mapping such as {_SHORT_EXAMPLE}"
                if name == "exponential" else
                f"'{spec}' needs parameters: write a mapping {{dist: {name}, ...}}"
            )
        try:
            return Constant(_duration(spec, path))
        except ScenarioError as e:
            raise ScenarioError(e.path, e.message, e.suggestion or closest(name, DISTRIBUTION_KINDS)) from None
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Constant(_duration(spec, path))
    raise ScenarioError(
        path, f"must be a duration such as '5ms' or a distribution such as {_SHORT_EXAMPLE}, got {spec!r}"
    )


def _from_mapping(spec: Mapping[Any, Any], path: str, base_dir: Path | None) -> Distribution:
    kinds = ", ".join(DISTRIBUTION_KINDS)
    if "dist" not in spec:
        for key in spec:
            if closest(str(key), ["dist"]):
                raise ScenarioError(_join(path, key), f"unknown key {key!r}", "dist")
        raise ScenarioError(path, f"missing required key 'dist' naming the distribution (one of: {kinds})")
    dpath = _join(path, "dist")
    name = spec["dist"]
    if not isinstance(name, str):
        raise ScenarioError(dpath, f"must name a distribution (one of: {kinds}), got {name!r}")
    kind = name.strip().lower()
    if kind not in DISTRIBUTION_KINDS:
        raise ScenarioError(
            dpath, f"unknown distribution {name!r}; known kinds: {kinds}", closest(kind, DISTRIBUTION_KINDS)
        )
    valid = DISTRIBUTION_KINDS[kind]["keys"]
    for key in spec:
        if key != "dist" and key not in valid:
            raise ScenarioError(
                _join(path, key),
                f"unknown key {key!r} for a {kind} distribution; valid keys: {', '.join(valid)}",
                closest(str(key), valid),
            )
    return _PARSERS[kind](spec, path, base_dir)
