"""Units: durations (ms), rates (per second) and their compact rendering."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshsim.errors import ScenarioError
from meshsim.units import format_duration, parse_duration, parse_rate

# -- parse_duration ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250.0),
        ("2s", 2000.0),
        ("5m", 300_000.0),
        ("1h", 3_600_000.0),
        ("250us", 0.25),
        ("250µs", 0.25),
        ("1.5s", 1500.0),
        ("3sec", 3000.0),
        ("2min", 120_000.0),
        (".5s", 500.0),
        ("1e3ms", 1000.0),
        ("1.5e-3s", 1.5),
        (" 2 s ", 2000.0),
        ("40", 40.0),  # a bare number in a string is milliseconds
        ("0", 0.0),
        ("0s", 0.0),
        ("+7ms", 7.0),
    ],
)
def test_parse_duration_strings(text: str, ms: float) -> None:
    assert parse_duration(text) == pytest.approx(ms, rel=1e-12)


@pytest.mark.parametrize(("value", "ms"), [(0, 0.0), (1, 1.0), (1.5, 1.5), (250, 250.0), (10**6, 1e6)])
def test_parse_duration_numbers_are_milliseconds(value: float, ms: float) -> None:
    out = parse_duration(value)
    assert out == ms
    assert isinstance(out, float)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5parsecs", "services.db.service_time: unknown time unit 'parsecs' in '5parsecs'; use one of us, µs, ms, s, sec, m, min, h"),
        ("5 d", "services.db.service_time: unknown time unit 'd' in '5 d'; use one of us, µs, ms, s, sec, m, min, h"),
        ("5MS", "services.db.service_time: must be a duration such as '250ms', '2s' or '5m', got '5MS'"),
        ("fast", "services.db.service_time: must be a duration such as '250ms', '2s' or '5m', got 'fast'"),
        ("", "services.db.service_time: must be a duration such as '250ms', '2s' or '5m', got ''"),
        ("ms", "services.db.service_time: must be a duration such as '250ms', '2s' or '5m', got 'ms'"),
        ("1 2ms", "services.db.service_time: must be a duration such as '250ms', '2s' or '5m', got '1 2ms'"),
        ("nan", "services.db.service_time: must be a duration such as '250ms', '2s' or '5m', got 'nan'"),
        ("infms", "services.db.service_time: must be a duration such as '250ms', '2s' or '5m', got 'infms'"),
        (None, "services.db.service_time: must be a duration such as '250ms', '2s' or '5m', got None"),
        ([1], "services.db.service_time: must be a duration such as '250ms', '2s' or '5m', got [1]"),
        ({"ms": 1}, "services.db.service_time: must be a duration such as '250ms', '2s' or '5m', got {'ms': 1}"),
        (True, "services.db.service_time: must be a duration such as '250ms', '2s' or '5m', got True"),
        (False, "services.db.service_time: must be a duration such as '250ms', '2s' or '5m', got False"),
        (float("nan"), "services.db.service_time: must be a finite duration, got nan"),
        (float("inf"), "services.db.service_time: must be a finite duration, got inf"),
        (float("-inf"), "services.db.service_time: must be a finite duration, got -inf"),
        ("1e400s", "services.db.service_time: must be a finite duration, got '1e400s'"),
        (-1, "services.db.service_time: must not be negative, got -1"),
        (-0.5, "services.db.service_time: must not be negative, got -0.5"),
        ("-2s", "services.db.service_time: must not be negative, got '-2s'"),
    ],
)
def test_parse_duration_errors_name_the_path(value: object, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_duration(value, "services.db.service_time")
    assert str(info.value) == message
    assert info.value.path == "services.db.service_time"


def test_parse_duration_error_without_path_is_just_the_message() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_duration("5 furlongs")
    assert str(info.value) == "unknown time unit 'furlongs' in '5 furlongs'; use one of us, µs, ms, s, sec, m, min, h"
    assert info.value.path == ""


def test_parse_duration_allow_negative() -> None:
    assert parse_duration("-2s", "x", allow_negative=True) == -2000.0
    assert parse_duration(-3, "x", allow_negative=True) == -3.0
    with pytest.raises(ScenarioError, match="finite"):
        parse_duration(float("-inf"), "x", allow_negative=True)


# -- parse_rate ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "per_s"),
    [
        (8, 8.0),
        (0, 0.0),
        (2.5, 2.5),
        ("8", 8.0),
        ("8/s", 8.0),
        ("8 / s", 8.0),
        ("8/sec", 8.0),
        ("480/min", 8.0),
        ("480/m", 8.0),
        ("3600/h", 1.0),
        ("0.5/ms", 500.0),
        ("8 per s", 8.0),
        ("120 per min", 2.0),
        ("1e3/s", 1000.0),
    ],
)
def test_parse_rate(value: object, per_s: float) -> None:
    out = parse_rate(value)
    assert out == pytest.approx(per_s, rel=1e-12)
    assert isinstance(out, float)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("8/fortnight", "workloads.users.rate: unknown rate unit 'fortnight' in '8/fortnight'; use one of ms, s, sec, m, min, h"),
        ("8/us", "workloads.users.rate: unknown rate unit 'us' in '8/us'; use one of ms, s, sec, m, min, h"),
        ("lots", "workloads.users.rate: must be a rate such as 8 (per second), '8/s' or '480/min', got 'lots'"),
        ("8/", "workloads.users.rate: must be a rate such as 8 (per second), '8/s' or '480/min', got '8/'"),
        ("/s", "workloads.users.rate: must be a rate such as 8 (per second), '8/s' or '480/min', got '/s'"),
        (None, "workloads.users.rate: must be a rate such as 8 (per second), '8/s' or '480/min', got None"),
        ([8], "workloads.users.rate: must be a rate such as 8 (per second), '8/s' or '480/min', got [8]"),
        (True, "workloads.users.rate: must be a rate such as 8 (per second), '8/s' or '480/min', got True"),
        (False, "workloads.users.rate: must be a rate such as 8 (per second), '8/s' or '480/min', got False"),
        (-1, "workloads.users.rate: must be a finite rate >= 0, got -1"),
        ("-8/s", "workloads.users.rate: must be a finite rate >= 0, got '-8/s'"),
        (float("nan"), "workloads.users.rate: must be a finite rate >= 0, got nan"),
        (float("inf"), "workloads.users.rate: must be a finite rate >= 0, got inf"),
        ("nan", "workloads.users.rate: must be a finite rate >= 0, got 'nan'"),
        ("inf", "workloads.users.rate: must be a finite rate >= 0, got 'inf'"),
    ],
)
def test_parse_rate_errors_name_the_path(value: object, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_rate(value, "workloads.users.rate")
    assert str(info.value) == message
    assert info.value.path == "workloads.users.rate"


# -- format_duration ------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0ms"),
        (0.0, "0ms"),
        (0.25, "250us"),
        (0.001, "1us"),
        (1, "1ms"),
        (5, "5ms"),
        (250, "250ms"),
        (999, "999ms"),
        (1000, "1s"),
        (3613.8, "3.614s"),
        (59_000, "59s"),
        (60_000, "1m"),
        (120_000, "2m"),
        (3_600_000, "1h"),
        (7_200_000, "2h"),
        (-5, "-5ms"),
        (-0.5, "-500us"),
        (-2000, "-2s"),
    ],
)
def test_format_duration(ms: float, text: str) -> None:
    assert format_duration(ms) == text


@given(st.floats(min_value=1e-6, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_format_then_parse_round_trips_to_four_digits(ms: float) -> None:
    text = format_duration(ms)
    assert parse_duration(text) == pytest.approx(ms, rel=1e-3)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e9), st.sampled_from(["us", "ms", "s", "m", "h"]))
def test_parse_duration_scales_by_unit(x: float, unit: str) -> None:
    factor = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}[unit]
    assert parse_duration(f"{x!r}{unit}") == pytest.approx(x * factor, rel=1e-12)


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)))
def test_parsers_raise_only_scenario_error(value: object) -> None:
    for parse in (lambda v: parse_duration(v, "p"), lambda v: parse_rate(v, "p")):
        try:
            out = parse(value)
        except ScenarioError as e:
            assert str(e).startswith("p: ")
        else:
            assert isinstance(out, float) and math.isfinite(out) and out >= 0
