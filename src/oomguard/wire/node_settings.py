"""The per-node settings the node agent enforces, and the one wire format both sides agree on.

The operator resolves a MemoryReservePolicy into a ``NodeMemoryReserve.spec`` for each node
(``NodeSettings.to_spec``); the agent reads it back (``NodeSettings.from_spec``). Without any
NodeMemoryReserve for its node the agent runs with ``default_node_settings``. Pure: no I/O.

Sub-settings parse *partial* specs onto a base (``MonitorSettings.from_spec(d, base)``), so a
policy that only says ``pressure: {enabled: true}`` keeps every other default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

MIB = 2**20
GIB = 2**30

# The PSI trigger window the kernel accepts (kernel/sched/psi.c: 500ms..10s).
PSI_WINDOW_MIN_MS = 500
PSI_WINDOW_MAX_MS = 10_000

# Built-in reserve when no policy covers a node: 10% of its memory, clamped to [512Mi, 10Gi].
DEFAULT_RESERVE_PERCENT = 10
DEFAULT_RESERVE_MIN_BYTES = 512 * MIB
DEFAULT_RESERVE_MAX_BYTES = 10 * GIB


class SettingsError(ValueError):
    """A spec the agent cannot enforce; the message names the field and what is allowed."""


class EvictionPolicy(Enum):
    NEWEST_FIRST = "NewestFirst"
    QOS_THEN_NEWEST = "QoSThenNewest"


def _require(condition: bool, path: str, message: str) -> None:
    if not condition:
        raise SettingsError(f"{path}: {message}")


def _between(value: float, low: int, high: int, path: str, why: str = "") -> None:
    _require(low <= value <= high, path, f"must be between {low} and {high}{why}, got {value}")


def _not_negative(value: int, path: str) -> None:
    _require(value >= 0, path, f"must not be negative, got {value}")


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    _require(isinstance(value, Mapping), path, f"expected an object, got {value!r}")
    assert isinstance(value, Mapping)
    return value


def _section(spec: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    """An optional sub-object (absent: empty, so every field keeps its base value)."""
    return _mapping(spec.get(key, {}), f"{path}.{key}")


def _bool(spec: Mapping[str, Any], key: str, default: bool, path: str) -> bool:
    value = spec.get(key, default)
    _require(isinstance(value, bool), f"{path}.{key}", f"expected true or false, got {value!r}")
    return bool(value)


def _int(spec: Mapping[str, Any], key: str, default: int, path: str) -> int:
    value = spec.get(key, default)
    _require(
        isinstance(value, int) and not isinstance(value, bool),
        f"{path}.{key}",
        f"expected an integer, got {value!r}",
    )
    return int(value)


def _number(spec: Mapping[str, Any], key: str, default: float, path: str) -> float:
    value = spec.get(key, default)
    _require(
        isinstance(value, int | float) and not isinstance(value, bool),
        f"{path}.{key}",
        f"expected a number, got {value!r}",
    )
    return float(value)


@dataclass(frozen=True)
class EventMonitorSettings:
    """inotify on memory.events: react when the ``high`` counter rises."""

    enabled: bool = True

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], base: EventMonitorSettings, path: str
    ) -> EventMonitorSettings:
        return cls(enabled=_bool(spec, "enabled", base.enabled, path))

    def to_spec(self) -> dict[str, Any]:
        return {"enabled": self.enabled}


@dataclass(frozen=True)
class ThresholdMonitorSettings:
    """Poll usage against the limit; catches memory that escaped the cgroup (e.g. shmem)."""

    enabled: bool = True
    usage_percent: float = 95.0
    interval_ms: int = 1000

    def __post_init__(self) -> None:
        path = "monitor.threshold"
        _require(
            0 < self.usage_percent <= 100,
            f"{path}.usagePercent",
            f"must be greater than 0 and at most 100, got {self.usage_percent}",
        )
        _between(self.interval_ms, 10, 60_000, f"{path}.intervalMilliseconds")

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], base: ThresholdMonitorSettings, path: str
    ) -> ThresholdMonitorSettings:
        return cls(
            enabled=_bool(spec, "enabled", base.enabled, path),
            usage_percent=_number(spec, "usagePercent", base.usage_percent, path),
            interval_ms=_int(spec, "intervalMilliseconds", base.interval_ms, path),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "usagePercent": self.usage_percent,
            "intervalMilliseconds": self.interval_ms,
        }


@dataclass(frozen=True)
class PressureMonitorSettings:
    """A PSI trigger: ``some <stall> <window>`` on the guarded cgroup's memory.pressure."""

    enabled: bool = False
    stall_ms: int = 100
    window_ms: int = 1000

    def __post_init__(self) -> None:
        path = "monitor.pressure"
        _between(
            self.window_ms,
            PSI_WINDOW_MIN_MS,
            PSI_WINDOW_MAX_MS,
            f"{path}.windowMilliseconds",
            " (the PSI window the kernel accepts)",
        )
        _require(
            self.stall_ms > 0, f"{path}.stallMilliseconds", f"must be positive, got {self.stall_ms}"
        )
        _require(
            self.stall_ms <= self.window_ms,
            f"{path}.stallMilliseconds",
            f"must not exceed windowMilliseconds ({self.stall_ms} > {self.window_ms})",
        )

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], base: PressureMonitorSettings, path: str
    ) -> PressureMonitorSettings:
        return cls(
            enabled=_bool(spec, "enabled", base.enabled, path),
            stall_ms=_int(spec, "stallMilliseconds", base.stall_ms, path),
            window_ms=_int(spec, "windowMilliseconds", base.window_ms, path),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "stallMilliseconds": self.stall_ms,
            "windowMilliseconds": self.window_ms,
        }


