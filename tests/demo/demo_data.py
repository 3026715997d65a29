"""Plain-data runs for the demo's unit tests."""

from __future__ import annotations

from demo.results import Decision, RunResults, Victim, Worker

MiB = 2**20


def worker(index: int, outcome: str = "finished", progress: int = 10, planned: int = 10) -> Worker:
    return Worker(index, 100 + index, outcome, progress, planned, ended_at=float(index))


def guarded_run() -> RunResults:
    """6 workers: 0-3 finish, oomguard stops 4 alone, then 5 and (3 MiB short) 4's sibling."""
    workers = (
        *(worker(i, progress=54, planned=54) for i in range(4)),
        worker(4, "killed by SIGTERM", progress=3, planned=54),
        worker(5, "killed by SIGKILL", progress=2, planned=54),
    )
    victims = (
        Victim(104, "SIGTERM", 60 * MiB, 4.5, 0.041, 0.090),
        Victim(105, "SIGKILL", 40 * MiB, 5.5, 0.063, 0.120),
    )
    decisions = (
        Decision(4.5, "event", 405 * MiB, 35 * MiB, (104,)),
        Decision(5.5, "threshold", 400 * MiB, 43 * MiB, (105, 103)),
    )
    return RunResults(
        dry_run=False,
        memory_high_bytes=390 * MiB,
        memory_max_bytes=440 * MiB,
        buffer_bytes=20 * MiB,
        oom_kills=0,
        zero=1000.0,
        workers=workers,
        victims=victims,
        decisions=decisions,
        reliefs=(4.7, 5.8),
        samples=((0.0, 100 * MiB), (4.5, 405 * MiB), (4.7, 380 * MiB), (6.0, 300 * MiB)),
    )


def kernel_run() -> RunResults:
    """The same pool, oomguard in dry run: the kernel OOM-kills worker 0 late in its life."""
    workers = (
        worker(0, "killed by SIGKILL", progress=40, planned=54),
        *(worker(i, progress=54, planned=54) for i in range(1, 6)),
    )
    return RunResults(
        dry_run=True,
        memory_high_bytes=390 * MiB,
        memory_max_bytes=440 * MiB,
        buffer_bytes=20 * MiB,
        oom_kills=1,
        zero=2000.0,
        workers=workers,
        victims=(Victim(105, None, 40 * MiB, 5.4, None, None),),  # dry run: chosen only
        decisions=(Decision(5.4, "threshold", 420 * MiB, 50 * MiB, (105,)),),
        samples=((0.0, 100 * MiB), (5.0, 440 * MiB), (7.0, 380 * MiB)),
    )
