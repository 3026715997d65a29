"""The kubepods ``memory.high`` the node agent owns: set it, put it back when something else
changed it, restore what was there on the way out.

The value itself is pure (``decision/kubepods_high.py``); this is the one place that reads
and writes it. With ``enabled`` off (kernels older than 5.9) or in dry run nothing is
written, and the value is still worked out: it is the line the threshold monitor watches,
and what ``/status`` says would be set. A switch to dry run puts back what was there.

With a record (``HighRecordFile`` in the node's state directory) the value from before
oomguard is kept on the node, with the values written since, before each write: an agent
that follows one killed mid-episode restores the true original, not the throttled value it
finds (``decision/high_record.py``).

Every check compares the value with the one set and puts it back when something else
changed it (``decision/memory_high_drift.py``: logged once per episode, each one counted).
With ``mirror`` (systemd-driver nodes) every value set or restored is also given to systemd,
so that systemd keeps it. After :meth:`release` (the agent stops) nothing is written again.
"""

from __future__ import annotations

import logging

from oomguard.monitor.decision.high_record import HighRecord, trusted_record
from oomguard.monitor.decision.kubepods_high import KubepodsHigh, kubepods_high
from oomguard.monitor.decision.memory_high_drift import DriftCheck, DriftEpisodes
from oomguard.monitor.decision.settings_floor import unsafe_settings
from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.kernel.cgroupfs import Cgroup, CgroupError
from oomguard.monitor.kernel.memory_limit import MemoryLimit
from oomguard.monitor.kernel.parse_error import ParseError
from oomguard.monitor.modes.high_record_file import HighRecordFile
from oomguard.monitor.modes.systemd_memory_high import SystemdMemoryHigh
from oomguard.wire.monitor_sections import threshold
from oomguard.wire.node_settings import NodeSettings
from oomguard.wire.sizes import format_size

log = logging.getLogger("oomguard.node")


class KubepodsLimit:
    def __init__(
        self,
        kubepods: Cgroup,
        margin_bytes: int,
        enabled: bool,
        record_file: HighRecordFile | None = None,
        mirror: SystemdMemoryHigh | None = None,
    ) -> None:
        self.kubepods = kubepods
        self.margin_bytes = margin_bytes
        self.enabled = enabled
        self.record_file = record_file
        self.high: KubepodsHigh | None = None  # the last value worked out
        self._record: HighRecord | None = None  # what was there before oomguard, and since
        self._set_by_us = False  # memory.high holds a value oomguard wrote
        self._wrote = False  # this agent wrote it
        self.mirror = mirror
        self.drift = DriftEpisodes()
        self._released = False

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
            settings.monitor[threshold.SECTION].usage_percent,
            settings.eviction.buffer_bytes,
        )

    def limit_bytes(self, settings: NodeSettings) -> int:
        """The guarded line: the memory.high we set, or what we would set without setting it."""
        if self.high is None:
            self.high = self.compute(settings)
        return self.high.bytes

    def target_bytes(self, settings: NodeSettings) -> int:
        """Where usage must fall: ``threshold.usagePercent`` of the guarded line."""
        percent = settings.monitor[threshold.SECTION].usage_percent
        return int(self.limit_bytes(settings) * percent / 100)

    def writes(self, settings: NodeSettings) -> bool:
        """Whether memory.high is ours to write under ``settings`` (never in dry run)."""
        return self.enabled and not settings.dry_run

    def assert_high(self, settings: NodeSettings) -> bool:
        """Set memory.high, or put it back if something else changed it; True when it was
        put back (someone else had changed the value we set). In dry run nothing is
        written, and a value set before the switch is restored. Nothing once released."""
        if self._released:
            return False
        high = self.compute(settings)
        changed = self.high is not None and high != self.high
        self.high = high
        if self._record is None and (self.writes(settings) or self.record_file is not None):
            self._take_charge(self.kubepods.memory_high())
        if not self.writes(settings):
            if self._set_by_us:
                self.restore()
            return False
        current = self.kubepods.memory_high()
        wanted = MemoryLimit(high.bytes)
        drifted = self._wrote and not changed and current != wanted
        check = self.drift.observe(drifted)
        if current == wanted:
            self._tell_systemd(wanted)
            return False
        if check is DriftCheck.STARTED:
            log_event(
                log,
                logging.WARNING,
                "kubepods memory.high was changed by someone else; setting it again",
                found=str(current),
                wanted=high.bytes,
            )
        self._write(wanted)
        if drifted and self.mirror is not None:
            # the other value may have come through systemd (set-property, a second
            # agent): then systemd stores it and writes it again at its next re-apply
            self.mirror.reassert(wanted)
        else:
            self._tell_systemd(wanted)
        if not drifted:
            self.drift.end()
            log_event(
                log,
                logging.INFO,
                "kubepods memory.high set",
                cgroup=str(self.kubepods.path),
                memory_high=format_size(high.bytes),
                why=high.explain(),
            )
        return drifted

    def _tell_systemd(self, limit: MemoryLimit) -> None:
        if self.mirror is not None:
            self.mirror.ensure(limit)

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

    def _take_charge(self, current: MemoryLimit) -> None:
        """Work out the original once: the node's record when it is trusted, else what is
        there now. A value a predecessor wrote counts as ours to restore."""
        found = self.record_file.load() if self.record_file is not None else None
        self._record = trusted_record(found, str(self.kubepods.path), current)
        self._set_by_us = current in self._record.written
        if self._set_by_us:
            log_event(
                log,
                logging.WARNING,
                "kubepods memory.high holds a value an earlier agent set; the original is "
                "taken from the node's record",
                found=str(current),
                original=str(self._record.original),
            )

    def _write(self, value: MemoryLimit) -> None:
        """Record ``value`` on the node, then write it: a crash between the two leaves a
        value the record still names."""
        assert self._record is not None
        self._record = self._record.after_write(value)
        if self.record_file is not None:
            try:
                self.record_file.save(self._record)
            except OSError as exc:
                log_event(
                    log,
                    logging.ERROR,
                    "cannot record memory.high on the node; a successor after a crash "
                    "would not know the original",
                    error=str(exc),
                )
        self.kubepods.set_memory_high(value)
        self._set_by_us = self._wrote = True

    def restore(self) -> None:
        """Put back the value from before oomguard and drop the record."""
        record = self._record
        if not self._set_by_us or record is None or not self.kubepods.exists():
            return
        self.kubepods.set_memory_high(record.original)
        self._set_by_us = False
        self.drift.end()
        if self.mirror is not None:
            self.mirror.apply(record.original)
        self._record = HighRecord(record.cgroup, record.original)
        if self.record_file is not None:
            try:
                self.record_file.clear()
            except OSError as exc:
                log_event(
                    log, logging.WARNING, "cannot remove the memory.high record", error=str(exc)
                )
        log_event(log, logging.INFO, "kubepods memory.high restored", value=str(record.original))

    def counts(self) -> tuple[int, int | None]:
        """Drift repairs, and failed systemd calls (None without systemd), for the metrics."""
        return self.drift.repairs, None if self.mirror is None else self.mirror.failures

    def release(self) -> None:
        """Restore for good (the agent stops): no later check writes memory.high again."""
        self._released = True
        self.restore()
