"""Output analysis for simulation summaries: t quantiles, batch means, latency histograms.

Pure Python + numpy (no scipy).  Latency values are in whatever unit they are
recorded in (the simulator uses milliseconds); nothing here assumes a unit
except ``LogHistogram.min_value``, which is in the unit of the values.

>>> round(t_quantile(0.975, 9), 4)
2.2622
>>> h = LogHistogram(relative_error=0.01)
>>> h.add_many([1.0, 2.0, 3.0, 4.0, 100.0])
>>> h.count, abs(h.quantile(0.5) - 3.0) <= 0.03
(5, True)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "t_cdf",
    "t_quantile",
    "ConfidenceInterval",
    "batch_means_ci",
    "auto_batch_means_ci",
    "lag1_autocorrelation",
    "FINE_BATCHES",
    "LogHistogram",
    "percentiles",
]


# --------------------------------------------------------------------------- Student t


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < tiny:
        d = tiny
    d = 1.0 / d
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularized incomplete beta I_x(a, b); ``y`` is 1 - x computed without cancellation."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, y) / b


def _t_tail(t: float, df: float) -> float:
    """P(T > t) for t >= 0."""
    if math.isinf(df):
        return 0.5 * math.erfc(t / math.sqrt(2.0))
    t2 = t * t
    return 0.5 * _betainc(0.5 * df, 0.5, df / (df + t2), t2 / (df + t2))


def _check_df(df: float) -> float:
    if isinstance(df, bool) or not isinstance(df, numbers.Real) or math.isnan(df) or df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df!r}")
    return float(df)


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t with ``df`` > 0 degrees of freedom (``math.inf`` gives the normal).

    Uses P(T > t) = I_{df/(df+t^2)}(df/2, 1/2) / 2 for t >= 0.

    >>> round(t_cdf(2.2622, 9), 4)
    0.975
    >>> t_cdf(0.0, 3)
    0.5
    """
    df = _check_df(df)
    if math.isnan(t):
        return math.nan
    if t >= 0:
        return 1.0 - _t_tail(t, df)
    return _t_tail(-t, df)


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t: the t with ``t_cdf(t, df) == p``, for 0 < p < 1.

    Inverts the tail probability (regularized incomplete beta via a continued
    fraction) by bracketing and bisection to ~1e-12 relative precision, so it
    is accurate far beyond 1e-4 for any df > 0; ``df=math.inf`` gives the
    standard normal quantile.

    >>> round(t_quantile(0.975, 1), 4), round(t_quantile(0.975, 19), 4)
    (12.7062, 2.093)
    >>> round(t_quantile(0.025, 9), 4)
    -2.2622
    """
    df = _check_df(df)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 < float(p) < 1.0:
        raise ValueError(f"p must be strictly between 0 and 1, got {p!r}")
    p = float(p)
    if p == 0.5:
        return 0.0
    # symmetric: solve P(T > t) = tail with tail < 1/2 and t > 0
    tail = 1.0 - p if p > 0.5 else p
    sign = 1.0 if p > 0.5 else -1.0
    lo, hi = 0.0, 1.0
    while _t_tail(hi, df) > tail:
        lo, hi = hi, hi * 2.0
        if math.isinf(hi):  # pragma: no cover - needs p within ~1e-300 of 0 or 1
            return sign * math.inf
    for _ in range(300):
        mid = 0.5 * (lo + hi)
        if _t_tail(mid, df) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return sign * 0.5 * (lo + hi)


# --------------------------------------------------------------------------- batch means


@dataclass(frozen=True)
class ConfidenceInterval:
    """A two-sided confidence interval ``mean +- half_width`` = [low, high].

    ``batches`` is the number of batches used and ``n`` the number of values
    that went into ``mean``.  ``half_width`` (and low/high) is NaN when there
    were too few values to estimate it.

    >>> ci = ConfidenceInterval(10.0, 0.5, 9.5, 10.5, 20, 2000)
    >>> ci.relative_half_width
    0.05
    """

    mean: float
    half_width: float
    low: float
    high: float
    batches: int
    n: int

    @property
    def relative_half_width(self) -> float:
        """half_width / |mean| (NaN when the mean is 0 or unknown)."""
        if self.mean == 0 or math.isnan(self.mean):
            return math.nan
        return self.half_width / abs(self.mean)


def batch_means_ci(
    values: Sequence[float] | np.ndarray, batches: int = 20, confidence: float = 0.95
) -> ConfidenceInterval:
    """Confidence interval for a steady-state mean by the method of non-overlapping batch means.

    ``values`` are in arrival order (after any warm-up has been removed).  They
    are split into ``batches`` contiguous batches of ``len(values) // batches``
    values each; the last ``len(values) % batches`` values are dropped.  The
    half width is t(1 - (1 - confidence)/2, batches - 1) * sd(batch means) /
    sqrt(batches).  With fewer than ``2 * batches`` values the mean of all
    values is returned with a NaN half width.  ``batches`` must be >= 2.

    >>> ci = batch_means_ci(np.arange(100.0), batches=4)
    >>> ci.mean, ci.n, round(ci.half_width, 3)
    (49.5, 100, 51.357)
    """
    if isinstance(batches, bool) or not isinstance(batches, numbers.Integral) or batches < 2:
        raise ValueError(f"batches must be an integer >= 2 (one batch gives no variance estimate), got {batches!r}")
    batches = int(batches)
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {x.shape}")
    n = x.size
    if n < 2 * batches:
        mean = float(x.mean()) if n else math.nan
        return ConfidenceInterval(mean, math.nan, math.nan, math.nan, batches, n)
    size = n // batches
    used = size * batches
    means = x[:used].reshape(batches, size).mean(axis=1)
    mean = float(means.mean())
    sd = float(means.std(ddof=1))
    half = t_quantile(0.5 + 0.5 * float(confidence), batches - 1) * sd / math.sqrt(batches)
    return ConfidenceInterval(mean, half, mean - half, mean + half, batches, used)


def lag1_autocorrelation(values: Sequence[float] | np.ndarray) -> float:
    """Sample lag-1 autocorrelation sum (x_i - m)(x_(i+1) - m) / sum (x_i - m)^2 (0 for a constant series).

    >>> lag1_autocorrelation([1.0, 2.0, 3.0, 4.0])
    0.25
    >>> lag1_autocorrelation([5.0, 5.0, 5.0])
    0.0
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"need a one-dimensional series of at least 2 values, got shape {x.shape}")
    d = x - x.mean()
    v = float(d @ d)
    return float(d[1:] @ d[:-1]) / v if v > 0 else 0.0


