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

from oomguard.wire.monitor_settings import (
    PSI_WINDOW_MAX_MS,
    PSI_WINDOW_MIN_MS,
    EventMonitorSettings,
    HostMemoryMonitorSettings,
    MonitorSettings,
    PressureMonitorSettings,
    ThresholdMonitorSettings,
)
from oomguard.wire.spec_fields import (
    SettingsError,
    between,
    bool_field,
    int_field,
    mapping_at,
    not_negative,
    require,
    section,
)

__all__ = [  # with the monitor section and the spec errors, so callers need one import
    "DEFAULT_RESERVE_MAX_BYTES",
    "DEFAULT_RESERVE_MIN_BYTES",
    "DEFAULT_RESERVE_PERCENT",
    "GIB",
    "MIB",
    "PRESSURE_COOLDOWN_MAX_SECONDS",
    "PRESSURE_COOLDOWN_MIN_SECONDS",
    "PSI_WINDOW_MAX_MS",
    "PSI_WINDOW_MIN_MS",
    "EventMonitorSettings",
    "EvictionPolicy",
    "EvictionSettings",
    "HostMemoryMonitorSettings",
    "MonitorSettings",
    "NodeSettings",
    "PressureMonitorSettings",
    "SettingsError",
    "ThresholdMonitorSettings",
    "default_node_settings",
    "default_reserve_bytes",
]

MIB = 2**20
GIB = 2**30

# Built-in reserve when no policy covers a node: 10% of its memory, clamped to [512Mi, 10Gi].
DEFAULT_RESERVE_PERCENT = 10
DEFAULT_RESERVE_MIN_BYTES = 512 * MIB
DEFAULT_RESERVE_MAX_BYTES = 10 * GIB


# MemoryPressure cooldown bounds (the CRDs say the same): long enough that an evicted pod's
# replacement is not scheduled back at once, short enough that a node is not kept out of
# scheduling for long after a storm.
PRESSURE_COOLDOWN_MIN_SECONDS = 0
PRESSURE_COOLDOWN_MAX_SECONDS = 3600


class EvictionPolicy(Enum):
    NEWEST_FIRST = "NewestFirst"
    QOS_THEN_NEWEST = "QoSThenNewest"


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
    # where pods may protect themselves with oomguard.io/protect ("*": every namespace)
    protect_annotation_namespaces: tuple[str, ...] = ()
    protect_daemonset_pods: bool = True
    # how long the node stays under MemoryPressure (and tainted) after an episode with
    # evictions ended: replacements of evicted pods do not land in the same storm
    pressure_cooldown_seconds: int = 60

    def __post_init__(self) -> None:
        path = "eviction"
        not_negative(self.grace_period_seconds, f"{path}.gracePeriodSeconds")
        not_negative(self.buffer_bytes, f"{path}.bufferBytes")
        between(self.max_evictions_per_minute, 1, 600, f"{path}.maxEvictionsPerMinute")
        between(self.kill_fallback_wait_seconds, 0, 3600, f"{path}.killFallback.waitSeconds")
        between(
            self.pressure_cooldown_seconds,
            PRESSURE_COOLDOWN_MIN_SECONDS,
            PRESSURE_COOLDOWN_MAX_SECONDS,
            f"{path}.pressureCooldownSeconds",
        )

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], base: EvictionSettings | None = None, path: str = "eviction"
    ) -> EvictionSettings:
        base = base or cls()
        policy_text = spec.get("policy", base.policy.value)
        allowed = [policy.value for policy in EvictionPolicy]
        require(
            policy_text in allowed,
            f"{path}.policy",
            f"expected one of {', '.join(allowed)}, got {policy_text!r}",
        )
        kill = section(spec, "killFallback", path)
        namespaces = spec.get("protectedNamespaces", list(base.protected_namespaces))
        require(
            isinstance(namespaces, list | tuple)
            and all(isinstance(name, str) and name for name in namespaces),
            f"{path}.protectedNamespaces",
            f"expected a list of namespace names, got {namespaces!r}",
        )
        annotation_namespaces = spec.get(
            "protectAnnotationNamespaces", list(base.protect_annotation_namespaces)
        )
        require(
            isinstance(annotation_namespaces, list | tuple)
            and all(isinstance(name, str) and name for name in annotation_namespaces),
            f"{path}.protectAnnotationNamespaces",
            f'expected a list of namespace names or "*", got {annotation_namespaces!r}',
        )
        return cls(
            policy=EvictionPolicy(policy_text),
            grace_period_seconds=int_field(
                spec, "gracePeriodSeconds", base.grace_period_seconds, path
            ),
            buffer_bytes=int_field(spec, "bufferBytes", base.buffer_bytes, path),
            max_evictions_per_minute=int_field(
                spec, "maxEvictionsPerMinute", base.max_evictions_per_minute, path
            ),
            kill_fallback=bool_field(kill, "enabled", base.kill_fallback, f"{path}.killFallback"),
            kill_fallback_wait_seconds=int_field(
                kill, "waitSeconds", base.kill_fallback_wait_seconds, f"{path}.killFallback"
            ),
            protected_namespaces=tuple(sorted(set(namespaces))),
            protect_annotation_namespaces=tuple(sorted(set(annotation_namespaces))),
            protect_daemonset_pods=bool_field(
                spec, "protectDaemonSetPods", base.protect_daemonset_pods, path
            ),
            pressure_cooldown_seconds=int_field(
                spec, "pressureCooldownSeconds", base.pressure_cooldown_seconds, path
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
            "protectAnnotationNamespaces": list(self.protect_annotation_namespaces),
            "protectDaemonSetPods": self.protect_daemonset_pods,
            "pressureCooldownSeconds": self.pressure_cooldown_seconds,
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
        require(bool(self.node_name), "nodeName", "must not be empty")
        not_negative(self.node_memory_bytes, "nodeMemoryBytes")
        not_negative(self.reserve_bytes, "reserveBytes")

    @property
    def is_default(self) -> bool:
        return self.source_policy is None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> NodeSettings:
        """Parse a ``NodeMemoryReserve.spec``; missing sub-settings keep the built-in defaults."""
        spec = mapping_at(spec, "spec")
        for key in ("nodeName", "sourcePolicy"):
            require(
                isinstance(spec.get(key), str) and bool(spec.get(key)),
                key,
                f"expected a non-empty string, got {spec.get(key)!r}",
            )
        for key in ("nodeMemoryBytes", "reserveBytes"):
            require(key in spec, key, "is required")
        return cls(
            node_name=spec["nodeName"],
            source_policy=spec["sourcePolicy"],
            node_memory_bytes=int_field(spec, "nodeMemoryBytes", 0, "spec"),
            reserve_bytes=int_field(spec, "reserveBytes", 0, "spec"),
            monitor=MonitorSettings.from_spec(mapping_at(spec.get("monitor", {}), "monitor")),
            eviction=EvictionSettings.from_spec(mapping_at(spec.get("eviction", {}), "eviction")),
            dry_run=bool_field(spec, "dryRun", False, "spec"),
        )

    def to_spec(self) -> dict[str, Any]:
        """The ``NodeMemoryReserve.spec`` for these settings (only for policy-sourced settings)."""
        require(self.source_policy is not None, "sourcePolicy", "built-in defaults have no spec")
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
