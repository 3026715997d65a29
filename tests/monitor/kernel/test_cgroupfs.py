import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from oomguard.monitor.kernel.cgroupfs import (
    Cgroup,
    CgroupError,
    CgroupGone,
    CgroupV2Unavailable,
    Terminated,
    cgroup_path_of_process,
    find_cgroup2_mount,
    memory_high_set,
    signals_raise_terminated,
)
from oomguard.monitor.kernel.memory_events import MemoryEventsParseError
from oomguard.monitor.kernel.memory_limit import UNLIMITED, MemoryLimit

REPO = Path(__file__).resolve().parents[3]


def test_reads_memory_files(fake_cgroup):
    assert fake_cgroup.memory_current() == 104857600
    assert fake_cgroup.memory_stat().values["anon"] == 83886080
    assert fake_cgroup.working_set() == 104857600 - 19922944
    assert fake_cgroup.memory_events().high == 0
    assert fake_cgroup.memory_high() == UNLIMITED
    assert fake_cgroup.memory_pressure().some.total_us == 0
    assert not fake_cgroup.events().populated


def test_sets_limits_as_the_kernel_reads_them(fake_cgroup):
    fake_cgroup.set_memory_high(MemoryLimit(64 << 20))
    fake_cgroup.set_memory_max(UNLIMITED)
    assert fake_cgroup.file("memory.high").read_bytes() == b"67108864\n"
    assert fake_cgroup.memory_high() == MemoryLimit(64 << 20)
    assert fake_cgroup.memory_max() == UNLIMITED


def test_bad_file_contents_raise_parse_errors_naming_the_file(fake_cgroup):
    fake_cgroup.file("memory.events").write_bytes(b"high lots\n")
    with pytest.raises(MemoryEventsParseError, match=r"guarded/memory.events:1"):
        fake_cgroup.memory_events()


def test_missing_cgroup_is_gone_and_other_errors_are_cgroup_errors(fake_cgroup, tmp_path):
    with pytest.raises(CgroupGone, match="is gone"):
        Cgroup(tmp_path / "nope").memory_events()
    fake_cgroup.file("memory.events").unlink()
    fake_cgroup.file("memory.events").mkdir()
    with pytest.raises(CgroupError, match=r"memory\.events: Is a directory") as info:
        fake_cgroup.memory_events()
    assert not isinstance(info.value, CgroupGone)


def test_unreadable_file_is_a_cgroup_error(fake_cgroup):
    """chmod 000 locks out everyone but root, so the reader drops to nobody first."""
    fake_cgroup.file("memory.events").chmod(0)
    code = textwrap.dedent(f"""
        import os
        from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError
        if os.geteuid() == 0:
            os.setuid(65534)
        try:
            Cgroup({str(fake_cgroup.path)!r}).memory_events()
        except CgroupError as exc:
            print(exc)
    """)
    fake_cgroup.path.chmod(0o755)
    fake_cgroup.path.parent.chmod(0o755)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Permission denied" in out.stdout


def test_hierarchy_and_processes(fake_cgroup):
    child = fake_cgroup.child("workers").create()
    assert child.exists()
    with pytest.raises(CgroupError, match="cannot create"):
        child.create()
    child.create(exist_ok=True)
    with pytest.raises(ValueError, match="not a cgroup name"):
        fake_cgroup.child("../x")
    assert "memory" in fake_cgroup.controllers()
    fake_cgroup.require_memory_controller()
    fake_cgroup.enable_memory_for_children()
    assert fake_cgroup.file("cgroup.subtree_control").read_bytes() == b"+memory"
    fake_cgroup.add_process(1234)
    assert fake_cgroup.file("cgroup.procs").read_bytes() == b"1234\n"
    fake_cgroup.file("cgroup.procs").write_bytes(b"1\n22\n333\n")
    assert fake_cgroup.pids() == [1, 22, 333]
    fake_cgroup.kill()
    assert fake_cgroup.file("cgroup.kill").read_bytes() == b"1"
    child.remove()
    assert not child.exists()


def test_enable_memory_is_skipped_when_already_enabled(fake_cgroup):
    fake_cgroup.file("cgroup.subtree_control").write_bytes(b"cpu memory\n")
    fake_cgroup.enable_memory_for_children()
    assert fake_cgroup.file("cgroup.subtree_control").read_bytes() == b"cpu memory\n"


def test_missing_memory_controller_is_explained(fake_cgroup):
    fake_cgroup.file("cgroup.controllers").write_bytes(b"cpu pids\n")
    with pytest.raises(CgroupV2Unavailable, match="memory controller is not available"):
        fake_cgroup.require_memory_controller()


