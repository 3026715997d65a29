import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.kernel.memory_stat import (
    MemoryStat,
    MemoryStatParseError,
    format_memory_stat,
    parse_memory_stat,
    working_set_bytes,
)
from oomguard.monitor.kernel.parse_error import U64_MAX, ParseError

SAMPLE = (
    b"anon 104857600\nfile 20971520\nkernel 1048576\nshmem 0\n"
    b"active_file 4096\ninactive_file 20967424\npgfault 12345\n"
)

keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=16)


def test_parses_values_and_reclaimable_file_pages():
    stat = parse_memory_stat(SAMPLE)
    assert stat.values["anon"] == 104857600
    assert stat.reclaimable_file_bytes == 20967424


def test_working_set_is_current_minus_inactive_file():
    stat = parse_memory_stat(SAMPLE)
    assert working_set_bytes(130_000_000, stat) == 130_000_000 - 20967424
    assert working_set_bytes(0, stat) == 0


def test_missing_inactive_file_is_a_clear_error():
    stat = parse_memory_stat(b"anon 1\n", "/cg/memory.stat")
    with pytest.raises(MemoryStatParseError, match=r"/cg/memory.stat: no 'inactive_file'"):
        working_set_bytes(10, stat)


@given(st.dictionaries(keys, st.integers(0, U64_MAX), max_size=10))
def test_round_trip(values):
    stat = MemoryStat(values)
    assert parse_memory_stat(format_memory_stat(stat)) == stat


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_parse_error(data):
    with contextlib.suppress(ParseError):
        parse_memory_stat(data)
