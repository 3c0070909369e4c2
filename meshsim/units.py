"""Units: simulated time is in milliseconds everywhere.

Durations in files may be numbers (milliseconds) or strings with a unit:
``"250us"``, ``"250ms"``, ``"2s"``, ``"2 seconds"``, ``"5m"``, ``"1h"``.  Rates
are per second when given as a plain number, or strings such as ``"8/s"``,
``"480/min"``, ``"100 rps"``, ``"100 req/s"``.  Scenarios refuse durations
above :data:`MAX_DURATION_MS` (about 31.7 years): they can only be a mistake,
and simulated clocks that large lose sub-millisecond precision.

>>> parse_duration("2s")
2000.0
>>> parse_duration("250ms"), parse_duration(1.5)
(250.0, 1.5)
>>> parse_rate("480/min"), parse_rate("100 rps"), parse_rate("50 req/s")
(8.0, 100.0, 50.0)
>>> parse_duration("1.5 seconds"), parse_duration("3 sec")
(1500.0, 3000.0)
"""

from __future__ import annotations

import math
import re

from .errors import ScenarioError

#: Milliseconds per unit.  ``m`` is minutes (as in "5m"), not metres.
DURATION_UNITS: dict[str, float] = {
    "us": 1e-3,
    "µs": 1e-3,
    "ms": 1.0,
    "s": 1000.0,
    "sec": 1000.0,
    "m": 60_000.0,
    "min": 60_000.0,
    "h": 3_600_000.0,
}

#: Spelled-out forms a person writes, and the unit each means.
DURATION_ALIASES: dict[str, str] = {
    "usec": "us", "microsecond": "us", "microseconds": "us",
    "msec": "ms", "msecs": "ms", "millisecond": "ms", "milliseconds": "ms",
    "secs": "sec", "second": "s", "seconds": "s",
    "mins": "min", "minute": "min", "minutes": "min",
    "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
}

#: The largest duration a scenario accepts (ms): 1e12 ms is about 31.7 years.
MAX_DURATION_MS: float = 1e12

#: Seconds per unit of a rate's denominator.
RATE_UNITS: dict[str, float] = {
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}

#: Rate spellings without a slash: "100 rps", "100 qps" (per second), "100 rpm" (per minute).
RATE_SUFFIXES: dict[str, str] = {"rps": "s", "qps": "s", "rpm": "min"}

#: Words allowed before the slash of a rate: "100 req/s", "100 requests/s", "5 users/min".
_RATE_NOUNS = r"(?:req|reqs|request|requests|calls?|queries|query|users?|arrivals?|events?|msgs?|messages?)"

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_DURATION_RE = re.compile(rf"^\s*({_NUM})\s*([a-zµ]+)?\s*$")
_RATE_RE = re.compile(rf"^\s*({_NUM})\s*(?:{_RATE_NOUNS}\s*)?(?:/|per\s+)\s*([a-zA-Z]+)\s*$")
_RATE_SUFFIX_RE = re.compile(rf"^\s*({_NUM})\s*([a-zA-Z]+)\s*$")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_duration(value: object, path: str = "", *, allow_negative: bool = False) -> float:
    """Parse a duration into milliseconds; raise ScenarioError naming ``path``."""
    if _is_number(value):
        try:
            ms = float(value)  # type: ignore[arg-type]
        except OverflowError:
            raise ScenarioError(path, f"must be a finite duration, got {value!r}") from None
    elif isinstance(value, str):
        m = _DURATION_RE.match(value)
        if not m:
            raise ScenarioError(path, f"must be a duration such as '250ms', '2s' or '5m', got {value!r}")
        unit = m.group(2) or "ms"
        unit = DURATION_ALIASES.get(unit.lower(), unit) if unit not in DURATION_UNITS else unit
        if unit not in DURATION_UNITS:
            raise ScenarioError(
                path, f"unknown time unit {unit!r} in {value!r}; use one of {', '.join(DURATION_UNITS)}"
            )
        ms = float(m.group(1)) * DURATION_UNITS[unit]
    else:
        raise ScenarioError(path, f"must be a duration such as '250ms', '2s' or '5m', got {value!r}")
    if math.isnan(ms) or math.isinf(ms):
        raise ScenarioError(path, f"must be a finite duration, got {value!r}")
    if ms < 0 and not allow_negative:
        raise ScenarioError(path, f"must not be negative, got {value!r}")
    return ms


def parse_rate(value: object, path: str = "") -> float:
    """Parse a rate into events per second (a plain number is already per second)."""
    if _is_number(value):
        try:
            rate = float(value)  # type: ignore[arg-type]
        except OverflowError:
            raise ScenarioError(path, f"must be a finite rate >= 0, got {value!r}") from None
    elif isinstance(value, str):
        m = _RATE_RE.match(value)
        s = _RATE_SUFFIX_RE.match(value) if not m else None
        if s and s.group(2).lower() in RATE_SUFFIXES:
            rate = float(s.group(1)) / RATE_UNITS[RATE_SUFFIXES[s.group(2).lower()]]
        elif not m:
            try:
                rate = float(value)
            except ValueError:
                raise ScenarioError(path, f"must be a rate such as 8 (per second), '8/s' or '480/min', got {value!r}") from None
        else:
            unit = m.group(2)
            unit = DURATION_ALIASES.get(unit.lower(), unit) if unit not in RATE_UNITS else unit
            if unit not in RATE_UNITS:
                raise ScenarioError(path, f"unknown rate unit {unit!r} in {value!r}; use one of {', '.join(RATE_UNITS)}")
            rate = float(m.group(1)) / RATE_UNITS[unit]
    else:
        raise ScenarioError(path, f"must be a rate such as 8 (per second), '8/s' or '480/min', got {value!r}")
    if math.isnan(rate) or math.isinf(rate) or rate < 0:
        raise ScenarioError(path, f"must be a finite rate >= 0, got {value!r}")
    return rate


def format_duration(ms: float) -> str:
    """Render milliseconds compactly for tables and plots.

    >>> format_duration(3613.8), format_duration(0.25), format_duration(120000)
    ('3.614s', '250us', '2m')
    """
    if ms == 0:
        return "0ms"
    if abs(ms) < 1:
        return f"{ms * 1000:.4g}us"
    if abs(ms) < 1000:
        return f"{ms:.4g}ms"
    if abs(ms) < 60_000:
        return f"{ms / 1000:.4g}s"
    if abs(ms) < 3_600_000:
        return f"{ms / 60_000:.4g}m"
    return f"{ms / 3_600_000:.4g}h"
