"""A MemoryReservePolicy object parsed into what resolution needs, or the reason it cannot be.

Invalid policies normally never reach the operator (the CRD's CEL rules refuse them), but a
policy written before a schema change, or one that only fails against the built-in defaults,
must be reported in its status, not crash the operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oomguard.operator.resolution.label_selector import LabelSelector, SelectorError
from oomguard.operator.resolution.reserve_bytes import (
    ReserveError,
    ReserveRule,
    parse_quantity,
    reserve_rule_from_spec,
)
from oomguard.wire.node_settings import (
    EvictionSettings,
    MonitorSettings,
    NodeSettings,
    SettingsError,
)


@dataclass(frozen=True)
class Policy:
    name: str
    generation: int
    priority: int
    selector: LabelSelector
    reserve: ReserveRule
    monitor: MonitorSettings
    eviction: EvictionSettings
    dry_run: bool

    def settings_for(self, node_name: str, node_memory_bytes: int | None) -> NodeSettings:
        return NodeSettings(
            node_name=node_name,
            node_memory_bytes=node_memory_bytes or 0,
            reserve_bytes=self.reserve.bytes_for(node_memory_bytes),
            monitor=self.monitor,
            eviction=self.eviction,
            dry_run=self.dry_run,
            source_policy=self.name,
        )


@dataclass(frozen=True)
class InvalidPolicy:
    name: str
    generation: int
    error: str


def parse_policy(body: Mapping[str, Any]) -> Policy | InvalidPolicy:
    """Never raises for a bad spec: returns ``InvalidPolicy`` with the message for the status."""
    metadata = body.get("metadata") or {}
    name = str(metadata.get("name", ""))
    generation = int(metadata.get("generation") or 0)
    spec = body.get("spec")
    if spec is None:
        spec = {}
    try:
        if not isinstance(spec, Mapping):
            raise SettingsError(f"spec: expected an object, got {spec!r}")
        priority = spec.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise SettingsError(f"priority: expected an integer, got {priority!r}")
        eviction_spec = dict(spec.get("eviction") or {})
        if "buffer" in eviction_spec:
            eviction_spec["bufferBytes"] = parse_quantity(
                eviction_spec.pop("buffer"), "eviction.buffer"
            )
        dry_run = spec.get("dryRun", False)
        if not isinstance(dry_run, bool):
            raise SettingsError(f"dryRun: expected true or false, got {dry_run!r}")
        return Policy(
            name=name,
            generation=generation,
            priority=priority,
            selector=LabelSelector.from_spec(spec.get("nodeSelector")),
            reserve=reserve_rule_from_spec(spec.get("reserve")),  # type: ignore[arg-type]
            monitor=MonitorSettings.from_spec(spec.get("monitor") or {}),
            eviction=EvictionSettings.from_spec(eviction_spec),
            dry_run=dry_run,
        )
    except (SettingsError, SelectorError, ReserveError) as exc:
        return InvalidPolicy(name=name, generation=generation, error=str(exc))
