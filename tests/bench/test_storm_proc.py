"""The guard's wake-ups, read from /proc: a count that never goes down."""

import os
import threading
import time

from stormlib.proc import WakeupCounter, started_up


def test_a_thread_that_ends_keeps_its_wake_ups_in_the_total():
    counter = WakeupCounter(os.getpid())
    asleep_enough, finish = threading.Event(), threading.Event()

    def short_lived() -> None:
        for _ in range(50):
            time.sleep(0.0005)  # each sleep is one voluntary context switch: what is counted
        asleep_enough.set()
        finish.wait()

    thread = threading.Thread(target=short_lived)
    thread.start()
    asleep_enough.wait()
    with_thread = counter.read()
    finish.set()
    thread.join()
    # a sum over the live threads would drop by the ended thread's 50+ here
    assert counter.read() >= with_thread


def test_a_gone_process_reads_none():
    assert WakeupCounter(2**22 + 1).read() is None  # above pid_max's ceiling: never a process


def test_a_guard_still_importing_has_not_started_up():
    """Start-up under emulation: most of a core for seconds."""
    assert not started_up({"oomguard": 1.6, "earlyoom": 0.0}, 2.0)


def test_a_guard_polling_every_tenth_second_is_at_rest():
    """About 4 % of a core in the VM: at rest, which the old 2 % bar never granted."""
    assert started_up({"oomguard-base": 0.08, "oomguard": 0.01, "earlyoom": 0.02}, 2.0)
