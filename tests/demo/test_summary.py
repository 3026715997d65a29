"""Figures from plain data: fates, work kept, time over the soft limit, the verdict."""

from __future__ import annotations

import dataclasses

import pytest
from demo_data import MiB, guarded_run, kernel_run, worker

from demo.summary import Fate, Verdict, fate, seconds_over, summarize, verdict


@pytest.mark.parametrize(
    ("outcome", "pid", "expected"),
    [
        ("finished", 100, Fate.FINISHED),
        ("finished", 999, Fate.FINISHED),  # finished wins even if the guard chose it
        ("killed by SIGTERM", 100, Fate.STOPPED_BY_OOMGUARD),
        ("killed by SIGKILL", 100, Fate.STOPPED_BY_OOMGUARD),  # the guard's SIGKILL after grace
        ("killed by SIGKILL", 101, Fate.KILLED_BY_KERNEL),
        ("killed by SIGTERM", 101, Fate.ENDED_OTHERWISE),
        ("exited 3", 101, Fate.ENDED_OTHERWISE),
    ],
)
def test_fate(outcome: str, pid: int, expected: Fate) -> None:
    signalled = frozenset({100, 999})
    assert fate(dataclasses.replace(worker(0, outcome), pid=pid), signalled) is expected


def test_seconds_over_counts_each_sample_until_the_next() -> None:
    assert seconds_over([], 10) is None
    assert seconds_over([(0.0, 11)], 10) == 0.0  # one sample: no interval
    samples = [(2.0, 5), (0.0, 11), (1.0, 10), (3.0, 20), (3.5, 0)]  # unordered on purpose
    assert seconds_over(samples, 10) == pytest.approx(1.0 + 0.5)  # 0-1 and 3-3.5; 10 is not over


def test_guarded_run_summary() -> None:
    s = summarize(guarded_run())
    assert s.oom_kills == 0 and s.workers == 6
    assert s.finished == (0, 1, 2, 3)
    assert s.lost == ((4, Fate.STOPPED_BY_OOMGUARD), (5, Fate.STOPPED_BY_OOMGUARD))
    assert (s.work_kept, s.work_lost) == (4 * 54, 3 + 2)
    assert s.kept_percent == pytest.approx(100 * 216 / 221)
    assert s.seconds_over_soft_limit == pytest.approx(0.2)  # 4.5 -> 4.7 at 405 MiB
    assert s.peak_bytes == 405 * MiB
    assert s.detection_to_signal_ms == pytest.approx((41.0, 63.0))
    assert s.victims_signalled == 2


def test_kernel_run_summary_ignores_dry_run_choices() -> None:
    s = summarize(kernel_run())
    assert s.oom_kills == 1
    assert s.lost == ((0, Fate.KILLED_BY_KERNEL),)
    assert (s.work_kept, s.work_lost) == (5 * 54, 40)
    assert s.detection_to_signal_ms is None and s.victims_signalled == 0
    assert s.seconds_over_soft_limit == pytest.approx(2.0)


def test_no_work_no_percent() -> None:
    empty = dataclasses.replace(guarded_run(), workers=(), victims=(), samples=())
    s = summarize(empty)
    assert s.kept_percent is None and s.peak_bytes is None and s.seconds_over_soft_limit is None


def test_verdict() -> None:
    guarded, kernel = summarize(guarded_run()), summarize(kernel_run())
    assert verdict(kernel, guarded) is Verdict.GUARD_KEPT_MORE
    assert verdict(guarded, kernel) is Verdict.KERNEL_KEPT_MORE
    assert verdict(guarded, guarded) is Verdict.SAME
    near = dataclasses.replace(guarded, work_kept=guarded.work_kept + 1)  # +0.02 points
    assert verdict(guarded, near) is Verdict.SAME
    assert verdict(guarded, near, tolerance=0.0) is Verdict.GUARD_KEPT_MORE
    nothing = dataclasses.replace(guarded, work_kept=0, work_lost=0)
    assert verdict(nothing, guarded) is Verdict.UNKNOWN
    assert verdict(guarded, nothing) is Verdict.UNKNOWN