@dataclass(frozen=True)
class MonitorSettings:
    event: EventMonitorSettings = field(default_factory=EventMonitorSettings)
    threshold: ThresholdMonitorSettings = field(default_factory=ThresholdMonitorSettings)
    pressure: PressureMonitorSettings = field(default_factory=PressureMonitorSettings)

    def __post_init__(self) -> None:
        _require(
            self.event.enabled or self.threshold.enabled or self.pressure.enabled,
            "monitor",
            "at least one of event, threshold or pressure must stay enabled",
        )

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], base: MonitorSettings | None = None, path: str = "monitor"
    ) -> MonitorSettings:
        base = base or cls()
        return cls(
            event=EventMonitorSettings.from_spec(
                _section(spec, "event", path), base.event, f"{path}.event"
            ),
            threshold=ThresholdMonitorSettings.from_spec(
                _section(spec, "threshold", path), base.threshold, f"{path}.threshold"
            ),
            pressure=PressureMonitorSettings.from_spec(
                _section(spec, "pressure", path), base.pressure, f"{path}.pressure"
            ),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "event": self.event.to_spec(),
            "threshold": self.threshold.to_spec(),
            "pressure": self.pressure.to_spec(),
        }


@dataclass(frozen=True)
class EvictionSettings:
    """How memory is freed: which pods first, how gently, and the last resort."""

    policy: EvictionPolicy = EvictionPolicy.NEWEST_FIRST
    grace_period_seconds: int = 10
    buffer_bytes: int = 64 * MIB
    max_evictions_per_minute: int = 10
    kill_fallback: bool = True
    kill_fallback_wait_seconds: int = 10
    protected_namespaces: tuple[str, ...] = ("kube-system",)
    protect_daemonset_pods: bool = True

    def __post_init__(self) -> None:
        path = "eviction"
        _not_negative(self.grace_period_seconds, f"{path}.gracePeriodSeconds")
        _not_negative(self.buffer_bytes, f"{path}.bufferBytes")
        _between(self.max_evictions_per_minute, 1, 600, f"{path}.maxEvictionsPerMinute")
        _between(self.kill_fallback_wait_seconds, 0, 3600, f"{path}.killFallback.waitSeconds")

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], base: EvictionSettings | None = None, path: str = "eviction"
    ) -> EvictionSettings:
        base = base or cls()
        policy_text = spec.get("policy", base.policy.value)
        allowed = [policy.value for policy in EvictionPolicy]
        _require(
            policy_text in allowed,
            f"{path}.policy",
            f"expected one of {', '.join(allowed)}, got {policy_text!r}",
        )
        kill = _section(spec, "killFallback", path)
        namespaces = spec.get("protectedNamespaces", list(base.protected_namespaces))
        _require(
            isinstance(namespaces, list | tuple)
            and all(isinstance(name, str) and name for name in namespaces),
            f"{path}.protectedNamespaces",
            f"expected a list of namespace names, got {namespaces!r}",
        )
        return cls(
            policy=EvictionPolicy(policy_text),
            grace_period_seconds=_int(spec, "gracePeriodSeconds", base.grace_period_seconds, path),
            buffer_bytes=_int(spec, "bufferBytes", base.buffer_bytes, path),
            max_evictions_per_minute=_int(
                spec, "maxEvictionsPerMinute", base.max_evictions_per_minute, path
            ),
            kill_fallback=_bool(kill, "enabled", base.kill_fallback, f"{path}.killFallback"),
            kill_fallback_wait_seconds=_int(
                kill, "waitSeconds", base.kill_fallback_wait_seconds, f"{path}.killFallback"
            ),
            protected_namespaces=tuple(sorted(set(namespaces))),
            protect_daemonset_pods=_bool(
                spec, "protectDaemonSetPods", base.protect_daemonset_pods, path
            ),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "policy": self.policy.value,
            "gracePeriodSeconds": self.grace_period_seconds,
            "bufferBytes": self.buffer_bytes,
            "maxEvictionsPerMinute": self.max_evictions_per_minute,
            "killFallback": {
                "enabled": self.kill_fallback,
                "waitSeconds": self.kill_fallback_wait_seconds,
            },
            "protectedNamespaces": list(self.protected_namespaces),
            "protectDaemonSetPods": self.protect_daemonset_pods,
        }


