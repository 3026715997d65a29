"""The node agent's side of the blind spots in its pod view (rules: ``kube/pod_view.py``):
since when the view was last current, whether it is blind now (then pod cgroups without a pod
object become kill-only candidates), and asking the watch for a new list when a pod cgroup
has no pod object, at most once per ``RELIST_MIN_INTERVAL``. Called under the agent's lock."""

from __future__ import annotations

import logging
from typing import Any

from oomguard.monitor.feedback.logs import log_event
from oomguard.monitor.kube.pod_view import lasting_unmatched, pod_view_blind, relist_due
from oomguard.monitor.modes.node_measurer import Measurement, PodSnapshots

log = logging.getLogger("oomguard.node")


class PodViewKeeper:
    def __init__(self, pods: PodSnapshots, now: float) -> None:
        self.pods = pods
        self.current_at = now  # the view last seen connected (or the agent's start)
        self.relist_asked_at: float | None = None
        self.relists_asked = 0
        self.unmatched_since: dict[str, float] = {}
        self.is_blind = False

    def blind(self, now: float) -> bool:
        """Whether the view is blind now; said in the log when that changes."""
        connected = self.pods.connected
        if connected:
            self.current_at = now
        blind = pod_view_blind(self.pods.synced.is_set(), connected, self.current_at, now)
        if blind != self.is_blind:
            log_event(
                log,
                logging.WARNING if blind else logging.INFO,
                "pod view blind: pod cgroups without a pod object are kill-only candidates"
                if blind
                else "pod view current again",
                never_listed=not self.pods.synced.is_set(),
                disconnected_for=round(now - self.current_at, 1),
            )
        self.is_blind = blind
        return blind

    def looked(self, m: Measurement, now: float) -> bool:
        """After a measurement: ask for a relist if a pod cgroup has had no pod object for a
        few seconds and the last ask is long enough ago; whether it asked."""
        self.unmatched_since, unmatched = lasting_unmatched(m.unmatched, self.unmatched_since, now)
        if not relist_due(unmatched, self.pods.connected, self.relist_asked_at, now):
            return False
        self.relist_asked_at = now
        self.relists_asked += 1
        log_event(
            log,
            logging.WARNING,
            "pod cgroups without a pod object: listing the pods again",
            uids=sorted(unmatched)[:10],
        )
        self.pods.request_relist()
        return True

    def status(self, m: Measurement | None) -> dict[str, Any]:
        """``pod_view`` in ``/status``."""
        return {
            "blind": self.is_blind,
            "unmatched_cgroups": sorted(m.unmatched) if m is not None else [],
            "relists_asked": self.relists_asked,
            "kill_only": sorted(c.path for c in m.kill_only.values()) if m is not None else [],
        }
