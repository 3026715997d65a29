"""The operator's one write to Nodes: its own taint in ``spec.taints``, added or removed.

Thin and synchronous (the official client; callers run it in worker threads). ``spec.taints``
is an atomic list, so each write reads the Node and patches the whole list guarded by the
Node's ``resourceVersion``: a taint someone else adds meanwhile makes the write fail with 409
and it is tried again on a fresh read, never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException

from oomguard.operator.resolution.pressure_taint import has_taint, with_taint

CONFLICT_RETRIES = 5


class NodeTaintApi(Protocol):
    def set_taint(self, node: str, wanted: bool) -> bool:
        """Add (``wanted``) or remove our taint; True when the Node changed."""
        ...

    def tainted_nodes(self) -> list[str]:
        """Every Node carrying our taint (one list call)."""
        ...


class KubernetesNodeTaintApi:
    def __init__(
        self,
        api_client: ApiClient,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = api_client
        self._core = CoreV1Api(api_client)
        self._wall_clock = wall_clock

    def set_taint(self, node: str, wanted: bool) -> bool:
        for attempt in range(CONFLICT_RETRIES):
            try:
                current = self._core.read_node(node)
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise
            spec_taints = current.spec.taints if current.spec is not None else None
            taints: list[dict[str, Any]] = self._client.sanitize_for_serialization(  # type: ignore[no-untyped-call]
                spec_taints or []
            )
            version = current.metadata.resource_version if current.metadata else None
            if has_taint(taints) == wanted:
                return False
            patch: dict[str, Any] = {
                "metadata": {"resourceVersion": version},
                "spec": {"taints": with_taint(taints, wanted, self._wall_clock())},
            }
            try:
                self._core.patch_node(node, patch)
            except ApiException as exc:
                if exc.status == 409 and attempt + 1 < CONFLICT_RETRIES:
                    continue
                if exc.status == 404:
                    return False
                raise
            return True
        return False

    def tainted_nodes(self) -> list[str]:
        names = []
        for node in self._core.list_node().items:
            taints = node.spec.taints if node.spec is not None else None
            if (
                node.metadata is not None
                and node.metadata.name
                and has_taint([t.to_dict() for t in taints or []])
            ):
                names.append(node.metadata.name)
        return sorted(names)
