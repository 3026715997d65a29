"""Acceptance tests for the real control plane: evictions, PodDisruptionBudgets, RBAC, tokens."""

from __future__ import annotations

import subprocess

import pytest
from control_plane import ControlPlane
from k8s_helpers import (
    create_node,
    create_pod_on_node,
    ensure_service_account,
    evict,
    jwt_claims,
    request_token,
    service_account_client,
    token_client,
    unique_name,
    wait_for,
)
from kubernetes import client
from kubernetes.client import CoreV1Api, PolicyV1Api, V1Pod
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.apiserver


def _create_pdb(policy: PolicyV1Api, namespace: str, labels: dict[str, str]) -> str:
    name = unique_name("pdb")
    policy.create_namespaced_pod_disruption_budget(
        namespace,
        client.V1PodDisruptionBudget(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PodDisruptionBudgetSpec(
                min_available=1, selector=client.V1LabelSelector(match_labels=labels)
            ),
        ),
    )
    return name


def _reread(core: CoreV1Api, pod: V1Pod) -> V1Pod:
    fresh: V1Pod = core.read_namespaced_pod(pod.metadata.name, pod.metadata.namespace)
    return fresh


def test_server_reports_the_built_release(control_plane: ControlPlane) -> None:
    version = client.VersionApi(control_plane.api_client).get_code()
    assert version.git_version.startswith("v1.")
    assert version.git_version != "v0.0.0-master+$Format:%H$"


def test_pods_on_a_node_stay_bound_and_take_status(
    control_plane: ControlPlane, core_api: CoreV1Api, namespace: str
) -> None:
    node = create_node(
        core_api,
        capacity={"cpu": "2", "memory": "4Gi", "pods": "10"},
        allocatable={"cpu": "2", "memory": "3Gi", "pods": "10"},
        labels={"oomguard.io/test": "yes"},
    )
    assert node.status.allocatable["memory"] == "3Gi"
    assert core_api.read_node(node.metadata.name).metadata.labels["oomguard.io/test"] == "yes"
    pending = create_pod_on_node(core_api, namespace, node.metadata.name, running=False)
    running = create_pod_on_node(core_api, namespace, node.metadata.name, memory_request="64Mi")
    assert _reread(core_api, pending).status.phase == "Pending"
    fresh = _reread(core_api, running)
    assert fresh.spec.node_name == node.metadata.name
    assert fresh.status.phase == "Running"
    assert fresh.status.start_time is not None


def test_eviction_respects_pod_disruption_budget(
    control_plane: ControlPlane, core_api: CoreV1Api, namespace: str
) -> None:
    node = create_node(core_api).metadata.name
    protected_labels = {"app": "protected"}
    protected = create_pod_on_node(core_api, namespace, node, labels=protected_labels)
    free = [create_pod_on_node(core_api, namespace, node, labels={"app": "free"}) for _ in "ab"]
    policy = PolicyV1Api(control_plane.api_client)
    pdb_name = _create_pdb(policy, namespace, protected_labels)

    def pdb_computed() -> client.V1PodDisruptionBudgetStatus | None:
        pdb = policy.read_namespaced_pod_disruption_budget(pdb_name, namespace)
        st = pdb.status
        if st and st.observed_generation == pdb.metadata.generation and st.expected_pods == 1:
            return st
        return None

    # The disruption controller in kube-controller-manager fills the status in.
    status = wait_for("the disruption controller to compute the PDB status", pdb_computed)
    assert status.current_healthy == 1
    assert status.desired_healthy == 1
    assert status.disruptions_allowed == 0

    evict(core_api, free[0])
    evicted = _reread(core_api, free[0])
    # No kubelet finishes the graceful deletion, so the pod stays, marked for deletion.
    assert evicted.metadata.deletion_timestamp is not None
    assert _reread(core_api, free[1]).metadata.deletion_timestamp is None

    with pytest.raises(ApiException) as blocked:
        evict(core_api, protected)
    assert blocked.value.status == 429
    assert "disruption budget" in blocked.value.body
    assert _reread(core_api, protected).metadata.deletion_timestamp is None


def test_eviction_needs_rbac_permission(
    control_plane: ControlPlane, core_api: CoreV1Api, namespace: str
) -> None:
    node = create_node(core_api).metadata.name
    pod = create_pod_on_node(core_api, namespace, node)
    nobody = CoreV1Api(service_account_client(control_plane, namespace, "nobody"))

    with pytest.raises(ApiException) as denied:
        evict(nobody, pod)
    assert denied.value.status == 403
    assert "system:serviceaccount:" + namespace + ":nobody" in denied.value.body
    assert _reread(core_api, pod).metadata.deletion_timestamp is None

    # The same ServiceAccount, once granted pods/eviction, can evict: the 403 was RBAC.
    rbac = client.RbacAuthorizationV1Api(control_plane.api_client)
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="evictor"),
            rules=[
                client.V1PolicyRule(api_groups=[""], resources=["pods/eviction"], verbs=["create"])
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="evictor"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="evictor"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="nobody", namespace=namespace)
            ],
        ),
    )

    def evicted() -> bool:
        try:
            evict(nobody, pod)
        except ApiException as err:
            if err.status == 403:  # the authorizer's RBAC cache has not caught up yet
                return False
            raise
        return True

    wait_for("the RoleBinding to take effect", evicted, timeout=30)
    assert _reread(core_api, pod).metadata.deletion_timestamp is not None


def test_pod_bound_token_carries_the_node_name(
    control_plane: ControlPlane, core_api: CoreV1Api, namespace: str
) -> None:
    node = create_node(core_api).metadata.name
    ensure_service_account(core_api, namespace, "agent")
    pod = create_pod_on_node(core_api, namespace, node, service_account="agent")
    sa_client = service_account_client(control_plane, namespace, "agent", bound_pod=pod)
    review = client.AuthenticationV1Api(sa_client).create_self_subject_review(
        client.V1SelfSubjectReview()
    )
    user = review.status.user_info
    assert user.username == f"system:serviceaccount:{namespace}:agent"
    assert user.extra["authentication.kubernetes.io/node-name"] == [node]
    assert user.extra["authentication.kubernetes.io/pod-name"] == [pod.metadata.name]

    token = request_token(core_api, namespace, "agent", bound_pod=pod)
    claims = jwt_claims(token)["kubernetes.io"]
    assert claims["node"]["name"] == node
    assert claims["pod"]["uid"] == pod.metadata.uid

    unbound = token_client(control_plane, request_token(core_api, namespace, "agent"))
    review = client.AuthenticationV1Api(unbound).create_self_subject_review(
        client.V1SelfSubjectReview()
    )
    assert "authentication.kubernetes.io/node-name" not in (review.status.user_info.extra or {})


def test_controller_manager_publishes_root_ca(
    control_plane: ControlPlane, core_api: CoreV1Api, namespace: str
) -> None:
    # The root-CA publisher is a controller-manager loop: the CA reaching a new namespace
    # shows the controller-manager runs and talks to the apiserver.
    config_map = wait_for(
        "kube-root-ca.crt in the new namespace",
        lambda: (
            core_api.list_namespaced_config_map(
                namespace, field_selector="metadata.name=kube-root-ca.crt"
            ).items
        ),
    )[0]
    assert config_map.data["ca.crt"] == control_plane.ca_file.read_text()


def test_helm_binary_runs(control_plane: ControlPlane) -> None:
    out = subprocess.run(
        [str(control_plane.binaries.helm), "version", "--short"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("v3.")
