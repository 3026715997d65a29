"""The chart against the real kube-apiserver: dry-run every object, then helm install/upgrade/
uninstall for real.

No kubelet runs, so the DaemonSet's and Deployment's pods stay Pending; what is proven is that
every object is valid (schema, strict field validation, CRD CEL rules, admission) and that the
release's lifecycle works with the real helm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chart_cluster import (
    ObjectApi,
    create_labelled_namespace,
    error_text,
    install_crds,
    pod_from_template,
)
from chart_tools import CHART_DIR, VALUES_DIR, by_kind, one, render, run_helm
from control_plane import ControlPlane
from k8s_helpers import unique_name
from kubernetes.client import (
    AdmissionregistrationV1Api,
    AppsV1Api,
    CoreV1Api,
    CustomObjectsApi,
    RbacAuthorizationV1Api,
)
from kubernetes.client.rest import ApiException
from monitoring_crd_stubs import STUB_CRDS

pytestmark = [pytest.mark.helm, pytest.mark.apiserver]

Objects = list[dict[str, Any]]


@pytest.fixture(scope="module")
def cluster_with_crds(control_plane: ControlPlane, helm_home: Path) -> ControlPlane:
    """The chart's CRDs (from `helm template --include-crds`) and the monitoring stubs."""
    crds = by_kind(render(helm_home), "CustomResourceDefinition")
    install_crds(control_plane.api_client, [*crds, *STUB_CRDS])
    return control_plane


def _release_namespace(cp: ControlPlane) -> str:
    name = unique_name("chart")
    create_labelled_namespace(
        cp.api_client, name, {"pod-security.kubernetes.io/enforce": "privileged"}
    )
    return name


@pytest.mark.parametrize("values_name", sorted(p.stem for p in VALUES_DIR.glob("*.yaml")))
def test_every_rendered_object_passes_server_side_dry_run(
    values_name: str, cluster_with_crds: ControlPlane, helm_home: Path
) -> None:
    namespace = _release_namespace(cluster_with_crds)
    objects = render(helm_home, [VALUES_DIR / f"{values_name}.yaml"], namespace=namespace)
    api = ObjectApi(cluster_with_crds.api_client)
    refused = []
    checked = []
    for obj in objects:
        if obj["kind"] == "CustomResourceDefinition":
            continue  # installed for real by the fixture (dry-run of a CRD adds nothing)
        try:
            api.create(obj, namespace, dry_run=True)
        except ApiException as err:
            refused.append(f"{obj['kind']}/{obj['metadata']['name']}: {error_text(err)}")
        else:
            checked.append(obj["kind"])
    assert not refused, "\n".join(refused)
    assert {"DaemonSet", "Deployment", "ClusterRole", "ServiceAccount"} <= set(checked)
    if values_name == "monitoring":
        assert {"ServiceMonitor", "PrometheusRule", "ConfigMap"} <= set(checked)
    if values_name == "pod-monitoring":
        assert "PodMonitor" in set(checked)


def test_strict_dry_run_refuses_a_misspelt_field(
    cluster_with_crds: ControlPlane, helm_home: Path
) -> None:
    """The check above can fail: a field the schema does not know is refused, not dropped."""
    namespace = _release_namespace(cluster_with_crds)
    objects = render(helm_home, [VALUES_DIR / "monitoring.yaml"], namespace=namespace)
    api = ObjectApi(cluster_with_crds.api_client)
    broken = [
        one(objects, "DaemonSet"),
        one(objects, "PrometheusRule"),
        one(objects, "ServiceMonitor", "agent"),
        one(objects, "MemoryReservePolicy"),
    ]
    broken[0]["spec"]["template"]["spec"]["tolerations"][0]["opperator"] = "Exists"
    broken[1]["spec"]["groups"][0]["rules"][0]["expresion"] = "up"
    broken[2]["spec"]["endpoints"][0]["intervall"] = "30s"
    broken[3]["spec"]["reserve"]["percentage"] = 10
    for obj in broken:
        with pytest.raises(ApiException) as caught:
            api.create(obj, namespace, dry_run=True)
        assert caught.value.status in (400, 422), error_text(caught.value)


