import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oomguard.monitor.kernel.mountinfo import (
    MountinfoParseError,
    cgroup2_mount_point,
    mount_of,
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


# The agent's container under the chart: the runtime's own, namespaced cgroup mount, the host's
# tree read-only (hostPath, readOnly) and the pods' cgroup writable on top of it. In the
# container's cgroup namespace the host mounts' roots show as paths above its own root.
AGENT_CONTAINER = (
    b"1210 1200 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime"
    b" - cgroup2 cgroup rw,nsdelegate\n"
    b"1215 1200 0:30 /../../../.. /host/sys/fs/cgroup ro,nosuid,nodev,noexec,relatime master:9"
    b" - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
    b"1216 1215 0:30 /../../.. /host/sys/fs/cgroup/kubepods.slice rw,nosuid,nodev,noexec,relatime"
    b" master:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
)


def test_read_only_host_tree_with_a_writable_kubepods_on_top():
    mounts = parse_mountinfo(AGENT_CONTAINER)
    assert [m.read_only for m in mounts] == [True, True, False]
    # the whole hierarchy seen from this namespace is still the runtime's own mount
    assert cgroup2_mount_point(mounts) == Path("/sys/fs/cgroup")
    host = Path("/host/sys/fs/cgroup")
    pod = host / "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice"
    assert mount_of(mounts, host / "kubepods.slice") == mounts[2]
    assert mount_of(mounts, pod / "cgroup.kill") == mounts[2]
    assert mount_of(mounts, host / "system.slice" / "memory.high") == mounts[1]
    assert mount_of(mounts, host) == mounts[1]
    # a sibling whose name merely starts like kubepods is not under the writable mount
    assert mount_of(mounts, host / "kubepods.slice-other") == mounts[1]
    assert mount_of(mounts, Path("/etc")) is None


def test_a_mount_stacked_on_the_same_point_hides_the_one_below_and_its_children():
    data = (
        b"20 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
        b"30 20 0:26 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n"
        b"40 20 0:26 / /host/cg ro,relatime - cgroup2 cgroup2 rw\n"
        b"41 40 0:26 /kubepods /host/cg/kubepods rw,relatime - cgroup2 cgroup2 rw\n"
        b"42 40 0:26 / /host/cg ro,relatime - cgroup2 cgroup2 rw\n"
    )
    mounts = parse_mountinfo(data)
    assert cgroup2_mount_point(mounts) == Path("/sys/fs/cgroup")  # 41, a subtree, is skipped
    assert mount_of(mounts, Path("/host/cg")) == mounts[4]
    # 42 covers 40's mount point: 41, mounted inside 40, is no longer reached
    assert mount_of(mounts, Path("/host/cg/kubepods/memory.high")) == mounts[4]
    assert mount_of(mounts, Path("/etc/hosts")) == mounts[0]
    assert mount_of(mounts, Path("/")) == mounts[0]


def test_a_mount_id_that_is_not_a_number_is_an_error():
    with pytest.raises(MountinfoParseError, match="mount id"):
        parse_mountinfo(b"x 1 0:26 / /a rw - cgroup2 cgroup2 rw\n")


def test_mounts_whose_parents_this_namespace_does_not_list_are_still_found():
    # a container: the root's parent, and the parent of two mounts stacked at one point
    data = (
        b"900 800 0:50 / / rw - overlay overlay rw\n"
        b"901 850 0:26 / /cg ro - cgroup2 cgroup2 rw\n"
        b"902 851 0:26 / /cg rw - cgroup2 cgroup2 rw\n"
    )
    mounts = parse_mountinfo(data)
    assert mount_of(mounts, Path("/cg/kubepods")) == mounts[2]
    assert mount_of(mounts, Path("/etc")) == mounts[0]
