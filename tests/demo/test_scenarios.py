"""The workloads, and the default pool's promise: each decision stops the newest alone."""

from __future__ import annotations

import pytest

from demo.scenarios import TICK, Scenario, WorkerSpec, plan, staggered_pool


def test_every_scenario_has_a_plan() -> None:
    for scenario in Scenario:
        p = plan(scenario)
        assert p.scenario is scenario and p.workers and p.title
        assert p.memory_high_mib < p.memory_max_mib
        assert [w.start for w in p.workers] == sorted(w.start for w in p.workers)


def test_planned_units() -> None:
    spec = WorkerSpec(0.0, 80, 20, 0.15, 5.0)
    assert spec.steps == 4 and spec.planned_units == 4 + round(5.0 / TICK)
    assert WorkerSpec(0.0, 30, 20, 0.1, 0.0).steps == 2  # a last, smaller step counts


def test_staggered_pool() -> None:
    pool = staggered_pool(3, 0.5, 10, 5, 0.1, 1.0)
    assert [w.start for w in pool] == [0.0, 0.5, 1.0]
    assert {(w.target_mib, w.step_mib) for w in pool} == {(10, 5)}


def guarded_pool(overhead_mib: int) -> list[tuple[int, int, float]]:
    """Step through the pool under a guard at memory.high: only the newest grows (the
    workers take turns); at each breach the newest is stopped. Returns
    (worker, MiB it held, MiB to free) per breach."""
    p = plan(Scenario.POOL)
    high = p.memory_high_mib
    buffer = 0.05 * high  # the guard's default
    alive: list[int] = []
    breaches = []
    for index, spec in enumerate(p.workers):
        held = 0
        while held < spec.target_mib:
            held += min(spec.step_mib, spec.target_mib - held)
            usage = overhead_mib + sum(alive) + held
            if usage > high:
                breaches.append((index, held, usage - high + buffer))
                break
        else:
            alive.append(held)
    return breaches


def test_only_the_pool_takes_turns() -> None:
    # the benchmark's scenarios keep their timed schedules
    assert [s for s in Scenario if plan(s).in_turn] == [Scenario.POOL]


@pytest.mark.parametrize("overhead_mib", range(1, 64, 2))
def test_pool_decisions_take_the_newest_alone(overhead_mib: int) -> None:
    """Whatever the interpreters take (1-63 MiB), every breach comes when the newest holds
    more than the guard must free, so each decision stops the newest alone; and the whole
    pool wants more than memory.max, so the kernel alone must kill."""
    p = plan(Scenario.POOL)
    breaches = guarded_pool(overhead_mib)
    assert breaches, "the pool never crosses memory.high"
    for worker, held, to_free in breaches:
        assert held > to_free, (worker, held, to_free)
    assert overhead_mib + sum(w.target_mib for w in p.workers) > p.memory_max_mib


def test_the_pool_check_can_fail() -> None:
    # 70 MiB of interpreters: the 3rd worker crosses on its first 20 MiB step, 6 MiB over
    assert any(held <= to_free for _, held, to_free in guarded_pool(70))
