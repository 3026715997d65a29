"""The operator's writes to the API: NodeMemoryReserve objects and policy status.

Thin and synchronous (the official client); the reconciler runs it in worker threads. Each
call returns the new resourceVersion so the reconciler can recognise its own write when the
watch delivers it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

from kubernetes.client import ApiClient, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

from oomguard.wire.crd import GROUP, POLICY_PLURAL, RESERVE_PLURAL, VERSION

MERGE_PATCH = "application/merge-patch+json"


class ReserveApi(Protocol):
    def create_reserve(self, body: Mapping[str, Any]) -> str: ...
    def update_reserve(self, name: str, body: Mapping[str, Any]) -> str: ...
    def delete_reserve(self, name: str) -> None: ...
    def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> str: ...


class KubernetesReserveApi:
    def __init__(self, api_client: ApiClient) -> None:
        self._custom = CustomObjectsApi(api_client)

    def create_reserve(self, body: Mapping[str, Any]) -> str:
        try:
            created = self._custom.create_cluster_custom_object(
                GROUP, VERSION, RESERVE_PLURAL, dict(body)
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            # Exists already (our watch lags behind): make it match instead.
            return self.update_reserve(str(body["metadata"]["name"]), body)
        return _resource_version(created)

    def update_reserve(self, name: str, body: Mapping[str, Any]) -> str:
        patch = {
            "metadata": {
                "labels": body["metadata"]["labels"],
                "ownerReferences": body["metadata"]["ownerReferences"],
            },
            "spec": body["spec"],
        }
        updated = self._custom.patch_cluster_custom_object(
            GROUP, VERSION, RESERVE_PLURAL, name, patch, _content_type=MERGE_PATCH
        )
        return _resource_version(updated)

    def delete_reserve(self, name: str) -> None:
        try:
            self._custom.delete_cluster_custom_object(GROUP, VERSION, RESERVE_PLURAL, name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def patch_policy_status(self, name: str, status: Mapping[str, Any]) -> str:
        patched = self._custom.patch_cluster_custom_object_status(
            GROUP, VERSION, POLICY_PLURAL, name, {"status": dict(status)}, _content_type=MERGE_PATCH
        )
        return _resource_version(patched)


def _resource_version(obj: object) -> str:
    return str(cast(dict[str, Any], obj)["metadata"]["resourceVersion"])
