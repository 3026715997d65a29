"""One compact line per thing that happened in a run, in time order.

Guard events come from its report and log (start, breach, decision with victims, victim
exit, relief); the kernel's OOM kills from the workers' results. A decision that takes
more than the newest worker gets one more line saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from demo.results import Decision, RunResults, Victim
from demo.summary import Fate, fates

MiB = 2**20


class Kind(Enum):
    START = "start"
    BREACH = "breach"
    DECISION = "decision"
    WHY = "why"
    EXIT = "exit"
    RELIEF = "relief"
    OOM_KILL = "oom-kill"


@dataclass(frozen=True)
class Event:
    at: float  # seconds after the start
    kind: Kind
    text: str


def mib(size: int) -> str:
    value = size / MiB
    return f"{value:.0f} MiB" if value == round(value) else f"{value:.1f} MiB"


def worker_names(pids: Sequence[int], index_of: dict[int, int]) -> str:
    return ", ".join(f"worker {index_of[p]}" if p in index_of else f"pid {p}" for p in pids)


def explain(decision: Decision, victims: dict[int, Victim], index_of: dict[int, int]) -> str:
    """Why a decision took more than the newest: what the newest held vs what was needed."""
    newest, *others = decision.victim_pids
    held = victims[newest].memory_bytes if newest in victims else 0
    short = decision.amount_to_free_bytes - held
    return (
        f"the newest, {worker_names([newest], index_of)}, held {mib(held)} of the "
        f"{mib(decision.amount_to_free_bytes)} needed ({mib(short)} short), so "
        f"{worker_names(others, index_of)} went too"
    )


def decision_events(decision: Decision, run: RunResults, index_of: dict[int, int]) -> list[Event]:
    at = decision.detected_at
    high = run.memory_high_bytes
    over = decision.usage_bytes - high
    victims = {v.pid: v for v in run.victims}
    held = sum(victims[p].memory_bytes for p in decision.victim_pids if p in victims)
    events = [
        Event(
            at,
            Kind.BREACH,
            f"usage {mib(decision.usage_bytes)}, memory.high {mib(high)} "
            f"(seen by the {decision.trigger} monitor)",
        ),
        Event(
            at,
            Kind.DECISION,
            f"free {mib(decision.amount_to_free_bytes)} ({mib(max(over, 0))} over + "
            f"{mib(run.buffer_bytes)} buffer): stop "
            f"{worker_names(decision.victim_pids, index_of)}, newest first ({mib(held)})",
        ),
    ]
    if len(decision.victim_pids) > 1:
        events.append(Event(at, Kind.WHY, explain(decision, victims, index_of)))
    return events


def exit_event(victim: Victim, index_of: dict[int, int]) -> Event | None:
    if victim.signal is None or victim.detection_to_exit is None:
        return None
    signal_ms = (victim.detection_to_signal or 0.0) * 1000
    return Event(
        victim.detected_at + victim.detection_to_exit,
        Kind.EXIT,
        f"{worker_names([victim.pid], index_of)} ended ({victim.signal} "
        f"{signal_ms:.0f} ms after detection, gone {victim.detection_to_exit * 1000:.0f} ms "
        "after)",
    )


def timeline(run: RunResults) -> list[Event]:
    index_of = {w.pid: w.index for w in run.workers}
    limit = f"memory.max {mib(run.memory_max_bytes)}" if run.memory_max_bytes else "no memory.max"
    if run.dry_run:
        start = f"{len(run.workers)} workers, {limit}, oomguard only watching (dry run)"
    else:
        start = f"{len(run.workers)} workers, {limit}, oomguard at memory.high " + mib(
            run.memory_high_bytes
        )
    events = [Event(0.0, Kind.START, start)]
    if not run.dry_run:
        for decision in run.decisions:
            events += decision_events(decision, run, index_of)
        events += [e for v in run.victims if (e := exit_event(v, index_of)) is not None]
        events += [
            Event(at, Kind.RELIEF, f"usage back under memory.high {mib(run.memory_high_bytes)}")
            for at in run.reliefs
        ]
    how = fates(run)
    by_index = {w.index: w for w in run.workers}
    for index, f in how.items():
        worker = by_index[index]
        if f is Fate.KILLED_BY_KERNEL and worker.ended_at is not None:
            events.append(
                Event(
                    worker.ended_at,
                    Kind.OOM_KILL,
                    f"the kernel killed worker {index} (SIGKILL) after "
                    f"{worker.progress}/{worker.planned} units",
                )
            )
    order = list(Kind)
    return sorted(events, key=lambda e: (e.at, order.index(e.kind)))


def format_event(event: Event) -> str:
    """``  +2.41 s  breach    usage 401 MiB, ...``"""
    return f"  {event.at:+7.2f} s  {event.kind.value:<9} {event.text}"
