import subprocess
import sys
import time

import pytest
from monitor_fakes import wait_for

from oomguard.monitor.actions.process_target import KillRecord, ProcessTarget, pid_of
from oomguard.monitor.kernel.procfs import ProcReader

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

HOLD = """
import signal, sys, time
if sys.argv[1] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
data = bytearray(int(sys.argv[2]) * 1024 * 1024)
for i in range(0, len(data), 4096):
    data[i] = 1
print("ready", flush=True)
time.sleep(60)
"""


def spawn(mode="plain", mib=8):
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, mode, str(mib)], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout.readline().strip() == "ready"
    return p


@pytest.fixture
def procs():
    started = []

    def start(mode="plain", mib=8):
        p = spawn(mode, mib)
        started.append(p)
        time.sleep(0.02)  # distinct start ticks
        return p

    yield start
    for p in started:
        p.kill()
        p.wait()


def test_candidates_describe_live_processes(procs):
    a, b, c = procs(mib=4), procs(mib=16), procs(mib=4)
    target = ProcessTarget(lambda: [a.pid, b.pid, c.pid, 999999999], frozenset({a.pid}))
    cands = {pid_of(x): x for x in target.candidates()}
    assert set(cands) == {a.pid, b.pid, c.pid}
    assert cands[a.pid].protected and not cands[b.pid].protected
    assert cands[b.pid].memory_bytes > 16 * 2**20 > cands[c.pid].memory_bytes > 0
    assert cands[a.pid].started_at <= cands[b.pid].started_at <= cands[c.pid].started_at
    assert "-c" in cands[b.pid].name
    assert not any(x.dying for x in cands.values())


def test_listing_reads_no_memory_and_measure_completes_only_what_is_asked(procs):
    a, b = procs(mib=4), procs(mib=16)
    target = ProcessTarget(lambda: [a.pid, b.pid])
    listed = {pid_of(x): x for x in target.listing()}
    assert set(listed) == {a.pid, b.pid}
    assert all(x.memory_bytes == 0 for x in listed.values())
    [measured] = target.measure([listed[b.pid]])
    assert measured.id == listed[b.pid].id
    assert measured.memory_bytes > 16 * 2**20 and "-c" in measured.name
    b.kill()
    b.wait()
    assert target.measure([listed[b.pid]]) == []  # gone since it was listed


def test_sigterm_is_enough_for_a_cooperative_process(procs):
    p = procs()
    records: list[KillRecord] = []
    target = ProcessTarget(lambda: [p.pid], grace=5.0, on_record=records.append)
    [victim] = target.candidates()
    detected = time.monotonic()
    target.stop([victim], detected_at=detected)
    assert wait_for(lambda: records)
    [r] = records
    assert (r.pid, r.signal, r.outcome) == (p.pid, "SIGTERM", "exited")
    assert r.memory_bytes == victim.memory_bytes
    assert 0 <= r.detection_to_signal_seconds <= r.detection_to_exit_seconds
    assert p.wait(timeout=60) == -15
    assert target.candidates() == []


def test_sigkill_after_grace_when_sigterm_is_ignored(procs):
    p = procs("ignore-term")
    target = ProcessTarget(lambda: [p.pid], grace=0.3)
    [victim] = target.candidates()
    t0 = time.monotonic()
    target.stop([victim], detected_at=t0)
    assert wait_for(lambda: [x for x in target.candidates() if x.dying])
    assert wait_for(lambda: target.records, timeout=60)
    [r] = target.records
    assert (r.signal, r.outcome) == ("SIGKILL", "exited")
    assert r.exited_at - r.signalled_at >= 0.3
    assert p.wait(timeout=60) == -9


class ThrottledReader(ProcReader):
    """/proc as it is, except what wchan says of the throttling penalty (the host has no
    memory.high: the kernel test shows the real sleep)."""

    def __init__(self, throttled: bool | OSError) -> None:
        super().__init__()
        self.answer = throttled
        self.asked: list[int] = []

    def throttled(self, pid: int) -> bool | None:
        self.asked.append(pid)
        if isinstance(self.answer, OSError):
            raise self.answer
        return self.answer


