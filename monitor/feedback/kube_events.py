"""Kubernetes Events on the pods the agent acts on: ``kubectl describe pod`` shows why it went.

Posting is best effort: an Event that cannot be written is logged and never delays freeing
memory. The body builder is pure so its fields are tested without an API server.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from oomguard.monitor.kube.pod_ref import PodRef as PodRef  # its home before kube/pod_ref.py
from oomguard.wire.times import rfc3339

log = logging.getLogger(__name__)

EVICTION_REASON = "OOMGuardEviction"
COMPONENT = "oomguard"
REPORTING_CONTROLLER = "oomguard.io/monitor"


def event_body(
    pod: PodRef,
    reason: str,
    message: str,
    node_name: str,
    now: datetime,
    event_type: str = "Warning",
    action: str = "Evict",
) -> dict[str, Any]:
    """A core/v1 Event on ``pod`` (generateName, so each action is its own Event)."""
    stamp = now.astimezone(UTC)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{pod.name}.", "namespace": pod.namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": pod.namespace,
            "name": pod.name,
            "uid": pod.uid,
        },
        "reason": reason,
        "message": message[:1024],  # the API server rejects messages over 1 KiB for events.k8s.io
        "type": event_type,
        "action": action,
        "source": {"component": COMPONENT, "host": node_name},
        "reportingComponent": REPORTING_CONTROLLER,
        "reportingInstance": f"{COMPONENT}-{node_name}"[:128],
        "firstTimestamp": rfc3339(stamp),
        "lastTimestamp": rfc3339(stamp),
        "eventTime": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "count": 1,
    }


class KubeEventPoster:
    """Writes Events through ``CoreV1Api.create_namespaced_event``; failures are only logged."""

    def __init__(self, core_api: Any, node_name: str, request_timeout: float = 5.0) -> None:
        self._core = core_api
        self._node = node_name
        self._timeout = request_timeout
        self.posted = 0
        self.failed = 0

    def post(
        self,
        pod: PodRef,
        message: str,
        reason: str = EVICTION_REASON,
        event_type: str = "Warning",
        action: str = "Evict",
    ) -> bool:
        body = event_body(pod, reason, message, self._node, datetime.now(UTC), event_type, action)
        try:
            self._core.create_namespaced_event(pod.namespace, body, _request_timeout=self._timeout)
        except Exception as exc:  # best effort: the action matters, not its Event
            self.failed += 1
            log.warning("could not post event on pod %s/%s: %s", pod.namespace, pod.name, exc)
            return False
        self.posted += 1
        return True
