"""An up-to-date map of the pods on this node: list, then watch from that resourceVersion.

Only this node's pods are asked for (field selector ``spec.nodeName=<node>``), so the agent's
memory and the API server's work stay proportional to one node, not the cluster. A watch that
ends (server timeout, 50 s) resumes from the last resourceVersion; one that goes silent fails
on its read timeout (60 s) and relists; ``410 Gone`` (the version was
compacted away) means relist; connection errors reconnect with capped exponential backoff,
keeping the last known map meanwhile: local protection must go on while the API is away.
Another thread may ask for a new list (:meth:`PodWatch.request_relist`: the agent found a pod
cgroup on disk that no pod object matches); the open watch is broken off and the pods are
listed again at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from oomguard.monitor.kube.backoff import Backoff, relist_backoff, watch_retry_backoff
from oomguard.monitor.kube.pod_candidates import PodInfo, pod_info_from_dict
from oomguard.monitor.kube.watch_health import WatchHealth, WatchName, WatchRestart
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.wire.list_watch import WatchGoneError, WatchStream, list_json

log = logging.getLogger(__name__)

# A watch the server ends after this long is resumed from its resourceVersion at once; a watch
# that goes silent (a dead connection the kernel has not noticed, a stalled proxy) fails on the
# read timeout, this plus the request timeout, and the pods are listed again: a stall is found
# within a minute, not five.
WATCH_TIMEOUT_SECONDS = 50
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class PodList:
    items: list[Mapping[str, Any]]
    resource_version: str


class PodSource(Protocol):
    """The two API calls the watch needs; an adapter over the Kubernetes client implements it."""

    def list_pods(self, node_name: str) -> PodList: ...

    def watch_pods(
        self, node_name: str, resource_version: str, timeout_seconds: int
    ) -> Iterator[Mapping[str, Any]]:
        """Raw watch events (``{"type": ..., "object": {...}}``) until the server ends the watch.
        Raises ``WatchGoneError`` when the server answers 410."""
        ...

    def interrupt(self) -> None:
        """Break a watch that is blocked reading, from another thread (for shutdown)."""
        ...


class KubernetesPodSource:
    """PodSource over ``kubernetes.client.CoreV1Api``; events are parsed as plain JSON dicts."""

    def __init__(self, core_api: Any, request_timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self._core = core_api
        self._request_timeout = request_timeout
        self._stream = WatchStream(request_timeout)

    def list_pods(self, node_name: str) -> PodList:
        items, resource_version = list_json(
            self._core.list_pod_for_all_namespaces,
            field_selector=f"spec.nodeName={node_name}",
            _request_timeout=self._request_timeout,
        )
        return PodList(items, resource_version)

    def watch_pods(
        self, node_name: str, resource_version: str, timeout_seconds: int
    ) -> Iterator[Mapping[str, Any]]:
        return self._stream.events(
            self._core.list_pod_for_all_namespaces,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            field_selector=f"spec.nodeName={node_name}",
        )

    def interrupt(self) -> None:
        self._stream.interrupt()


class PodWatch:
    """Runs in its own thread (``run``); ``snapshot()`` is safe from any thread."""

    def __init__(
        self,
        source: PodSource,
        node_name: str,
        *,
        watch_timeout_seconds: int = WATCH_TIMEOUT_SECONDS,
        backoff: Backoff | None = None,
        relist: Backoff | None = None,
        on_change: Callable[[], None] | None = None,
        health: WatchHealth | None = None,
    ) -> None:
        self._source = source
        self._health = health
        self._node = node_name
        self._watch_timeout = watch_timeout_seconds
        self._backoff = backoff or watch_retry_backoff()
        self._relist = relist or relist_backoff()
        self._on_change = on_change
        self._pods: dict[str, PodInfo] = {}
        self._lock = threading.Lock()
        self.synced = threading.Event()  # set after the first successful list
        self._relist_wanted = threading.Event()
        self.connected = False
        self.relists = 0
        self.errors = 0

    def snapshot(self) -> dict[str, PodInfo]:
        with self._lock:
            return dict(self._pods)

    def request_relist(self) -> None:
        """List the pods again as soon as possible (from any thread): the open watch is
        broken off. How often to ask is the caller's rule (``pod_view.relist_due``)."""
        self._relist_wanted.set()
        self._source.interrupt()

    def run(self, stop: StopSignal) -> None:
        while not stop.is_set():
            try:
                resource_version = self._list()
                self._backoff.reset()
                while not stop.is_set() and not self._relist_wanted.is_set():
                    resource_version = self._watch(resource_version, stop)
                    self._relist.reset()  # a watch ran to its end: the version was good
                if self._relist_wanted.is_set():
                    self._asked_relist()
            except WatchGoneError as exc:
                delay = self._relist.next_delay()
                log.info("pod watch on %s: %s; listing again in %.1fs", self._node, exc, delay)
                self.relists += 1
                self._restarted(WatchRestart.EXPIRED)
                stop.wait(delay)
            except Exception as exc:  # any API or connection failure: keep the map, retry
                if self._relist_wanted.is_set() and self.connected:
                    self._asked_relist()  # the interrupt broke the watch: no fault, no wait
                    continue
                self.connected = False
                self.errors += 1
                self._restarted(WatchRestart.ERROR)
                delay = self._backoff.next_delay()
                log.warning(
                    "pod watch on %s failed (%s); retrying in %.1fs", self._node, exc, delay
                )
                stop.wait(delay)

    def stop(self) -> None:
        """Unblock a watch waiting for data (call after setting the StopSignal)."""
        self._source.interrupt()

    def _asked_relist(self) -> None:
        log.info("pod watch on %s: listing again, as asked (a pod cgroup, no pod)", self._node)
        self.relists += 1
        self._restarted(WatchRestart.UNMATCHED_CGROUP)

    def _list(self) -> str:
        self._relist_wanted.clear()  # this list answers every request made before it
        listing = self._source.list_pods(self._node)
        pods: dict[str, PodInfo] = {}
        for item in listing.items:
            info = self._parse(item)
            if info is not None:
                pods[info.uid] = info
        with self._lock:
            self._pods = pods
        self.connected = True
        self._succeeded()
        self.synced.set()
        self._changed()
        return listing.resource_version

    def _watch(self, resource_version: str, stop: StopSignal) -> str:
        for event in self._source.watch_pods(self._node, resource_version, self._watch_timeout):
            self.connected = True
            self._succeeded()
            kind = event.get("type")
            obj = event.get("object") or {}
            resource_version = (obj.get("metadata") or {}).get("resourceVersion", resource_version)
            if kind == "BOOKMARK":
                continue
            info = self._parse(obj)
            if info is None:
                continue
            with self._lock:
                if kind == "DELETED":
                    self._pods.pop(info.uid, None)
                else:
                    self._pods[info.uid] = info
            self._changed()
            if stop.is_set() or self._relist_wanted.is_set():
                break
        else:  # the server ended the watch in the ordinary way (its timeout)
            self._succeeded()
        return resource_version

    def _parse(self, obj: Mapping[str, Any]) -> PodInfo | None:
        try:
            info = pod_info_from_dict(obj)
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("ignoring a pod object that cannot be read (%s): %.200s", exc, obj)
            return None
        if info.node_name and info.node_name != self._node:
            return None  # the field selector should make this impossible; never act on it
        return info

    def _succeeded(self) -> None:
        if self._health is not None:
            self._health.succeeded(WatchName.PODS)

    def _restarted(self, reason: WatchRestart) -> None:
        if self._health is not None:
            self._health.restarted(WatchName.PODS, reason)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()