def stop_one(procs, *, throttled: bool | OSError, grace: float, patience: float):
    """One SIGTERM-ignoring victim stopped; its record once it exited, and the reader."""
    p = procs("ignore-term")
    reader = ThrottledReader(throttled)
    target = ProcessTarget(lambda: [p.pid], grace=grace, throttled_patience=patience, reader=reader)
    [victim] = target.candidates()
    target.stop([victim], detected_at=time.monotonic())
    assert wait_for(lambda: target.records, timeout=60)
    [record] = target.records
    assert (record.signal, record.outcome) == ("SIGKILL", "exited")
    assert p.wait(timeout=60) == -9
    return record, reader, p.pid


def test_a_victim_asleep_in_the_throttling_penalty_is_killed_before_its_grace(procs):
    # a 600 s grace: only the throttled rule can have ended it within stop_one's wait
    _, reader, pid = stop_one(procs, throttled=True, grace=600.0, patience=0.1)
    assert set(reader.asked) == {pid}


def test_a_victim_not_throttled_keeps_its_whole_grace(procs):
    record, reader, _ = stop_one(procs, throttled=False, grace=1.0, patience=0.0)
    assert record.exited_at - record.signalled_at >= 1.0
    assert reader.asked  # it was looked at, and let be


def test_a_victim_whose_wchan_cannot_be_read_keeps_its_whole_grace_and_is_still_killed(procs):
    # the look failing must neither kill early nor end the escalation before its SIGKILL
    record, reader, _ = stop_one(procs, throttled=PermissionError("wchan"), grace=1.0, patience=0.0)
    assert record.exited_at - record.signalled_at >= 1.0
    assert reader.asked


def test_no_throttle_checks_without_a_patience_below_the_grace(procs):
    record, reader, _ = stop_one(procs, throttled=True, grace=0.3, patience=0.3)
    assert record.exited_at - record.signalled_at >= 0.3
    assert reader.asked == []


def test_marked_dying_while_escalating(procs):
    p = procs("ignore-term")
    target = ProcessTarget(lambda: [p.pid], grace=2.0)
    [victim] = target.candidates()
    target.stop([victim], detected_at=time.monotonic())
    [again] = target.candidates()
    assert again.dying and again.id == victim.id
    target.wait_idle(10)
    assert target.candidates() == []


def test_process_gone_before_the_kill_is_recorded_as_already_gone(procs):
    p = procs()
    target = ProcessTarget(lambda: [p.pid])
    [victim] = target.candidates()
    p.kill()
    p.wait()
    target.stop([victim], detected_at=time.monotonic())
    [r] = target.records
    assert r.outcome == "already-gone" and r.signal is None


def test_a_reused_pid_is_not_killed(procs):
    p = procs()
    target = ProcessTarget(lambda: [p.pid])
    [victim] = target.candidates()
    impostor = type(victim)(
        id=f"{p.pid}@{victim.started_at - 100:.2f}",
        name=victim.name,
        started_at=victim.started_at - 100,
        memory_bytes=victim.memory_bytes,
    )
    target.stop([impostor], detected_at=time.monotonic())
    assert target.records[0].outcome == "already-gone"
    assert p.poll() is None


def test_dry_run_signals_nobody_and_reports_each_victim_once(procs):
    p = procs()
    target = ProcessTarget(lambda: [p.pid], dry_run=True)
    [victim] = target.candidates()
    target.stop([victim], detected_at=time.monotonic())
    target.stop([victim], detected_at=time.monotonic())
    time.sleep(0.2)
    assert p.poll() is None
    [r] = target.records
    assert r.outcome == "dry-run" and r.signal is None and r.signalled_at is None
    assert not target.candidates()[0].dying
