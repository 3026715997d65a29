import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.kernel.mountinfo import (
    MountinfoParseError,
    cgroup2_mount_point,
    parse_mountinfo,
)
from oomguard.monitor.kernel.parse_error import ParseError

HYBRID = (
    b"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    b"40 31 0:35 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n"
    b"41 31 0:36 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw\n"
)


def test_finds_cgroup2_on_a_hybrid_host():
    assert cgroup2_mount_point(parse_mountinfo(HYBRID)) == Path("/sys/fs/cgroup/unified")


def test_skips_bind_mounted_subtrees_and_unescapes_paths():
    data = (
        b"50 1 0:40 /kubepods /mnt/sub rw - cgroup2 cgroup2 rw\n"
        b"51 1 0:40 / /mnt/with\\040space rw - cgroup2 none rw,nsdelegate\n"
    )
    mounts = parse_mountinfo(data)
    assert mounts[1].super_options == ("rw", "nsdelegate")
    assert cgroup2_mount_point(mounts) == Path("/mnt/with space")


def test_no_cgroup2_gives_none():
    assert cgroup2_mount_point(parse_mountinfo(HYBRID.splitlines(True)[0])) is None


def test_line_without_separator_is_an_error():
    with pytest.raises(MountinfoParseError, match=":2: no ' - '"):
        parse_mountinfo(HYBRID[:70] + b"\n1 2 3 4 5 6 7 8\n")


def test_this_hosts_mountinfo_parses():
    assert parse_mountinfo(Path("/proc/self/mountinfo").read_bytes())


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_parse_error(data):
    with contextlib.suppress(ParseError):
        parse_mountinfo(data)
