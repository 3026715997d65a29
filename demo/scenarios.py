"""The demo's workloads: which workers start when, how they grow, and the limits they meet.

``pool`` (the default) is a staggered pool sized so that the newest worker, when it crosses
the soft limit, always holds more than the guard must free (``usage - memory.high +
buffer``, the buffer being the guard's default 5 % of memory.high): only the newest grows
at a time (the workers take turns, whatever the machine's speed), and the step that
crosses leaves it holding more than it is over plus the buffer. So each decision stops
exactly one worker, the newest, and the kernel alone (which picks the largest) has full,
older workers to kill. ``balloon``, ``many-small`` and ``leak`` are the storm benchmark's
scenarios b, c and e (bench/storm.py) with its limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TICK = 0.1  # one progress unit = one allocation step or TICK seconds of holding


class Scenario(StrEnum):
    POOL = "pool"
    BALLOON = "balloon"
    MANY_SMALL = "many-small"
    LEAK = "leak"


@dataclass(frozen=True)
class WorkerSpec:
    start: float  # seconds after the pool's start
    target_mib: int
    step_mib: int
    step_interval: float
    hold: float  # seconds to hold the full size before finishing

    @property
    def steps(self) -> int:
        return -(-self.target_mib // self.step_mib)

    @property
    def planned_units(self) -> int:
        """Progress units of a worker that finishes: its steps, then its hold in ticks."""
        return self.steps + round(self.hold / TICK)


@dataclass(frozen=True)
class Plan:
    scenario: Scenario
    title: str
    workers: tuple[WorkerSpec, ...]
    memory_high_mib: int
    memory_max_mib: int
    # Workers take turns: each starts only once the one before has grown (or ended), and
    # every worker that is done holds on until the last has grown, so only the newest ever
    # grows and the older ones are all there at each breach, however slow the machine.
    in_turn: bool = False


def staggered_pool(
    count: int, stagger: float, worker_mib: int, step_mib: int, step_interval: float, hold: float
) -> tuple[WorkerSpec, ...]:
    """``count`` equal workers, ``stagger`` seconds apart."""
    return tuple(
        WorkerSpec(stagger * i, worker_mib, step_mib, step_interval, hold) for i in range(count)
    )


def plan(scenario: Scenario) -> Plan:
    match scenario:
        case Scenario.POOL:
            # 3 workers fit under memory.high; a 4th crosses it on a step it has taken
            # itself, holding more than it is over plus the buffer, whatever the
            # interpreters take (1-63 MiB; tests/demo/test_scenarios.py works it out).
            # The 6 together want more than memory.max, so the kernel alone must kill.
            return Plan(
                scenario,
                "staggered pool: 6 workers of 80 MiB, each starting once the one before has grown",
                staggered_pool(6, 0.8, 80, 20, 0.15, 5.0),
                memory_high_mib=320,
                memory_max_mib=380,
                in_turn=True,
            )
        case Scenario.BALLOON:
            steady = staggered_pool(3, 0.3, 50, 10, 0.1, 7.0)
            return Plan(
                scenario,
                "one new process balloons fast: 3 steady workers of 50 MiB, then 200 MiB",
                (*steady, WorkerSpec(3.0, 200, 16, 0.0, 2.0)),
                memory_high_mib=192,
                memory_max_mib=256,
            )
        case Scenario.MANY_SMALL:
            return Plan(
                scenario,
                "many small workers: 40 of 30 MiB, 0.15 s apart, about 12 alive at once",
                staggered_pool(40, 0.15, 30, 10, 0.1, 1.5),
                memory_high_mib=192,
                memory_max_mib=256,
            )
        case Scenario.LEAK:
            steady = staggered_pool(3, 0.3, 50, 10, 0.1, 11.0)
            return Plan(
                scenario,
                "slow leak: 3 steady workers of 50 MiB, a newer one leaks 2 MiB per 0.1 s",
                (*steady, WorkerSpec(1.5, 200, 2, 0.1, 1.0)),
                memory_high_mib=192,
                memory_max_mib=256,
            )
