"""Where every pod runs, kept by one list+watch on ``/api/v1/pods`` (never a GET per request).

The webhook answers from this cache. Only ``(uid, spec.nodeName)`` per pod is kept: a pod's
node never changes once it is bound, so a stale entry can only be a pod that was deleted (or
deleted and re-created under the same name) within the watch's lag. On a miss the webhook asks
the apiserver once (:meth:`PodPlacementCache.fetch`).

The cache runs in its own thread with the synchronous kubernetes client and reads raw JSON
lines (no model objects): a cluster-wide pod watch is the heaviest stream the operator has.
It runs in every operator replica, independently of kopf peering (kopf pauses its own
watches on standby replicas, and a Service sends admission requests to any ready replica).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

from oomguard.operator.webhook.eviction_decision import PodPlacement
from oomguard.wire.list_watch import WatchGoneError, WatchStream, list_json_pages

logger = logging.getLogger(__name__)

PodKey = tuple[str, str]  # (namespace, name)


def placement_of(pod: Any) -> tuple[PodKey, PodPlacement] | None:
    """The cache entry for one pod object (a plain dict from the API); None if unusable."""
    if not isinstance(pod, Mapping):
        return None
    meta = pod.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    namespace, name, uid = meta.get("namespace"), meta.get("name"), meta.get("uid")
    if not (isinstance(namespace, str) and isinstance(name, str) and isinstance(uid, str)):
        return None
    spec = pod.get("spec")
    node = spec.get("nodeName") if isinstance(spec, Mapping) else None
    return (namespace, name), PodPlacement(uid, node if isinstance(node, str) else "")


def apply_event(store: dict[PodKey, PodPlacement], event: Mapping[str, Any]) -> str | None:
    """Applies one watch event to ``store``; returns the event's resourceVersion (if any).

    ERROR events never reach here: the watch stream raises them (``WatchGoneError``: list again).
    """
    kind = event.get("type")
    obj = event.get("object")
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    version = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    if kind == "BOOKMARK":
        return version if isinstance(version, str) else None
    entry = placement_of(obj)
    if entry is None:
        return version if isinstance(version, str) else None
    key, placement = entry
    if kind == "DELETED":
        current = store.get(key)
        if current is not None and current.uid == placement.uid:
            del store[key]
    elif kind in ("ADDED", "MODIFIED"):
        store[key] = placement
    return version if isinstance(version, str) else None


class PodPlacementCache:
    """A thread that lists and watches all pods and keeps their placements."""

    def __init__(
        self,
        api_client: ApiClient,
        *,
        page_size: int = 500,
        watch_timeout_seconds: int = 300,
        request_timeout: float = 10.0,
        retry_delay: float = 1.0,
    ) -> None:
        self._core = CoreV1Api(api_client)
        self._page_size = page_size
        self._watch_timeout = watch_timeout_seconds
        self._request_timeout = request_timeout
        self._retry_delay = retry_delay
        self._store: dict[PodKey, PodPlacement] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream = WatchStream(request_timeout, read_slack=30.0)
        self.synced = threading.Event()  # set after the first complete list
        self.relists = 0

    # --------------------------------------------------------------- reading (any thread)

    def get(self, namespace: str, name: str) -> PodPlacement | None:
        return self._store.get((namespace, name))

    def __len__(self) -> int:
        return len(self._store)

    def fetch(self, namespace: str, name: str) -> PodPlacement | None:
        """One GET for a cache miss; None when the pod does not exist. Other errors raise."""
        try:
            response: Any = self._core.read_namespaced_pod(
                name, namespace, _preload_content=False, _request_timeout=self._request_timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        entry = placement_of(json.loads(response.data))
        return None if entry is None else entry[1]

    # --------------------------------------------------------------- lifetime

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pod-placements", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._stream.interrupt()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list()
                version = self._watch(version)
            except WatchGoneError:
                logger.info("pod watch expired; listing again")
                version = None
            except Exception as exc:
                if self._stop.is_set():
                    return
                logger.warning("pod watch failed (%s); retrying in %.0fs", exc, self._retry_delay)
                self._stop.wait(self._retry_delay)

    def _list(self) -> str:
        fresh: dict[PodKey, PodPlacement] = {}
        version = ""
        for items, page_version in list_json_pages(
            self._core.list_pod_for_all_namespaces,
            limit=self._page_size,
            _request_timeout=self._request_timeout * 6,
        ):
            version = page_version
            for pod in items:
                entry = placement_of(pod)
                if entry is not None:
                    fresh[entry[0]] = entry[1]
        self._store = fresh  # one assignment: readers see the old or the new map
        self.relists += 1
        self.synced.set()
        logger.info("pod placements listed: %d pods", len(fresh))
        return version

    def _watch(self, version: str) -> str:
        for event in self._stream.events(
            self._core.list_pod_for_all_namespaces,
            resource_version=version,
            timeout_seconds=self._watch_timeout,
        ):
            if self._stop.is_set():
                break
            seen = apply_event(self._store, event)
            if seen:
                version = seen
        return version