def test_default_policy_is_checked_by_the_crd_rules(
    cluster_with_crds: ControlPlane, helm_home: Path
) -> None:
    """What the values schema cannot express, the CRD's CEL rules refuse at install time."""
    objects = render(helm_home, set_values=["defaultPolicy.reserve.percent=10"])
    policy = one(objects, "MemoryReservePolicy")
    policy["spec"]["reserve"] = {"percent": 10, "min": "2Gi", "max": "1Gi"}
    with pytest.raises(ApiException) as caught:
        ObjectApi(cluster_with_crds.api_client).create(policy, None, dry_run=True)
    assert "min must not exceed max" in str(caught.value.body)


def test_pod_security_levels(cluster_with_crds: ControlPlane, helm_home: Path) -> None:
    """The agent needs the `privileged` level (hostPath, root); the operator passes `restricted`."""
    cp = cluster_with_crds
    objects = render(helm_home)
    api = ObjectApi(cp.api_client)
    agent_pod = pod_from_template(one(objects, "DaemonSet"), "agent-probe")
    operator_pod = pod_from_template(one(objects, "Deployment"), "operator-probe")
    for pod in (agent_pod, operator_pod):
        pod["spec"]["serviceAccountName"] = "default"  # the chart's SA is not in these namespaces

    levels = {}
    for level in ("restricted", "baseline", "privileged"):
        ns = unique_name(level)
        create_labelled_namespace(cp.api_client, ns, {"pod-security.kubernetes.io/enforce": level})
        levels[level] = ns

    api.create(agent_pod, levels["privileged"], dry_run=True)
    with pytest.raises(ApiException) as caught:
        api.create(agent_pod, levels["baseline"], dry_run=True)
    assert caught.value.status == 403
    assert "hostPath" in str(caught.value.body)

    api.create(operator_pod, levels["restricted"], dry_run=True)


def _helm(cp: ControlPlane, home: Path, *args: str) -> str:
    result = run_helm(list(args), home=home, env={"KUBECONFIG": str(cp.kubeconfig)}, timeout=300)
    assert result.returncode == 0, result.output
    return result.stdout


def test_helm_install_upgrade_uninstall(cluster_with_crds: ControlPlane, helm_home: Path) -> None:
    cp = cluster_with_crds
    namespace = _release_namespace(cp)
    release = unique_name("og")
    policy_name = f"{release}-default"
    base = ["--namespace", namespace, "--set", f"defaultPolicy.name={policy_name}"]
    apps = AppsV1Api(cp.api_client)
    custom = CustomObjectsApi(cp.api_client)
    rbac = RbacAuthorizationV1Api(cp.api_client)
    admission = AdmissionregistrationV1Api(cp.api_client)
    webhook_name = f"{release}-oomguard-evictions"

    out = _helm(cp, helm_home, "install", release, str(CHART_DIR), *base)
    assert "STATUS: deployed" in out
    assert "pod-security.kubernetes.io/enforce=privileged" in out  # NOTES
    ds = apps.read_namespaced_daemon_set(f"{release}-oomguard-agent", namespace)
    assert "--dry-run" not in ds.spec.template.spec.containers[0].args
    apps.read_namespaced_deployment(f"{release}-oomguard-operator", namespace)
    policy = custom.get_cluster_custom_object(
        "oomguard.io", "v1alpha1", "memoryreservepolicies", policy_name
    )
    assert policy["spec"]["dryRun"] is False
    rbac.read_cluster_role(f"{release}-oomguard-agent")
    # the eviction webhook is on by default: installed, matched to this release's agent only
    [hook] = admission.read_validating_webhook_configuration(webhook_name).webhooks
    assert hook.failure_policy == "Ignore"
    agent = f"system:serviceaccount:{namespace}:{release}-oomguard-agent"
    assert [c.expression for c in hook.match_conditions] == [
        f"request.userInfo.username == '{agent}'"
    ]
    assert hook.client_config.service.namespace == namespace
    assert not hook.client_config.ca_bundle  # the operator publishes its CA at start

    out = _helm(
        cp,
        helm_home,
        "upgrade",
        release,
        str(CHART_DIR),
        *base,
        "--values",
        str(VALUES_DIR / "dry-run.yaml"),
        "--values",
        str(VALUES_DIR / "monitoring.yaml"),
    )
    assert "STATUS: deployed" in out and "REVISION: 2" in out
    ds = apps.read_namespaced_daemon_set(f"{release}-oomguard-agent", namespace)
    assert "--dry-run" in ds.spec.template.spec.containers[0].args
    policy = custom.get_cluster_custom_object(
        "oomguard.io", "v1alpha1", "memoryreservepolicies", policy_name
    )
    assert policy["spec"]["dryRun"] is True
    custom.get_namespaced_custom_object(
        "monitoring.coreos.com", "v1", namespace, "prometheusrules", f"{release}-oomguard"
    )
    history = _helm(cp, helm_home, "history", release, "--namespace", namespace)
    assert "upgrade complete" in history.lower() or "deployed" in history

    out = _helm(cp, helm_home, "uninstall", release, "--namespace", namespace)
    assert "uninstalled" in out
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_daemon_set(f"{release}-oomguard-agent", namespace)
    assert gone.value.status == 404
    with pytest.raises(ApiException) as gone:
        rbac.read_cluster_role(f"{release}-oomguard-agent")
    assert gone.value.status == 404
    with pytest.raises(ApiException) as gone:
        admission.read_validating_webhook_configuration(webhook_name)
    assert gone.value.status == 404
    with pytest.raises(ApiException) as gone:
        custom.get_cluster_custom_object(
            "oomguard.io", "v1alpha1", "memoryreservepolicies", policy_name
        )
    assert gone.value.status == 404
    # Helm never deletes CRDs: the users' other policies survive an uninstall.
    ObjectApi(cp.api_client).get(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "memoryreservepolicies.oomguard.io"},
        },
        None,
    )
    assert CoreV1Api(cp.api_client).read_namespace(namespace).status.phase == "Active"