def test_find_cgroup2_mount(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_bytes(b"41 31 0:36 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw\n")
    assert find_cgroup2_mount(info) == Path("/sys/fs/cgroup/unified")
    info.write_bytes(b"31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n")
    with pytest.raises(CgroupV2Unavailable, match="no cgroup2"):
        find_cgroup2_mount(info)


def test_cgroup_path_of_process(tmp_path):
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text("12:memory:/x\n0::/user.slice/a.scope\n")
    assert cgroup_path_of_process(42, tmp_path) == "/user.slice/a.scope"
    (tmp_path / "42" / "cgroup").write_text("12:memory:/x\n")
    with pytest.raises(CgroupV2Unavailable):
        cgroup_path_of_process(42, tmp_path)


def test_memory_high_is_restored_after_normal_exit_and_exceptions(fake_cgroup):
    fake_cgroup.set_memory_high(MemoryLimit(1 << 30))
    with memory_high_set(fake_cgroup, MemoryLimit(64 << 20)) as previous:
        assert previous == MemoryLimit(1 << 30)
        assert fake_cgroup.memory_high() == MemoryLimit(64 << 20)
    assert fake_cgroup.memory_high() == MemoryLimit(1 << 30)
    with pytest.raises(KeyboardInterrupt), memory_high_set(fake_cgroup, MemoryLimit(1)):
        raise KeyboardInterrupt
    assert fake_cgroup.memory_high() == MemoryLimit(1 << 30)


def test_memory_high_restore_tolerates_a_removed_cgroup(fake_cgroup):
    cgroup = fake_cgroup
    with memory_high_set(cgroup, MemoryLimit(4096)):
        for f in cgroup.path.iterdir():
            f.unlink()
        cgroup.path.rmdir()


def test_terminated_carries_the_shell_exit_status():
    assert Terminated(signal.SIGTERM).exit_status == 143
    assert isinstance(Terminated(signal.SIGTERM), BaseException)
    assert not isinstance(Terminated(signal.SIGTERM), Exception)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_memory_high_is_restored_when_a_signal_arrives(fake_cgroup, signum):
    """A real process, a real signal: the finally that restores memory.high runs."""
    code = textwrap.dedent(f"""
        import sys, time
        from oomguard.monitor.kernel.cgroupfs import (
            Cgroup, Terminated, memory_high_set, signals_raise_terminated)
        from oomguard.monitor.kernel.memory_limit import MemoryLimit
        cgroup = Cgroup({str(fake_cgroup.path)!r})
        try:
            with signals_raise_terminated(), memory_high_set(cgroup, MemoryLimit(4096)):
                print("set", flush=True)
                time.sleep(30)
        except Terminated as exc:
            sys.exit(exc.exit_status)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline() == "set\n"
    assert fake_cgroup.memory_high() == MemoryLimit(4096)
    child.send_signal(signum)
    assert child.wait(timeout=60) == 128 + signum
    assert fake_cgroup.memory_high() == UNLIMITED


def test_signal_handlers_are_put_back():
    before = signal.getsignal(signal.SIGTERM)
    with signals_raise_terminated():
        assert signal.getsignal(signal.SIGTERM) is not before
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0)  # give the handler a bytecode boundary
    assert signal.getsignal(signal.SIGTERM) is before


def test_junk_in_plain_files_is_a_parse_error(fake_cgroup):
    from oomguard.monitor.kernel.parse_error import ParseError

    fake_cgroup.file("cgroup.procs").write_bytes(b"12\nx\xff\n")
    with pytest.raises(ParseError, match=r"cgroup\.procs:2: pid"):
        fake_cgroup.pids()
    fake_cgroup.file("memory.current").write_bytes(b"-5\n")
    with pytest.raises(ParseError, match=r"memory\.current"):
        fake_cgroup.memory_current()
    fake_cgroup.file("cgroup.controllers").write_bytes(b"\xffmemory\n")
    assert "memory" not in fake_cgroup.controllers()


def test_memory_events_local_is_its_own_file(fake_cgroup):
    """memory.events.local, not memory.events: the subtree's oom must not be read as ours."""
    (fake_cgroup.path / "memory.events").write_bytes(
        b"low 0\nhigh 0\nmax 4\noom 4\noom_kill 4\noom_group_kill 0\n"
    )
    (fake_cgroup.path / "memory.events.local").write_bytes(
        b"low 0\nhigh 0\nmax 1\noom 1\noom_kill 0\noom_group_kill 0\n"
    )
    assert fake_cgroup.memory_events_local().oom == 1
    assert fake_cgroup.memory_events().oom == 4
    (fake_cgroup.path / "memory.events.local").unlink()
    with pytest.raises(CgroupError, match=r"memory\.events\.local"):
        fake_cgroup.memory_events_local()
