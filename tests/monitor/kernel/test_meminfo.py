import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.kernel.meminfo import (
    Meminfo,
    MeminfoParseError,
    format_meminfo,
    parse_meminfo,
)
from oomguard.monitor.kernel.parse_error import ParseError

SAMPLE = (
    b"MemTotal:       16318712 kB\n"
    b"MemFree:         1000000 kB\n"
    b"MemAvailable:    8000000 kB\n"
    b"Active(anon):     123456 kB\n"
    b"HugePages_Total:       7\n"
)


def test_kib_lines_become_bytes_and_counts_stay():
    info = parse_meminfo(SAMPLE)
    assert info.mem_total == 16318712 * 1024
    assert info.mem_available == 8000000 * 1024
    assert info.values["Active(anon)"] == 123456 * 1024
    assert info.values["HugePages_Total"] == 7
    assert info.used_bytes == (16318712 - 8000000) * 1024


def test_this_hosts_meminfo_parses():
    info = parse_meminfo(Path("/proc/meminfo").read_bytes())
    assert 0 < info.mem_available <= info.mem_total


def test_missing_mem_available_is_clear():
    info = parse_meminfo(b"MemTotal: 1 kB\n")
    with pytest.raises(MeminfoParseError, match="no 'MemAvailable'"):
        _ = info.mem_available


@pytest.mark.parametrize(
    "data",
    [b"", b"MemFree: 1 kB\n", b"MemTotal 1 kB\n", b"MemTotal: 1 MB\n", b"MemTotal: -1 kB\n"],
)
def test_bad_contents_raise(data):
    with pytest.raises(MeminfoParseError):
        parse_meminfo(data)


keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCZ_()", min_size=1, max_size=14)


@given(st.dictionaries(keys, st.tuples(st.integers(0, 2**54), st.booleans()), max_size=8))
def test_round_trip(entries):
    entries = {"MemTotal": (1, True), **entries}
    values = {k: (v * 1024 if kib else v) for k, (v, kib) in entries.items()}
    info = Meminfo(values, frozenset(k for k, (_, kib) in entries.items() if kib))
    assert parse_meminfo(format_meminfo(info)) == info


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_parse_error(data):
    with contextlib.suppress(ParseError):
        parse_meminfo(data)
