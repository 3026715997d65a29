"""Event monitor: wake on inotify ``IN_MODIFY`` of ``memory.events``, diff the counters.

The kernel raises a file-modified event each time a ``memory.events`` counter moves
(at most ~100 notifications a second per file, coalesced), so every wake-up means
"re-read and compare", never "one more event". This reacts within milliseconds of
the cgroup crossing ``memory.high``, where polling would need a very short interval.

Rules:

* Counters present at start are the baseline: a ``high`` of 37 left over from an
  earlier run is history, not trouble.
* A rise of ``high`` (throttled over memory.high), ``max`` (reclaim forced at
  memory.max), ``oom`` or ``oom_kill`` emits one :class:`Trigger` (kind EVENT) with
  ``{counter: delta}`` and ``{counter + "_total": value}`` in ``detail``.
* A counter that went down means the file was replaced; the new read becomes the
  baseline (logged).
* Unparsable contents after start are logged and skipped; the last good read stays
  the baseline and the next wake-up reads again. Contents unparsable at start, a
  file that cannot be read (permissions, a directory in its place), or a vanished
  cgroup (IN_DELETE_SELF / IN_IGNORED on a watch, ENOENT/ENODEV on read) end the
  monitor with :class:`MonitorError`.
* Besides ``memory.events`` it watches ``cgroup.events`` (the kernel modifies it
  when the last process leaves), the directory itself, and the parent directory:
  on the real kernel an rmdir of the cgroup shows up only there, as IN_DELETE of
  our name (kernfs drops the files without inotify events).
* Inotify queue overflow (IN_Q_OVERFLOW) loses events, not state: re-read anyway.
* Blocks in ``poll()`` on the inotify fd and the :class:`StopSignal` fd; no timeout,
  no sleeps, so shutdown is immediate.
* Coalesced at the source: each wake-up drains the whole inotify queue in one read and
  reads memory.events once. After a trigger the monitor stops reading until the loop has
  taken it (``Trigger.on_consumed``, see ``consumption.py``): it sleeps on that instead of
  inotify, whose queue merges the notifications meanwhile, and then reads once, so a storm
  costs about one read per step, not one per notification.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import select
import time
from collections.abc import Callable
from typing import Any

from inotify_simple import INotify, flags

from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError, CgroupGone
from oomguard.monitor.kernel.memory_events import MemoryEvents, counters_rose
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.monitor.triggers.consumption import Consumption
from oomguard.monitor.triggers.trigger import (
    MonitorError,
    MonitorTargetGone,
    Trigger,
    TriggerKind,
    TriggerSink,
)

log = logging.getLogger(__name__)

WATCHED_COUNTERS = ("high", "max", "oom", "oom_kill")
_GONE = flags.DELETE_SELF | flags.MOVE_SELF | flags.IGNORED | flags.UNMOUNT


def trigger_detail(deltas: dict[str, int], new: MemoryEvents) -> dict[str, int]:
    """``{counter: delta, counter_total: value}`` for the counters that rose."""
    detail = dict(deltas)
    for key in deltas:
        detail[f"{key}_total"] = new.counters[key]
    return detail


class EventMonitor:
    """Triggers when memory.events counters rise. See the module docstring for the rules."""

    name = "event"

    def __init__(
        self,
        cgroup: Cgroup,
        counters: tuple[str, ...] = WATCHED_COUNTERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cgroup = cgroup
        self.counters = counters
        self._clock = clock

    def run(self, sink: TriggerSink, stop: StopSignal) -> None:
        with INotify() as inotify:
            watches = self._add_watches(inotify)
            # Read after the watches exist, so no rise between read and watch is lost.
            baseline = self._read_baseline()
            pending = Consumption()
            try:
                self._watch(inotify, watches, baseline, pending, sink, stop)
            finally:
                pending.close()

    def _watch(
        self,
        inotify: INotify,
        watches: dict[int, str],
        baseline: MemoryEvents,
        pending: Consumption,
        sink: TriggerSink,
        stop: StopSignal,
    ) -> None:
        """Sleep on inotify until a counter rises; after a trigger, sleep on ``pending``
        instead (inotify keeps and merges the events meanwhile) until the loop took it."""
        poller = select.poll()
        poller.register(inotify.fileno(), select.POLLIN)
        poller.register(stop.fileno(), select.POLLIN)
        sent: list[Trigger] = []

        def send(trigger: Trigger) -> None:
            sent.append(trigger)
            sink(dataclasses.replace(trigger, on_consumed=pending.consumed))

        while not stop.is_set():
            try:
                ready = {fd for fd, _ in poller.poll()}
            except InterruptedError:  # pragma: no cover - Python retries poll (PEP 475)
                continue
            if stop.fileno() in ready or stop.is_set():
                return
            if pending.fileno() in ready:  # the loop took our trigger: watch again
                pending.reset()
                poller.unregister(pending.fileno())
                poller.register(inotify.fileno(), select.POLLIN)
            # the whole queue in one read (FIONREAD), then memory.events once
            self._check_watch_events(inotify.read(timeout=0), watches)
            baseline = self.observe(baseline, send)
            if sent:
                sent.clear()
                poller.unregister(inotify.fileno())
                poller.register(pending.fileno(), select.POLLIN)

    def observe(self, baseline: MemoryEvents, sink: TriggerSink) -> MemoryEvents:
        """One wake-up: re-read memory.events, trigger on rises, return the next baseline.

        Raises :class:`MonitorError` only when the file can no longer be read.
        """
        new = self._read_after_wakeup()
        return baseline if new is None else self._compare(baseline, new, sink)

    def _add_watches(self, inotify: INotify) -> dict[int, str]:
        targets = [
            (self.cgroup.file("memory.events"), flags.MODIFY),
            (self.cgroup.file("cgroup.events"), flags.MODIFY),
            (self.cgroup.path, flags.DELETE_SELF | flags.MOVE_SELF | flags.ONLYDIR),
            # rmdir of a cgroup notifies only the parent (kernfs removes the files
            # silently, and the directory's own IN_DELETE_SELF waits for its dentry).
            (self.cgroup.path.parent, flags.DELETE | flags.MOVED_FROM | flags.ONLYDIR),
        ]
        watches: dict[int, str] = {}
        for path, mask in targets:
            try:
                watches[inotify.add_watch(path, mask)] = path.name
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    raise MonitorError(
                        f"cannot watch {path}: the cgroup or file does not exist"
                    ) from exc
                raise MonitorError(f"cannot watch {path}: {exc.strerror}") from exc
        return watches

    def _check_watch_events(self, events: list[Any], watches: dict[int, str]) -> None:
        for event in events:
            if event.mask & flags.Q_OVERFLOW:
                log.warning("inotify queue overflowed for %s; re-reading", self.cgroup.path)
            elif self._is_removal(event.mask, event.name):
                what = flags.from_mask(event.mask)[0].name
                raise MonitorTargetGone(
                    f"cgroup {self.cgroup.path} is gone ({what} on {watches.get(event.wd, '?')})"
                )

    def _is_removal(self, mask: int, name: str) -> bool:
        if mask & _GONE:
            return True
        return bool(mask & (flags.DELETE | flags.MOVED_FROM)) and name == self.cgroup.path.name

    def _read_baseline(self) -> MemoryEvents:
        try:
            return self.cgroup.memory_events()
        except (ParseError, CgroupError) as exc:
            raise MonitorError(f"cannot read the starting memory.events counters: {exc}") from exc

    def _read_after_wakeup(self) -> MemoryEvents | None:
        try:
            return self.cgroup.memory_events()
        except ParseError as exc:
            log.warning(
                "skipping unparsable memory.events (keeping the last good counters): %s", exc
            )
            return None
        except CgroupGone as exc:
            raise MonitorTargetGone(str(exc)) from exc
        except CgroupError as exc:
            raise MonitorError(f"memory.events became unreadable: {exc}") from exc

    def _compare(
        self, baseline: MemoryEvents, new: MemoryEvents, sink: TriggerSink
    ) -> MemoryEvents:
        went_down = counters_rose(new, baseline, self.counters)
        if went_down:
            log.warning(
                "memory.events counters went down %s; taking them as the new baseline", went_down
            )
            return new
        deltas = counters_rose(baseline, new, self.counters)
        if deltas:
            sink(Trigger(TriggerKind.EVENT, self._clock(), trigger_detail(deltas, new)))
        return new
