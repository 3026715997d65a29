import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.kernel.cgroup_events import (
    CgroupEvents,
    CgroupEventsParseError,
    parse_cgroup_events,
)
from oomguard.monitor.kernel.parse_error import ParseError


def test_parses_flags():
    assert parse_cgroup_events(b"populated 1\nfrozen 0\n") == CgroupEvents(True, False)
    assert parse_cgroup_events(b"populated 0\n") == CgroupEvents(False, False)


@pytest.mark.parametrize("data", [b"", b"frozen 0\n", b"populated 2\n", b"populated 1\nfrozen 5\n"])
def test_bad_contents_raise(data):
    with pytest.raises(CgroupEventsParseError):
        parse_cgroup_events(data)


@given(st.binary(max_size=60))
def test_arbitrary_bytes_raise_only_parse_error(data):
    with contextlib.suppress(ParseError):
        parse_cgroup_events(data)
