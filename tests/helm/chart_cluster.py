"""Putting the chart's rendered objects in front of the real kube-apiserver."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Sequence
from typing import Any

from k8s_helpers import ensure_service_account
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

CLUSTER_SCOPED = {
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "MemoryReservePolicy",
    "NodeMemoryReserve",
    "Namespace",
}


def install_crds(api: ApiClient, crds: Iterable[dict[str, Any]], timeout: float = 60) -> None:
    """Create (or replace) each CRD and wait until the apiserver serves it (Established)."""
    ext = client.ApiextensionsV1Api(api)
    names = []
    for crd in crds:
        name = crd["metadata"]["name"]
        names.append(name)
        try:
            ext.create_custom_resource_definition(crd)
        except ApiException as err:
            if err.status != 409:
                raise
            current = ext.read_custom_resource_definition(name)
            body = copy.deepcopy(crd)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(name, body)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            conditions = ext.read_custom_resource_definition(name).status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"CRD {name} not Established after {timeout} s")
            time.sleep(0.2)


class ObjectApi:
    """Create/get/delete any kind by its apiVersion and kind (discovery refreshed on a miss)."""

    def __init__(self, api: ApiClient) -> None:
        self.dynamic = DynamicClient(api)

    def resource(self, obj: dict[str, Any]) -> Any:
        try:
            return self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except ResourceNotFoundError:
            self.dynamic.resources.invalidate_cache()
            return self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])

    def create(self, obj: dict[str, Any], namespace: str | None, *, dry_run: bool) -> Any:
        """POST the object; fieldValidation=Strict so an unknown or duplicate field is an error."""
        resource = self.resource(obj)
        kwargs: dict[str, Any] = {"query_params": [("fieldValidation", "Strict")]}
        if dry_run:
            kwargs["dry_run"] = "All"
        ns = namespace if resource.namespaced else None
        return resource.create(body=obj, namespace=ns, **kwargs)

    def get(self, obj: dict[str, Any], namespace: str | None) -> Any:
        resource = self.resource(obj)
        ns = namespace if resource.namespaced else None
        return resource.get(name=obj["metadata"]["name"], namespace=ns)

    def exists(self, obj: dict[str, Any], namespace: str | None) -> bool:
        try:
            self.get(obj, namespace)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        return True

    def delete(self, obj: dict[str, Any], namespace: str | None) -> None:
        resource = self.resource(obj)
        ns = namespace if resource.namespaced else None
        try:
            resource.delete(name=obj["metadata"]["name"], namespace=ns)
        except ApiException as err:
            if err.status != 404:
                raise


def pod_from_template(workload: dict[str, Any], name: str) -> dict[str, Any]:
    """The Pod a workload controller would create from its template (for admission checks)."""
    template = copy.deepcopy(workload["spec"]["template"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template.get("metadata", {}), "name": name},
        "spec": template["spec"],
    }


def create_labelled_namespace(api: ApiClient, name: str, labels: dict[str, str]) -> None:
    """A namespace with its `default` ServiceAccount already there (the controller-manager
    adds it a moment later; a Pod admitted before that is refused)."""
    core = client.CoreV1Api(api)
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
    )
    ensure_service_account(core, name, "default")


def error_text(err: ApiException) -> str:
    return f"{err.status} {err.reason}: {err.body}"


def kinds(objects: Sequence[dict[str, Any]]) -> list[str]:
    return sorted({o["kind"] for o in objects})
