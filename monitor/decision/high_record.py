"""What the node keeps about kubepods ``memory.high`` across agents: the value from before
oomguard first touched the cgroup, and the values oomguard has written since.

Pure: bytes in and out, and the rule a successor follows. An agent killed by SIGKILL or the
OOM killer cannot restore anything; the next one reads the record and restores the true
original rather than adopting the throttled value it finds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from oomguard.monitor.kernel.memory_limit import MemoryLimit
from oomguard.monitor.kernel.parse_error import ParseError

RECORD_VERSION = 1
KEPT_WRITES = 2  # the value written last and the one before: a crash between saving the
# record and writing the cgroup leaves the older one in memory.high


class HighRecordError(ParseError):
    """A record file that is not a record oomguard wrote."""


@dataclass(frozen=True)
class HighRecord:
    cgroup: str  # the cgroup the record is about (its path as the agent sees it)
    original: MemoryLimit  # memory.high before oomguard first wrote it
    written: tuple[MemoryLimit, ...] = ()  # what oomguard wrote, oldest first (at most 2)

    def after_write(self, value: MemoryLimit) -> HighRecord:
        """The record to save before writing ``value``."""
        written = (*self.written, value)[-KEPT_WRITES:]
        return HighRecord(self.cgroup, self.original, written)


def _limit(value: object, source: str) -> MemoryLimit:
    if value == "max":
        return MemoryLimit(None)
    if isinstance(value, str) and value.isdigit():
        return MemoryLimit(int(value))
    raise HighRecordError(source, f"not a memory limit: {value!r}")


def encode_record(record: HighRecord) -> bytes:
    body = {
        "version": RECORD_VERSION,
        "cgroup": record.cgroup,
        "original": str(record.original),
        "written": [str(value) for value in record.written],
    }
    return (json.dumps(body, indent=2) + "\n").encode()


def decode_record(data: bytes, source: str) -> HighRecord:
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HighRecordError(source, f"not JSON: {exc}") from exc
    if not isinstance(body, dict) or body.get("version") != RECORD_VERSION:
        raise HighRecordError(source, f"not a version {RECORD_VERSION} record")
    cgroup, written = body.get("cgroup"), body.get("written", [])
    if not isinstance(cgroup, str) or not isinstance(written, list):
        raise HighRecordError(source, "cgroup or written missing")
    return HighRecord(
        cgroup,
        _limit(body.get("original"), source),
        tuple(_limit(value, source) for value in written[-KEPT_WRITES:]),
    )


def trusted_record(record: HighRecord | None, cgroup: str, current: MemoryLimit) -> HighRecord:
    """The record to go on with when an agent first takes charge of ``cgroup``, whose
    memory.high reads ``current``.

    A record for this cgroup whose original or written values include ``current`` is
    trusted: an earlier agent left the cgroup as it was or as it set it, so its original is
    the true one. Otherwise what is there now was set by someone else since (the cgroup was
    recreated at boot, an administrator wrote it): that is the original from now on.
    """
    if (
        record is not None
        and record.cgroup == cgroup
        and (current == record.original or current in record.written)
    ):
        return record
    return HighRecord(cgroup, current)
