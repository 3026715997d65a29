"""``cgroup.events``: whether the cgroup (or a descendant) still has processes.

Flat keyed: ``populated 0|1`` and ``frozen 0|1`` (5.2+). ``populated`` is required;
any value other than 0 or 1 is an error. The kernel raises IN_MODIFY on this file
when a value flips, which is how we learn that the last process left.
"""

from __future__ import annotations

from dataclasses import dataclass

from oomguard.monitor.kernel.parse_error import ParseError, parse_flat_keyed


class CgroupEventsParseError(ParseError):
    """cgroup.events content is not what the kernel writes."""


@dataclass(frozen=True)
class CgroupEvents:
    populated: bool
    frozen: bool


def parse_cgroup_events(data: bytes, source: str = "cgroup.events") -> CgroupEvents:
    values = parse_flat_keyed(data, source, CgroupEventsParseError)
    if "populated" not in values:
        raise CgroupEventsParseError(source, "no 'populated' entry")
    for key in ("populated", "frozen"):
        if values.get(key, 0) not in (0, 1):
            raise CgroupEventsParseError(source, f"{key} must be 0 or 1, not {values[key]}")
    return CgroupEvents(populated=values["populated"] == 1, frozen=values.get("frozen", 0) == 1)
