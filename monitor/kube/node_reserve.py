"""The node agent's side of NodeMemoryReserve: watch this node's object (and only it) and
report status into it.

``NodeReserveWatcher`` lists then watches ``nodememoryreserves`` with the field selector
``metadata.name=<node>``, and turns each version into ``NodeSettings``: the object's spec when it
exists and parses, the built-in defaults when there is none. A spec that does not parse keeps
the last good settings and says why (``ReserveState.error``), so a bad write never disarms the
guard. ``NodeReserveStatusWriter`` patches the status subresource and builds the status body
(conditions ``Enforcing``/``Degraded``) from what the agent measured.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from oomguard.monitor.decision import memory_pressure
from oomguard.monitor.decision.memory_pressure import PressureState
from oomguard.monitor.kube.backoff import Backoff, relist_backoff, watch_retry_backoff
from oomguard.monitor.kube.watch_health import WatchHealth, WatchName, WatchRestart
from oomguard.monitor.runtime.stop_signal import StopSignal
from oomguard.wire.conditions import condition, stamp_transitions
from oomguard.wire.crd import GROUP, RESERVE_PLURAL, VERSION
from oomguard.wire.list_watch import WatchGoneError, WatchStream, list_json
from oomguard.wire.memory_pressure import MEMORY_PRESSURE
from oomguard.wire.node_settings import NodeSettings, SettingsError, default_node_settings
from oomguard.wire.sizes import format_size
from oomguard.wire.times import rfc3339

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReserveListing:
    item: Mapping[str, Any] | None  # this node's object, if it exists
    resource_version: str


class ReserveSource(Protocol):
    def list_reserve(self, node_name: str) -> ReserveListing: ...

    def watch_reserve(
        self, node_name: str, resource_version: str, timeout_seconds: int
    ) -> Iterator[Mapping[str, Any]]:
        """Raw watch events until the server ends the watch; ``WatchGoneError`` on 410."""
        ...

    def interrupt(self) -> None: ...


class KubernetesReserveSource:
    """ReserveSource over ``kubernetes.client.CustomObjectsApi``."""

    def __init__(self, custom_api: Any, request_timeout: float = 10.0) -> None:
        self._custom = custom_api
        self._request_timeout = request_timeout
        self._stream = WatchStream(request_timeout)

    def list_reserve(self, node_name: str) -> ReserveListing:
        items, resource_version = list_json(
            self._custom.list_cluster_custom_object,
            GROUP,
            VERSION,
            RESERVE_PLURAL,
            field_selector=f"metadata.name={node_name}",
            _request_timeout=self._request_timeout,
        )
        return ReserveListing(items[0] if items else None, resource_version)

    def watch_reserve(
        self, node_name: str, resource_version: str, timeout_seconds: int
    ) -> Iterator[Mapping[str, Any]]:
        return self._stream.events(
            self._custom.list_cluster_custom_object,
            GROUP,
            VERSION,
            RESERVE_PLURAL,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            field_selector=f"metadata.name={node_name}",
        )

    def interrupt(self) -> None:
        self._stream.interrupt()


@dataclass(frozen=True)
class ReserveState:
    """What the agent should enforce now, and where it came from."""

    settings: NodeSettings
    generation: int | None  # the object's metadata.generation; None with built-in defaults
    error: str | None = None  # the object's spec could not be used (last good settings kept)

    @property
    def from_defaults(self) -> bool:
        return self.settings.is_default


def state_for(
    obj: Mapping[str, Any] | None,
    node_name: str,
    node_memory_bytes: int,
    previous: ReserveState | None,
) -> ReserveState:
    """Pure: the state an object version (or its absence) leads to."""
    if obj is None:
        return ReserveState(default_node_settings(node_name, node_memory_bytes), None)
    generation = (obj.get("metadata") or {}).get("generation")
    try:
        settings = NodeSettings.from_spec(obj.get("spec") or {})
        if settings.node_name != node_name:
            raise SettingsError(f"nodeName: names {settings.node_name!r}, not this node")
    except SettingsError as exc:
        kept = (
            previous.settings
            if previous is not None
            else (default_node_settings(node_name, node_memory_bytes))
        )
        return ReserveState(kept, generation, error=str(exc))
    return ReserveState(settings, generation)


class NodeReserveWatcher:
    """Runs in its own thread (``run``); ``current()`` is safe from any thread and is the
    built-in defaults until the first listing says otherwise."""

    def __init__(
        self,
        source: ReserveSource,
        node_name: str,
        node_memory_bytes: int,
        *,
        watch_timeout_seconds: int = 300,
        backoff: Backoff | None = None,
        relist: Backoff | None = None,
        on_change: Callable[[ReserveState], None] | None = None,
        health: WatchHealth | None = None,
    ) -> None:
        self._source = source
        self._health = health
        self._node = node_name
        self._memory = node_memory_bytes
        self._watch_timeout = watch_timeout_seconds
        self._backoff = backoff or watch_retry_backoff()
        self._relist = relist or relist_backoff()
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = state_for(None, node_name, node_memory_bytes, None)
        self.synced = threading.Event()
        self.errors = 0

    def current(self) -> ReserveState:
        with self._lock:
            return self._state

    def run(self, stop: StopSignal) -> None:
        while not stop.is_set():
            try:
                listing = self._source.list_reserve(self._node)
                self._succeeded()
                self._apply(listing.item)
                self.synced.set()
                self._backoff.reset()
                resource_version = listing.resource_version
                while not stop.is_set():
                    resource_version = self._watch(resource_version, stop)
                    self._relist.reset()  # a watch ran to its end: the version was good
            except WatchGoneError as exc:
                delay = self._relist.next_delay()
                log.info("reserve watch on %s: %s; listing again in %.1fs", self._node, exc, delay)
                self._restarted(WatchRestart.EXPIRED)
                stop.wait(delay)
            except Exception as exc:  # keep enforcing the last state while the API is away
                self.errors += 1
                self._restarted(WatchRestart.ERROR)
                delay = self._backoff.next_delay()
                log.warning(
                    "reserve watch on %s failed (%s); retrying in %.1fs", self._node, exc, delay
                )
                stop.wait(delay)

    def stop(self) -> None:
        self._source.interrupt()

    def _watch(self, resource_version: str, stop: StopSignal) -> str:
        for event in self._source.watch_reserve(self._node, resource_version, self._watch_timeout):
            self._succeeded()
            kind = event.get("type")
            obj = event.get("object") or {}
            resource_version = (obj.get("metadata") or {}).get("resourceVersion", resource_version)
            if kind == "BOOKMARK":
                continue
            if (obj.get("metadata") or {}).get("name") != self._node:
                continue  # the field selector makes this impossible; never act on it
            self._apply(None if kind == "DELETED" else obj)
            if stop.is_set():
                break
        else:  # the server ended the watch in the ordinary way (its timeout)
            self._succeeded()
        return resource_version

    def _succeeded(self) -> None:
        if self._health is not None:
            self._health.succeeded(WatchName.RESERVE)

    def _restarted(self, reason: WatchRestart) -> None:
        if self._health is not None:
            self._health.restarted(WatchName.RESERVE, reason)

    def _apply(self, obj: Mapping[str, Any] | None) -> None:
        with self._lock:
            previous = self._state
            state = state_for(obj, self._node, self._memory, previous)
            self._state = state
        if state.error:
            log.warning(
                "NodeMemoryReserve %s unusable, keeping previous settings: %s",
                self._node,
                state.error,
            )
        if state != previous and self._on_change is not None:
            self._on_change(state)


# ------------------------------------------------------------------ status


@dataclass(frozen=True)
class ReserveReport:
    """What the agent measured and did, for ``NodeMemoryReserve.status``."""

    state: ReserveState
    guarded_cgroup: str
    memory_high_bytes: int | None  # None: not applied (e.g. kernel older than 5.9)
    memory_max_bytes: int | None
    usage_bytes: int
    memory_events: Mapping[str, int]  # keys as in the file: low high max oom oom_kill ...
    degraded_reason: str | None = None  # e.g. "MemoryHighUnsupported"
    degraded_message: str = ""
    last_decision: Mapping[str, Any] | None = None
    pressure: PressureState = field(default_factory=PressureState)
    pressure_cooldown: float = 0.0  # seconds, for the condition's message


_EVENT_KEYS = {
    "low": "low",
    "high": "high",
    "max": "max",
    "oom": "oom",
    "oom_kill": "oomKill",
    "oom_group_kill": "oomGroupKill",
}


def reserve_status(
    report: ReserveReport, previous: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """The status body (pure). Condition transition times move only when a status flips."""
    state = report.state
    enforcing = report.memory_high_bytes is not None and state.error is None
    if report.memory_high_bytes is None:
        enforcing_reason, enforcing_message = "NotApplied", "memory.high is not set"
    elif state.error is not None:
        enforcing_reason = "InvalidSpec"
        enforcing_message = f"spec not applied, previous settings kept: {state.error}"
    else:
        enforcing_reason = "Applied"
        enforcing_message = (
            f"memory.high={report.memory_high_bytes} on {report.guarded_cgroup}, "
            f"reserve {state.settings.reserve_bytes} bytes"
            + (" (dry run)" if state.settings.dry_run else "")
        )
    degraded = report.degraded_reason is not None or state.error is not None
    degraded_reason = report.degraded_reason or ("InvalidSpec" if state.error else "AsExpected")
    degraded_message = report.degraded_message or (state.error or "")
    now_text = rfc3339(now)
    generation = state.generation
    conditions = [
        condition("Enforcing", enforcing, enforcing_reason, enforcing_message, generation),
        condition("Degraded", degraded, degraded_reason, degraded_message, generation),
        condition(
            MEMORY_PRESSURE,
            report.pressure.under_pressure,
            report.pressure.reason.value,
            memory_pressure.message(report.pressure, report.pressure_cooldown),
            generation,
        ),
    ]

    status: dict[str, Any] = {
        "guardedCgroup": report.guarded_cgroup,
        "usageBytes": report.usage_bytes,
        # the same in binary units, for `kubectl get` (printer columns cannot format integers)
        "usage": format_size(report.usage_bytes),
        "reserve": format_size(state.settings.reserve_bytes),
        "memoryEvents": {
            _EVENT_KEYS[key]: value
            for key, value in report.memory_events.items()
            if key in _EVENT_KEYS
        },
        "lastUpdateTime": now_text,
        "conditions": stamp_transitions(
            conditions, list((previous or {}).get("conditions") or []), now_text
        ),
    }
    if state.generation is not None:
        status["observedGeneration"] = state.generation
    if report.memory_high_bytes is not None:
        status["memoryHighBytes"] = report.memory_high_bytes
        status["memoryHigh"] = format_size(report.memory_high_bytes)
    if report.memory_max_bytes is not None:
        status["memoryMaxBytes"] = report.memory_max_bytes
    if report.last_decision is not None:
        status["lastDecision"] = dict(report.last_decision)
    return status


class NodeReserveStatusWriter:
    """Patches ``NodeMemoryReserve/<node>/status``. There is nothing to write into while the
    node has no object (built-in defaults): ``write`` then returns False."""

    def __init__(self, custom_api: Any, node_name: str) -> None:
        self._custom = custom_api
        self._node = node_name

    def write(self, status: Mapping[str, Any]) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self._custom.patch_cluster_custom_object_status(
                GROUP,
                VERSION,
                RESERVE_PLURAL,
                self._node,
                {"status": dict(status)},
                _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True
