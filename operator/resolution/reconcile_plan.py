"""The writes that turn the NodeMemoryReserve objects that exist into the ones that should.

Only differences produce writes: same spec and same owner means nothing to do, so resyncs and
repeated events cost no API calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

from oomguard.operator.resolution.cluster_resolution import NodeFacts
from oomguard.wire.crd import API_VERSION, RESERVE_KIND
from oomguard.wire.node_settings import NodeSettings

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "oomguard-operator"


class WriteKind(Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class ActualReserve:
    """A NodeMemoryReserve as it exists (or as we last wrote it)."""

    name: str
    spec: Mapping[str, Any]
    owner_uid: str | None


@dataclass(frozen=True)
class ReserveWrite:
    kind: WriteKind
    name: str
    body: Mapping[str, Any] | None  # the full object for create/update, None for delete


def reserve_body(
    settings: NodeSettings, node_uid: str, spec: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``spec``: ``settings.to_spec()`` when the caller has it already."""
    return {
        "apiVersion": API_VERSION,
        "kind": RESERVE_KIND,
        "metadata": {
            "name": settings.node_name,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": settings.node_name,
                    "uid": node_uid,
                }
            ],
        },
        "spec": dict(spec) if spec is not None else settings.to_spec(),
    }


class _SpecCache:
    """``to_spec`` for many nodes: settings that differ only in the node's name (all the nodes
    one policy governs with the same memory) share one spec but for ``nodeName``; the nested
    sections are shared, read-only."""

    def __init__(self) -> None:
        self._specs: dict[tuple[object, ...], dict[str, Any]] = {}

    def spec(self, settings: NodeSettings) -> dict[str, Any]:
        key = tuple(getattr(settings, name) for name in _SHARED_FIELDS)
        spec = self._specs.get(key)
        if spec is None:
            spec = self._specs[key] = settings.to_spec()
        return (
            spec
            if spec["nodeName"] == settings.node_name
            else {
                **spec,
                "nodeName": settings.node_name,
            }
        )


_SHARED_FIELDS = tuple(f.name for f in fields(NodeSettings) if f.name != "node_name")


def plan_writes(
    desired: Mapping[str, NodeSettings],
    keep: frozenset[str],
    nodes: Mapping[str, NodeFacts],
    actual: Mapping[str, ActualReserve],
) -> list[ReserveWrite]:
    """``keep``: nodes whose reserve cannot be computed yet; their objects are left alone.

    Objects of vanished nodes that name an owner are left to the garbage collector.
    """
    writes: list[ReserveWrite] = []
    specs = _SpecCache()
    for name in sorted(desired):
        node = nodes[name]
        spec = specs.spec(desired[name])
        existing = actual.get(name)
        if existing is None:
            writes.append(
                ReserveWrite(WriteKind.CREATE, name, reserve_body(desired[name], node.uid, spec))
            )
        elif existing.spec != spec or existing.owner_uid != node.uid:
            writes.append(
                ReserveWrite(WriteKind.UPDATE, name, reserve_body(desired[name], node.uid, spec))
            )
    for name in sorted(actual):
        if name in desired or name in keep:
            continue
        if name not in nodes and actual[name].owner_uid is not None:
            continue
        writes.append(ReserveWrite(WriteKind.DELETE, name, None))
    return writes
