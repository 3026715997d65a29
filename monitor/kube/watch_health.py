"""What a list + watch loop reports about its own health: when it last heard from the API
server, and why it had to start over. The watchers call a :class:`WatchHealth`; the metrics
(``feedback/api_health_metrics.py``) implement it, tests record it."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class WatchName(StrEnum):
    """The ``watch`` label: which of the agent's watches."""

    PODS = "pods"  # this node's pods
    RESERVE = "reserve"  # this node's NodeMemoryReserve


class WatchRestart(StrEnum):
    """The ``reason`` label: why a watch started over with a new list."""

    EXPIRED = "expired"  # 410 Gone: the resourceVersion was too old, listed again at once
    ERROR = "error"  # the list or the watch failed (API unreachable, 5xx, 403...): backoff
    UNMATCHED_CGROUP = "unmatched_cgroup"  # the agent found a pod cgroup no pod object matches


class WatchHealth(Protocol):
    def succeeded(self, watch: WatchName) -> None:
        """A list returned, a watch event (bookmarks included) arrived, or the server ended a
        watch in the ordinary way: the view of the cluster is current as of now."""

    def restarted(self, watch: WatchName, reason: WatchRestart) -> None:
        """The watch starts over with a new list, for ``reason``."""
