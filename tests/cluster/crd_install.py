"""Install the chart's CRDs (helm/oomguard/crds) into a control plane, the way helm would:
as they are, then wait until the apiserver serves them."""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from kubernetes.client import ApiClient, ApiextensionsV1Api, CustomObjectsApi
from kubernetes.client.exceptions import ApiException

CRD_DIR = Path(__file__).resolve().parents[2] / "helm" / "oomguard" / "crds"


def install_crds(
    api_client: ApiClient, crd_dir: Path = CRD_DIR, timeout: float = 30.0
) -> list[str]:
    """Creates (or replaces) every CRD in ``crd_dir``; returns their names once Established."""
    ext = ApiextensionsV1Api(api_client)
    names = []
    served: list[tuple[str, str, str]] = []  # (group, version, plural) of every served version
    for path in sorted(crd_dir.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        name = body["metadata"]["name"]
        spec = body["spec"]
        served += [
            (spec["group"], v["name"], spec["names"]["plural"])
            for v in spec["versions"]
            if v.get("served", True)
        ]
        try:
            ext.create_custom_resource_definition(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            current = ext.read_custom_resource_definition(name)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(name, body)
        names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd = ext.read_custom_resource_definition(name)
            conditions = {c.type: c.status for c in (crd.status.conditions or [])}
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"CRD {name} not established: {conditions}")
            time.sleep(0.1)
    # The apiserver's handlers may trail Established by a moment: wait until each served
    # version answers a list (a 404 until then).
    # (GET /apis/<group>/<version>/<plural>, through the typed client: ApiClient.call_api's
    # signature differs between client versions)
    custom = CustomObjectsApi(api_client)
    for group, version, plural in served:
        while True:
            try:
                custom.list_cluster_custom_object(group, version, plural)
                break
            except ApiException as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
    return names
