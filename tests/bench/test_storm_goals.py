"""The performance goals, each computed within one repetition, on plain analysed rows."""

from stormlib.goals import GOALS, goal_lines


def row(contender, scenario="a", repetition=0, **figures):
    base = {
        "contender": contender,
        "scenario": scenario,
        "repetition": repetition,
        "oom_kills": 0,
        "cpu_s": None,
        "relief_s": None,
        "preserved": None,
        "reactions": [],
        "breach_to_signal": [],
        "guard_signal": [],
    }
    return {**base, **figures}


def goal(figure_start):
    return next(g for g in GOALS if g.figure.startswith(figure_start))


def test_storm_cpu_is_the_guards_total_over_earlyooms_in_the_same_repetition():
    rows = [
        row("oomguard", "a", cpu_s=2.0),
        row("oomguard", "d", cpu_s=1.0),  # every storm counts, d too
        row("earlyoom", "a", cpu_s=1.5),
    ]
    assert goal("storm CPU").value(rows, []) == 2.0


def test_relief_takes_the_worst_scenario_against_the_poller():
    rows = [
        row("oomguard", "a", relief_s=0.1),
        row("poll-250ms", "a", relief_s=0.2),
        row("oomguard", "b", relief_s=0.6),
        row("poll-250ms", "b", relief_s=0.3),
    ]
    worst = goal("breach -> relief")
    assert worst.value(rows, []) == 2.0
    assert not worst.met(2.0)


def test_a_kernel_oom_kill_under_the_parent_guard_fails_the_work_kept_goal():
    kept = goal("(d) work kept")
    assert kept.value([row("oomguard-parent", "d", preserved=0.9)], []) == 90.0
    assert kept.value([row("oomguard-parent", "d", preserved=0.9, oom_kills=1)], []) == 0.0
    assert kept.value([row("oomguard", "a")], []) is None


def test_idle_figures_are_per_second_of_the_window():
    idle = [
        {"contender": "oomguard-event-only", "seconds": 60.0, "wakeups": 0, "cpu_seconds": 0.3},
        {"contender": "earlyoom", "seconds": 60.0, "wakeups": 60, "cpu_seconds": 0.6},
    ]
    assert goal("idle wake-ups").value([], idle) == 0.0
    assert goal("idle CPU").value([], idle) == 0.5


def test_the_table_counts_the_repetitions_that_met_each_goal():
    rows = [
        row("oomguard", repetition=0, oom_kills=0),
        row("oomguard", repetition=1, oom_kills=2),
        row("oomguard", repetition=2, oom_kills=0),
    ]
    line = next(x for x in goal_lines(rows, []) if x.startswith("| kernel OOM kills"))
    assert line.endswith("| 0 [0-2] | 2 of 3 |")


def test_an_idle_window_measured_before_the_guards_settled_is_left_out():
    idle = [
        {"contender": "oomguard-event-only", "seconds": 60.0, "wakeups": 3000, "cpu_seconds": 8.0},
        {"contender": "earlyoom", "seconds": 60.0, "wakeups": 600, "cpu_seconds": 0.6},
    ]
    unsettled = [{**i, "settled": False} for i in idle]
    settled = [{**i, "settled": True} for i in idle]
    assert goal("idle wake-ups").value([], unsettled) is None
    assert goal("idle CPU").value([], unsettled) is None
    assert goal("idle wake-ups").value([], settled) == 50.0
    assert goal("idle wake-ups").value([], idle) == 50.0  # recorded before the flag existed
