import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.kernel.memory_pressure import (
    InvalidPsiTrigger,
    MemoryPressure,
    MemoryPressureParseError,
    PressureLine,
    PsiTrigger,
    format_memory_pressure,
    parse_memory_pressure,
)
from oomguard.monitor.kernel.parse_error import U64_MAX, ParseError

REAL = (
    b"some avg10=1.50 avg60=0.25 avg300=0.05 total=123456\n"
    b"full avg10=0.00 avg60=0.00 avg300=0.00 total=789\n"
)

averages = st.integers(0, 10000).map(lambda n: n / 100)
lines = st.builds(PressureLine, averages, averages, averages, st.integers(0, U64_MAX))


def test_parses_a_real_file():
    pressure = parse_memory_pressure(REAL)
    assert pressure.some == PressureLine(1.5, 0.25, 0.05, 123456)
    assert pressure.full is not None and pressure.full.total_us == 789


def test_full_is_optional_but_some_is_not():
    assert parse_memory_pressure(REAL.split(b"\n")[0]).full is None
    with pytest.raises(MemoryPressureParseError, match="no 'some' line"):
        parse_memory_pressure(REAL.split(b"\n", 1)[1])


@pytest.mark.parametrize(
    "data",
    [
        b"some avg10=1.50 avg60=0.25 avg300=0.05\n",
        b"some avg10=101.00 avg60=0.25 avg300=0.05 total=1\n",
        b"some avg10=-1.00 avg60=0.25 avg300=0.05 total=1\n",
        b"some avg10=1.5 avg60=0.25 avg300=0.05 total=1\n",
        b"some avg10=1.50 avg10=1.50 avg60=0.25 avg300=0.05 total=1\n",
        b"half avg10=1.50 avg60=0.25 avg300=0.05 total=1\n",
        REAL + REAL,
    ],
)
def test_bad_contents_raise(data):
    with pytest.raises(MemoryPressureParseError):
        parse_memory_pressure(data)


@given(lines, st.none() | lines)
def test_round_trip(some, full):
    pressure = MemoryPressure(some, full)
    assert parse_memory_pressure(format_memory_pressure(pressure)) == pressure


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_parse_error(data):
    with contextlib.suppress(ParseError):
        parse_memory_pressure(data)


def test_trigger_encodes_like_psi_rst():
    assert PsiTrigger(150_000, 1_000_000).encode() == b"some 150000 1000000\0"


@pytest.mark.parametrize(
    ("stall", "window", "message"),
    [
        (100, 499_999, "outside"),
        (100, 10_000_001, "outside"),
        (0, 1_000_000, "above 0"),
        (1_000_001, 1_000_000, "at most the window"),
    ],
)
def test_trigger_outside_kernel_bounds_is_refused(stall, window, message):
    with pytest.raises(InvalidPsiTrigger, match=message):
        PsiTrigger(stall, window)


@given(st.integers(1, 10_000_000), st.integers(500_000, 10_000_000))
def test_trigger_accepts_exactly_the_kernel_range(stall, window):
    if stall <= window:
        PsiTrigger(stall, window)
    else:
        with pytest.raises(InvalidPsiTrigger):
            PsiTrigger(stall, window)
