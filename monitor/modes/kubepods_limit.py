"""The kubepods ``memory.high`` the node agent owns: set it, put it back when something else
changed it, restore what was there on the way out.

The value itself is pure (``decision/kubepods_high.py``); this is the one place that reads
and writes it. With ``enabled`` off (kernels older than 5.9) or in dry run nothing is
written, and the value is still worked out: it is the line the threshold monitor watches,
and what ``/status`` says would be set. A switch to dry run puts back what was there.
"""

from __future__ import annotations

import logging

from oomguard.monitor.decision.kubepods_high import KubepodsHigh, kubepods_high
from oomguard.monitor.decision.settings_floor import unsafe_settings
from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError
from oomguard.monitor.kernel.memory_limit import MemoryLimit
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.wire.node_settings import NodeSettings
from oomguard.wire.sizes import format_size

log = logging.getLogger("oomguard.node")


class KubepodsLimit:
    def __init__(self, kubepods: Cgroup, margin_bytes: int, enabled: bool) -> None:
        self.kubepods = kubepods
        self.margin_bytes = margin_bytes
        self.enabled = enabled
        self.high: KubepodsHigh | None = None  # the last value worked out
        self._previous: MemoryLimit | None = None  # what was there before we first wrote
        self._set_by_us = False

    def compute(self, settings: NodeSettings) -> KubepodsHigh:
        maximum = self.kubepods.memory_max().bytes
        return kubepods_high(
            settings.node_memory_bytes, settings.reserve_bytes, maximum, self.margin_bytes
        )

    def unsafe(self, settings: NodeSettings) -> str | None:
        """Why ``settings`` must not be enforced here (``settings_floor``, or memory.max
        unreadable), or None."""
        try:
            maximum = self.kubepods.memory_max().bytes
        except (CgroupError, ParseError, OSError) as exc:
            return f"cannot read {self.kubepods.path} memory.max: {exc}"
        return unsafe_settings(
            settings.node_memory_bytes,
            settings.reserve_bytes,
            maximum,
            self.margin_bytes,
            settings.monitor.threshold.usage_percent,
            settings.eviction.buffer_bytes,
        )

    def limit_bytes(self, settings: NodeSettings) -> int:
        """The guarded line: the memory.high we set, or what we would set without setting it."""
        if self.high is None:
            self.high = self.compute(settings)
        return self.high.bytes

    def target_bytes(self, settings: NodeSettings) -> int:
        """Where usage must fall: ``threshold.usagePercent`` of the guarded line."""
        percent = settings.monitor.threshold.usage_percent
        return int(self.limit_bytes(settings) * percent / 100)

    def writes(self, settings: NodeSettings) -> bool:
        """Whether memory.high is ours to write under ``settings`` (never in dry run)."""
        return self.enabled and not settings.dry_run

    def assert_high(self, settings: NodeSettings) -> bool:
        """Set memory.high, or put it back if something else changed it; True when it was
        put back (someone else had changed the value we set). In dry run nothing is
        written, and a value set before the switch is restored."""
        high = self.compute(settings)
        changed = self.high is not None and high != self.high
        self.high = high
        if not self.writes(settings):
            if self._set_by_us:
                self.restore()
            return False
        current = self.kubepods.memory_high()
        if self._previous is None:
            self._previous = current
        if current.bytes == high.bytes:
            return False
        reasserted = self._set_by_us and not changed
        if reasserted:
            log_event(
                log,
                logging.WARNING,
                "kubepods memory.high was changed by someone else; setting it again",
                found=str(current),
                wanted=high.bytes,
            )
        self.kubepods.set_memory_high(MemoryLimit(high.bytes))
        self._set_by_us = True
        log_event(
            log,
            logging.INFO,
            "kubepods memory.high set",
            cgroup=str(self.kubepods.path),
            memory_high=format_size(high.bytes),
            why=high.explain(),
        )
        return reasserted

    def kernel_counters(self) -> tuple[dict[str, int], int | None]:
        """kubepods' ``memory.events`` counters and ``memory.max`` for the CRD status; empty
        and None when they cannot be read (the report says so elsewhere)."""
        try:
            events = dict(self.kubepods.memory_events().counters)
        except (CgroupError, ParseError, OSError):
            events = {}
        try:
            maximum: int | None = self.kubepods.memory_max().bytes
        except (CgroupError, ParseError, OSError):
            maximum = None
        return events, maximum

    def restore(self) -> None:
        if self._set_by_us and self._previous is not None and self.kubepods.exists():
            self.kubepods.set_memory_high(self._previous)
            self._set_by_us = False
            log_event(log, logging.INFO, "kubepods memory.high restored", value=str(self._previous))