@dataclass(frozen=True)
class NodeSettings:
    """Everything one node's agent enforces. ``source_policy`` is None for built-in defaults."""

    node_name: str
    node_memory_bytes: int
    reserve_bytes: int
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    eviction: EvictionSettings = field(default_factory=EvictionSettings)
    dry_run: bool = False
    source_policy: str | None = None

    def __post_init__(self) -> None:
        _require(bool(self.node_name), "nodeName", "must not be empty")
        _not_negative(self.node_memory_bytes, "nodeMemoryBytes")
        _not_negative(self.reserve_bytes, "reserveBytes")

    @property
    def is_default(self) -> bool:
        return self.source_policy is None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> NodeSettings:
        """Parse a ``NodeMemoryReserve.spec``; missing sub-settings keep the built-in defaults."""
        spec = _mapping(spec, "spec")
        for key in ("nodeName", "sourcePolicy"):
            _require(
                isinstance(spec.get(key), str) and bool(spec.get(key)),
                key,
                f"expected a non-empty string, got {spec.get(key)!r}",
            )
        for key in ("nodeMemoryBytes", "reserveBytes"):
            _require(key in spec, key, "is required")
        return cls(
            node_name=spec["nodeName"],
            source_policy=spec["sourcePolicy"],
            node_memory_bytes=_int(spec, "nodeMemoryBytes", 0, "spec"),
            reserve_bytes=_int(spec, "reserveBytes", 0, "spec"),
            monitor=MonitorSettings.from_spec(_mapping(spec.get("monitor", {}), "monitor")),
            eviction=EvictionSettings.from_spec(_mapping(spec.get("eviction", {}), "eviction")),
            dry_run=_bool(spec, "dryRun", False, "spec"),
        )

    def to_spec(self) -> dict[str, Any]:
        """The ``NodeMemoryReserve.spec`` for these settings (only for policy-sourced settings)."""
        _require(self.source_policy is not None, "sourcePolicy", "built-in defaults have no spec")
        return {
            "nodeName": self.node_name,
            "sourcePolicy": self.source_policy,
            "nodeMemoryBytes": self.node_memory_bytes,
            "reserveBytes": self.reserve_bytes,
            "monitor": self.monitor.to_spec(),
            "eviction": self.eviction.to_spec(),
            "dryRun": self.dry_run,
        }

    def with_reserve(self, reserve_bytes: int) -> NodeSettings:
        return replace(self, reserve_bytes=reserve_bytes)


def default_reserve_bytes(node_memory_bytes: int) -> int:
    """The built-in reserve: 10% of the node's memory, clamped to [512Mi, 10Gi]."""
    share = node_memory_bytes * DEFAULT_RESERVE_PERCENT // 100
    return min(max(share, DEFAULT_RESERVE_MIN_BYTES), DEFAULT_RESERVE_MAX_BYTES)


def default_node_settings(node_name: str, node_memory_bytes: int) -> NodeSettings:
    """What the agent enforces while no NodeMemoryReserve exists for its node."""
    return NodeSettings(
        node_name=node_name,
        node_memory_bytes=node_memory_bytes,
        reserve_bytes=default_reserve_bytes(node_memory_bytes),
    )
