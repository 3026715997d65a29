import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.kernel.memory_limit import (
    UNLIMITED,
    MemoryLimit,
    MemoryLimitParseError,
    format_memory_limit,
    parse_memory_limit,
)
from oomguard.monitor.kernel.parse_error import U64_MAX, ParseError


def test_max_and_bytes():
    assert parse_memory_limit(b"max\n") == UNLIMITED
    assert UNLIMITED.unlimited
    assert parse_memory_limit(b"67108864\n") == MemoryLimit(67108864)
    assert format_memory_limit(MemoryLimit(4096)) == b"4096\n"
    assert format_memory_limit(UNLIMITED) == b"max\n"


@pytest.mark.parametrize("data", [b"", b"\n", b"64M\n", b"-1\n", b"max max\n", b"1\n2\n", b"MAX\n"])
def test_bad_contents_raise(data):
    with pytest.raises(MemoryLimitParseError, match=r"^memory.max"):
        parse_memory_limit(data, "memory.max")


@given(st.none() | st.integers(0, U64_MAX))
def test_round_trip(value):
    limit = MemoryLimit(value)
    assert parse_memory_limit(format_memory_limit(limit)) == limit


@given(st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_parse_error(data):
    with contextlib.suppress(ParseError):
        parse_memory_limit(data)
