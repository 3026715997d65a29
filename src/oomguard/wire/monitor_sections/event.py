"""``monitor.event``: inotify on memory.events, reacting when a counter rises."""

from __future__ import annotations

from dataclasses import dataclass

from oomguard.wire.spec_section import MonitorSection, SpecSection


@dataclass(frozen=True)
class EventMonitorSettings(SpecSection):
    """inotify on memory.events: react when the ``high`` counter rises."""

    enabled: bool = True


SECTION = MonitorSection(
    "event",
    EventMonitorSettings,
    "inotify on memory.events: wakes within milliseconds of kubepods crossing memory.high.",
)
