"""The kubepods memory.high record (``decision/high_record.py``) as a file in the node's
state directory (the chart mounts ``/var/lib/oomguard`` from the host), written whole and
atomically (temporary file, fsync, rename) so a crash mid-write leaves the old record."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from oomguard.monitor.decision.high_record import (
    HighRecord,
    HighRecordError,
    decode_record,
    encode_record,
)
from oomguard.monitor.feedback.logs import log_event

log = logging.getLogger("oomguard.node")

RECORD_FILE = "kubepods-memory-high.json"


class HighRecordFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> HighRecord | None:
        """The record, or None when there is none or it cannot be read (said in the log)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log_event(log, logging.WARNING, "cannot read the memory.high record", error=str(exc))
            return None
        try:
            return decode_record(data, str(self.path))
        except HighRecordError as exc:
            log_event(log, logging.WARNING, "ignoring a bad memory.high record", error=str(exc))
            return None

    def save(self, record: HighRecord) -> None:
        """Replace the record; ``OSError`` when it cannot be written."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, encode_record(record))
            os.fsync(fd)
        finally:
            os.close(fd)
        temporary.replace(self.path)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def record_in(state_dir: Path | None) -> HighRecordFile | None:
    """The record file in the node's state directory; None without one (tests, a host run
    with ``--state-dir ''``)."""
    return None if state_dir is None else HighRecordFile(state_dir / RECORD_FILE)
