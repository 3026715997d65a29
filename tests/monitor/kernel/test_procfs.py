import contextlib
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from monitor_fakes import wait_for

from oomguard.monitor.kernel.procfs import (
    MemoryKind,
    ProcessMemory,
    ProcParseError,
    ProcReader,
    in_memory_high_penalty,
    parse_cmdline,
    parse_smaps_rollup,
    parse_stat,
    parse_status_rss,
    ticks_to_seconds,
)

REAL_STAT = (
    b"4242 (python3) S 4200 4242 4200 34816 4242 4194304 1207 0 0 0 5 2 0 0 20 0 1 0 "
    b"987654 20344832 2453 18446744073709551615 1 1 0 0 0 0 0 16781312 2 0 0 0 17 1 0 0 0 0 0\n"
)


def stat_line(pid, comm, ppid, start):
    fields = ["S", str(ppid)] + ["0"] * 17 + [str(start)] + ["0"] * 10
    return f"{pid} ({comm}) {' '.join(fields)}\n".encode()


def test_parse_real_stat_line():
    s = parse_stat(REAL_STAT)
    assert (s.pid, s.comm, s.state, s.ppid, s.start_ticks) == (4242, "python3", "S", 4200, 987654)


@pytest.mark.parametrize("comm", ["a b", "x) (y", ")", "((", "", "worker 3)"])
def test_comm_with_spaces_and_parens(comm):
    s = parse_stat(stat_line(7, comm, 1, 555))
    assert s.comm == comm
    assert s.start_ticks == 555
    assert s.ppid == 1


@given(
    st.integers(min_value=1, max_value=2**22),
    st.text(max_size=16).filter(lambda t: "\n" not in t),
    st.integers(min_value=0, max_value=2**22),
    st.integers(min_value=0, max_value=2**63),
)
def test_stat_round_trip(pid, comm, ppid, start):
    s = parse_stat(stat_line(pid, comm, ppid, start))
    assert (s.pid, s.ppid, s.start_ticks) == (pid, ppid, start)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"12 (x S 1",
        b"12 (x) S 1 2 3",
        b"12 (x) S nope" + b" 0" * 30,
        b"abc (x) S 1" + b" 0" * 30,
        stat_line(1, "x", 1, -5),
    ],
)
def test_bad_stat_raises_parse_error(data):
    with pytest.raises(ProcParseError):
        parse_stat(data)


@given(st.binary(max_size=300))
def test_stat_fuzz_parses_or_raises_parse_error(data):
    with contextlib.suppress(ProcParseError):
        parse_stat(data)


def test_ticks_to_seconds():
    assert ticks_to_seconds(987654, 100) == 9876.54
    with pytest.raises(ValueError):
        ticks_to_seconds(1, 0)


def test_parse_cmdline():
    assert parse_cmdline(b"python3\0-c\0print(1)\0") == ("python3", "-c", "print(1)")
    assert parse_cmdline(b"") == ()
    assert parse_cmdline(b"no-trailing-nul") == ("no-trailing-nul",)
    assert parse_cmdline(b"a\0\0b\0") == ("a", "", "b")


@given(st.lists(st.binary(min_size=1, max_size=10).filter(lambda b: b"\0" not in b), max_size=5))
def test_cmdline_round_trips_bytes(args):
    data = b"".join(a + b"\0" for a in args)
    parsed = parse_cmdline(data)
    assert [p.encode("utf-8", "surrogateescape") for p in parsed] == args


SMAPS = b"""55d0c0000000-7ffc00000000 ---p 00000000 00:00 0                          [rollup]
Rss:               81920 kB
Pss:               40960 kB
Pss_Anon:          40000 kB
Shared_Clean:       1000 kB
Private_Dirty:     40000 kB
Swap:                  0 kB
"""


def test_parse_smaps_rollup_takes_pss():
    assert parse_smaps_rollup(SMAPS) == ProcessMemory(40960 * 1024, MemoryKind.PSS)
    assert parse_smaps_rollup(b"") == ProcessMemory(0, MemoryKind.PSS)


@pytest.mark.parametrize("data", [b"Rss: 1 kB\n", b"Pss: x kB\n", b"Pss: -1 kB\n"])
def test_bad_smaps_rollup(data):
    with pytest.raises(ProcParseError):
        parse_smaps_rollup(data)