#: streaming mode keeps this many equal-size batch means per ``metrics.batches``, for
#: :func:`auto_batch_means_ci` to merge (640 floats for the default 20 batches)
FINE_BATCHES = 32

#: batches in the pilot used by :func:`auto_batch_means_ci` to estimate the correlation of batch means
PILOT_BATCHES = 40


def auto_batch_means_ci(
    values: Sequence[float] | np.ndarray,
    max_batches: int = 20,
    confidence: float = 0.95,
    *,
    target_lag1: float = 0.05,
    min_batches: int = 4,
) -> ConfidenceInterval:
    """Batch-means confidence interval whose batch size is chosen from the data's autocorrelation.

    With a fixed number of batches, a short run of a strongly autocorrelated
    output (a queue near saturation) gives batches shorter than the system's
    memory: neighbouring batch means are positively correlated, their spread
    understates the variance of the overall mean, and the interval is too
    narrow.  Here the batch size grows with the correlation, in the spirit of
    the Law-Carson and Fishman batch-size rules:

    1. pilot: cut ``values`` into ``k`` = :data:`PILOT_BATCHES` (40) batches
       (fewer when values are few: the largest power-of-two multiple of
       ``max_batches`` <= 40 that leaves >= 1 value per batch) of size b and
       estimate the lag-1 correlation r of their means, corrected for the
       estimator's downward bias: r' = r + (1 + 3 max(r, 0)) / k;
    2. beyond the memory of the process the lag-1 correlation of batch means
       falls like 1/(batch size), so batches of b* = b r' / ``target_lag1``
       values have lag-1 correlation about ``target_lag1`` (0.05);
    3. use k* = min(``max_batches``, max(``min_batches``, n // b*)) batches and
       the usual t interval with k* - 1 degrees of freedom
       (:func:`batch_means_ci`).

    Independent data keep ``max_batches`` batches; a run too short for its
    correlation gets ``min_batches`` (4) batches, whose t(0.975, 3) = 3.18
    widens the interval.  With fewer than ``2 * max_batches`` values the half
    width is NaN, as for :func:`batch_means_ci`.  The cost is two passes over
    the values.

    >>> rng = np.random.default_rng(1)
    >>> iid = auto_batch_means_ci(rng.normal(10.0, 1.0, 20_000))
    >>> iid.batches, bool(iid.low < 10.0 < iid.high)
    (20, True)
    >>> ar = np.zeros(20_000)
    >>> for i in range(1, ar.size):  # AR(1) with phi = 0.999: a memory of ~1000 values
    ...     ar[i] = 0.999 * ar[i - 1] + rng.normal()
    >>> auto_batch_means_ci(ar).batches, batch_means_ci(ar, 20).batches
    (4, 20)
    """
    if isinstance(max_batches, bool) or not isinstance(max_batches, numbers.Integral) or max_batches < 2:
        raise ValueError(f"max_batches must be an integer >= 2, got {max_batches!r}")
    if isinstance(min_batches, bool) or not isinstance(min_batches, numbers.Integral) or min_batches < 2:
        raise ValueError(f"min_batches must be an integer >= 2, got {min_batches!r}")
    if not isinstance(target_lag1, numbers.Real) or not 0.0 < target_lag1 < 1.0:
        raise ValueError(f"target_lag1 must be strictly between 0 and 1, got {target_lag1!r}")
    max_batches = int(max_batches)
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {x.shape}")
    n = x.size
    if n < 2 * max_batches:
        return batch_means_ci(x, max_batches, confidence)
    k = max_batches
    while 2 * k <= min(n, PILOT_BATCHES):
        k *= 2
    b = n // k
    pilot = x[: b * k].reshape(k, b).mean(axis=1)
    r = lag1_autocorrelation(pilot)
    r += (1.0 + 3.0 * max(r, 0.0)) / k
    needed = b * max(r, 0.0) / float(target_lag1)
    chosen = min(max_batches, max(int(min_batches), int(n // max(1.0, math.ceil(needed)))))
    return batch_means_ci(x, chosen, confidence)


# --------------------------------------------------------------------------- log histogram


class LogHistogram:
    """Mergeable, log-bucketed histogram of non-negative values (DDSketch-style).

    With gamma = (1 + e) / (1 - e), a value x > ``min_value`` goes to bucket
    i = ceil(log(x / min_value) / log(gamma)), covering
    (min_value gamma^(i-1), min_value gamma^i]; quantiles report the bucket's
    representative 2 gamma^i / (gamma + 1) * min_value, which is within
    relative error e of every value in the bucket.  Values <= ``min_value``
    (including 0) share one zero bucket, reported with absolute error
    <= ``min_value``.  Memory grows with log(max/min_value), not with the count:
    about ln(max/min_value) / (2e) buckets.  Exact count, sum, min and max are
    kept too: quantiles are clamped to [min, max], and the lowest and highest
    order statistics (e.g. q = 0 and q = 1) are reported exactly.

    ``quantile(q)`` estimates the order statistic x_(floor(q (n-1))) (numpy's
    ``method="lower"``), 0-based in sorted order.

    >>> h = LogHistogram(relative_error=0.01, min_value=1e-3)
    >>> for x in (0.0, 5.0, 10.0, 20.0):
    ...     h.add(x)
    >>> h.count, h.sum, h.min, h.max
    (4, 35.0, 0.0, 20.0)
    >>> abs(h.quantile(0.5) - 5.0) <= 0.05, h.quantile(0.0), h.quantile(1.0)
    (True, 0.0, 20.0)
    """

    __slots__ = (
        "relative_error",
        "min_value",
        "gamma",
        "_inv_min",
        "_inv_log_gamma",
        "_buckets",
        "_zero",
        "_count",
        "_sum",
        "_min",
        "_max",
    )

    def __init__(self, relative_error: float = 0.01, min_value: float = 1e-3) -> None:
        if not isinstance(relative_error, numbers.Real) or not 0.0 < relative_error < 1.0:
            raise ValueError(f"relative_error must be strictly between 0 and 1, got {relative_error!r}")
        if not isinstance(min_value, numbers.Real) or not (0.0 < min_value < math.inf):
            raise ValueError(f"min_value must be a positive finite number, got {min_value!r}")
        self.relative_error = float(relative_error)
        self.min_value = float(min_value)
        self.gamma = (1.0 + self.relative_error) / (1.0 - self.relative_error)
        self._inv_min = 1.0 / self.min_value
        self._inv_log_gamma = 1.0 / math.log(self.gamma)
        self._buckets: dict[int, int] = {}
        self._zero = 0
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    # -- recording ----------------------------------------------------------

    def add(self, x: float) -> None:
        """Record one value (>= 0; negative or NaN raise ValueError).  Cost: one log, one dict update."""
        if x > self.min_value:
            i = math.ceil(math.log(x * self._inv_min) * self._inv_log_gamma)
            self._buckets[i] = self._buckets.get(i, 0) + 1
        elif x >= 0.0:
            self._zero += 1
        else:
            raise ValueError(f"LogHistogram values must be >= 0 (and not NaN), got {x!r}")
        self._count += 1
        self._sum += x
        if x < self._min:
            self._min = x
        if x > self._max:
            self._max = x

    def add_many(self, values: Iterable[float] | np.ndarray) -> None:
        """Record many values at once (vectorised with numpy)."""
        x = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float).ravel()
        if x.size == 0:
            return
        if not np.all(x >= 0.0) or not np.all(np.isfinite(x)):
            raise ValueError("LogHistogram values must be finite and >= 0")
        pos = x[x > self.min_value]
        self._zero += int(x.size - pos.size)
        if pos.size:
            idx = np.ceil(np.log(pos * self._inv_min) * self._inv_log_gamma).astype(np.int64)
            keys, counts = np.unique(idx, return_counts=True)
            b = self._buckets
            for k, c in zip(keys.tolist(), counts.tolist()):
                b[k] = b.get(k, 0) + c
        self._count += int(x.size)
        self._sum += float(x.sum())
        self._min = min(self._min, float(x.min()))
        self._max = max(self._max, float(x.max()))

    def merge(self, other: LogHistogram) -> LogHistogram:
        """Add ``other``'s contents to this histogram (same parameters required); returns self."""
        if not isinstance(other, LogHistogram):
            raise TypeError(f"can only merge another LogHistogram, got {type(other).__name__}")
        if other.relative_error != self.relative_error or other.min_value != self.min_value:
            raise ValueError(
                "cannot merge histograms with different parameters: "
                f"(relative_error={self.relative_error}, min_value={self.min_value}) vs "
                f"(relative_error={other.relative_error}, min_value={other.min_value})"
            )
        b = self._buckets
        for k, c in other._buckets.items():
            b[k] = b.get(k, 0) + c
        self._zero += other._zero
        self._count += other._count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        return self

    # -- summaries ----------------------------------------------------------

    @property
    def count(self) -> int:
        """Number of values recorded."""
        return self._count

    @property
    def sum(self) -> float:
        """Exact sum of the values recorded."""
        return self._sum

    @property
    def mean(self) -> float:
        """Exact mean (NaN when empty)."""
        return self._sum / self._count if self._count else math.nan

    @property
    def min(self) -> float:
        """Exact minimum (NaN when empty)."""
        return self._min if self._count else math.nan

    @property
    def max(self) -> float:
        """Exact maximum (NaN when empty)."""
        return self._max if self._count else math.nan

    @property
    def num_buckets(self) -> int:
        """Number of non-empty buckets held in memory (the zero bucket included)."""
        return len(self._buckets) + (1 if self._zero else 0)

    def quantile(self, q: float) -> float:
        """Estimate the q-quantile, 0 <= q <= 1 (NaN when empty); see the class docstring.

        >>> h = LogHistogram(0.02)
        >>> h.add_many(np.arange(1.0, 101.0))
        >>> abs(h.quantile(0.9) - 90.0) / 90.0 <= 0.02
        True
        """
        return self.quantiles([q])[0]

    def quantiles(self, qs: Iterable[float]) -> list[float]:
        """Estimate several quantiles (each 0 <= q <= 1) with one pass over the buckets."""
        qs = [float(q) for q in qs]
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile level must be in [0, 1], got {q!r}")
        if self._count == 0:
            return [math.nan] * len(qs)
        keys = np.array(sorted(self._buckets), dtype=np.int64)
        cum = np.cumsum([self._buckets[k] for k in keys.tolist()], dtype=np.int64)
        out = []
        for q in qs:
            rank = math.floor(q * (self._count - 1))  # 0-based index of the order statistic
            if rank == 0:
                value = self._min  # the extreme order statistics are known exactly
            elif rank == self._count - 1:
                value = self._max
            elif rank < self._zero:
                value = 0.0
            else:
                j = int(np.searchsorted(cum, rank - self._zero, side="right"))
                value = 2.0 * self.gamma ** int(keys[j]) / (self.gamma + 1.0) * self.min_value
            out.append(min(max(value, self._min), self._max))
        return out

    # -- serialisation ------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (buckets as sorted [index, count] pairs; empty min/max are None).

        >>> h = LogHistogram(); h.add(2.0)
        >>> LogHistogram.from_dict(h.to_dict()).to_dict() == h.to_dict()
        True
        """
        return {
            "relative_error": self.relative_error,
            "min_value": self.min_value,
            "count": self._count,
            "sum": self._sum,
            "min": self._min if self._count else None,
            "max": self._max if self._count else None,
            "zero_count": self._zero,
            "buckets": [[k, self._buckets[k]] for k in sorted(self._buckets)],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogHistogram:
        """Rebuild a histogram written by :meth:`to_dict`."""
        h = cls(relative_error=data["relative_error"], min_value=data["min_value"])
        buckets = {int(k): int(c) for k, c in data["buckets"]}
        zero = int(data["zero_count"])
        count = int(data["count"])
        if any(c <= 0 for c in buckets.values()) or zero < 0 or zero + sum(buckets.values()) != count:
            raise ValueError("inconsistent histogram data: bucket counts do not add up to count")
        h._buckets = buckets
        h._zero = zero
        h._count = count
        h._sum = float(data["sum"])
        if count:
            h._min = float(data["min"])
            h._max = float(data["max"])
        return h

    def __repr__(self) -> str:
        return (
            f"LogHistogram(relative_error={self.relative_error}, min_value={self.min_value}, "
            f"count={self._count}, buckets={self.num_buckets})"
        )


# --------------------------------------------------------------------------- exact percentiles


def percentiles(
    values: Sequence[float] | np.ndarray, qs: Sequence[float] = (50, 90, 99, 99.9)
) -> dict[float, float]:
    """Exact percentiles (``qs`` in percent, 0..100) by numpy's linear interpolation.

    Returns ``{q: value}``; every value is NaN when ``values`` is empty.

    >>> percentiles([1.0, 2.0, 3.0, 4.0], qs=(50, 100))
    {50: 2.5, 100: 4.0}
    """
    x = np.asarray(values, dtype=float).ravel()
    if any(not 0.0 <= float(q) <= 100.0 for q in qs):
        raise ValueError(f"percentiles must be in [0, 100], got {list(qs)!r}")
    if x.size == 0:
        return {q: math.nan for q in qs}
    res = np.percentile(x, [float(q) for q in qs], method="linear")
    return {q: float(v) for q, v in zip(qs, res)}
