import threading

import pytest
from monitor_fakes import wait_for
from monitor_threads import blocked_in_poll

from oomguard.monitor.kernel.memory_pressure import PsiTrigger
from oomguard.monitor.triggers.pressure_monitor import PressureMonitor
from oomguard.monitor.triggers.stop_signal import StopSignal
from oomguard.monitor.triggers.trigger import MonitorError


def test_missing_pressure_file_is_a_clear_error(tmp_path):
    monitor = PressureMonitor(tmp_path / "memory.pressure", PsiTrigger(50_000, 1_000_000))
    with pytest.raises(MonitorError, match="does not exist"):
        monitor.run(lambda t: None, StopSignal())


def test_refused_trigger_is_a_clear_error(tmp_path):
    not_writable = tmp_path / "dir"
    not_writable.mkdir()
    with pytest.raises(MonitorError, match="cannot open"):
        PressureMonitor(not_writable, PsiTrigger(50_000, 1_000_000)).run(
            lambda t: None, StopSignal()
        )


def test_for_cgroup_uses_memory_pressure(fake_cgroup):
    monitor = PressureMonitor.for_cgroup(fake_cgroup, PsiTrigger(50_000, 1_000_000))
    assert monitor.pressure_file == fake_cgroup.path / "memory.pressure"


def test_trigger_is_written_and_stop_ends_the_monitor(fake_cgroup):
    """On a plain file the write lands and poll() never sees POLLPRI; the real kernel's
    PSI wake-ups are covered by the kernel tests (this host's kernel refuses triggers).
    The monitor polls with no timeout, so it ends only if the stop signal woke it."""
    stop = StopSignal()
    triggers = []
    errors = []
    monitor = PressureMonitor.for_cgroup(fake_cgroup, PsiTrigger(150_000, 1_000_000))

    def run():
        try:
            monitor.run(triggers.append, stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert wait_for(lambda: blocked_in_poll(thread) or not thread.is_alive())
    assert thread.is_alive() and not errors
    assert fake_cgroup.file("memory.pressure").read_bytes().startswith(b"some 150000 1000000\0")
    stop.set()
    thread.join(30)
    assert not thread.is_alive(), "the monitor did not wake on its stop signal"
    assert errors == [] and triggers == []
