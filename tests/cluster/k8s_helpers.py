"""Helpers that make a kubelet-less control plane look like a node with running pods.

No kubelet runs, so a Node is just an object (its status is set at creation) and a Pod bound
to it (`spec.nodeName`) stays Pending until a test writes its status through the `status`
subresource, the way a kubelet would. Deleting such a pod only sets `deletionTimestamp`: the
kubelet that would finish the graceful deletion never comes, so the pod stays visible.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from control_plane import ControlPlane
from kubernetes import client
from kubernetes.client import ApiClient, CoreV1Api, V1Node, V1Pod
from kubernetes.client.rest import ApiException

T = TypeVar("T")

# Never pulled (no kubelet); any valid image reference would do.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_namespace(core: CoreV1Api, name: str | None = None) -> str:
    """A namespace ready for pods. The ServiceAccount admission plugin refuses pods until the
    namespace's `default` ServiceAccount exists; the controller-manager adds it, but in a
    software-emulated VM that took over a minute once, so create it here (whoever comes
    second gets 409 and that is fine)."""
    name = name or unique_name("t")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    ensure_service_account(core, name, "default")
    return name


def create_node(
    core: CoreV1Api,
    name: str | None = None,
    *,
    capacity: Mapping[str, str] | None = None,
    allocatable: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    ready: bool = True,
) -> V1Node:
    """A Node as a kubelet would register it (status may be set on create for Nodes)."""
    name = name or unique_name("node")
    capacity = dict(capacity or {"cpu": "4", "memory": "8Gi", "pods": "110"})
    now = datetime.now(UTC)
    node = client.V1Node(
        metadata=client.V1ObjectMeta(
            name=name,
            labels={"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})},
        ),
        status=client.V1NodeStatus(
            capacity=capacity,
            allocatable=dict(allocatable or capacity),
            conditions=[
                client.V1NodeCondition(
                    type="Ready",
                    status="True" if ready else "False",
                    reason="KubeletReady" if ready else "KubeletNotReady",
                    last_heartbeat_time=now,
                    last_transition_time=now,
                )
            ],
        ),
    )
    created: V1Node = core.create_node(node)
    return created


def create_pod_on_node(
    core: CoreV1Api,
    namespace: str,
    node_name: str,
    name: str | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    memory_request: str | None = None,
    memory_limit: str | None = None,
    priority_class_name: str | None = None,
    service_account: str | None = None,
    annotations: Mapping[str, str] | None = None,
    running: bool = True,
    start_time: datetime | None = None,
) -> V1Pod:
    """A Pod bound to `node_name`; with `running`, its status says Running and Ready.

    `service_account` must exist already (see `ensure_service_account`); a token bound to
    the pod can only be requested for that ServiceAccount.

    Running matters for evictions: the Eviction API ignores PodDisruptionBudgets for Pending
    pods, so a PDB only protects a pod whose status a "kubelet" has moved to Running.
    """
    resources: dict[str, dict[str, str]] = {}
    if memory_request:
        resources["requests"] = {"memory": memory_request}
    if memory_limit:
        resources["limits"] = {"memory": memory_limit}
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name or unique_name("pod"),
            labels=dict(labels or {}),
            annotations=dict(annotations or {}),
        ),
        spec=client.V1PodSpec(
            node_name=node_name,
            service_account_name=service_account,
            priority_class_name=priority_class_name,
            containers=[
                client.V1Container(
                    name="main",
                    image=PAUSE_IMAGE,
                    resources=client.V1ResourceRequirements(**resources) if resources else None,
                )
            ],
        ),
    )
    created: V1Pod = core.create_namespaced_pod(namespace, pod)
    if running:
        created = set_pod_running(core, created, start_time=start_time)
    return created


def set_pod_running(
    core: CoreV1Api, pod: V1Pod, *, start_time: datetime | None = None, ready: bool = True
) -> V1Pod:
    """Writes what a kubelet writes once the containers started (via the status subresource)."""
    start = (start_time or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ready_status = "True" if ready else "False"
    conditions = [
        {"type": t, "status": s, "lastTransitionTime": start}
        for t, s in (
            ("PodScheduled", "True"),
            ("Initialized", "True"),
            ("ContainersReady", ready_status),
            ("Ready", ready_status),
        )
    ]
    body = {
        "status": {
            "phase": "Running",
            "startTime": start,
            "conditions": conditions,
            "containerStatuses": [
                {
                    "name": c.name,
                    "image": c.image,
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": start}},
                }
                for c in pod.spec.containers
            ],
        }
    }
    patched: V1Pod = core.patch_namespaced_pod_status(
        pod.metadata.name, pod.metadata.namespace, body
    )
    return patched


def evict(core: CoreV1Api, pod: V1Pod) -> None:
    """POST pods/<name>/eviction (policy/v1); raises ApiException (429, 403, 404...)."""
    core.create_namespaced_pod_eviction(
        pod.metadata.name,
        pod.metadata.namespace,
        client.V1Eviction(
            metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace)
        ),
    )


def ensure_service_account(core: CoreV1Api, namespace: str, name: str) -> None:
    try:
        core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
        )
    except ApiException as err:
        if err.status != 409:
            raise


def request_token(
    core: CoreV1Api,
    namespace: str,
    service_account: str,
    *,
    bound_pod: V1Pod | None = None,
    expiration_seconds: int = 3600,
) -> str:
    """A TokenRequest token; bound to `bound_pod` it carries the pod's node (name and uid)."""
    bound = None
    if bound_pod is not None:
        bound = client.V1BoundObjectReference(
            api_version="v1", kind="Pod", name=bound_pod.metadata.name, uid=bound_pod.metadata.uid
        )
    review = core.create_namespaced_service_account_token(
        service_account,
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[],  # empty: the apiserver's own audience
                expiration_seconds=expiration_seconds,
                bound_object_ref=bound,
            )
        ),
    )
    token: str = review.status.token
    return token


def token_client(cp: ControlPlane, token: str) -> ApiClient:
    """An ApiClient that authenticates with a bearer token (no client certificate)."""
    conf = client.Configuration()
    conf.host = cp.server
    conf.ssl_ca_cert = str(cp.ca_file)
    conf.api_key = {"authorization": token}
    conf.api_key_prefix = {"authorization": "Bearer"}
    return ApiClient(conf)


def service_account_client(
    cp: ControlPlane,
    namespace: str,
    service_account: str,
    *,
    bound_pod: V1Pod | None = None,
    create: bool = True,
) -> ApiClient:
    """A client acting as system:serviceaccount:<namespace>:<service_account>."""
    core = CoreV1Api(cp.api_client)
    if create:
        ensure_service_account(core, namespace, service_account)
    return token_client(cp, request_token(core, namespace, service_account, bound_pod=bound_pod))


def jwt_claims(token: str) -> dict[str, Any]:
    """The (unverified) payload of a JWT, to look at what the apiserver put in a token."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def wait_for(
    what: str, probe: Callable[[], T | None], *, timeout: float = 60.0, interval: float = 0.25
) -> T:
    """Polls `probe` until it returns something other than None/False."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
