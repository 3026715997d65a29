import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.kernel.memory_events import (
    REQUIRED_KEYS,
    MemoryEvents,
    MemoryEventsParseError,
    counters_rose,
    format_memory_events,
    parse_memory_events,
)
from oomguard.monitor.kernel.parse_error import U64_MAX, ParseError

KERNEL_6_1 = b"low 0\nhigh 55\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"

u64 = st.integers(min_value=0, max_value=U64_MAX)
extra_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)


@st.composite
def memory_events(draw):
    counters = {key: draw(u64) for key in REQUIRED_KEYS}
    for key in draw(st.lists(extra_keys, max_size=4, unique=True)):
        counters.setdefault(key, draw(u64))
    return MemoryEvents(counters)


def test_parses_a_real_kernel_file():
    events = parse_memory_events(KERNEL_6_1)
    assert (events.low, events.high, events.max, events.oom, events.oom_kill) == (0, 55, 0, 0, 0)
    assert events.counters["oom_group_kill"] == 0


def test_unknown_keys_are_kept_in_order():
    events = parse_memory_events(KERNEL_6_1 + b"sock_throttled 3\n")
    assert list(events.counters)[-1] == "sock_throttled"
    assert events.counters["sock_throttled"] == 3


def test_counters_cannot_be_mutated():
    events = parse_memory_events(KERNEL_6_1)
    with pytest.raises(TypeError):
        events.counters["high"] = 0  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "missing keys: low high max oom oom_kill"),
        (b"low 0\nhigh 1\nmax 0\noom 0\n", "missing keys: oom_kill"),
        (b"low 0\nhigh -1\nmax 0\noom 0\noom_kill 0\n", "line 2|:2: high"),
        (b"low 0\nhigh 18446744073709551616\nmax 0\noom 0\noom_kill 0\n", "exceeds the u64"),
        (b"low 0\nhigh\n", ":2: expected 'key value'"),
        (b"low 0\nhigh 1 2\n", ":2: expected 'key value'"),
        (b"low \xfe0\n", ":1: not UTF-8"),
    ],
)
def test_bad_contents_raise_a_clear_error(data, message):
    with pytest.raises(MemoryEventsParseError, match=message) as info:
        parse_memory_events(data, "/sys/fs/cgroup/g/memory.events")
    assert str(info.value).startswith("/sys/fs/cgroup/g/memory.events")


def test_max_u64_is_valid():
    data = KERNEL_6_1.replace(b"high 55", b"high 18446744073709551615")
    assert parse_memory_events(data).high == U64_MAX


@given(memory_events())
def test_round_trip(events):
    assert parse_memory_events(format_memory_events(events)) == events


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_parse_error(data):
    with contextlib.suppress(ParseError):
        parse_memory_events(data)


@given(memory_events(), st.data())
def test_arbitrary_lines_raise_only_parse_error(events, data):
    text = format_memory_events(events)
    junk = data.draw(st.binary(max_size=20))
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    with contextlib.suppress(ParseError):
        parse_memory_events(text[:cut] + junk + text[cut:])


def test_counters_rose_reports_rises_only():
    old = parse_memory_events(b"low 0\nhigh 5\nmax 1\noom 0\noom_kill 0\n")
    new = parse_memory_events(b"low 9\nhigh 8\nmax 0\noom 0\noom_kill 2\n")
    assert counters_rose(old, new, ("high", "max", "oom", "oom_kill")) == {"high": 3, "oom_kill": 2}


@given(memory_events(), memory_events())
def test_counters_rose_matches_the_definition(old, new):
    keys = REQUIRED_KEYS
    deltas = counters_rose(old, new, keys)
    for key in keys:
        rise = new.counters[key] - old.counters[key]
        assert deltas.get(key, 0) == max(0, rise)
