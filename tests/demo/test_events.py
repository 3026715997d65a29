"""One line per event, in time order, and the one-line why of a decision taking more."""

from __future__ import annotations

import dataclasses

from demo_data import MiB, guarded_run, kernel_run

from demo.events import Event, Kind, explain, format_event, mib, timeline


def test_mib() -> None:
    assert mib(390 * MiB) == "390 MiB"
    assert mib(int(11.8 * MiB)) == "11.8 MiB"
    assert mib(0) == "0 MiB"


def test_guarded_timeline() -> None:
    events = timeline(guarded_run())
    kinds = [(round(e.at, 2), e.kind) for e in events]
    assert kinds == [
        (0.0, Kind.START),
        (4.5, Kind.BREACH),
        (4.5, Kind.DECISION),
        (4.59, Kind.EXIT),
        (4.7, Kind.RELIEF),
        (5.5, Kind.BREACH),
        (5.5, Kind.DECISION),
        (5.5, Kind.WHY),
        (5.62, Kind.EXIT),
        (5.8, Kind.RELIEF),
    ]
    text = {e.kind: e.text for e in events}  # the last of each kind
    assert "oomguard at memory.high 390 MiB" in events[0].text
    assert "memory.max 440 MiB" in events[0].text
    assert events[1].text == "usage 405 MiB, memory.high 390 MiB (seen by the event monitor)"
    assert events[2].text == (
        "free 35 MiB (15 MiB over + 20 MiB buffer): stop worker 4, newest first (60 MiB)"
    )
    assert text[Kind.EXIT] == ("worker 5 ended (SIGKILL 63 ms after detection, gone 120 ms after)")
    assert text[Kind.WHY] == (
        "the newest, worker 5, held 40 MiB of the 43 MiB needed (3 MiB short), so worker 3 went too"
    )


def test_why_only_when_a_decision_takes_more_than_the_newest() -> None:
    events = timeline(guarded_run())
    assert [e.at for e in events if e.kind is Kind.WHY] == [5.5]


def test_explain_names_unknown_pids() -> None:
    run = guarded_run()
    decision = dataclasses.replace(run.decisions[1], victim_pids=(777, 778))
    assert explain(decision, {}, {}) == (
        "the newest, pid 777, held 0 MiB of the 43 MiB needed (43 MiB short), so pid 778 went too"
    )


def test_dry_run_shows_the_kernel_kills_not_the_guard_choices() -> None:
    events = timeline(kernel_run())
    assert [e.kind for e in events] == [Kind.START, Kind.OOM_KILL]
    assert "oomguard only watching (dry run)" in events[0].text
    assert events[1].at == 0.0  # worker 0 ended at its ended_at
    assert events[1].text == "the kernel killed worker 0 (SIGKILL) after 40/54 units"


def test_a_victim_still_running_has_no_exit_line() -> None:
    run = guarded_run()
    alive = dataclasses.replace(run.victims[0], detection_to_exit=None)
    events = timeline(dataclasses.replace(run, victims=(alive,)))
    assert [e.kind for e in events].count(Kind.EXIT) == 0


def test_format_event() -> None:
    assert format_event(Event(4.5, Kind.BREACH, "x")) == "    +4.50 s  breach    x"
    assert format_event(Event(12.25, Kind.OOM_KILL, "y")) == "   +12.25 s  oom-kill  y"