def test_parse_status_rss():
    data = b"Name:\tpython3\nState:\tS (sleeping)\nVmRSS:\t   1234 kB\nThreads:\t1\n"
    assert parse_status_rss(data) == ProcessMemory(1234 * 1024, MemoryKind.RSS)
    assert parse_status_rss(b"Name:\tkthreadd\n") == ProcessMemory(0, MemoryKind.RSS)


@given(st.binary(max_size=400))
def test_memory_parsers_fuzz(data):
    for parser in (parse_smaps_rollup, parse_status_rss):
        try:
            m = parser(data)
        except ProcParseError:
            continue
        assert m.bytes >= 0


def test_reader_on_a_fake_proc_tree(tmp_path):
    proc = tmp_path / "123"
    proc.mkdir()
    (proc / "stat").write_bytes(stat_line(123, "w", 1, 250))
    (proc / "cmdline").write_bytes(b"python3\0w.py\0")
    (proc / "status").write_bytes(b"VmRSS:\t 2048 kB\n")
    reader = ProcReader(tmp_path)
    info = reader.read(123)
    assert info is not None
    assert info.cmdline == ("python3", "w.py")
    assert info.memory == ProcessMemory(2 * 2**20, MemoryKind.RSS)  # no smaps_rollup: RSS
    assert info.started_at == 250 / os.sysconf("SC_CLK_TCK")
    (proc / "smaps_rollup").write_bytes(SMAPS)
    assert reader.memory(123) == ProcessMemory(40960 * 1024, MemoryKind.PSS)
    assert reader.read(999) is None


@pytest.mark.parametrize(
    ("wchan", "throttled"),
    [
        (b"mem_cgroup_handle_over_high", True),
        (b"mem_cgroup_handle_over_high\n", True),
        (b"0", False),  # running, or symbols hidden
        (b"do_epoll_wait", False),
        (b"mem_cgroup_handle_over_high_x", False),
        (b"", False),
    ],
)
def test_only_the_memory_high_penalty_sleep_counts_as_throttled(wchan, throttled):
    assert in_memory_high_penalty(wchan) is throttled


def test_a_process_is_throttled_when_any_of_its_threads_is(tmp_path):
    tasks = tmp_path / "77" / "task"
    for tid, wchan in ((77, b"do_epoll_wait"), (78, b"0")):
        (tasks / str(tid)).mkdir(parents=True)
        (tasks / str(tid) / "wchan").write_bytes(wchan)
    reader = ProcReader(tmp_path)
    assert reader.throttled(77) is False
    (tasks / "78" / "wchan").write_bytes(b"mem_cgroup_handle_over_high")
    assert reader.throttled(77) is True
    assert reader.throttled(78) is None  # no such process


def test_reader_reads_a_file_longer_than_one_read_whole(tmp_path):
    """A command line can be far longer than one read (ARG_MAX is 2 MiB): none of it lost."""
    proc = tmp_path / "123"
    proc.mkdir()
    args = [f"arg{i:06d}" * 20 for i in range(1000)]  # 180,000 bytes
    (proc / "stat").write_bytes(stat_line(123, "python3", 1, 250))
    (proc / "cmdline").write_bytes(b"\0".join(a.encode() for a in args) + b"\0")
    (proc / "status").write_bytes(b"VmRSS:\t 2048 kB\n")
    info = ProcReader(tmp_path).read(123)
    assert info is not None
    assert list(info.cmdline) == args


def test_reader_on_real_processes():
    args = ("-c", "import time; time.sleep(30)")
    child = subprocess.Popen([sys.executable, *args])
    try:
        reader = ProcReader()
        own = reader.read(os.getpid())
        # until the child has exec'd, /proc shows the forked copy of this process
        assert wait_for(lambda: (i := reader.read(child.pid)) is not None and i.cmdline[1:] == args)
        info = reader.read(child.pid)
        assert own is not None and info is not None
        assert info.ppid == os.getpid()
        assert info.started_at >= own.started_at
        with open("/proc/uptime") as f:
            assert info.started_at <= float(f.read().split()[0]) + 1
        assert info.memory.bytes > 0
    finally:
        child.kill()
        child.wait()  # reaped: its /proc entry is gone
    assert reader.read(child.pid) is None