def test_notes_say_how_to_check_and_which_pod_security_level(
    cluster_with_crds: ControlPlane, helm_home: Path
) -> None:
    cp = cluster_with_crds
    out = _helm(cp, helm_home, "install", "r", str(CHART_DIR), "-n", "ns", "--dry-run=server")
    notes = out.split("NOTES:", 1)[1]
    assert "pod-security.kubernetes.io/enforce=privileged" in notes
    assert "rollout status daemonset/r-oomguard-agent" in notes
    assert "kubectl get nodememoryreserves" in notes
    assert "/readyz" in notes


def test_kubectl_get_shows_reserve_memory_high_and_usage_in_binary_units(
    cluster_with_crds: ControlPlane,
) -> None:
    """The apiserver renders the printer columns (the Table kubectl asks for): the agent's
    status, as it writes it, reads 1.6Gi / 14.5Gi / 1.5Gi, not raw bytes."""
    import dataclasses
    import json
    from datetime import UTC, datetime

    from oomguard.monitor.kube.node_reserve import ReserveReport, reserve_status, state_for
    from oomguard.monitor.settings import default_node_settings

    gib = 2**30
    node = unique_name("node")
    settings = dataclasses.replace(default_node_settings(node, 16 * gib), source_policy="default")
    custom = CustomObjectsApi(cluster_with_crds.api_client)
    group, version, plural = "oomguard.io", "v1alpha1", "nodememoryreserves"
    body = {
        "apiVersion": f"{group}/{version}",
        "kind": "NodeMemoryReserve",
        "metadata": {"name": node},
        "spec": settings.to_spec(),
    }
    custom.create_cluster_custom_object(group, version, plural, body)
    try:
        obj = custom.get_cluster_custom_object(group, version, plural, node)
        report = ReserveReport(
            state=state_for(obj, node, 16 * gib, None),
            guarded_cgroup="kubepods.slice",
            memory_high_bytes=29 * gib // 2,
            memory_max_bytes=None,
            usage_bytes=3 * gib // 2,
            memory_events={"low": 0, "high": 0, "max": 0, "oom": 0, "oom_kill": 0},
        )
        status = reserve_status(report, None, datetime.now(UTC))
        custom.patch_cluster_custom_object_status(group, version, plural, node, {"status": status})
        response = custom.get_cluster_custom_object(
            group,
            version,
            plural,
            node,
            _headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
            _preload_content=False,
        )
        table = json.loads(response.data)
        columns = [c["name"] for c in table["columnDefinitions"]]
        row = dict(zip(columns, table["rows"][0]["cells"], strict=True))
        assert (row["Reserve"], row["MemoryHigh"], row["Usage"]) == ("1.6Gi", "14.5Gi", "1.5Gi")
        assert row["ReserveBytes"] == 16 * gib // 10  # -o wide keeps the exact bytes
    finally:
        custom.delete_cluster_custom_object(group, version, plural, node)
